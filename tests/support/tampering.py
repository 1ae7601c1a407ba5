"""What a database superuser can do to the log, one kind of damage at a time,
each to one event (by position): the tamper matrix's moves."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from domain.event_chain import GENESIS_HASH, chained_hash, chained_link_of
from tests.support import databases

Connection = psycopg.Connection[Any]

# Far from any real position or version: a flipped high bit.
_HIGH_BIT: Final[int] = 1 << 40
# The columns a byte can be flipped in, and how (text stays valid UTF-8).
FLIPS: Final[dict[str, str]] = {
    "originator_id": "originator_id = overlay(originator_id::text placing "
    "CASE WHEN substr(originator_id::text, 1, 1) = 'a' THEN 'b' ELSE 'a' END from 1 for 1)::uuid",
    "originator_version": f"originator_version = originator_version # {_HIGH_BIT}",
    "topic": "topic = overlay(topic placing chr(ascii(substr(topic, 1, 1)) # 1) from 1 for 1)",
    "state": "state = set_byte(state, 1, get_byte(state, 1) # 1)",
    "event_hash": "event_hash = set_byte(event_hash, 0, get_byte(event_hash, 0) # 1)",
    "recorded_at": "recorded_at = recorded_at + interval '1 microsecond'",
    "notification_id": f"notification_id = notification_id # {_HIGH_BIT}",
}


def flip(connection: Connection, position: int, column: str) -> None:
    connection.execute(
        f"UPDATE ledger_events SET {FLIPS[column]} WHERE notification_id = %s",
        (position,),
    )


def recompute_chain_from(connection: Connection, position: int, chain_v2_from: int) -> None:
    """Every link from `position` on recomputed from the stored fields: the
    chain holds again, as a forger who knows the scheme would leave it."""
    row = connection.execute(
        "SELECT event_hash FROM ledger_events WHERE notification_id < %s"
        " ORDER BY notification_id DESC LIMIT 1",
        (position,),
    ).fetchone()
    previous = bytes(row[0]) if row else GENESIS_HASH
    rows = connection.execute(
        "SELECT notification_id, originator_id, originator_version, topic, state, recorded_at"
        " FROM ledger_events WHERE notification_id >= %s ORDER BY notification_id",
        (position,),
    ).fetchall()
    for at, originator, version, topic, state, recorded in rows:
        if at >= chain_v2_from:
            previous = chained_link_of(
                previous, at, originator, version, topic, bytes(state), recorded
            )
        else:
            previous = chained_hash(previous, originator, version, topic, bytes(state))
        connection.execute(
            "UPDATE ledger_events SET event_hash = %s WHERE notification_id = %s", (previous, at)
        )


def forge(connection: Connection, position: int, chain_v2_from: int) -> None:
    flip(connection, position, "state")
    recompute_chain_from(connection, position, chain_v2_from)


def delete(connection: Connection, position: int) -> None:
    connection.execute("DELETE FROM ledger_events WHERE notification_id = %s", (position,))


def truncate_from(connection: Connection, position: int) -> None:
    connection.execute("DELETE FROM ledger_events WHERE notification_id >= %s", (position,))


def insert_before(connection: Connection, position: int, chain_v2_from: int) -> None:
    """A new event at `position`, the events from there on moved up by one; its
    link follows the stored one before it (the rest are left as they were)."""
    connection.execute(
        "UPDATE ledger_events SET notification_id = -notification_id WHERE notification_id >= %s",
        (position,),
    )
    connection.execute(
        "UPDATE ledger_events SET notification_id = 1 - notification_id WHERE notification_id < 0"
    )
    copied = connection.execute(
        "SELECT topic, state, recorded_at FROM ledger_events WHERE notification_id = %s",
        (position + 1,),
    ).fetchone()
    assert copied is not None
    topic, state, recorded = copied
    row = connection.execute(
        "SELECT event_hash FROM ledger_events WHERE notification_id < %s"
        " ORDER BY notification_id DESC LIMIT 1",
        (position,),
    ).fetchone()
    previous = bytes(row[0]) if row else GENESIS_HASH
    originator = uuid.uuid4()
    link = (
        chained_link_of(previous, position, originator, 1, topic, bytes(state), recorded)
        if position >= chain_v2_from
        else chained_hash(previous, originator, 1, topic, bytes(state))
    )
    connection.execute(
        "INSERT INTO ledger_events (notification_id, originator_id, originator_version, topic,"
        " state, event_hash, recorded_at) VALUES (%s, %s, 1, %s, %s, %s, %s)",
        (position, originator, topic, state, link, recorded),
    )


def swap_with_next(connection: Connection, position: int) -> None:
    """The events at `position` and the one after change places."""
    following = connection.execute(
        "SELECT min(notification_id) FROM ledger_events WHERE notification_id > %s", (position,)
    ).fetchone()
    assert following is not None and following[0] is not None
    other = int(following[0])
    connection.execute(
        "UPDATE ledger_events SET notification_id = -1 WHERE notification_id = %s", (position,)
    )
    connection.execute(
        "UPDATE ledger_events SET notification_id = %s WHERE notification_id = %s",
        (position, other),
    )
    connection.execute(
        "UPDATE ledger_events SET notification_id = %s WHERE notification_id = -1", (other,)
    )


def move_time(connection: Connection, position: int) -> None:
    connection.execute(
        "UPDATE ledger_events SET recorded_at = recorded_at - interval '1 hour'"
        " WHERE notification_id = %s",
        (position,),
    )


@contextmanager
def database_copy(database_url: str) -> Iterator[str]:
    """A copy of the database (no other session may be connected to it)."""
    name = f"ledger_tamper_{uuid.uuid4().hex[:12]}"
    source = str(conninfo_to_dict(database_url)["dbname"])
    server = make_conninfo(database_url, dbname="postgres")
    with psycopg.connect(server, autocommit=True) as connection:
        databases.clone_database(connection, name, source)
    try:
        yield make_conninfo(database_url, dbname=name)
    finally:
        with psycopg.connect(server, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


Move = Callable[[Connection, int, int], None]
