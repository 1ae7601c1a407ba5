"""The broker sync's divergences still open, as reconciliation exceptions.

See docs/rules.md#position-sync-and-guards: the sync matches each funded
account's positions at the broker with the ledger's (a 5 % volume tolerance)
and records what differs on the account's guard: `DivergenceFound` (slippage, a
partial fill, a position missing at the broker, an extra one) and
`DivergenceCleared` when a later sync no longer sees it. This check folds those
events from `ledger_events` with plain SQL, in one snapshot (never the guards
view, which the projections check compares with the log), and reports each
divergence still open as `sync_divergence`, for the value that differs.

`expected` is 0 (no divergence open) and `actual` the number open. Subjects
are "funded account <id> position <position id> <kind>", the same in every
run while the divergence stays open. Nothing is corrected by the service:
whether the broker or the ledger is right is for a person to decide.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

import orjson

from domain.account_guard import AccountGuard
from domain.reconciliation import CheckResult, Discrepancy, DiscrepancyKind
from domain.tiers import TIER_CURRENCY
from interface.adapters.persistence.log_reads import snapshot_connection
from projections.events import GUARD_STARTED

BROKER_SYNC_CHECK: Final[str] = "broker_sync"
MEASURE: Final[str] = "open sync divergences"


def _guard_topic(name: str) -> str:
    # The @event decorator makes these classes, which mypy cannot see; a
    # misspelt name still fails here, at import.
    event_class = getattr(AccountGuard, name)
    return f"{event_class.__module__}:{event_class.__qualname__}"


DIVERGENCE_FOUND: Final[str] = _guard_topic("DivergenceFound")
DIVERGENCE_CLEARED: Final[str] = _guard_topic("DivergenceCleared")

_SELECT_GUARD_EVENTS: Final = (
    "SELECT originator_id, topic, state FROM ledger_events "
    "WHERE topic = ANY(%s) ORDER BY notification_id"
)


@dataclass(frozen=True, slots=True)
class OpenDivergence:
    funded_account_id: UUID
    kind: str
    position_id: str
    symbol: str
    ledger_quantity: int | None
    broker_quantity: int | None
    ledger_entry_minor: int | None
    broker_entry_minor: int | None
    amount_minor: int

    @property
    def subject(self) -> str:
        return f"funded account {self.funded_account_id} position {self.position_id} {self.kind}"


class BrokerSyncCheck:
    def __init__(self, database_url: str) -> None:
        self._database_url = database_url

    @property
    def name(self) -> str:
        return BROKER_SYNC_CHECK

    def run(self) -> CheckResult:
        started = time.perf_counter()
        with (
            snapshot_connection(self._database_url) as connection,
            connection.cursor(binary=True) as cursor,
        ):
            # Streamed, not through a server-side cursor: PostgreSQL scans in
            # parallel only for a query it runs to the end at once.
            rows = cursor.stream(
                _SELECT_GUARD_EVENTS, ([GUARD_STARTED, DIVERGENCE_FOUND, DIVERGENCE_CLEARED],)
            )
            divergences = open_divergences(rows)
        discrepancies = tuple(_discrepancy(divergence) for divergence in divergences)
        return CheckResult.compared(
            BROKER_SYNC_CHECK,
            MEASURE,
            expected=0,
            actual=len(discrepancies),
            discrepancies=discrepancies,
            elapsed_s=time.perf_counter() - started,
        )

    def correct(self, discrepancy: Discrepancy) -> str:
        raise ValueError(
            f"the broker sync check corrects nothing ({discrepancy.fingerprint}): "
            "whether the broker or the ledger is right is for a person to decide"
        )


def open_divergences(rows: Iterable[tuple[UUID, str, bytes]]) -> list[OpenDivergence]:
    """Fold guards' `Started`, `DivergenceFound` and `DivergenceCleared`, in log
    order, to the divergences still open, in the order they were found."""
    accounts: dict[UUID, UUID] = {}
    open_by_guard: dict[tuple[UUID, str], OpenDivergence] = {}
    for guard_id, topic, state in rows:
        data = orjson.loads(state)
        if topic == GUARD_STARTED:
            accounts[guard_id] = UUID(data["funded_account_id"])
        elif topic == DIVERGENCE_CLEARED:
            open_by_guard.pop((guard_id, data["fingerprint"]), None)
        elif guard_id in accounts:
            # A divergence with no `Started` before it breaks the order of the
            # guard's versions, which the ledger check reports.
            open_by_guard[(guard_id, data["fingerprint"])] = _found(accounts[guard_id], data)
    return list(open_by_guard.values())


def _found(funded_account_id: UUID, data: dict[str, Any]) -> OpenDivergence:
    return OpenDivergence(
        funded_account_id=funded_account_id,
        kind=str(data["kind"]),
        position_id=str(data["position_id"]),
        symbol=str(data["symbol"]),
        ledger_quantity=data["ledger_quantity"],
        broker_quantity=data["broker_quantity"],
        ledger_entry_minor=data["ledger_entry_minor"],
        broker_entry_minor=data["broker_entry_minor"],
        amount_minor=int(data["amount_minor"]),
    )


def _held(quantity: int | None, entry_minor: int | None) -> str:
    return "none" if quantity is None else f"{quantity} at {entry_minor}"


def _discrepancy(divergence: OpenDivergence) -> Discrepancy:
    ledger = _held(divergence.ledger_quantity, divergence.ledger_entry_minor)
    broker = _held(divergence.broker_quantity, divergence.broker_entry_minor)
    return Discrepancy(
        DiscrepancyKind.SYNC_DIVERGENCE,
        divergence.subject,
        f"the broker sync found {divergence.kind.replace('_', ' ')} on position "
        f"{divergence.position_id} ({divergence.symbol}) of funded account "
        f"{divergence.funded_account_id}: the ledger holds {ledger}, the broker {broker}",
        amount_minor=divergence.amount_minor,
        currency=TIER_CURRENCY,
        expected=f"ledger: {ledger}",
        actual=f"broker: {broker}",
    )
