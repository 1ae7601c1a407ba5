"""What the guards tell a funded account's owner, and the port that tells them.

The owner is warned before a liquidation
(docs/rules.md#position-sync-and-guards).

Three kinds of message, one per guard decision event: a drawdown warning, a
liquidation scheduled (with when it will happen) and a liquidation carried out.
Each names the positions concerned, so the owner can act during the warning
period.

A notification's id is the guard aggregate's id and the version of the event
it reports (`guard_notification_id`; `notification_for` makes one from the
recorded event): a pass that is retried, or a process that resumes, asks
for the same id again and the notifier delivers it once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from fractions import Fraction
from typing import Any, Final, Protocol
from uuid import UUID

from domain.account_guard import AccountGuard
from domain.funded_account import FundedAccount, OpenPosition
from domain.tiers import TIER_CURRENCY

# Ids become file names: no path separators, no spaces.
NOTIFICATION_ID_PATTERN: Final[re.Pattern[str]] = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")

# The events' classes, made by the @event decorators (mypy does not see them).
_WARNED: Final[Any] = AccountGuard.DrawdownWarned  # type: ignore[attr-defined]
_SCHEDULED: Final[Any] = AccountGuard.LiquidationScheduled  # type: ignore[attr-defined]
_LIQUIDATED: Final[Any] = AccountGuard.Liquidated  # type: ignore[attr-defined]


class GuardNotificationKind(StrEnum):
    WARNED = "warned"
    LIQUIDATION_SCHEDULED = "liquidation_scheduled"
    LIQUIDATED = "liquidated"


def guard_notification_id(guard_id: UUID, event_version: int) -> str:
    """The one id of the notification reporting the guard's event at this version."""
    return f"{guard_id}.{event_version}"


@dataclass(frozen=True, slots=True)
class NotifiedPosition:
    position_id: str
    symbol: str
    side: str
    quantity: int


@dataclass(frozen=True, slots=True)
class GuardNotification:
    # Stable for the event it reports (see guard_notification_id): what makes
    # a repeated send a no-op.
    notification_id: str
    kind: GuardNotificationKind
    funded_account_id: UUID
    owner_id: str
    # (peak - equity) / peak, exact.
    drawdown: Fraction
    equity_minor: int
    peak_equity_minor: int
    minimum_equity_minor: int
    # WARNED and LIQUIDATION_SCHEDULED: the positions a liquidation would close.
    # LIQUIDATED: the positions it closed.
    positions: tuple[NotifiedPosition, ...]
    # Aware: when the guard decided.
    at: datetime
    # LIQUIDATION_SCHEDULED only: when the positions will be closed.
    liquidation_due_at: datetime | None = None
    # LIQUIDATED only: position id -> why its close failed (tried again later).
    failed: Mapping[str, str] = field(default_factory=dict)
    currency: str = TIER_CURRENCY

    def __post_init__(self) -> None:
        if NOTIFICATION_ID_PATTERN.fullmatch(self.notification_id) is None:
            raise ValueError(
                f"notification id {self.notification_id!r} must match {NOTIFICATION_ID_PATTERN}"
            )
        if self.at.tzinfo is None:
            raise ValueError("`at` must carry a time zone")
        scheduled = self.kind is GuardNotificationKind.LIQUIDATION_SCHEDULED
        if scheduled != (self.liquidation_due_at is not None):
            raise ValueError("only a scheduled liquidation carries, and it must carry, a due time")
        if self.failed and self.kind is not GuardNotificationKind.LIQUIDATED:
            raise ValueError("only a liquidation carries failed closes")


def notification_for(
    account: FundedAccount, event: Any, positions: Mapping[str, OpenPosition]
) -> GuardNotification | None:
    """The notification reporting a recorded guard event (None: the owner is
    not told of events of its kind). `positions` are the account's positions
    as they were before the event, by id: a liquidation's are closed by now."""
    due_at: datetime | None = None
    failed: dict[str, str] = {}
    if isinstance(event, _WARNED):
        kind = GuardNotificationKind.WARNED
        position_ids: list[str] = list(event.positions)
    elif isinstance(event, _SCHEDULED):
        kind = GuardNotificationKind.LIQUIDATION_SCHEDULED
        position_ids = list(event.positions)
        due_at = event.due_at
    elif isinstance(event, _LIQUIDATED):
        kind = GuardNotificationKind.LIQUIDATED
        position_ids = list(event.closed)
        failed = dict(event.failed)
    else:
        return None
    return GuardNotification(
        notification_id=guard_notification_id(event.originator_id, event.originator_version),
        kind=kind,
        funded_account_id=account.id,
        owner_id=account.owner_id,
        drawdown=Fraction(event.drawdown),
        equity_minor=event.equity_minor,
        peak_equity_minor=event.peak_equity_minor,
        minimum_equity_minor=event.minimum_equity_minor,
        positions=tuple(
            NotifiedPosition(
                position_id=held.position_id,
                symbol=held.symbol,
                side=held.side.value,
                quantity=held.quantity,
            )
            for held in (positions.get(position_id) for position_id in position_ids)
            if held is not None
        ),
        at=event.at,
        liquidation_due_at=due_at,
        failed=failed,
        currency=TIER_CURRENCY,
    )


class GuardNotificationFailed(Exception):
    """The notification could not be delivered now; sending it again retries it."""

    def __init__(self, notification_id: str, reason: str) -> None:
        super().__init__(f"guard notification {notification_id} not delivered: {reason}")
        self.notification_id = notification_id
        self.reason = reason


class GuardNotifier(Protocol):
    def notify(self, notification: GuardNotification) -> bool:
        """True if delivered now, False if this id was delivered before (each is
        delivered once, ever). Raises GuardNotificationFailed when it could not
        be delivered now."""
        ...
