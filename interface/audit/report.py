"""What `ledger audit verify` found: the findings, each view's comparison,
and the report that holds them (read by the CLI and by reconciliation)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final
from uuid import UUID

from interface.audit.checkpoints import CheckpointReport

# Findings kept in the report; past this they are only counted.
FINDINGS_MAX: Final[int] = 1_000

# (phase, done, total): phase "log" counts positions; "view:<name>" too.
Progress = Callable[[str, int, int], None]


class FindingKind(StrEnum):
    HASH_CHAIN = "hash_chain"
    # Differs from what a signed checkpoint says, or a checkpoint that does
    # not hold (interface/audit/checkpoints.py; the damage says which).
    CHECKPOINT = "checkpoint"
    POSITION_ORDER = "position_order"
    VERSION_SEQUENCE = "version_sequence"
    UNKNOWN_EVENT = "unknown_event"
    # A body that does not decode, or lacks what its type must hold.
    UNREADABLE_EVENT = "unreadable_event"
    UNBALANCED_TRANSFER = "unbalanced_transfer"
    INVALID_POSTING = "invalid_posting"
    TRANSFER_LIFECYCLE = "transfer_lifecycle"
    UNBALANCED_TOTALS = "unbalanced_totals"
    ACCOUNT_TOTALS = "account_totals"
    VIEW_MISMATCH = "view_mismatch"


@dataclass(frozen=True, slots=True)
class Finding:
    kind: FindingKind
    # The log position of the bad event; None for findings about totals at the
    # end of the log or about views, which no single event is to blame for.
    position: int | None
    message: str
    # Supporting lines, such as a view's differing rows.
    details: tuple[str, ...] = ()
    # What the finding is about, in words that stay the same from one verify
    # to the next ("event at position 7", "transfer <id>", "account <id>",
    # "currency USD", "view balances"): a reconciliation recognises a fault
    # it has seen before by it.
    subject: str | None = None
    # The money involved, in minor units of `currency` (0 when none is).
    amount_minor: int = 0
    currency: str | None = None
    # Tamper evidence: the affected event's stream and version (when it is
    # still stored), the kind of damage, and the signed checkpoint that
    # proves it (None: found by the chain alone).
    stream: UUID | None = None
    version: int | None = None
    damage: str | None = None
    checkpoint: int | None = None


class ViewStatus(StrEnum):
    EQUAL = "equal"
    DIFFERENT = "different"
    # No tracking row: the view was never built in this database.
    NOT_BUILT = "not built"
    # Built by another version of the view's code: the service rebuilds it at start.
    OTHER_VERSION = "other version"


@dataclass(frozen=True, slots=True)
class ViewCheck:
    name: str
    status: ViewStatus
    # The position the live view had reached in the verify's snapshot.
    position: int
    # Table -> the view digest of its rows: sha256 over their text in the
    # view's own order (projections.digest), not a link of the event chain.
    live_digests: dict[str, str] = field(default_factory=dict)
    replayed_digests: dict[str, str] = field(default_factory=dict)


@dataclass
class VerifyReport:
    events_checked: int = 0
    head_position: int = 0
    log_elapsed_s: float = 0.0
    elapsed_s: float = 0.0
    findings: list[Finding] = field(default_factory=list)
    # Findings past FINDINGS_MAX, counted but not kept.
    findings_dropped: int = 0
    views: list[ViewCheck] = field(default_factory=list)
    # Currency -> the debits and the credits of every posted movement, as the
    # transfers' postings add them up (minor units); filled at the end of the log.
    posted_debits_minor: dict[str, int] = field(default_factory=dict)
    posted_credits_minor: dict[str, int] = field(default_factory=dict)
    # The chain and the signed checkpoints: what they cover, which keys.
    checkpoints: CheckpointReport = field(default_factory=CheckpointReport)

    @property
    def ok(self) -> bool:
        return not self.findings and not self.findings_dropped

    @property
    def first_bad_event(self) -> Finding | None:
        """The finding about the earliest event in the log, if any names one."""
        positioned = [finding for finding in self.findings if finding.position is not None]
        return min(positioned, key=lambda finding: finding.position or 0, default=None)

    @property
    def events_per_s(self) -> float:
        return self.events_checked / self.log_elapsed_s if self.log_elapsed_s > 0 else 0.0

    def add(self, finding: Finding) -> None:
        if len(self.findings) < FINDINGS_MAX:
            self.findings.append(finding)
        else:
            self.findings_dropped += 1
