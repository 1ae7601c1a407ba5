"""The daily values view: one row per funded account per UTC calendar day.

What it is for: performance attribution from a daily value per account, two
years kept (docs/rules.md#performance-figures): returns, volatility, drawdowns,
win rate and profit factor are worked out from these rows by their readers.

A row holds the account's closing figures of the day and what happened in it:

    close_balance_minor   current balance after the day's last event
    close_equity_minor    balance + unrealized P&L of the open positions at
                          their marks after the day's last event
    flow_minor            external money that day: + the starting balance on
                          the activation day, + capital moved in, - capital
                          moved out (forks, merges), - withdrawals recorded
    realized_pnl_minor    the P&L of the positions closed that day
    trades_closed, wins (P&L > 0), losses (P&L < 0; a close at 0 is neither),
    gross_profit_minor, gross_loss_minor (the losses' sum, as a positive number)
    position              the log position of the day's last event

So for every row, with the account's previous row's closing figures (0 before
its first row): close_balance = previous close_balance + flow + realized P&L,
and close_equity - previous close_equity - flow is the day's P&L (realized
and the change in unrealized).

Rules:

- Which day. Every event of a funded account (any topic, figures moved or
  not) counts on the UTC day of the business time in its body (`activated_at`
  of `Activated`, `at` of the others), not of its recording. An event dated
  before the account's latest day (a late report) counts on the latest day:
  rows never reopen, so the rows are a function of the events in log order
  and a rebuild gives what the live run gave. An event without a time counts
  on the latest day too.
- Days without events have no row. A reader carries the last row before a
  day forward: its closing figures stand, and flows and trade counts are 0
  (`values_carried_in` gives that row).
- A new day's row starts from the previous row's closing figures, with flows
  and counts at 0, and then takes the day's events.
- History kept: `HISTORY_KEPT_DAYS` calendar days per account, ending at its
  latest day (the latest day and the 729 before it). When a page moves an
  account's latest day on, its rows at or before latest day - 730 days are
  deleted (and rows already outside the window are never written). The kept
  rows depend on the latest day only, and days never go back, so pruning
  page by page ends where a rebuild ends.

Figures replay the aggregate's handlers (domain/funded_account.py), as the
funded accounts view does; this view keeps its own copy of each account's
open positions and marks (`view_daily_value_positions`), because equity moves
with them and a view reads no other view's tables.

Accounts seen lately are remembered between pages (latest row and open
positions); what memory lacks is read back, once per page for every miss
together: the account's latest row and its open positions. A page deletes the
stored latest row of an account it moves on the same day, the rows pruned,
and the positions of accounts whose positions it moved; then COPYs the rows
it touched and those positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, timedelta
from fractions import Fraction
from typing import Any, Final
from uuid import UUID

from domain.positions import PositionSide, position_pnl_minor
from projections.events import (
    FUNDED_ACTIVATED,
    FUNDED_CAPITAL_MOVED_IN,
    FUNDED_CAPITAL_MOVED_OUT,
    FUNDED_LATER_TOPICS,
    FUNDED_MARKED_TO_MARKET,
    FUNDED_POSITION_CLOSED,
    FUNDED_POSITION_OPENED,
    FUNDED_WITHDRAWAL_RECORDED,
    LoggedEvent,
    parse_time,
)
from projections.view import Cursor, copy_rows

NAME: Final[str] = "daily_values"
# Calendar days of rows kept per account, ending at its latest day.
HISTORY_KEPT_DAYS: Final[int] = 730
# Accounts remembered between pages (with their open positions); past this the
# memory is dropped and misses are read back from the tables.
REMEMBERED_ACCOUNTS_MAX: Final[int] = 100_000

# Events of a funded account after its activation: each touches its day's row.
_LATER_TOPICS: Final = FUNDED_LATER_TOPICS
# Events that change an account's open positions (their rows are rewritten).
_POSITION_TOPICS: Final = frozenset(
    {FUNDED_POSITION_OPENED, FUNDED_POSITION_CLOSED, FUNDED_MARKED_TO_MARKET}
)
# External money, each event's `amount_minor`: it moves the balance (and
# equity) and is the day's flow. Out: withdrawals paid, capital a fork or merge
# moved to another account; in: capital moved from another account. (The
# starting balance is the activation day's flow.) A new kind of external money
# is one more topic here.
_OUTFLOW_TOPICS: Final = frozenset({FUNDED_WITHDRAWAL_RECORDED, FUNDED_CAPITAL_MOVED_OUT})
_INFLOW_TOPICS: Final = frozenset({FUNDED_CAPITAL_MOVED_IN})
_KEPT: Final = timedelta(days=HISTORY_KEPT_DAYS)

_COLUMNS: Final = (
    "funded_account_id",
    "day",
    "close_balance_minor",
    "close_equity_minor",
    "flow_minor",
    "realized_pnl_minor",
    "trades_closed",
    "wins",
    "losses",
    "gross_profit_minor",
    "gross_loss_minor",
    "position",
)
_POSITION_COLUMNS: Final = (
    "funded_account_id",
    "position_id",
    "symbol",
    "side",
    "quantity",
    "entry_price_minor",
    "mark_price_minor",
)


@dataclass(slots=True)
class DailyRow:
    """A `view_daily_values` row; its fields are `_COLUMNS`, in order. Not
    frozen: the view's memory holds each account's latest row, which events
    move on."""

    funded_account_id: UUID
    day: date
    close_balance_minor: int
    close_equity_minor: int
    flow_minor: int
    realized_pnl_minor: int
    trades_closed: int
    wins: int
    losses: int
    gross_profit_minor: int
    gross_loss_minor: int
    position: int

    def row(self) -> tuple[Any, ...]:
        return (
            self.funded_account_id,
            self.day,
            self.close_balance_minor,
            self.close_equity_minor,
            self.flow_minor,
            self.realized_pnl_minor,
            self.trades_closed,
            self.wins,
            self.losses,
            self.gross_profit_minor,
            self.gross_loss_minor,
            self.position,
        )

    def next_day(self, day: date) -> DailyRow:
        """The row of a later day, before its events: these closing figures."""
        return DailyRow(
            funded_account_id=self.funded_account_id,
            day=day,
            close_balance_minor=self.close_balance_minor,
            close_equity_minor=self.close_equity_minor,
            flow_minor=0,
            realized_pnl_minor=0,
            trades_closed=0,
            wins=0,
            losses=0,
            gross_profit_minor=0,
            gross_loss_minor=0,
            position=self.position,
        )


@dataclass(slots=True)
class _Held:
    """An open position as far as equity needs it."""

    symbol: str
    side: PositionSide
    quantity: int
    entry_price_minor: int
    mark_price_minor: int

    @property
    def unrealized_pnl_minor(self) -> int:
        return position_pnl_minor(
            self.side, self.entry_price_minor, self.mark_price_minor, self.quantity
        )


@dataclass(slots=True)
class _Account:
    """One account as the view remembers it: its latest row and open positions."""

    latest: DailyRow
    positions: dict[str, _Held] = field(default_factory=dict)

    def position_rows(self) -> list[tuple[Any, ...]]:
        account_id = self.latest.funded_account_id
        return [
            (
                account_id,
                position_id,
                held.symbol,
                held.side.value,
                held.quantity,
                held.entry_price_minor,
                held.mark_price_minor,
            )
            for position_id, held in self.positions.items()
        ]

    def revalue(self) -> None:
        row = self.latest
        row.close_equity_minor = row.close_balance_minor + sum(
            held.unrealized_pnl_minor for held in self.positions.values()
        )

    def move_balance(self, amount_minor: int) -> None:
        """Balance and equity move together (the marks stay)."""
        self.latest.close_balance_minor += amount_minor
        self.latest.close_equity_minor += amount_minor


def _utc_day(value: Any) -> date | None:
    at = parse_time(value)
    return None if at is None else at.astimezone(UTC).date()


def _activated(event: LoggedEvent) -> _Account:
    data = event.data()
    day = _utc_day(data["activated_at"])
    assert day is not None
    starting: int = data["starting_balance_minor"]
    return _Account(
        latest=DailyRow(
            funded_account_id=event.originator_id,
            day=day,
            close_balance_minor=starting,
            close_equity_minor=starting,
            # The starting capital comes into the account: the first day's flow.
            flow_minor=starting,
            realized_pnl_minor=0,
            trades_closed=0,
            wins=0,
            losses=0,
            gross_profit_minor=0,
            gross_loss_minor=0,
            position=event.position,
        )
    )


def _apply(account: _Account, topic: str, data: dict[str, Any]) -> None:
    """One later event's figures onto the account's latest row (already its day's)."""
    row = account.latest
    if topic == FUNDED_POSITION_OPENED:
        # Marked at its entry price: its P&L is 0, so equity does not move.
        account.positions[data["position_id"]] = _Held(
            symbol=data["symbol"],
            side=PositionSide(data["side"]),
            quantity=data["quantity"],
            entry_price_minor=data["entry_price_minor"],
            mark_price_minor=data["entry_price_minor"],
        )
    elif topic == FUNDED_POSITION_CLOSED:
        del account.positions[data["position_id"]]
        pnl: int = data["realized_pnl_minor"]
        row.close_balance_minor += pnl
        row.realized_pnl_minor += pnl
        row.trades_closed += 1
        if pnl > 0:
            row.wins += 1
            row.gross_profit_minor += pnl
        elif pnl < 0:
            row.losses += 1
            row.gross_loss_minor -= pnl
        account.revalue()
    elif topic == FUNDED_MARKED_TO_MARKET:
        prices: dict[str, int] = data["prices"]
        for held in account.positions.values():
            held.mark_price_minor = prices.get(held.symbol, held.mark_price_minor)
        account.revalue()
    elif topic in _OUTFLOW_TOPICS:
        row.flow_minor -= data["amount_minor"]
        account.move_balance(-data["amount_minor"])
    elif topic in _INFLOW_TOPICS:
        row.flow_minor += data["amount_minor"]
        account.move_balance(data["amount_minor"])
    # Other events (state, band, reservations, fork attempts) move no figure;
    # they only make their day's row and set its position.


class DailyValuesView:
    name = NAME
    version = 1
    tables: tuple[str, ...] = ("view_daily_values", "view_daily_value_positions")

    def __init__(self) -> None:
        self._accounts: dict[UUID, _Account] = {}
        self._complete = False

    def create_tables(self, cursor: Cursor) -> None:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS view_daily_values ("
            " funded_account_id uuid NOT NULL, day date NOT NULL,"
            " close_balance_minor bigint NOT NULL, close_equity_minor bigint NOT NULL,"
            " flow_minor bigint NOT NULL, realized_pnl_minor bigint NOT NULL,"
            " trades_closed integer NOT NULL, wins integer NOT NULL, losses integer NOT NULL,"
            " gross_profit_minor bigint NOT NULL, gross_loss_minor bigint NOT NULL,"
            " position bigint NOT NULL,"
            " PRIMARY KEY (funded_account_id, day))"
        )
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS view_daily_value_positions ("
            " funded_account_id uuid NOT NULL, position_id text NOT NULL,"
            " symbol text NOT NULL, side text NOT NULL, quantity bigint NOT NULL,"
            " entry_price_minor bigint NOT NULL, mark_price_minor bigint NOT NULL,"
            " PRIMARY KEY (funded_account_id, position_id))"
        )

    def create_indexes(self, cursor: Cursor) -> None:
        """None: the primary keys serve the reads (by account, then day)."""

    def forget(self, *, starts_empty: bool) -> None:
        self._accounts = {}
        self._complete = starts_empty

    def digest_order(self, table: str) -> str:
        if table == "view_daily_value_positions":
            return "funded_account_id, position_id"
        return "funded_account_id, day"

    def prepare(self, cursor: Cursor | None, events: Sequence[LoggedEvent]) -> _DailyPage:
        # A replay from empty (no cursor) keeps everything: it cannot read back.
        if cursor is not None and len(self._accounts) > REMEMBERED_ACCOUNTS_MAX:
            self.forget(starts_empty=False)
        self._remember(cursor, events)
        accounts = self._accounts
        # Per account touched: its latest day before this page (None: activated
        # in it), and its rows finished in this page (days it left).
        days_before: dict[UUID, date | None] = {}
        finished: dict[UUID, list[tuple[Any, ...]]] = {}
        # Accounts whose latest row an event of this page moved.
        moved: set[UUID] = set()
        positions_touched: set[UUID] = set()
        for event in events:
            topic = event.topic
            account_id = event.originator_id
            if topic == FUNDED_ACTIVATED:
                accounts[account_id] = _activated(event)
                days_before[account_id] = None
                finished[account_id] = []
                moved.add(account_id)
                continue
            if topic not in _LATER_TOPICS:
                continue
            account = accounts.get(account_id)
            if account is None:
                raise LookupError(
                    f"funded account {account_id} has an event at position "
                    f"{event.position} but was never activated"
                )
            if account_id not in days_before:
                days_before[account_id] = account.latest.day
                finished[account_id] = []
            data = event.data()
            day = _utc_day(data.get("at"))
            if day is not None and day > account.latest.day:
                if account_id in moved:
                    # The day it leaves was moved in this page: its row is done.
                    finished[account_id].append(account.latest.row())
                account.latest = account.latest.next_day(day)
            _apply(account, topic, data)
            account.latest.position = event.position
            moved.add(account_id)
            if topic in _POSITION_TOPICS:
                positions_touched.add(account_id)
        return self._page(days_before, finished, positions_touched)

    def _page(
        self,
        days_before: dict[UUID, date | None],
        finished: dict[UUID, list[tuple[Any, ...]]],
        positions_touched: set[UUID],
    ) -> _DailyPage:
        """The page's writes, copied out of memory (which moves on with the next page)."""
        replaced: list[tuple[UUID, date]] = []
        pruned: list[tuple[UUID, date]] = []
        rows: list[tuple[Any, ...]] = []
        for account_id, day_before in days_before.items():
            latest = self._accounts[account_id].latest
            # Rows on or before this day are outside the history kept.
            cutoff = latest.day - _KEPT
            page_rows = [*finished[account_id], latest.row()]
            rows.extend(row for row in page_rows if row[1] > cutoff)
            if day_before is None:
                continue
            if page_rows[0][1] == day_before:
                # The stored latest row went on in this page: rewritten.
                replaced.append((account_id, day_before))
            if latest.day > day_before:
                pruned.append((account_id, cutoff))
        return _DailyPage(
            replaced=replaced,
            pruned=pruned,
            replaced_positions=[
                account_id
                for account_id in positions_touched
                if days_before[account_id] is not None
            ],
            rows=rows,
            position_rows=[
                row
                for account_id, day_before in days_before.items()
                if day_before is None or account_id in positions_touched
                for row in self._accounts[account_id].position_rows()
            ],
        )

    def _remember(self, cursor: Cursor | None, events: Sequence[LoggedEvent]) -> None:
        """Read back the accounts this page changes that memory lacks: each
        one's latest row and its open positions."""
        if self._complete:
            return
        if cursor is None:
            raise ValueError("only a view that replays from empty prepares without a cursor")
        missing = list(
            {
                event.originator_id: None
                for event in events
                if event.topic in _LATER_TOPICS and event.originator_id not in self._accounts
            }
        )
        if not missing:
            return
        cursor.execute(
            f"SELECT DISTINCT ON (funded_account_id) {', '.join(_COLUMNS)}"  # noqa: S608
            " FROM view_daily_values WHERE funded_account_id = ANY(%s)"
            " ORDER BY funded_account_id, day DESC",
            (missing,),
        )
        for row in cursor.fetchall():
            self._accounts[row[0]] = _Account(latest=DailyRow(*row))
        cursor.execute(
            f"SELECT {', '.join(_POSITION_COLUMNS)} FROM view_daily_value_positions"  # noqa: S608
            " WHERE funded_account_id = ANY(%s)",
            (missing,),
        )
        for row in cursor.fetchall():
            self._accounts[row[0]].positions[row[1]] = _Held(
                symbol=row[2],
                side=PositionSide(row[3]),
                quantity=row[4],
                entry_price_minor=row[5],
                mark_price_minor=row[6],
            )


@dataclass(frozen=True, slots=True)
class _DailyPage:
    # (account, day) of stored rows this page rewrites.
    replaced: list[tuple[UUID, date]]
    # (account, cutoff): the account's stored rows on or before the cutoff go.
    pruned: list[tuple[UUID, date]]
    # Accounts whose stored positions this page replaces.
    replaced_positions: list[UUID]
    rows: list[tuple[Any, ...]]
    position_rows: list[tuple[Any, ...]]

    def write(self, cursor: Cursor) -> None:
        if self.replaced:
            cursor.execute(
                "DELETE FROM view_daily_values AS v"
                " USING unnest(%s::uuid[], %s::date[]) AS r(funded_account_id, day)"
                " WHERE v.funded_account_id = r.funded_account_id AND v.day = r.day",
                ([key for key, _ in self.replaced], [day for _, day in self.replaced]),
            )
        if self.pruned:
            cursor.execute(
                "DELETE FROM view_daily_values AS v"
                " USING unnest(%s::uuid[], %s::date[]) AS p(funded_account_id, cutoff)"
                " WHERE v.funded_account_id = p.funded_account_id AND v.day <= p.cutoff",
                ([key for key, _ in self.pruned], [cutoff for _, cutoff in self.pruned]),
            )
        if self.replaced_positions:
            cursor.execute(
                "DELETE FROM view_daily_value_positions WHERE funded_account_id = ANY(%s)",
                (self.replaced_positions,),
            )
        copy_rows(cursor, "view_daily_values", _COLUMNS, self.rows)
        copy_rows(cursor, "view_daily_value_positions", _POSITION_COLUMNS, self.position_rows)


# Queries ---------------------------------------------------------------------

_SELECT: Final = f"SELECT {', '.join(_COLUMNS)} FROM view_daily_values"  # noqa: S608


def daily_values(
    cursor: Cursor, funded_account_ids: Sequence[UUID], from_day: date, to_day: date
) -> dict[UUID, list[DailyRow]]:
    """Each account's rows from `from_day` to `to_day` (both included), by
    day; every account asked for is a key (an empty list if it has no row
    then). Days without a row carry the previous row's closing figures."""
    found: dict[UUID, list[DailyRow]] = {account_id: [] for account_id in funded_account_ids}
    cursor.execute(
        f"{_SELECT} WHERE funded_account_id = ANY(%s) AND day BETWEEN %s AND %s"
        " ORDER BY funded_account_id, day",
        (list(funded_account_ids), from_day, to_day),
    )
    for row in cursor.fetchall():
        found[row[0]].append(DailyRow(*row))
    return found


def values_carried_in(
    cursor: Cursor, funded_account_ids: Sequence[UUID], day: date
) -> dict[UUID, DailyRow]:
    """Each account's last row before `day` (its closing figures are the
    value carried into `day`); accounts without one are not keys."""
    cursor.execute(
        f"SELECT DISTINCT ON (funded_account_id) {', '.join(_COLUMNS)}"  # noqa: S608
        " FROM view_daily_values WHERE funded_account_id = ANY(%s) AND day < %s"
        " ORDER BY funded_account_id, day DESC",
        (list(funded_account_ids), day),
    )
    return {row[0]: DailyRow(*row) for row in cursor.fetchall()}


@dataclass(frozen=True, slots=True)
class ClosedPnls:
    """An account's closed trades over a period, summed from its daily rows."""

    trades_closed: int
    wins: int
    losses: int
    gross_profit_minor: int
    # The losses' sum, as a positive number.
    gross_loss_minor: int
    realized_pnl_minor: int

    @property
    def win_rate(self) -> Fraction | None:
        """Wins over trades closed (a close at exactly 0 is a trade, not a win)."""
        return None if self.trades_closed == 0 else Fraction(self.wins, self.trades_closed)

    @property
    def profit_factor(self) -> Fraction | None:
        """Gross profit over gross loss; None without any loss."""
        if self.gross_loss_minor == 0:
            return None
        return Fraction(self.gross_profit_minor, self.gross_loss_minor)


NO_CLOSED_PNLS: Final = ClosedPnls(0, 0, 0, 0, 0, 0)


def closed_pnls(
    cursor: Cursor, funded_account_ids: Sequence[UUID], from_day: date, to_day: date
) -> dict[UUID, ClosedPnls]:
    """Each account's closed trades from `from_day` to `to_day` (both
    included); every account asked for is a key (zeros if none closed)."""
    found = dict.fromkeys(funded_account_ids, NO_CLOSED_PNLS)
    cursor.execute(
        "SELECT funded_account_id, sum(trades_closed), sum(wins), sum(losses),"
        " sum(gross_profit_minor), sum(gross_loss_minor), sum(realized_pnl_minor)"
        " FROM view_daily_values"
        " WHERE funded_account_id = ANY(%s) AND day BETWEEN %s AND %s"
        " GROUP BY funded_account_id",
        (list(funded_account_ids), from_day, to_day),
    )
    for row in cursor.fetchall():
        found[row[0]] = ClosedPnls(*(int(value) for value in row[1:]))
    return found
