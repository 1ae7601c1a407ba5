"""N processes of an ASGI app on one listening socket, as `ledger serve` runs
its HTTP processes: this process binds the port, then starts N children that
inherit the socket and serve the app under the named server through the
service's own code (interface/processes/http_server.py), so the floor runs
exactly as the service's HTTP processes do. It waits for them; SIGTERM or
Ctrl-C is passed on to them (they stop as the service's do).

    python -m benchmarks.http_processes --app benchmarks.http_floor:create_floor_app \\
        --server granian --processes 2 --port 8000
"""

from __future__ import annotations

import argparse
import importlib
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from typing import cast

from interface.processes.http_server import (
    HTTP_SERVER_NAMES,
    LISTEN_BACKLOG,
    HttpServerName,
    serve_app,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.http_processes")
    parser.add_argument("--app", required=True, help="module:factory returning the ASGI app")
    parser.add_argument("--server", choices=HTTP_SERVER_NAMES, required=True)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--fd", type=int, default=None, help="(a child) the inherited socket")
    parser.add_argument("--log-level", default="WARNING")
    return parser


def _serve_child(arguments: argparse.Namespace) -> None:
    module_name, _, factory_name = arguments.app.partition(":")
    factory = getattr(importlib.import_module(module_name), factory_name)
    serve_app(
        factory(),
        cast(HttpServerName, arguments.server),
        host=arguments.host,
        port=arguments.port,
        fd=arguments.fd,
        log_level=arguments.log_level,
    )


def _supervise(arguments: argparse.Namespace) -> int:
    if arguments.processes < 1:
        raise ValueError("--processes must be at least 1")
    listening = socket.create_server(
        (arguments.host, arguments.port), backlog=LISTEN_BACKLOG, reuse_port=False
    )
    listening.set_inheritable(True)
    fd = str(listening.fileno())
    children = [
        subprocess.Popen(  # noqa: S603 - this module's own command line
            [
                sys.executable,
                "-m",
                "benchmarks.http_processes",
                *("--app", arguments.app, "--server", arguments.server),
                *("--host", arguments.host, "--port", str(arguments.port)),
                *("--fd", fd, "--log-level", arguments.log_level),
            ],
            pass_fds=(listening.fileno(),),
        )
        for _ in range(arguments.processes)
    ]
    listening.close()

    def stop(_signal_number: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return max(child.wait() for child in children)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    if arguments.fd is not None:
        _serve_child(arguments)
        return 0
    return _supervise(arguments)


if __name__ == "__main__":
    sys.exit(main())
