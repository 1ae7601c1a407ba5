"""Tamper evidence: every stored event carries a hash chained to the one before.

The hash covers the event's identity (originator id and version), its type
(topic) and its serialized body, and the previous event's hash. Changing a
byte of any event, deleting one or swapping two breaks every hash after it,
so an auditor who recomputes the chain finds the first bad event.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Final
from uuid import UUID

GENESIS_HASH: Final[bytes] = bytes(32)


def chained_hash(
    previous_hash: bytes, originator_id: UUID, originator_version: int, topic: str, state: bytes
) -> bytes:
    digest = hashlib.sha256(previous_hash)
    digest.update(originator_id.bytes)
    digest.update(originator_version.to_bytes(8, "big", signed=False))
    digest.update(topic.encode())
    # The separator keeps topic and state from sliding into each other.
    digest.update(b"\x00")
    digest.update(state)
    return digest.digest()


# Version 2 (migration 0012): the link covers every stored field. Each field is
# length-prefixed (4 bytes, big endian), so no two different events give the
# same bytes, and the previous link comes first. The position and the time
# are covered, so neither can be moved without a trace. Events before the
# position where version 2 begins (table ledger_chain_schemes) keep their
# version 1 hash; the first version 2 link follows the last version 1 hash.
CHAIN_VERSION_1: Final[int] = 1
CHAIN_VERSION_2: Final[int] = 2
# PostgreSQL's timestamptz in binary: microseconds since 2000-01-01 UTC.
POSTGRES_EPOCH: Final[datetime] = datetime(2000, 1, 1, tzinfo=UTC)
_LENGTH_8: Final[bytes] = (8).to_bytes(4, "big")
_LENGTH_16: Final[bytes] = (16).to_bytes(4, "big")


def recorded_at_bytes(recorded_at: datetime) -> bytes:
    """The time as the link covers it: PostgreSQL's binary timestamptz, the
    signed microseconds since 2000-01-01 UTC as 8 bytes, big endian."""
    microseconds = (recorded_at - POSTGRES_EPOCH) // timedelta(microseconds=1)
    return microseconds.to_bytes(8, "big", signed=True)


def recorded_at_from_bytes(raw: bytes) -> datetime:
    return POSTGRES_EPOCH + timedelta(microseconds=int.from_bytes(raw, "big", signed=True))


def chained_link(
    previous_link: bytes,
    position: int,
    originator_id: bytes,
    originator_version: int,
    topic: bytes,
    state: bytes,
    recorded_at: bytes,
) -> bytes:
    """sha256(previous link, then each of position (8 bytes), originator id (16),
    version (8), topic (UTF-8), body, recorded_at (8) after its length).

    Fields as raw bytes, as PostgreSQL sends them in binary, so the verify's
    hot loop makes no object per event; `chained_link_of` takes plain values."""
    return hashlib.sha256(
        b"".join(
            (
                previous_link,
                _LENGTH_8,
                position.to_bytes(8, "big"),
                _LENGTH_16,
                originator_id,
                _LENGTH_8,
                originator_version.to_bytes(8, "big"),
                len(topic).to_bytes(4, "big"),
                topic,
                len(state).to_bytes(4, "big"),
                state,
                _LENGTH_8,
                recorded_at,
            )
        )
    ).digest()


def chained_link_of(
    previous_link: bytes,
    position: int,
    originator_id: UUID,
    originator_version: int,
    topic: str,
    state: bytes,
    recorded_at: datetime,
) -> bytes:
    return chained_link(
        previous_link,
        position,
        originator_id.bytes,
        originator_version,
        topic.encode(),
        state,
        recorded_at_bytes(recorded_at),
    )
