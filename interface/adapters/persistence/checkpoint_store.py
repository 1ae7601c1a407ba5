"""Signed checkpoints in the database (table ledger_checkpoints, migration 0012),
and the chain schemes' boundaries (ledger_chain_schemes)."""

from __future__ import annotations

from typing import Any, Final

import psycopg

from domain.audit_checkpoint import SignedCheckpoint
from domain.event_chain import CHAIN_VERSION_2

Connection = psycopg.Connection[Any]

_SELECT_ALL: Final = (
    "SELECT sequence, statement, signature, entries FROM ledger_checkpoints ORDER BY sequence"
)
_SELECT_LAST: Final = (
    "SELECT sequence, statement, signature, entries FROM ledger_checkpoints"
    " ORDER BY sequence DESC LIMIT 1"
)
_SELECT_COVERING: Final = (
    "SELECT sequence, statement, signature, entries FROM ledger_checkpoints"
    " WHERE last_position >= %s ORDER BY sequence LIMIT 1"
)
_INSERT: Final = (
    "INSERT INTO ledger_checkpoints (sequence, last_position, statement, signature, entries)"
    " VALUES (%s, %s, %s, %s, %s)"
)


def _signed(row: tuple[Any, ...]) -> tuple[int, SignedCheckpoint]:
    sequence, statement, signature, entries = row
    return int(sequence), SignedCheckpoint(bytes(statement), bytes(signature), bytes(entries))


def stored_checkpoints(connection: Connection) -> list[tuple[int, SignedCheckpoint]]:
    return [_signed(row) for row in connection.execute(_SELECT_ALL).fetchall()]


def last_checkpoint(connection: Connection) -> tuple[int, SignedCheckpoint] | None:
    row = connection.execute(_SELECT_LAST).fetchone()
    return None if row is None else _signed(row)


def checkpoint_covering(connection: Connection, position: int) -> SignedCheckpoint | None:
    row = connection.execute(_SELECT_COVERING, (position,)).fetchone()
    return None if row is None else _signed(row)[1]


def insert_checkpoint(
    connection: Connection, sequence: int, last_position: int, signed: SignedCheckpoint
) -> None:
    connection.execute(
        _INSERT, (sequence, last_position, signed.statement, signed.signature, signed.entries)
    )


def chain_v2_from(connection: Connection) -> int:
    """The first position chained by version 2 (1 on a log made after 0012)."""
    row = connection.execute(
        "SELECT first_position FROM ledger_chain_schemes WHERE version = %s", (CHAIN_VERSION_2,)
    ).fetchone()
    assert row is not None, "migration 0012 records where chain version 2 begins"
    return int(row[0])


def stored_checkpoints_after(
    connection: Connection, sequence: int
) -> list[tuple[int, SignedCheckpoint]]:
    rows = connection.execute(
        "SELECT sequence, statement, signature, entries FROM ledger_checkpoints"
        " WHERE sequence > %s ORDER BY sequence",
        (sequence,),
    ).fetchall()
    return [_signed(row) for row in rows]
