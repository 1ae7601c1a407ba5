"""Reading the event log directly, as the reconciliation checks do: one
snapshot for every query of a check, and the head of the log now."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import IsolationLevel

from projections import runner


def snapshot_connection(database_url: str) -> psycopg.Connection[Any]:
    """A read-only REPEATABLE READ connection: every query of one check sees
    the same log however much is written meanwhile."""
    connection = psycopg.connect(database_url)
    connection.isolation_level = IsolationLevel.REPEATABLE_READ
    connection.read_only = True
    return connection


def log_head(database_url: str) -> int:
    """The last position written now (0 for an empty log)."""
    with (
        psycopg.connect(database_url, autocommit=True) as connection,
        connection.cursor() as cursor,
    ):
        return runner.log_head(cursor)
