"""The broker against the ledger: open positions and realized P&L, per funded account.

See docs/rules.md#reconciliation and docs/rules.md#position-sync-and-guards.

The ledger's side is folded from the stored events alone (plain SQL on
`ledger_events`, no view: the projections check compares the views): for each
funded account, its open positions by position id (symbol, side, quantity,
entry price), the realized P&L of its closes, whether it ever traded and
whether it is closed. The broker's side is what the Broker port answers now,
for the account of the same id. Compared:

- a position the ledger holds and the broker does not: `position_missing_at_broker`
  (the amount: its value at entry);
- a position the broker holds and the ledger does not: `position_unknown_to_ledger`
  (the amount: its market value at the broker);
- a position both hold with another symbol, side, quantity or entry price:
  `position_differs` (the amount: the difference of the values at entry, or
  the larger value when symbol or side differ, since then the whole position
  is in question);
- realized P&L since the account was opened at the broker against the sum of
  the ledger's closes: `realized_pnl_differs` (the amount: broker - ledger);
- the broker holds no such account while the ledger has positions or trades
  there: `broker_account_missing`. An account that never traded is opened at
  the broker on its first order, so not holding it yet is no fault.

Closed accounts with no open position are not asked about: nothing of
theirs is at the broker any more. A broker error for one account is a
`check_error` discrepancy about that account ("broker account <id>") and the
other accounts are still checked; when no account's broker answered, the
check errored.

Trading goes on while the check runs, and a trade reaches the broker before
the ledger records it, so an account caught between the two looks wrong. An
account found wrong is therefore read again (ledger, then broker) after
`recheck_delay_s`, and only what is still wrong then is reported.

Subjects name the account and position ids, never amounts, so the same
fault seen by a later run has the same fingerprint. Nothing is corrected by
the service: which side is right is for a person to find out.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final
from uuid import UUID

import orjson
import psycopg

from application.ports.broker import Broker, BrokerError, BrokerPosition, UnknownAccount
from domain.funded_account_states import FundedAccountState
from domain.money import describe_money
from domain.reconciliation import CheckResult, CheckStatus, Discrepancy, DiscrepancyKind
from domain.tiers import TIER_CURRENCY
from projections.events import (
    FUNDED_ACTIVATED,
    FUNDED_POSITION_CLOSED,
    FUNDED_POSITION_OPENED,
    FUNDED_STATE_CHANGED,
)

BROKER_CHECK: Final[str] = "broker"
MEASURE: Final[str] = "open positions"
# Accounts asked of the broker at once: a slow account holds up one worker,
# not the check, and the broker is not flooded.
BROKER_CALLS_CONCURRENT_MAX: Final[int] = 8
# Long enough for a trade in flight (broker filled, ledger write pending) to
# be recorded; a fault that is real is still there after it.
RECHECK_DELAY_S: Final[float] = 0.5
# Rows the database sends per round trip while the funded events stream in.
STREAM_ROWS_PER_FETCH: Final[int] = 2_000

# Only the events that say what the broker should hold; a funded account's
# marks, bands and withdrawals are not the broker's business here.
_TOPICS: Final[tuple[str, ...]] = (
    FUNDED_ACTIVATED,
    FUNDED_STATE_CHANGED,
    FUNDED_POSITION_OPENED,
    FUNDED_POSITION_CLOSED,
)
# The whole log, in log order: the planner scans and sorts the few funded
# events rather than walking a million transfers through an index.
_SELECT_EVENTS: Final = (
    "SELECT originator_id, topic, state FROM ledger_events "
    "WHERE topic = ANY(%s) ORDER BY notification_id"
)
# Some accounts again (a recheck), by the primary key's index.
_SELECT_EVENTS_OF: Final = (
    "SELECT originator_id, topic, state FROM ledger_events "
    "WHERE originator_id = ANY(%s) AND topic = ANY(%s) "
    "ORDER BY originator_id, originator_version"
)


@dataclass(frozen=True, slots=True)
class LedgerPosition:
    position_id: str
    symbol: str
    side: str
    quantity: int
    entry_price_minor: int

    @property
    def entry_value_minor(self) -> int:
        return self.quantity * self.entry_price_minor


@dataclass(slots=True)
class LedgerBook:
    """What the ledger says the broker should hold for one funded account."""

    funded_account_id: UUID
    closed: bool = False
    # Position id -> position, in the order opened.
    positions: dict[str, LedgerPosition] = field(default_factory=dict)
    realized_pnl_minor: int = 0
    traded: bool = False

    @property
    def checked(self) -> bool:
        return not self.closed or bool(self.positions)

    @property
    def entry_value_minor(self) -> int:
        return sum(position.entry_value_minor for position in self.positions.values())


@dataclass(frozen=True, slots=True)
class AccountOutcome:
    discrepancies: tuple[Discrepancy, ...]
    # Open positions the broker reported; None when it did not answer.
    broker_positions: int | None

    @property
    def errored(self) -> bool:
        return self.broker_positions is None


class BrokerCheck:
    def __init__(
        self,
        database_url: str,
        broker: Broker,
        *,
        concurrency: int = BROKER_CALLS_CONCURRENT_MAX,
        recheck_delay_s: float = RECHECK_DELAY_S,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        if recheck_delay_s < 0:
            raise ValueError("recheck_delay_s must not be negative")
        self._database_url = database_url
        self._broker = broker
        self._concurrency = concurrency
        self._recheck_delay_s = recheck_delay_s

    @property
    def name(self) -> str:
        return BROKER_CHECK

    def run(self) -> CheckResult:
        started = time.perf_counter()
        books = [book for book in self._read_books(None) if book.checked]
        ledger_positions = {book.funded_account_id: len(book.positions) for book in books}
        outcomes = dict(zip(ledger_positions, self._compare(books), strict=True))
        suspect = [account_id for account_id, outcome in outcomes.items() if outcome.discrepancies]
        if suspect:
            time.sleep(self._recheck_delay_s)
            again = [book for book in self._read_books(suspect) if book.checked]
            outcomes.update(
                zip((book.funded_account_id for book in again), self._compare(again), strict=True)
            )
            ledger_positions.update({book.funded_account_id: len(book.positions) for book in again})
            # An account closed meanwhile with nothing open has nothing at the broker.
            for account_id in set(suspect) - {book.funded_account_id for book in again}:
                outcomes[account_id] = AccountOutcome((), 0)
                ledger_positions[account_id] = 0
        return _result(ledger_positions, outcomes, time.perf_counter() - started)

    def correct(self, discrepancy: Discrepancy) -> str:
        raise ValueError(
            f"the broker check corrects nothing ({discrepancy.fingerprint}): which of the "
            "broker and the ledger is right is for a person to find out"
        )

    # Inside -------------------------------------------------------------------------

    def _read_books(self, only: Sequence[UUID] | None) -> list[LedgerBook]:
        with psycopg.connect(self._database_url, autocommit=True) as connection:
            cursor = connection.cursor()
            if only is None:
                rows = cursor.stream(_SELECT_EVENTS, (list(_TOPICS),), size=STREAM_ROWS_PER_FETCH)
            else:
                rows = cursor.stream(
                    _SELECT_EVENTS_OF, (list(only), list(_TOPICS)), size=STREAM_ROWS_PER_FETCH
                )
            return fold_books(rows)

    def _compare(self, books: Sequence[LedgerBook]) -> list[AccountOutcome]:
        if not books:
            return []
        workers = min(self._concurrency, len(books))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="broker-check") as pool:
            return list(pool.map(lambda book: compare_account(book, self._broker), books))


def fold_books(rows: Iterable[tuple[UUID, str, bytes]]) -> list[LedgerBook]:
    """Each funded account's book from its events, in the order activated."""
    books: dict[UUID, LedgerBook] = {}
    for originator_id, topic, state in rows:
        if topic == FUNDED_ACTIVATED:
            books[originator_id] = LedgerBook(originator_id)
            continue
        book = books.get(originator_id)
        if book is None:
            # A later event without its Activated: the ledger check's to report.
            continue
        data: dict[str, Any] = orjson.loads(state)
        if topic == FUNDED_STATE_CHANGED:
            book.closed = data["to_state"] == FundedAccountState.CLOSED.value
        elif topic == FUNDED_POSITION_OPENED:
            position_id = data["position_id"]
            book.positions[position_id] = LedgerPosition(
                position_id,
                data["symbol"],
                data["side"],
                data["quantity"],
                data["entry_price_minor"],
            )
            book.traded = True
        elif topic == FUNDED_POSITION_CLOSED:
            book.positions.pop(data["position_id"], None)
            book.realized_pnl_minor += data["realized_pnl_minor"]
            book.traded = True
    return list(books.values())


def compare_account(book: LedgerBook, broker: Broker) -> AccountOutcome:
    """One account's positions and realized P&L, the ledger's against the broker's."""
    account_id = book.funded_account_id
    try:
        held = broker.open_positions(account_id)
        equity = broker.equity(account_id)
    except UnknownAccount:
        if not book.traded:
            return AccountOutcome((), 0)
        at_stake = book.entry_value_minor or abs(book.realized_pnl_minor)
        return AccountOutcome(
            (
                Discrepancy(
                    DiscrepancyKind.BROKER_ACCOUNT_MISSING,
                    f"broker account {account_id}",
                    f"the broker holds no account for funded account {account_id}, which "
                    f"has {len(book.positions)} open positions and realized "
                    f"{describe_money(book.realized_pnl_minor, TIER_CURRENCY)} in the ledger",
                    amount_minor=at_stake,
                    currency=TIER_CURRENCY,
                    expected=f"{len(book.positions)} open positions",
                    actual="no account",
                ),
            ),
            0,
        )
    except BrokerError as error:
        return AccountOutcome(
            (
                Discrepancy(
                    DiscrepancyKind.CHECK_ERROR,
                    f"broker account {account_id}",
                    f"the broker did not answer for funded account {account_id}: "
                    f"{type(error).__name__}: {error}",
                ),
            ),
            None,
        )
    found = list(position_discrepancies(book, held))
    if equity.realized_pnl_minor != book.realized_pnl_minor:
        found.append(
            Discrepancy(
                DiscrepancyKind.REALIZED_PNL_DIFFERS,
                f"funded account {account_id} realized pnl",
                f"the broker reports {describe_money(equity.realized_pnl_minor, equity.currency)} "
                f"realized for funded account {account_id}, the ledger's closes add up to "
                f"{describe_money(book.realized_pnl_minor, equity.currency)}",
                amount_minor=equity.realized_pnl_minor - book.realized_pnl_minor,
                currency=equity.currency,
                expected=describe_money(book.realized_pnl_minor, equity.currency),
                actual=describe_money(equity.realized_pnl_minor, equity.currency),
            )
        )
    return AccountOutcome(tuple(found), len(held))


def position_discrepancies(
    book: LedgerBook, held: Sequence[BrokerPosition]
) -> Iterable[Discrepancy]:
    account_id = book.funded_account_id
    at_broker = {position.position_id: position for position in held}
    for position_id, ours in book.positions.items():
        theirs = at_broker.get(position_id)
        subject = f"funded account {account_id} position {position_id}"
        if theirs is None:
            yield Discrepancy(
                DiscrepancyKind.POSITION_MISSING_AT_BROKER,
                subject,
                f"the ledger holds position {position_id} ({_described(ours)}) open; "
                "the broker does not",
                amount_minor=ours.entry_value_minor,
                currency=TIER_CURRENCY,
                expected=_described(ours),
                actual="not open",
            )
            continue
        reported = LedgerPosition(
            position_id,
            theirs.symbol,
            theirs.side.value,
            theirs.quantity,
            theirs.entry_price_minor,
        )
        if reported != ours:
            whole = (reported.symbol, reported.side) != (ours.symbol, ours.side)
            yield Discrepancy(
                DiscrepancyKind.POSITION_DIFFERS,
                subject,
                f"position {position_id} is {_described(ours)} in the ledger and "
                f"{_described(reported)} at the broker",
                amount_minor=(
                    max(reported.entry_value_minor, ours.entry_value_minor)
                    if whole
                    else abs(reported.entry_value_minor - ours.entry_value_minor)
                ),
                currency=TIER_CURRENCY,
                expected=_described(ours),
                actual=_described(reported),
            )
    for position_id, theirs in at_broker.items():
        if position_id not in book.positions:
            yield Discrepancy(
                DiscrepancyKind.POSITION_UNKNOWN_TO_LEDGER,
                f"funded account {account_id} position {position_id}",
                f"the broker holds position {position_id} ({theirs.side.value} "
                f"{theirs.quantity} {theirs.symbol} at {theirs.entry_price_minor}) open "
                f"for funded account {account_id}; the ledger does not",
                amount_minor=theirs.market_value_minor,
                currency=TIER_CURRENCY,
                expected="not open",
                actual=f"{theirs.side.value} {theirs.quantity} {theirs.symbol}",
            )


def _described(position: LedgerPosition) -> str:
    return f"{position.side} {position.quantity} {position.symbol} at {position.entry_price_minor}"


def _result(
    ledger_positions: dict[UUID, int], outcomes: dict[UUID, AccountOutcome], elapsed_s: float
) -> CheckResult:
    discrepancies = tuple(
        discrepancy for outcome in outcomes.values() for discrepancy in outcome.discrepancies
    )
    errored = [account_id for account_id, outcome in outcomes.items() if outcome.errored]
    broker_positions = sum(outcome.broker_positions or 0 for outcome in outcomes.values())
    if outcomes and len(errored) == len(outcomes):
        status = CheckStatus.ERRORED
        reason: str | None = f"the broker answered for none of the {len(outcomes)} accounts"
    else:
        status = CheckStatus.FAILED if discrepancies else CheckStatus.PASSED
        reason = None
    return CheckResult(
        BROKER_CHECK,
        status,
        MEASURE,
        # An account whose broker did not answer counts none at the broker.
        expected=sum(ledger_positions.values()),
        actual=broker_positions,
        discrepancies=discrepancies,
        reason=reason,
        elapsed_s=elapsed_s,
    )
