"""Where a benchmark runs: a PostgreSQL server, and throwaway databases on it.

Without `LEDGER_BENCH_DATABASE_URL` the benchmark starts the embedded
PostgreSQL in a data folder of its own (default `./.bench`), kept between runs
so the server is initialised once. Every run makes fresh databases on it and
drops them at the end, so no run sees another's events.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from interface.adapters.persistence import database

BENCH_DATABASE_URL_VARIABLE: Final[str] = "LEDGER_BENCH_DATABASE_URL"
DATA_DIR_DEFAULT: Final[Path] = Path(".bench")


def server_url(database_url: str | None = None, data_dir: Path | None = None) -> str:
    """An explicit URL, else the environment's, else the embedded server's."""
    configured = database_url or os.environ.get(BENCH_DATABASE_URL_VARIABLE)
    if configured:
        return configured
    return database.start_embedded_postgres(data_dir or DATA_DIR_DEFAULT)


def with_database(url: str, dbname: str) -> str:
    parameters = conninfo_to_dict(url)
    parameters["dbname"] = dbname
    return make_conninfo("", **parameters)


# Server settings that move commit-bound figures, shown beside them.
REPORTED_SETTINGS: Final[tuple[str, ...]] = (
    "server_version",
    "fsync",
    "synchronous_commit",
    "shared_buffers",
)


def server_settings(url: str) -> dict[str, str]:
    found: dict[str, str] = {}
    with psycopg.connect(url, autocommit=True) as connection:
        for name in REPORTED_SETTINGS:
            row = connection.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
            found[name] = str(row[0]) if row else "unknown"
    return found


def transport(url: str) -> str:
    host = str(conninfo_to_dict(url).get("host", ""))
    return "unix socket" if host.startswith("/") or not host else "tcp"


def checkpoint(url: str) -> bool:
    """Write out dirty buffers now, so a timed phase does not pay for the last one's.

    Returns False where the role may not (an external server, no superuser)."""
    try:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("CHECKPOINT")
    except psycopg.errors.InsufficientPrivilege:
        return False
    return True


@contextmanager
def temporary_database(url: str, prefix: str) -> Iterator[str]:
    """A new, empty database on the server; dropped afterwards, whatever happened."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(url, name)
    finally:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def environment(server_url: str, load_at_start: float) -> dict[str, str]:
    """What a benchmark report says it ran on: versions, server settings, machine."""
    server = server_settings(server_url)
    return {
        "python": platform.python_version(),
        "eventsourcing": importlib.metadata.version("eventsourcing"),
        "psycopg": importlib.metadata.version("psycopg"),
        "postgresql": server.pop("server_version"),
        "connection": transport(server_url),
        **server,
        "cpus": str(os.cpu_count()),
        "load_average_1m": f"{load_at_start:.2f} at start, {os.getloadavg()[0]:.2f} at end",
        "platform": platform.platform(terse=True),
    }


def ledger_data_dir(database_url: str, data_dir: Path | None) -> Path:
    """The data directory of the ledger on this database: one per database,
    since what a ledger keeps there (its audit key pair and checkpoints,
    docs/configuration.md#audit-signed-checkpoints) describes one log only;
    the benchmarks' databases share the server's folder."""
    name = conninfo_to_dict(database_url).get("dbname") or "ledger"
    return (data_dir or DATA_DIR_DEFAULT) / "ledgers" / str(name)
