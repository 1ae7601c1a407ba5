"""`ledger serve`: the whole service on one machine, as a small supervisor.

In order: the embedded PostgreSQL when no LEDGER_DATABASE_URL is set, the
migrations once, the demo data set with `--demo`; then the listening socket,
bound here and inherited by every HTTP process (the kernel hands each new
connection to one of them; a restarted child serves the same socket, so no
connection is refused meanwhile); then the children: the writer process
(`ledger writer`), N HTTP processes (`ledger http`) and the worker (`ledger
worker`). On SIGTERM or Ctrl-C: the children stop in order, then the
embedded PostgreSQL (docs/architecture.md#processes).
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import structlog

from interface.observability.logging import configure_logging
from interface.processes.banner import DemoAccess, announce_when_ready, banner
from interface.processes.embedded_database import EmbeddedDatabase, start_embedded_database
from interface.processes.stop_signals import stop_requested
from interface.processes.supervisor import ChildSpec, CrashLoop, Supervisor
from interface.settings import Settings

log = structlog.get_logger(__name__)

# A listening socket's queue of connections not yet accepted (uvicorn's default).
LISTEN_BACKLOG: Final[int] = 2048
HTTP_PROCESSES_MAX: Final[int] = 64
# The writer's endpoint when LEDGER_WRITER_ENDPOINT is unset: a socket file in
# the data directory, reachable by this machine's processes alone. A Unix
# socket's path is at most 107 bytes; past that, the operator sets the
# endpoint (docs/operations.md#deploy).
WRITER_SOCKET_FILE: Final[str] = "writer.sock"
UNIX_SOCKET_PATH_BYTES_MAX: Final[int] = 107
# Stop ranks: the HTTP processes first, then the worker, the writer last.
HTTP_STOP_RANK: Final[int] = 0
WORKER_STOP_RANK: Final[int] = 1
WRITER_STOP_RANK: Final[int] = 2
# A demo is for a look: its logs (this process's and the children's) are
# warnings and errors only, unless LEDGER_LOG_LEVEL asks for more.
DEMO_LOG_LEVEL: Final[str] = "WARNING"


@dataclass(frozen=True, slots=True)
class ServeOptions:
    host: str
    port: int
    demo: bool
    http_processes: int


def default_http_processes() -> int:
    """One HTTP process per core."""
    return min(os.cpu_count() or 1, HTTP_PROCESSES_MAX)


def serve(settings: Settings, options: ServeOptions) -> int:
    """Run the service until SIGTERM or Ctrl-C; the exit status (1 when a
    child crashed too often and the supervisor gave up)."""
    stop = stop_requested()
    if _quiet(options):
        configure_logging(DEMO_LOG_LEVEL, json=settings.log_json)
    embedded: EmbeddedDatabase | None = None
    if settings.database_url:
        database_url = settings.database_url
    else:
        embedded = start_embedded_database(settings.data_dir)
        database_url = embedded.url
    try:
        _migrate(database_url)
        demo = _load_demo(settings, database_url, options) if options.demo else None
        if stop.is_set():
            return 0
        with _listening_socket(options.host, options.port) as listening:
            specs = _children(settings, database_url, options, listening.fileno())
            announce_when_ready(
                _probe_url(options.host, options.port),
                banner(_base_url(options.host, options.port), _described(specs), demo),
                stop,
            )
            try:
                # Once stopping, new connections are refused (when the HTTP
                # processes have closed their copies) rather than left queued.
                Supervisor(specs).run(stop, stopping=listening.close)
            except CrashLoop as error:
                sys.stderr.write(f"ledger serve: stopped: {error}\n")
                return 1
        return 0
    finally:
        if embedded is not None:
            embedded.stop()


def _quiet(options: ServeOptions) -> bool:
    return options.demo and "LEDGER_LOG_LEVEL" not in os.environ


def _migrate(database_url: str) -> None:
    from interface.adapters.persistence import database

    applied = database.upgrade(database_url)
    if applied:
        log.info("migrations_applied", migrations=applied)


def _load_demo(settings: Settings, database_url: str, options: ServeOptions) -> DemoAccess:
    """The demo data set through a writer of this process's own, before any
    child (so before any other writer) starts, and two keys to try it with."""
    from interface.adapters.persistence.api_keys import Role
    from interface.bootstrap import build_ledger
    from interface.demo.data_set import load_demo_data_set
    from interface.demo.ledger_transfers import DEMO_USER_OWNER

    ledger = build_ledger(
        settings.model_copy(update={"database_url": database_url, "writer_endpoint": None})
    )
    try:
        loaded = load_demo_data_set(ledger)
        for line in loaded.lines:
            sys.stdout.write(f"demo: {line}\n")
        _, admin_key = ledger.api_keys.create(Role.ADMIN, label="demo admin")
        _, user_key = ledger.api_keys.create(Role.USER, owner_id=DEMO_USER_OWNER, label="demo user")
    finally:
        ledger.close()
    return DemoAccess(
        admin_key=admin_key,
        user_key=user_key,
        user_owner=DEMO_USER_OWNER,
        user_account_id=str(loaded.summary.user_account_ids[0]),
    )


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listening = socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG)
    listening.set_inheritable(True)
    return listening


def _children(
    settings: Settings, database_url: str, options: ServeOptions, listening_fd: int
) -> list[ChildSpec]:
    environment = {"LEDGER_DATABASE_URL": database_url}
    if _quiet(options):
        environment["LEDGER_LOG_LEVEL"] = DEMO_LOG_LEVEL
    serve_http = ["http", "--fd", str(listening_fd)]
    if settings.clock_settable:
        # The clock an admin moves lives in one process's memory: that one
        # process runs everything, as every part must read the same clock.
        return [
            ChildSpec(
                "all-in-one",
                _ledger_command(*serve_http, "--all-in-one"),
                environment,
                pass_fds=(listening_fd,),
            )
        ]
    environment["LEDGER_WRITER_ENDPOINT"] = _writer_endpoint(settings)
    writer = ChildSpec("writer", _ledger_command("writer"), environment, stop_rank=WRITER_STOP_RANK)
    http = [
        ChildSpec(
            f"http-{number}",
            _ledger_command(*serve_http),
            environment,
            pass_fds=(listening_fd,),
            stop_rank=HTTP_STOP_RANK,
            waits_for_ready=True,
        )
        for number in range(1, options.http_processes + 1)
    ]
    # The HTTP processes serve once it runs: a ready HTTP process then has
    # views that follow the log.
    worker = ChildSpec(
        "worker",
        _ledger_command("worker"),
        environment,
        stop_rank=WORKER_STOP_RANK,
        tells_ready=True,
    )
    return [writer, worker, *http]


def _writer_endpoint(settings: Settings) -> str:
    chosen = os.environ.get("LEDGER_WRITER_ENDPOINT")
    if chosen:
        return chosen
    path = settings.data_dir.resolve() / WRITER_SOCKET_FILE
    if len(os.fsencode(path)) > UNIX_SOCKET_PATH_BYTES_MAX:
        raise ValueError(
            f"the writer's socket path {path} is longer than {UNIX_SOCKET_PATH_BYTES_MAX} "
            "bytes: set LEDGER_WRITER_ENDPOINT (tcp://127.0.0.1:PORT) or a shorter LEDGER_DATA_DIR"
        )
    return f"ipc://{path}"


def _ledger_command(*arguments: str) -> list[str]:
    # This interpreter, whatever the PATH says (interface/cli/__main__.py).
    return [sys.executable, "-m", "interface.cli", *arguments]


def _described(specs: Sequence[ChildSpec]) -> str:
    if len(specs) == 1:
        return f"one process, {specs[0].name}"
    http = sum(1 for spec in specs if spec.name.startswith("http-"))
    others = [spec.name for spec in specs if not spec.name.startswith("http-")]
    return f"{http} HTTP process{'es' if http > 1 else ''}, " + ", ".join(others)


def _base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _probe_url(host: str, port: int) -> str:
    """Where this machine reaches the service (a wildcard address is not one)."""
    if host in ("0.0.0.0", ""):  # noqa: S104 - recognising it, not binding it
        return f"http://127.0.0.1:{port}"
    if host == "::":
        return f"http://[::1]:{port}"
    return _base_url(host, port)
