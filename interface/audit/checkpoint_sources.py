"""Checking a database's log against its signed checkpoints
(interface/audit/checkpoints.py): the log read in pages, in binary, with ids,
types and times as the raw bytes the links cover."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import psycopg
from psycopg import IsolationLevel
from psycopg.types.string import ByteaBinaryLoader

from interface.adapters.audit_checkpoint_directory import CheckpointDirectory
from interface.adapters.audit_keys import PublicKeys
from interface.adapters.persistence.checkpoint_store import chain_v2_from, stored_checkpoints
from interface.audit.checkpoints import CheckpointCheck, CheckpointReport, Row, verified_checkpoints

# Events read per round trip.
LOG_PAGE_ROWS: Final[int] = 20_000

_SELECT_PAGE: Final = (
    "SELECT notification_id, originator_id, originator_version, topic, state, event_hash,"
    " recorded_at FROM ledger_events WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
)


def raw_log_connection(database_url: str) -> psycopg.Connection[Any]:
    """Read only, REPEATABLE READ (one consistent log), ids, text and times
    loaded as the raw bytes PostgreSQL sends in binary."""
    connection = psycopg.connect(database_url)
    connection.isolation_level = IsolationLevel.REPEATABLE_READ
    connection.read_only = True
    for type_name in ("uuid", "text", "timestamptz"):
        connection.adapters.register_loader(type_name, ByteaBinaryLoader)
    return connection


def log_pages(connection: psycopg.Connection[Any]) -> Iterator[list[Row]]:
    after = 0
    with connection.cursor(binary=True) as cursor:
        while True:
            cursor.execute(_SELECT_PAGE, (after, LOG_PAGE_ROWS))
            rows: list[Row] = cursor.fetchall()
            if rows:
                yield rows
                after = rows[-1][0]
            if len(rows) < LOG_PAGE_ROWS:
                return


def verify_database_checkpoints(
    database_url: str, keys: PublicKeys, directory: Path | None
) -> tuple[CheckpointReport, float]:
    """The report, and the seconds the log's pass took."""
    started = time.perf_counter()
    report = CheckpointReport()
    with raw_log_connection(database_url) as connection:
        stored = stored_checkpoints(connection)
        mirrored = list(CheckpointDirectory(directory).read()) if directory is not None else None
        checkpoints = verified_checkpoints(stored, mirrored, keys, report)
        check = CheckpointCheck(checkpoints, chain_v2_from(connection), report)
        for page in log_pages(connection):
            check.check_page(page)
        check.finish()
    return report, time.perf_counter() - started
