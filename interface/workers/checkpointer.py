"""The checkpointer: signs the event log every few seconds or events
(docs/operations.md#audit).

A leased loop (one process at a time, interface/workers/leased_worker.py),
off the writer's path: each pass reads what the log holds after the last
checkpoint, a checkpoint's worth (LEDGER_AUDIT_CHECKPOINT_EVENTS) at a time,
and signs a statement over it (domain/audit_checkpoint.py), stored in the
database and appended to the checkpoint directory outside it. The database
does the per-event work (each entry and its leaf hash, one query per
checkpoint), so the pass costs the service's interpreter one Merkle tree of
32-byte nodes and one signature, not a hash of every body.

The log's positions are given out under its lock and committed in that
order, so what a pass sees is always a prefix of the log: a checkpoint
never skips an event that commits later.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any, Final

import structlog

from domain.audit_checkpoint import (
    GENESIS_CHECKPOINT_DIGEST,
    Checkpoint,
    SignedCheckpoint,
)
from domain.merkle_tree import root_of_leaves
from interface.adapters.audit_checkpoint_directory import CheckpointDirectory
from interface.adapters.audit_keys import CheckpointSigner
from interface.adapters.persistence.advisory_locks import CHECKPOINTER_LOCK_KEY
from interface.adapters.persistence.checkpoint_store import (
    chain_v2_from,
    insert_checkpoint,
    last_checkpoint,
    stored_checkpoints_after,
)
from interface.workers.leased_worker import Connection, LeasedLoop, OnLeasedLoop

log = structlog.get_logger(__name__)

# Checkpoints one pass makes at most before it lets the lease go.
CHECKPOINTS_PER_PASS_MAX: Final[int] = 100

# One checkpoint's events after a position: their entries (position, binary
# recorded_at, stored link) joined, and each entry's Merkle leaf hash.
_SELECT_ENTRIES: Final = (
    "SELECT count(*), max(notification_id),"
    " coalesce(string_agg(entry, ''::bytea ORDER BY notification_id), ''::bytea),"
    " coalesce(array_agg(sha256('\\x00'::bytea || entry) ORDER BY notification_id), '{}')"
    " FROM (SELECT notification_id,"
    "   int8send(notification_id) || timestamptz_send(recorded_at) || event_hash AS entry"
    "   FROM ledger_events WHERE notification_id > %s ORDER BY notification_id LIMIT %s) AS e"
)


class Checkpointer(OnLeasedLoop[int]):
    def __init__(
        self,
        *,
        database_url: str,
        signer: CheckpointSigner,
        directory: CheckpointDirectory,
        events_per_checkpoint_max: int,
        interval_s: float,
    ) -> None:
        self._signer = signer
        self._directory = directory
        self._events_max = events_per_checkpoint_max
        # The last sequence known to be in the directory.
        self._mirrored = 0
        self._loop = LeasedLoop(
            name="checkpointer",
            database_url=database_url,
            lock_key=CHECKPOINTER_LOCK_KEY,
            interval_s=interval_s,
            work=self._pass,
            report=self._report,
        )

    def run_once(self) -> int:
        """Checkpoint what the log holds; how many checkpoints (0 without the lease)."""
        return self._loop.run_once() or 0

    def _pass(self, connection: Connection, stopping: threading.Event) -> int:
        self._mirror(connection)
        made = 0
        previous = last_checkpoint(connection)
        v2_from = chain_v2_from(connection)
        while not stopping.is_set() and made < CHECKPOINTS_PER_PASS_MAX:
            signed = self._next(connection, previous, v2_from)
            if signed is None:
                break
            sequence = signed.checkpoint.sequence
            insert_checkpoint(connection, sequence, signed.checkpoint.last_position, signed)
            self._directory.append(sequence, signed)
            self._mirrored = sequence
            previous = (sequence, signed)
            made += 1
        return made

    def _next(
        self,
        connection: Connection,
        previous: tuple[int, SignedCheckpoint] | None,
        v2_from: int,
    ) -> SignedCheckpoint | None:
        last = previous[1].checkpoint if previous is not None else None
        after = last.last_position if last is not None else 0
        row: Any = connection.execute(_SELECT_ENTRIES, (after, self._events_max)).fetchone()
        count, last_position, entries, leaves = row
        if not count:
            return None
        entries = bytes(entries)
        checkpoint = Checkpoint(
            sequence=(last.sequence if last is not None else 0) + 1,
            first_position=after + 1,
            last_position=int(last_position),
            event_count=(last.event_count if last is not None else 0) + int(count),
            leaf_count=int(count),
            chain_head=entries[-32:].hex(),
            merkle_root=root_of_leaves([bytes(leaf) for leaf in leaves]).hex(),
            previous_checkpoint=previous[1].digest
            if previous is not None
            else GENESIS_CHECKPOINT_DIGEST,
            chain_v2_from=v2_from,
            created_at=datetime.now(UTC).isoformat(),
            key_id=self._signer.key_id,
        )
        statement = checkpoint.statement()
        return SignedCheckpoint(statement, self._signer.sign(statement), entries)

    def _mirror(self, connection: Connection) -> None:
        """Copy to the directory the checkpoints it lacks (a crash between the
        database and the directory, or a directory that was unreachable)."""
        if self._mirrored == 0:
            present = self._directory.sequences()
            self._mirrored = present[-1] if present else 0
        for sequence, signed in stored_checkpoints_after(connection, self._mirrored):
            self._directory.append(sequence, signed)
            self._mirrored = sequence

    def _report(self, made: int) -> None:
        if made >= CHECKPOINTS_PER_PASS_MAX:
            self._loop.wake()
