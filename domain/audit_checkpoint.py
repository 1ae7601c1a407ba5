"""Signed checkpoints of the event log: what is signed, and how it is read back.

Every few seconds (or events) the checkpointer signs a statement about the log
up to a position: that position, the chain's link there, how many events the
log holds up to it, and the Merkle root (domain/merkle_tree.py) over the
events since the checkpoint before, whose statement's digest it also names.
Each event's leaf is its entry: position (8 bytes), recorded_at (8 bytes,
PostgreSQL's binary timestamptz) and its link (32 bytes). The entries are kept
beside the signature, so a verifier that finds the log differs names the
first event that does: they are checked against the signed root first.

The statement is canonical JSON (sorted keys, no spaces), signed as stored:
a verifier never re-encodes it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Final

from domain.merkle_tree import leaf_hash, root_of_leaves

STATEMENT_FORMAT: Final[str] = "ledger-checkpoint/1"
ENTRY_BYTES: Final[int] = 48
GENESIS_CHECKPOINT_DIGEST: Final[str] = "00" * 32


@dataclass(frozen=True, slots=True)
class Checkpoint:
    sequence: int
    # The positions covered, inclusive: the one after the previous
    # checkpoint's last, up to the last position read.
    first_position: int
    last_position: int
    # Events in the log up to last_position, and in this checkpoint.
    event_count: int
    leaf_count: int
    chain_head: str
    merkle_root: str
    previous_checkpoint: str
    # Where chain version 2 begins (domain/event_chain.py).
    chain_v2_from: int
    created_at: str
    key_id: str

    def statement(self) -> bytes:
        fields = {"format": STATEMENT_FORMAT, **asdict(self)}
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint as stored: the statement's bytes as signed, the signature
    and the entries of the events it covers."""

    statement: bytes
    signature: bytes
    entries: bytes

    @property
    def checkpoint(self) -> Checkpoint:
        return parse_statement(self.statement)

    @property
    def digest(self) -> str:
        return statement_digest(self.statement)


class CheckpointFormatError(ValueError):
    pass


def statement_digest(statement: bytes) -> str:
    return hashlib.sha256(statement).hexdigest()


def parse_statement(statement: bytes) -> Checkpoint:
    try:
        fields = json.loads(statement)
        if fields.pop("format") != STATEMENT_FORMAT:
            raise CheckpointFormatError("unknown checkpoint format")
        return Checkpoint(**fields)
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise CheckpointFormatError(f"not a checkpoint statement: {error}") from error


def entry(position: int, recorded_at: bytes, link: bytes) -> bytes:
    return position.to_bytes(8, "big") + recorded_at + link


def split_entry(raw: bytes | memoryview) -> tuple[int, bytes, bytes]:
    """(position, recorded_at (8 bytes), link (32 bytes))."""
    return int.from_bytes(raw[:8], "big"), bytes(raw[8:16]), bytes(raw[16:48])


def entries_root(entries: bytes) -> bytes:
    """The Merkle root over the entries' leaves."""
    return root_of_leaves(entry_leaves(entries))


def entry_leaves(entries: bytes) -> list[bytes]:
    if len(entries) % ENTRY_BYTES:
        raise CheckpointFormatError(f"entries of {len(entries)} bytes: not whole entries")
    return [
        leaf_hash(entries[offset : offset + ENTRY_BYTES])
        for offset in range(0, len(entries), ENTRY_BYTES)
    ]
