"""Withdrawals as their own events record them, read from the log with plain SQL.

The payouts and withdrawals checks compare withdrawals with other records
(the processor's payouts, the ledger's holds), so they read the withdrawals'
events themselves rather than the withdrawals view, which the projections
check compares with the log. Only the events that change what is compared
are selected (the payout retries' are not), and only those whose body is
needed are decoded: the request (amount, hold) and the steps that name a
payout. What is kept is one small record per withdrawal, never the events,
so memory grows with the withdrawals, not with the log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

import orjson
import psycopg

from domain.withdrawal import Withdrawal, WithdrawalStatus
from projections.events import WITHDRAWAL_REQUESTED


def _withdrawal_topic(name: str) -> str:
    # The @event decorator makes these classes, which mypy cannot see; a
    # misspelt name still fails here, at import.
    event_class = getattr(Withdrawal, name)
    return f"{event_class.__module__}:{event_class.__qualname__}"


WITHDRAWAL_APPROVED: Final[str] = _withdrawal_topic("Approved")
WITHDRAWAL_REJECTED: Final[str] = _withdrawal_topic("Rejected")
WITHDRAWAL_PAID_OUT: Final[str] = _withdrawal_topic("PaidOut")
WITHDRAWAL_COMPLETED: Final[str] = _withdrawal_topic("Completed")
WITHDRAWAL_FAILED: Final[str] = _withdrawal_topic("Failed")

# The status each later step leaves a withdrawal in.
_STATUS_AFTER: Final[dict[str, WithdrawalStatus]] = {
    WITHDRAWAL_APPROVED: WithdrawalStatus.APPROVED,
    WITHDRAWAL_REJECTED: WithdrawalStatus.REJECTED,
    WITHDRAWAL_PAID_OUT: WithdrawalStatus.PAID_OUT,
    WITHDRAWAL_COMPLETED: WithdrawalStatus.COMPLETED,
    WITHDRAWAL_FAILED: WithdrawalStatus.FAILED,
}
# The steps whose body names the payout (Failed's may name none).
_NAMING_A_PAYOUT: Final[frozenset[str]] = frozenset(
    {WITHDRAWAL_PAID_OUT, WITHDRAWAL_COMPLETED, WITHDRAWAL_FAILED}
)
_SELECTED_TOPICS: Final[list[str]] = [WITHDRAWAL_REQUESTED, *_STATUS_AFTER]

_SELECT_WITHDRAWAL_EVENTS: Final = (
    "SELECT notification_id, originator_id, topic, state FROM ledger_events "
    "WHERE topic = ANY(%s) ORDER BY notification_id"
)


@dataclass(slots=True)
class WithdrawalRecord:
    """One withdrawal's facts as of the last of its events read."""

    withdrawal_id: UUID
    amount_minor: int
    currency: str
    hold_transfer_id: UUID
    status: WithdrawalStatus
    # The payout the withdrawal last named, and the gateway that made it
    # (named by `PaidOut` only: a withdrawal completed or failed by the
    # processor's message before its payout was recorded names none).
    payout_id: str | None = None
    payout_gateway: str | None = None
    # Log position of the event that first named this payout.
    payout_named_at: int | None = None

    @property
    def subject(self) -> str:
        return f"withdrawal {self.withdrawal_id}"


def read_withdrawals(connection: psycopg.Connection[Any]) -> dict[UUID, WithdrawalRecord]:
    """Every withdrawal the log holds, by id, as its events leave it."""
    withdrawals: dict[UUID, WithdrawalRecord] = {}
    with connection.cursor(binary=True) as cursor:
        # Streamed row by row rather than through a server-side cursor:
        # PostgreSQL scans in parallel only for a query it runs to the end at once.
        rows = cursor.stream(_SELECT_WITHDRAWAL_EVENTS, (_SELECTED_TOPICS,))
        for position, withdrawal_id, topic, state in rows:
            if topic == WITHDRAWAL_REQUESTED:
                withdrawals[withdrawal_id] = _requested(withdrawal_id, state)
                continue
            withdrawal = withdrawals.get(withdrawal_id)
            if withdrawal is None:
                # A step with no request before it breaks the log's order of
                # versions, which the ledger check reports; nothing to compare.
                continue
            withdrawal.status = _STATUS_AFTER[topic]
            if topic in _NAMING_A_PAYOUT:
                _name_payout(withdrawal, position, orjson.loads(state))
    return withdrawals


def _requested(withdrawal_id: UUID, state: bytes) -> WithdrawalRecord:
    data = orjson.loads(state)
    return WithdrawalRecord(
        withdrawal_id=withdrawal_id,
        amount_minor=int(data["amount_minor"]),
        currency=str(data["currency"]),
        hold_transfer_id=UUID(data["hold_transfer_id"]),
        status=WithdrawalStatus.PENDING,
    )


def _name_payout(withdrawal: WithdrawalRecord, position: int, data: dict[str, Any]) -> None:
    payout_id = data.get("payout_id")
    if payout_id is None:
        return
    if payout_id != withdrawal.payout_id:
        withdrawal.payout_id = str(payout_id)
        withdrawal.payout_named_at = position
        withdrawal.payout_gateway = None
    gateway = data.get("gateway")
    if gateway is not None:
        withdrawal.payout_gateway = str(gateway)
