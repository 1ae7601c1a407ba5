"""The tamper matrix: an event, a column and a kind of damage, drawn by
Hypothesis, done to a copy of a checkpointed log by a database superuser.
Every one is found, and the first finding names exactly that event."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import psycopg
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from interface.audit.checkpoint_sources import verify_database_checkpoints
from interface.audit.checkpoints import Damage
from tests.support import tampering
from tests.support.checkpointed_log import CheckpointedLog, checkpointed_log

TRANSFERS: Final[int] = 40
EVENTS_PER_CHECKPOINT: Final[int] = 40
EXAMPLES: Final[int] = 30

# Damage done -> what verify must call it.
FLIPPED: Final[dict[str, Damage]] = {
    "originator_id": Damage.CHANGED,
    "originator_version": Damage.CHANGED,
    "topic": Damage.CHANGED,
    "state": Damage.CHANGED,
    "event_hash": Damage.LINK_CHANGED,
    "recorded_at": Damage.TIME_MOVED,
    "notification_id": Damage.DELETED,
}
KINDS: Final[list[str]] = [
    *(f"flip:{column}" for column in FLIPPED),
    "forge",
    "delete",
    "insert",
    "swap",
    "move_time",
    "truncate",
]


@pytest.fixture
def log(database_url: str, tmp_path: Path) -> CheckpointedLog:
    return checkpointed_log(
        database_url, tmp_path, transfers=TRANSFERS, events_per_checkpoint=EVENTS_PER_CHECKPOINT
    )


def _head(database_url: str) -> int:
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SELECT max(notification_id) FROM ledger_events").fetchone()
    assert row is not None
    return int(row[0])


def _damage(connection: tampering.Connection, kind: str, position: int, head: int) -> Damage:
    """Do it; what verify must report."""
    if kind.startswith("flip:"):
        column = kind.removeprefix("flip:")
        tampering.flip(connection, position, column)
        return FLIPPED[column]
    if kind == "forge":
        tampering.forge(connection, position, 1)
        return Damage.FORGED
    if kind == "delete":
        tampering.delete(connection, position)
        return Damage.TRUNCATED if position == head else Damage.DELETED
    if kind == "insert":
        tampering.insert_before(connection, position, 1)
        return Damage.INSERTED
    if kind == "swap":
        tampering.swap_with_next(connection, position)
        return Damage.REORDERED
    if kind == "move_time":
        tampering.move_time(connection, position)
        return Damage.TIME_MOVED
    tampering.truncate_from(connection, position)
    return Damage.TRUNCATED


def _assert_found(log: CheckpointedLog, kind: str, position: int) -> None:
    head = _head(log.database_url)
    with tampering.database_copy(log.database_url) as copy:
        with psycopg.connect(copy) as connection:
            connection.execute("SET session_replication_role = replica")
            expected = _damage(connection, kind, position, head)
        report, _ = verify_database_checkpoints(copy, log.keys, log.directory)
    assert not report.ok
    first = report.first
    assert first is not None, report.findings
    assert (first.position, first.damage) == (position, expected), first.message
    if expected not in (Damage.DELETED, Damage.TRUNCATED):
        assert first.stream is not None and first.version is not None


@pytest.mark.parametrize("kind", ["insert", "swap", "delete", "forge", "move_time"])
def test_damage_at_a_checkpoint_boundary_is_named_as_it_was_done(
    log: CheckpointedLog, kind: str
) -> None:
    """The last event a checkpoint signs: an event pushed or swapped across
    into the next checkpoint's range is still found for what was done."""
    _assert_found(log, kind, EVENTS_PER_CHECKPOINT)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_every_damage_is_found_with_the_exact_event_named(
    log: CheckpointedLog, data: st.DataObject
) -> None:
    head = _head(log.database_url)
    kind = data.draw(st.sampled_from(KINDS), label="kind")
    last = head - 1 if kind == "swap" else head
    position = data.draw(st.integers(min_value=1, max_value=last), label="position")
    event(kind)
    _assert_found(log, kind, position)
