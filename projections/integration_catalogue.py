"""The public integration events: each type, its version and its payload.

What other systems are told (GET /v1/events, webhooks, the stream). These
are a contract, kept apart from the domain's event classes so that those may
change without breaking a consumer: a payload field is only ever added; a
change that removes or changes one makes a new version. docs/events.md shows
this catalogue to readers; a test holds the two equal.

Amounts are decimal strings in major units with their currency beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class EventType:
    name: str
    version: int
    # What happened, for the docs.
    description: str
    # Payload fields, every one always present (null where the text says so).
    payload_fields: tuple[str, ...]
    # The stored domain event it is derived from, in words (never a class name).
    source: str


_POSTINGS = "postings"  # [{account_id, side, amount, currency}]

CATALOGUE: Final[tuple[EventType, ...]] = (
    EventType(
        "account.created",
        1,
        "A ledger account was opened.",
        ("account_id", "owner_id", "currency", "kind", "metadata"),
        "an account opened",
    ),
    EventType(
        "account.closed",
        1,
        "A ledger account was closed.",
        ("account_id", "owner_id", "reason"),
        "an account's state changed to closed",
    ),
    EventType(
        "transfer.posted",
        1,
        "A transfer was recorded posted: its postings moved the balances.",
        ("transfer_id", _POSTINGS, "metadata"),
        "a transfer recorded posted (not a reversal)",
    ),
    EventType(
        "transfer.reversed",
        1,
        "A posted transfer was reversed by a new transfer with every side swapped.",
        ("transfer_id", "reverses_transfer_id", _POSTINGS, "metadata"),
        "a reversal transfer recorded",
    ),
    EventType(
        "hold.created",
        1,
        "A pending transfer (a hold) was recorded; its amounts are reserved.",
        ("transfer_id", _POSTINGS, "expires_at", "metadata"),
        "a transfer recorded pending",
    ),
    EventType(
        "hold.posted",
        1,
        "A hold was posted, in full or for less: `postings` are what posted.",
        ("transfer_id", _POSTINGS),
        "a pending transfer posted",
    ),
    EventType(
        "hold.voided",
        1,
        "A hold was voided; its reserved amounts are released.",
        ("transfer_id", _POSTINGS),
        "a pending transfer voided",
    ),
    EventType(
        "hold.expired",
        1,
        "A hold reached its deadline unposted; its reserved amounts are released.",
        ("transfer_id", _POSTINGS),
        "a pending transfer expired",
    ),
    EventType(
        "withdrawal.requested",
        1,
        "A withdrawal was requested; its amount is held.",
        (
            "withdrawal_id",
            "funded_account_id",
            "amount",
            "currency",
            "approval_required",
            "hold_transfer_id",
        ),
        "a withdrawal requested",
    ),
    EventType(
        "withdrawal.approved",
        1,
        "A withdrawal was approved, by an admin or by itself under the limit.",
        ("withdrawal_id", "funded_account_id", "amount", "currency", "automatic"),
        "a withdrawal approved",
    ),
    EventType(
        "withdrawal.rejected",
        1,
        "A withdrawal was rejected; its hold is released.",
        ("withdrawal_id", "funded_account_id", "amount", "currency", "reason"),
        "a withdrawal rejected",
    ),
    EventType(
        "withdrawal.paid",
        1,
        "A withdrawal's payout settled; the money has left.",
        ("withdrawal_id", "funded_account_id", "amount", "currency", "payout_id"),
        "a withdrawal completed",
    ),
    EventType(
        "withdrawal.failed",
        1,
        "A withdrawal failed for good; its hold is released.",
        ("withdrawal_id", "funded_account_id", "amount", "currency", "code", "message"),
        "a withdrawal failed",
    ),
    EventType(
        "closure.phase_changed",
        1,
        "An account closure entered a phase (the last is `completed`).",
        ("closure_id", "funded_account_id", "phase"),
        "a closure entered a phase",
    ),
    EventType(
        "closure.stuck",
        1,
        "An account closure stopped and waits for an admin.",
        ("closure_id", "funded_account_id", "reason"),
        "a closure marked stuck",
    ),
    EventType(
        "fork.executed",
        1,
        "A fork completed: a child account of the next tier holds the amount.",
        ("fork_id", "parent_id", "child_id", "child_tier", "amount", "currency"),
        "a fork completed",
    ),
    EventType(
        "fork.rolled_back",
        1,
        "A fork was rolled back; nothing moved.",
        ("fork_id", "parent_id", "reason"),
        "a fork rolled back",
    ),
    EventType(
        "merge.executed",
        1,
        "A merge completed: capital moved from the source to the target.",
        ("merge_id", "source_id", "target_id", "amount", "currency"),
        "a merge completed",
    ),
    EventType(
        "merge.rolled_back",
        1,
        "A merge was rolled back; nothing moved.",
        ("merge_id", "source_id", "reason"),
        "a merge rolled back",
    ),
    EventType(
        "reconciliation.exception_raised",
        1,
        "A reconciliation check found a discrepancy (see `severity`).",
        (
            "run_id",
            "exception_id",
            "check",
            "kind",
            "severity",
            "subject",
            "message",
            "amount",
            "currency",
        ),
        "a reconciliation run raised an exception",
    ),
    EventType(
        "guard.drawdown_warned",
        1,
        "An account's drawdown passed the warning level.",
        (
            "funded_account_id",
            "equity",
            "peak_equity",
            "drawdown",
            "minimum_equity",
            "currency",
        ),
        "a guard warned of drawdown",
    ),
    EventType(
        "guard.liquidation_warned",
        1,
        "An account passed the liquidation level: its positions close at `due_at`.",
        (
            "funded_account_id",
            "equity",
            "peak_equity",
            "drawdown",
            "minimum_equity",
            "currency",
            "positions",
            "due_at",
        ),
        "a guard scheduled a liquidation",
    ),
    EventType(
        "guard.liquidated",
        1,
        "An account's positions were closed by its guard.",
        ("funded_account_id", "equity", "currency", "closed", "failed"),
        "a guard liquidated",
    ),
    EventType(
        "webhook_endpoint.disabled",
        1,
        "A webhook endpoint was switched off after its deliveries failed for too long.",
        ("endpoint_id", "reason", "failed_attempts"),
        "a webhook endpoint disabled",
    ),
)

EVENT_TYPES: Final[dict[str, EventType]] = {entry.name: entry for entry in CATALOGUE}
EVENT_TYPE_NAMES: Final[tuple[str, ...]] = tuple(EVENT_TYPES)
