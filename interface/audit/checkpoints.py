"""The log checked against its signed checkpoints, with only the public keys
(docs/operations.md#audit).

Two things are checked in one pass over the log, in position order:

- the chain: each event's link recomputed from its stored fields and the
  stored link before it (version 1 or 2, domain/event_chain.py), so an event
  changed without recomputing the chain is found where it was changed;
- the checkpoints: each checkpoint's entries (position, recorded_at, link of
  every event it covers, checked against its signed Merkle root) against the
  log's. A database superuser can recompute the whole chain, but not sign:
  whatever they change, insert, delete, reorder, move in time or cut off
  among checkpointed events differs from the entries, and the first event
  that differs is named with the checkpoint that proves it.

Events after the newest checkpoint (the window) are checked by the chain
alone: rewritten consistently, they cannot be told from the original.

Checkpoints come from the database and from the checkpoint directory outside
it; each copy must carry a valid signature of a trusted key. A checkpoint in
the directory that the database lost is a finding; one the directory lacks
is only not mirrored yet.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final
from uuid import UUID

from domain.audit_checkpoint import (
    ENTRY_BYTES,
    GENESIS_CHECKPOINT_DIGEST,
    Checkpoint,
    CheckpointFormatError,
    SignedCheckpoint,
    entries_root,
    split_entry,
)
from domain.event_chain import GENESIS_HASH, chained_hash, chained_link
from interface.adapters.audit_keys import PublicKeys

# Findings kept; past this only counted.
TAMPER_FINDINGS_MAX: Final[int] = 1_000

_L8: Final[bytes] = (8).to_bytes(4, "big")
_L16: Final[bytes] = (16).to_bytes(4, "big")

# (position, originator id 16 bytes, version, topic bytes, state, stored link,
# recorded_at 8 bytes): a log row as PostgreSQL sends it in binary.
Row = tuple[int, bytes, int, bytes, bytes, bytes, bytes]


class Damage(StrEnum):
    # A stored field changed under its link (the chain was not recomputed).
    CHANGED = "changed"
    # Only the stored link changed.
    LINK_CHANGED = "link_changed"
    # Fields and chain agree, but not with the signed link: changed and the
    # chain recomputed after it.
    FORGED = "forged"
    INSERTED = "inserted"
    DELETED = "deleted"
    # An event stored at another signed event's position.
    REORDERED = "reordered"
    TIME_MOVED = "time_moved"
    # The log ends before the newest checkpoint's last event.
    TRUNCATED = "truncated"
    # After the newest checkpoint: a link that does not follow its predecessor.
    BROKEN_CHAIN = "broken_chain"
    # A checkpoint copy without a valid signature of a trusted key, or that
    # does not follow the one before it.
    CHECKPOINT_INVALID = "checkpoint_invalid"
    # A checkpoint the directory holds and the database lost.
    CHECKPOINT_MISSING = "checkpoint_missing"


@dataclass(frozen=True, slots=True)
class TamperFinding:
    damage: Damage
    # The first affected event: its position, and (when it is still stored)
    # its stream (originator id), version and type.
    position: int | None
    message: str
    stream: UUID | None = None
    version: int | None = None
    topic: str | None = None
    # The checkpoint that proves it (None: found by the chain alone).
    checkpoint: int | None = None
    # Events of that checkpoint that differ from its entries.
    affected_events: int = 1

    @property
    def event(self) -> str:
        """The event in words: "position 7 (stream <id> v3, <type>)"."""
        if self.position is None:
            return "-"
        if self.stream is None:
            return f"position {self.position}"
        return f"position {self.position} (stream {self.stream} v{self.version}, {self.topic})"


@dataclass
class CheckpointReport:
    findings: list[TamperFinding] = field(default_factory=list)
    findings_dropped: int = 0
    events_checked: int = 0
    checkpoints_verified: int = 0
    # Events the checkpoints cover, and the newest checkpoint's last position.
    events_covered: int = 0
    covered_through: int = 0
    # Events after the newest checkpoint: checked by the chain alone.
    window_events: int = 0
    key_ids: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings and not self.findings_dropped

    @property
    def first(self) -> TamperFinding | None:
        positioned = [finding for finding in self.findings if finding.position is not None]
        return min(positioned, key=lambda finding: finding.position or 0, default=None)

    def add(self, finding: TamperFinding) -> None:
        if len(self.findings) < TAMPER_FINDINGS_MAX:
            self.findings.append(finding)
        else:
            self.findings_dropped += 1


# The checkpoints -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifiedCheckpoint:
    checkpoint: Checkpoint
    entries: bytes
    digest: str


def verified_checkpoints(
    database: Sequence[tuple[int, SignedCheckpoint]],
    directory: Sequence[tuple[int, SignedCheckpoint | CheckpointFormatError]] | None,
    keys: PublicKeys,
    report: CheckpointReport,
) -> list[VerifiedCheckpoint]:
    """The checkpoints that hold, in sequence order, from both copies: each
    signed by a trusted key, its entries giving its root, each following the
    one before. The first that does not hold ends the list (its successors'
    ranges cannot be placed); the checks go on with what came before."""
    stored = dict(database)
    mirrored = dict(directory or [])
    chosen: list[VerifiedCheckpoint] = []
    previous: VerifiedCheckpoint | None = None
    for sequence in sorted(stored.keys() | mirrored.keys()):
        copies = [copy for copy in (mirrored.get(sequence), stored.get(sequence)) if copy]
        problems: list[str] = []
        verified: VerifiedCheckpoint | None = None
        for copy in copies:
            problem = _problem(copy, sequence, previous, keys)
            if problem is None and isinstance(copy, SignedCheckpoint):
                verified = VerifiedCheckpoint(copy.checkpoint, copy.entries, copy.digest)
                break
            problems.append(problem or "unreadable")
        if directory is not None and sequence in mirrored and sequence not in stored:
            report.add(
                TamperFinding(
                    Damage.CHECKPOINT_MISSING,
                    verified.checkpoint.first_position if verified else None,
                    f"checkpoint {sequence} is in the checkpoint directory but not in the "
                    "database: removed from it",
                    checkpoint=sequence,
                )
            )
        if verified is None:
            report.add(
                TamperFinding(
                    Damage.CHECKPOINT_INVALID,
                    None,
                    f"checkpoint {sequence} does not hold: {'; '.join(problems)}",
                    checkpoint=sequence,
                )
            )
            break
        chosen.append(verified)
        previous = verified
    report.checkpoints_verified = len(chosen)
    if chosen:
        report.covered_through = chosen[-1].checkpoint.last_position
        report.events_covered = chosen[-1].checkpoint.event_count
    report.key_ids = keys.key_ids
    return chosen


def _problem(
    copy: SignedCheckpoint | CheckpointFormatError,
    sequence: int,
    previous: VerifiedCheckpoint | None,
    keys: PublicKeys,
) -> str | None:
    if isinstance(copy, CheckpointFormatError):
        return str(copy)
    try:
        checkpoint = copy.checkpoint
    except CheckpointFormatError as error:
        return str(error)
    if not keys.verifies(checkpoint.key_id, copy.statement, copy.signature):
        return f"no valid signature of a trusted key (key id {checkpoint.key_id})"
    expected_previous = previous.digest if previous else GENESIS_CHECKPOINT_DIGEST
    expected_first = previous.checkpoint.last_position + 1 if previous else 1
    expected_count = previous.checkpoint.event_count if previous else 0
    if checkpoint.sequence != sequence or checkpoint.previous_checkpoint != expected_previous:
        return "does not follow the checkpoint before it"
    if checkpoint.first_position != expected_first:
        return f"begins at position {checkpoint.first_position}, not {expected_first}"
    if (
        len(copy.entries) != checkpoint.leaf_count * ENTRY_BYTES
        or checkpoint.event_count != expected_count + checkpoint.leaf_count
    ):
        return "its event counts do not add up"
    if not copy.entries or entries_root(copy.entries).hex() != checkpoint.merkle_root:
        return "its entries do not give its signed Merkle root"
    if copy.entries[-32:].hex() != checkpoint.chain_head:
        return "its entries do not end at its signed chain head"
    return None


# The log against them ------------------------------------------------------------------


class CheckpointCheck:
    """One pass over the log's rows in position order (`check_page`), then `finish`.

    Per event: one sha256 (the link), and the row kept until its checkpoint's
    range ends, when the range's entries are joined and compared with the
    signed ones in one comparison. Only a range that differs is looked at
    event by event."""

    def __init__(
        self, checkpoints: list[VerifiedCheckpoint], chain_v2_from: int, report: CheckpointReport
    ) -> None:
        self.report = report
        self._checkpoints = checkpoints
        self._next = 0
        # The chain's v2 start: the signed one when a checkpoint says it.
        self._v2_from = checkpoints[0].checkpoint.chain_v2_from if checkpoints else chain_v2_from
        self._previous_link = GENESIS_HASH
        # The current checkpoint's rows, and the stored link before its first.
        self._range: list[Row] = []
        self._range_previous = GENESIS_HASH
        self._range_last = checkpoints[0].checkpoint.last_position if checkpoints else 0
        # Positions in the current range whose link does not follow (sorted).
        self._unchained: list[int] = []

    def check_page(self, rows: Iterable[Row]) -> None:
        sha256 = hashlib.sha256
        v2_from = self._v2_from
        previous = self._previous_link
        kept = self._range
        range_last = self._range_last if self._next < len(self._checkpoints) else -1
        for row in rows:
            position, originator, version, topic, state, stored, recorded = row
            if position >= v2_from:
                expected = sha256(
                    b"".join(
                        (
                            previous,
                            _L8,
                            position.to_bytes(8, "big"),
                            _L16,
                            originator,
                            _L8,
                            version.to_bytes(8, "big"),
                            len(topic).to_bytes(4, "big"),
                            topic,
                            len(state).to_bytes(4, "big"),
                            state,
                            _L8,
                            recorded,
                        )
                    )
                ).digest()
            else:
                expected = sha256(
                    b"".join(
                        (previous, originator, version.to_bytes(8, "big"), topic, b"\0", state)
                    )
                ).digest()
            while 0 <= range_last < position:
                self._range = kept
                self._previous_link = previous
                self._end_range(following=row)
                kept = self._range
                range_last = self._range_last if self._next < len(self._checkpoints) else -1
            if range_last >= 0:
                kept.append(row)
                if expected != stored:
                    self._unchained.append(position)
            else:
                self.report.window_events += 1
                if expected != stored:
                    self._broken_chain(row)
            previous = stored
            self.report.events_checked += 1
        self._range = kept
        self._previous_link = previous

    def finish(self) -> None:
        """The checkpoints whose ranges the log did not reach: cut off."""
        while self._next < len(self._checkpoints):
            self._end_range(following=None)

    # One checkpoint's range ---------------------------------------------------

    def _end_range(self, *, following: Row | None) -> None:
        """`following`: the first stored row past this range (None at the
        log's end), which an event moved across the boundary lands on."""
        verified = self._checkpoints[self._next]
        rows = self._range
        actual = b"".join(
            [
                position.to_bytes(8, "big") + recorded + stored
                for position, *_, stored, recorded in rows
            ]
        )
        if actual != verified.entries or self._unchained:
            self._classify(verified, rows, following=following)
        self._range_previous = rows[-1][5] if rows else self._range_previous
        self._range = []
        self._unchained = []
        self._next += 1
        if self._next < len(self._checkpoints):
            self._range_last = self._checkpoints[self._next].checkpoint.last_position

    def _classify(
        self, verified: VerifiedCheckpoint, rows: list[Row], *, following: Row | None
    ) -> None:
        """The first event of the range that differs from the signed entries,
        and what was done to it."""
        entries = verified.entries
        signed = [
            split_entry(entries[offset : offset + ENTRY_BYTES])
            for offset in range(0, len(entries), ENTRY_BYTES)
        ]
        sequence = verified.checkpoint.sequence
        differing = sum(
            1
            for index in range(max(len(signed), len(rows)))
            if index >= len(signed)
            or index >= len(rows)
            or signed[index] != (rows[index][0], rows[index][6], rows[index][5])
        )
        unchained = set(self._unchained)
        for index in range(max(len(signed), len(rows))):
            if index >= len(rows):
                position = signed[index][0]
                damage = Damage.DELETED if following is not None else Damage.TRUNCATED
                what = (
                    "is missing: the log ends before it"
                    if damage is Damage.TRUNCATED
                    else "is missing"
                )
                self._found(
                    damage,
                    position,
                    f"the event at position {position} {what}",
                    None,
                    sequence,
                    differing,
                )
                return
            row = rows[index]
            if index >= len(signed):
                self._found(
                    Damage.INSERTED,
                    row[0],
                    "is not among the signed events",
                    row,
                    sequence,
                    differing,
                )
                return
            signed_position, signed_recorded, signed_link = signed[index]
            position, _, _, _, _, stored, recorded = row
            if (position, recorded, stored) == (signed_position, signed_recorded, signed_link):
                if position in unchained:
                    self._found(
                        Damage.CHANGED,
                        position,
                        "does not hash to its stored link: a stored field changed",
                        row,
                        sequence,
                        differing,
                    )
                    return
                continue
            damage, detail = self._what_differs(index, signed, rows, following)
            named = None if damage is Damage.DELETED else row
            at = signed_position if damage is Damage.DELETED else position
            self._found(damage, at, detail, named, sequence, differing)
            return

    def _what_differs(
        self,
        index: int,
        signed: list[tuple[int, bytes, bytes]],
        rows: list[Row],
        following: Row | None,
    ) -> tuple[Damage, str]:
        signed_position, signed_recorded, signed_link = signed[index]
        position, originator, version, topic, state, stored, recorded = rows[index]
        if position > signed_position:
            return Damage.DELETED, f"is missing (the next event stored is at {position})"
        if position < signed_position:
            return Damage.INSERTED, "is not among the signed events"
        stored_links = [row[5] for row in rows]
        signed_links = {link: at for at, (_, _, link) in enumerate(signed)}
        elsewhere = signed_links.get(stored)
        if elsewhere is not None and elsewhere != index:
            if signed_link in stored_links:
                return (
                    Damage.REORDERED,
                    f"holds the event signed at position {signed[elsewhere][0]}",
                )
            return Damage.DELETED, "is missing (the events after it were moved up)"
        if signed_link in stored_links[index + 1 :]:
            return Damage.INSERTED, "is not among the signed events (those after it moved down)"
        if following is not None and following[5] == signed_link:
            # The signed event moved past this checkpoint's last position: by
            # a swap when the event here is the next checkpoint's first.
            if stored == self._next_range_first_link():
                return Damage.REORDERED, "holds the event signed first in the next checkpoint"
            return Damage.INSERTED, "is not among the signed events (those after it moved down)"
        # After the moves: an event moved carries its own time with it. With
        # its signed link kept, only the time changed.
        if recorded != signed_recorded and stored == signed_link:
            return Damage.TIME_MOVED, "was recorded at another time than signed"
        previous = rows[index - 1][5] if index else self._range_previous
        if position >= self._v2_from:
            expected = chained_link(previous, position, originator, version, topic, state, recorded)
        else:
            expected = chained_hash(
                previous, UUID(bytes=originator), version, topic.decode(), state
            )
        if expected == signed_link:
            return Damage.LINK_CHANGED, "has a stored link other than its own"
        return Damage.FORGED, "differs from the signed event, the chain recomputed after it"

    def _next_range_first_link(self) -> bytes | None:
        if self._next + 1 >= len(self._checkpoints):
            return None
        entries = self._checkpoints[self._next + 1].entries
        return split_entry(entries[:ENTRY_BYTES])[2] if entries else None

    def _found(
        self,
        damage: Damage,
        position: int,
        detail: str,
        row: Row | None,
        sequence: int,
        differing: int,
    ) -> None:
        message = f"event at position {position} {detail}; checkpoint {sequence} proves it"
        if differing > 1:
            message += f" ({differing} of its events differ)"
        self.report.add(
            TamperFinding(
                damage,
                position,
                message,
                stream=UUID(bytes=row[1]) if row is not None else None,
                version=row[2] if row is not None else None,
                topic=row[3].decode(errors="replace") if row is not None else None,
                checkpoint=sequence,
                affected_events=max(differing, 1),
            )
        )

    def _broken_chain(self, row: Row) -> None:
        position = row[0]
        self.report.add(
            TamperFinding(
                Damage.BROKEN_CHAIN,
                position,
                f"event at position {position} (after the newest checkpoint) does not hash "
                "to its stored link from the one before it",
                stream=UUID(bytes=row[1]),
                version=row[2],
                topic=row[3].decode(errors="replace"),
            )
        )


def check_rows(
    rows: Iterable[Sequence[Row]],
    checkpoints: list[VerifiedCheckpoint],
    chain_v2_from: int,
    report: CheckpointReport,
) -> CheckpointReport:
    check = CheckpointCheck(checkpoints, chain_v2_from, report)
    for page in rows:
        check.check_page(page)
    check.finish()
    return report


def row_of(*values: Any) -> Row:
    position, originator, version, topic, state, stored, recorded = values
    return (
        int(position),
        bytes(originator),
        int(version),
        bytes(topic),
        bytes(state),
        bytes(stored),
        bytes(recorded),
    )
