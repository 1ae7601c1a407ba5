"""Tamper evidence: every stored event carries a hash chained to the one before.

The hash covers the event's identity (originator id and version), its type
(topic) and its serialized body, and the previous event's hash. Changing a
byte of any event, deleting one or swapping two breaks every hash after it,
so an auditor who recomputes the chain finds the first bad event.
"""

from __future__ import annotations

import hashlib
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
