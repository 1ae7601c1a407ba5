"""The ASGI server `ledger http` runs the API under: uvicorn (on uvloop, with
httptools parsing HTTP/1.1) or granian (a server written in Rust: the
connections, the HTTP parsing and the responses' writes run on its own
threads, outside the interpreter lock), chosen by LEDGER_HTTP_SERVER.

Both serve either a port of their own or a socket already listening that
this process inherited (`ledger serve` binds one and passes it to every HTTP
process, so the kernel spreads the connections over them). Both run the
app's lifespan (startup, and on shutdown the ledger closed), and on SIGTERM
or Ctrl-C stop accepting, finish the requests under way and return. Both
take X-Forwarded-For from the addresses in FORWARDED_ALLOW_IPS (uvicorn
itself, granian through uvicorn's middleware).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

from interface.processes.stop_signals import STOP_SIGNALS

if TYPE_CHECKING:
    from granian.log import LogLevels
    from starlette.types import ASGIApp

HttpServerName = Literal["uvicorn", "granian"]
HTTP_SERVER_NAMES: Final[tuple[str, ...]] = get_args(HttpServerName)
# A listening socket's queue of connections not yet accepted (uvicorn's
# default; `ledger serve` binds its socket with the same).
LISTEN_BACKLOG: Final[int] = 2048
# Who may set X-Forwarded-For and X-Forwarded-Proto (a proxy's addresses,
# comma-separated, or *), as uvicorn reads it; its default: loopback.
FORWARDED_ALLOW_IPS_VARIABLE: Final[str] = "FORWARDED_ALLOW_IPS"
FORWARDED_ALLOW_IPS_DEFAULT: Final[str] = "127.0.0.1,::1"
# The exit status when the app's lifespan startup failed, as uvicorn's.
STARTUP_FAILED_STATUS: Final[int] = 3
# Granian logs this once per start of its embedded server (the way this module
# runs it in this process, on this process's event loop): dropped, as it
# says nothing about this start.
GRANIAN_EMBEDDED_NOTICE: Final[str] = "Embedded server is experimental!"


def serve_app(
    app: ASGIApp,
    server: HttpServerName,
    *,
    host: str,
    port: int,
    fd: int | None,
    log_level: str,
) -> None:
    """Serve `app` until SIGTERM or Ctrl-C: on `fd` when given (a socket
    already listening), else on host and port."""
    if server == "granian":
        _serve_under_granian(app, host=host, port=port, fd=fd, log_level=log_level)
    else:
        _serve_under_uvicorn(app, host=host, port=port, fd=fd)


def _serve_under_uvicorn(app: ASGIApp, *, host: str, port: int, fd: int | None) -> None:
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        # Named rather than "auto": a missing one fails here instead of
        # falling back to the slower pure-Python loop or parser.
        loop="uvloop",
        http="httptools",
        ws="none",
        lifespan="on",
        backlog=LISTEN_BACKLOG,
        log_config=None,
        access_log=False,
    )
    server = uvicorn.Server(config)
    if fd is None:
        server.run()
    else:
        # The socket's family (IPv4 or IPv6) is read from the descriptor.
        server.run(sockets=[socket.socket(fileno=fd)])
    if not server.started:
        # The lifespan startup failed (uvicorn has logged why).
        sys.exit(STARTUP_FAILED_STATUS)


def _serve_under_granian(
    app: ASGIApp, *, host: str, port: int, fd: int | None, log_level: str
) -> None:
    import uvloop
    from granian._granian import SocketHolder
    from granian.constants import HTTPModes, Interfaces
    from granian.server.embed import Server
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    class _Server(Server):
        """Granian's server embedded in this process (one worker, on this
        process's event loop); on `fd` when given. Granian's own processes
        would each bind the port anew with SO_REUSEPORT, where connections
        queued on a process that stops are dropped; one inherited socket
        keeps them for the others."""

        def _init_shared_socket(self) -> None:
            if fd is None:
                super()._init_shared_socket()  # type: ignore[no-untyped-call]
                return
            # Granian listens on it again (only the backlog changes) and
            # leaves it open when it drops its holder. Its stubs leave out
            # the holder's constructor and type these attributes as None.
            holder: Any = SocketHolder
            self._ssp = None
            self._shd = holder(fd, False, self.backlog)
            self._sfd = fd  # type: ignore[assignment]

    if fd is not None:
        host, port = _bound_address(fd)
    logging.getLogger("_granian").addFilter(_without_embedded_notice)
    # Granian reads no forwarding headers: uvicorn's middleware, as uvicorn
    # runs it, so that behind a proxy the client's address is the client's
    # (the rate limits per address see it).
    forwarded = ProxyHeadersMiddleware(
        app,  # type: ignore[arg-type]
        trusted_hosts=os.environ.get(FORWARDED_ALLOW_IPS_VARIABLE, FORWARDED_ALLOW_IPS_DEFAULT),
    )
    server = _Server(
        forwarded,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        http=HTTPModes.http1,
        websockets=False,
        backlog=LISTEN_BACKLOG,
        log_level=_granian_log_level(log_level),
        # Its lines through this process's logging (the root handler), not
        # a handler of its own on stdout.
        log_dictconfig={
            "version": 1,
            "disable_existing_loggers": False,
            "loggers": {
                "_granian": {"handlers": [], "propagate": True},
                "granian.access": {"handlers": [], "propagate": True},
            },
        },
        log_access=False,
    )

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for stop_signal in STOP_SIGNALS:
            loop.add_signal_handler(stop_signal, server.stop)
        await server.serve()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run())
    if server.interrupt_children:
        # Its worker ended unasked: the lifespan startup failed (logged).
        sys.exit(STARTUP_FAILED_STATUS)


def _bound_address(fd: int) -> tuple[str, int]:
    """Where the inherited socket listens, for granian's "Listening at" line."""
    with socket.socket(fileno=os.dup(fd)) as listening:
        address: tuple[Any, ...] = listening.getsockname()
    return str(address[0]), int(address[1])


def _granian_log_level(level: str) -> LogLevels:
    from granian.log import LogLevels

    try:
        return LogLevels(level.lower())
    except ValueError:
        return LogLevels.info


def _without_embedded_notice(record: logging.LogRecord) -> bool:
    return record.getMessage() != GRANIAN_EMBEDDED_NOTICE
