"""The funded accounts view: each funded account's figures, and its open positions.

Built from the `FundedAccount` events alone, replaying exactly what the
aggregate's own event handlers do (domain/funded_account.py), with the
domain's own pieces where there are any (`OpenPosition` for a position's
unrealized P&L and size at its mark):

    Activated           current = peak = starting; realized, unrealized,
                        withdrawn 0; state ACTIVE ("activated"); band SAFE
    StateChanged        state and reason
    PositionOpened      a position marked at its entry price (its P&L is 0,
                        so no figure moves, as in the aggregate)
    PositionClosed      the position goes; realized and current += its P&L;
                        then revalued
    MarkedToMarket      every open position of a priced symbol takes the
                        price as its mark; then revalued
    WithdrawalRecorded  withdrawn += amount; current and peak -= amount
    BandChanged         the band the rules monitor recorded
    revalued            unrealized = sum of the open positions' P&L at their
                        marks; peak = max(peak, current + unrealized)

`view_funded_accounts` has one row per account: the figures after its last
event, that event's log position (`position`) and logged time (`updated_at`),
and the position of its activation (`activated_log_position`, the stable
order accounts are listed in). `view_funded_positions` has one row per open
position, removed when the position closes. Figures the view does not keep
(equity, rule status, withdrawable) are worked out on reading by the domain's
rules (`FundedAccountDetail`), as the aggregate works them out.

Accounts seen lately are remembered between pages with their open positions;
what memory lacks is read back from the two tables, once per page for every
miss together. A page rewrites the rows of the accounts it touched (delete,
then COPY), and the position rows of those whose positions it touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from fractions import Fraction
from typing import Any, Final
from uuid import UUID

from domain.funded_account import OpenPosition
from domain.funded_account_states import FundedAccountState
from domain.funded_rules import AccountRuleStatus, RuleBand, rule_status, withdrawable_minor
from domain.positions import PositionSide
from domain.tiers import TIERS, Tier, TierName
from projections.events import (
    FUNDED_ACTIVATED,
    FUNDED_BAND_CHANGED,
    FUNDED_CAPITAL_MOVED_IN,
    FUNDED_CAPITAL_MOVED_OUT,
    FUNDED_LATER_TOPICS,
    FUNDED_MARKED_TO_MARKET,
    FUNDED_POSITION_CLOSED,
    FUNDED_POSITION_OPENED,
    FUNDED_STATE_CHANGED,
    FUNDED_WITHDRAWAL_RECORDED,
    FUNDED_WITHDRAWAL_RELEASED,
    FUNDED_WITHDRAWAL_RESERVED,
    LoggedEvent,
    parse_time,
)
from projections.view import Cursor, copy_rows

NAME: Final[str] = "funded_accounts"
# Accounts remembered between pages (with their open positions); past this the
# memory is dropped and misses are read back from the tables.
REMEMBERED_ACCOUNTS_MAX: Final[int] = 100_000
# The aggregate's state and reason right after activation.
ACTIVATED_STATE: Final[str] = FundedAccountState.ACTIVE.value
ACTIVATED_REASON: Final[str] = "activated"
ACTIVATED_BAND: Final[str] = RuleBand.SAFE.value

# Events of a funded account after its activation (the ones read back for).
_LATER_TOPICS: Final = FUNDED_LATER_TOPICS
# Events that change an account's open positions (their rows are rewritten).
_POSITION_TOPICS: Final = frozenset(
    {FUNDED_POSITION_OPENED, FUNDED_POSITION_CLOSED, FUNDED_MARKED_TO_MARKET}
)

_ACCOUNT_COLUMNS: Final = (
    "funded_account_id",
    "activated_log_position",
    "assessment_id",
    "owner_id",
    "tier",
    "state",
    "state_reason",
    "profit_split",
    "ledger_account_id",
    "starting_balance_minor",
    "current_balance_minor",
    "peak_balance_minor",
    "realized_pnl_minor",
    "unrealized_pnl_minor",
    "total_withdrawn_minor",
    "reserved_withdrawals_minor",
    "band",
    "activated_at",
    "completed_at",
    "updated_at",
    "position",
)
_POSITION_COLUMNS: Final = (
    "funded_account_id",
    "position_id",
    "opened_log_position",
    "symbol",
    "side",
    "quantity",
    "entry_price_minor",
    "mark_price_minor",
    "opened_at",
    "unrealized_pnl_minor",
)


@dataclass(slots=True)
class FundedAccountRow:
    """A `view_funded_accounts` row; its fields are `_ACCOUNT_COLUMNS`. Not
    frozen: the view's memory (`_Account`) is a row that events move on."""

    funded_account_id: UUID
    activated_log_position: int
    assessment_id: str
    owner_id: str
    tier: str
    state: str
    state_reason: str
    profit_split: str
    ledger_account_id: UUID
    starting_balance_minor: int
    current_balance_minor: int
    peak_balance_minor: int
    realized_pnl_minor: int
    unrealized_pnl_minor: int
    total_withdrawn_minor: int
    reserved_withdrawals_minor: int
    band: str
    activated_at: datetime
    completed_at: datetime
    updated_at: datetime
    position: int

    @property
    def equity_minor(self) -> int:
        return self.current_balance_minor + self.unrealized_pnl_minor

    @property
    def tier_limits(self) -> Tier:
        return TIERS[TierName(self.tier)]

    @property
    def profit_split_ratio(self) -> Fraction:
        return Fraction(self.profit_split)


@dataclass(slots=True)
class _Account(FundedAccountRow):
    """One account as the view remembers it: its row and its open positions."""

    # Open positions by id, in the order opened, each with its opening's log position.
    positions: dict[str, tuple[int, OpenPosition]] = field(default_factory=dict)

    def row(self) -> tuple[Any, ...]:
        return (
            self.funded_account_id,
            self.activated_log_position,
            self.assessment_id,
            self.owner_id,
            self.tier,
            self.state,
            self.state_reason,
            self.profit_split,
            self.ledger_account_id,
            self.starting_balance_minor,
            self.current_balance_minor,
            self.peak_balance_minor,
            self.realized_pnl_minor,
            self.unrealized_pnl_minor,
            self.total_withdrawn_minor,
            self.reserved_withdrawals_minor,
            self.band,
            self.activated_at,
            self.completed_at,
            self.updated_at,
            self.position,
        )

    def position_rows(self) -> list[tuple[Any, ...]]:
        return [
            (
                self.funded_account_id,
                held.position_id,
                opened_log_position,
                held.symbol,
                held.side.value,
                held.quantity,
                held.entry_price_minor,
                held.mark_price_minor,
                held.opened_at,
                held.unrealized_pnl_minor,
            )
            for opened_log_position, held in self.positions.values()
        ]

    def revalue(self) -> None:
        """As the aggregate's `_revalue`: P&L from the marks; the peak follows equity up."""
        self.unrealized_pnl_minor = sum(
            held.unrealized_pnl_minor for _, held in self.positions.values()
        )
        self.peak_balance_minor = max(
            self.peak_balance_minor, self.current_balance_minor + self.unrealized_pnl_minor
        )


def _activated(event: LoggedEvent) -> _Account:
    data = event.data()
    starting = data["starting_balance_minor"]
    activated_at = parse_time(data["activated_at"])
    completed_at = parse_time(data["completed_at"])
    assert activated_at is not None and completed_at is not None
    return _Account(
        funded_account_id=event.originator_id,
        activated_log_position=event.position,
        assessment_id=data["assessment_id"],
        owner_id=data["owner_id"],
        tier=data["tier"],
        state=ACTIVATED_STATE,
        state_reason=ACTIVATED_REASON,
        profit_split=data["profit_split"],
        ledger_account_id=UUID(data["ledger_account_id"]),
        starting_balance_minor=starting,
        current_balance_minor=starting,
        peak_balance_minor=starting,
        realized_pnl_minor=0,
        unrealized_pnl_minor=0,
        total_withdrawn_minor=0,
        reserved_withdrawals_minor=0,
        band=ACTIVATED_BAND,
        activated_at=activated_at,
        completed_at=completed_at,
        updated_at=event.recorded_at,
        position=event.position,
    )


def _apply(account: _Account, event: LoggedEvent) -> None:
    """One later event onto the account, as the aggregate's handler applies it."""
    topic, data = event.topic, event.data()
    if topic == FUNDED_STATE_CHANGED:
        account.state = data["to_state"]
        account.state_reason = data["reason"]
    elif topic == FUNDED_POSITION_OPENED:
        opened_at = parse_time(data["at"])
        assert opened_at is not None
        account.positions[data["position_id"]] = (
            event.position,
            OpenPosition(
                position_id=data["position_id"],
                symbol=data["symbol"],
                side=PositionSide(data["side"]),
                quantity=data["quantity"],
                entry_price_minor=data["entry_price_minor"],
                mark_price_minor=data["entry_price_minor"],
                opened_at=opened_at,
            ),
        )
    elif topic == FUNDED_POSITION_CLOSED:
        del account.positions[data["position_id"]]
        account.realized_pnl_minor += data["realized_pnl_minor"]
        account.current_balance_minor += data["realized_pnl_minor"]
        account.revalue()
    elif topic == FUNDED_MARKED_TO_MARKET:
        prices: dict[str, int] = data["prices"]
        account.positions = {
            position_id: (
                opened_log_position,
                replace(held, mark_price_minor=prices.get(held.symbol, held.mark_price_minor)),
            )
            for position_id, (opened_log_position, held) in account.positions.items()
        }
        account.revalue()
    elif topic == FUNDED_WITHDRAWAL_RECORDED:
        amount = data["amount_minor"]
        account.total_withdrawn_minor += amount
        account.current_balance_minor -= amount
        account.peak_balance_minor -= amount
    elif topic == FUNDED_WITHDRAWAL_RESERVED:
        account.reserved_withdrawals_minor += data["amount_minor"]
    elif topic == FUNDED_WITHDRAWAL_RELEASED:
        account.reserved_withdrawals_minor -= data["amount_minor"]
    elif topic == FUNDED_BAND_CHANGED:
        account.band = data["to_band"]
    elif topic == FUNDED_CAPITAL_MOVED_OUT:
        account.current_balance_minor -= data["amount_minor"]
        account.peak_balance_minor -= data["amount_minor"]
    elif topic == FUNDED_CAPITAL_MOVED_IN:
        account.current_balance_minor += data["amount_minor"]
        account.peak_balance_minor += data["amount_minor"]
        account.starting_balance_minor += data["amount_minor"]
    account.updated_at = event.recorded_at
    account.position = event.position


class FundedAccountsView:
    name = NAME
    # 2: reserved withdrawals. 3: capital moved by forks and merges.
    version = 3
    tables: tuple[str, ...] = ("view_funded_accounts", "view_funded_positions")

    def __init__(self) -> None:
        self._accounts: dict[UUID, _Account] = {}
        self._complete = False

    def create_tables(self, cursor: Cursor) -> None:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS view_funded_accounts ("
            " funded_account_id uuid PRIMARY KEY, activated_log_position bigint NOT NULL,"
            " assessment_id text NOT NULL, owner_id text NOT NULL, tier text NOT NULL,"
            " state text NOT NULL, state_reason text NOT NULL, profit_split text NOT NULL,"
            " ledger_account_id uuid NOT NULL, starting_balance_minor bigint NOT NULL,"
            " current_balance_minor bigint NOT NULL, peak_balance_minor bigint NOT NULL,"
            " realized_pnl_minor bigint NOT NULL, unrealized_pnl_minor bigint NOT NULL,"
            " total_withdrawn_minor bigint NOT NULL, reserved_withdrawals_minor bigint NOT NULL,"
            " band text NOT NULL,"
            " activated_at timestamptz NOT NULL, completed_at timestamptz NOT NULL,"
            " updated_at timestamptz NOT NULL, position bigint NOT NULL)"
        )
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS view_funded_positions ("
            " funded_account_id uuid NOT NULL, position_id text NOT NULL,"
            " opened_log_position bigint NOT NULL, symbol text NOT NULL, side text NOT NULL,"
            " quantity bigint NOT NULL, entry_price_minor bigint NOT NULL,"
            " mark_price_minor bigint NOT NULL, opened_at timestamptz NOT NULL,"
            " unrealized_pnl_minor bigint NOT NULL,"
            " PRIMARY KEY (funded_account_id, position_id))"
        )

    def create_indexes(self, cursor: Cursor) -> None:
        cursor.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS view_funded_accounts_activated_idx"
            " ON view_funded_accounts (activated_log_position)"
        )
        cursor.execute(
            "CREATE INDEX IF NOT EXISTS view_funded_accounts_owner_idx"
            " ON view_funded_accounts (owner_id, activated_log_position)"
        )
        # A position named alone (a manual close) is found by its id.
        cursor.execute(
            "CREATE INDEX IF NOT EXISTS view_funded_positions_position_idx"
            " ON view_funded_positions (position_id)"
        )

    def forget(self, *, starts_empty: bool) -> None:
        self._accounts = {}
        self._complete = starts_empty

    def digest_order(self, table: str) -> str:
        if table == "view_funded_positions":
            return "funded_account_id, position_id"
        return "funded_account_id"

    def prepare(self, cursor: Cursor | None, events: Sequence[LoggedEvent]) -> _FundedPage:
        # A replay from empty (no cursor) keeps everything: it cannot read back.
        if cursor is not None and len(self._accounts) > REMEMBERED_ACCOUNTS_MAX:
            self.forget(starts_empty=False)
        self._remember(cursor, events)
        accounts = self._accounts
        activated: set[UUID] = set()
        touched: dict[UUID, None] = {}
        positions_touched: set[UUID] = set()
        for event in events:
            topic = event.topic
            if topic == FUNDED_ACTIVATED:
                accounts[event.originator_id] = _activated(event)
                activated.add(event.originator_id)
            elif topic in _LATER_TOPICS:
                account = accounts.get(event.originator_id)
                if account is None:
                    raise LookupError(
                        f"funded account {event.originator_id} has an event at position "
                        f"{event.position} but was never activated"
                    )
                _apply(account, event)
                if topic in _POSITION_TOPICS:
                    positions_touched.add(event.originator_id)
            else:
                continue
            touched[event.originator_id] = None
        # Rows are copied out of memory now: memory moves on with the next page.
        return _FundedPage(
            replaced_accounts=[account_id for account_id in touched if account_id not in activated],
            replaced_positions=[
                account_id for account_id in positions_touched if account_id not in activated
            ],
            account_rows=[accounts[account_id].row() for account_id in touched],
            position_rows=[
                row
                for account_id in touched
                if account_id in activated or account_id in positions_touched
                for row in accounts[account_id].position_rows()
            ],
        )

    def _remember(self, cursor: Cursor | None, events: Sequence[LoggedEvent]) -> None:
        """Read back the accounts (and open positions) this page changes that memory lacks."""
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
            f"SELECT {', '.join(_ACCOUNT_COLUMNS)} FROM view_funded_accounts"  # noqa: S608
            " WHERE funded_account_id = ANY(%s)",
            (missing,),
        )
        for row in cursor.fetchall():
            self._accounts[row[0]] = _Account(*row)
        cursor.execute(
            f"SELECT {', '.join(_POSITION_COLUMNS)} FROM view_funded_positions"  # noqa: S608
            " WHERE funded_account_id = ANY(%s) ORDER BY opened_log_position",
            (missing,),
        )
        for row in cursor.fetchall():
            held = _open_position(row)
            self._accounts[row[0]].positions[held.position_id] = (row[2], held)


def _open_position(row: Sequence[Any]) -> OpenPosition:
    """A `view_funded_positions` row (`_POSITION_COLUMNS`) as the domain's position."""
    return OpenPosition(
        position_id=row[1],
        symbol=row[3],
        side=PositionSide(row[4]),
        quantity=row[5],
        entry_price_minor=row[6],
        mark_price_minor=row[7],
        opened_at=row[8],
    )


@dataclass(frozen=True, slots=True)
class _FundedPage:
    # Accounts (and accounts' positions) whose earlier rows this page replaces.
    replaced_accounts: list[UUID]
    replaced_positions: list[UUID]
    account_rows: list[tuple[Any, ...]]
    position_rows: list[tuple[Any, ...]]

    def write(self, cursor: Cursor) -> None:
        if self.replaced_positions:
            cursor.execute(
                "DELETE FROM view_funded_positions WHERE funded_account_id = ANY(%s)",
                (self.replaced_positions,),
            )
        if self.replaced_accounts:
            cursor.execute(
                "DELETE FROM view_funded_accounts WHERE funded_account_id = ANY(%s)",
                (self.replaced_accounts,),
            )
        copy_rows(cursor, "view_funded_accounts", _ACCOUNT_COLUMNS, self.account_rows)
        copy_rows(cursor, "view_funded_positions", _POSITION_COLUMNS, self.position_rows)


# Queries ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FundedAccountDetail:
    """An account's row and its open positions (in the order opened), read
    together; the rules read from them as `FundedAccount` reads its own."""

    account: FundedAccountRow
    positions: tuple[OpenPosition, ...]

    def withdrawable_minor(self) -> int:
        account = self.account
        return withdrawable_minor(
            account.profit_split_ratio,
            account.current_balance_minor,
            account.starting_balance_minor,
            account.total_withdrawn_minor,
            account.reserved_withdrawals_minor,
        )

    def rule_status(self) -> AccountRuleStatus:
        largest = max((held.market_value_minor for held in self.positions), default=0)
        return rule_status(
            self.account.tier_limits,
            peak_minor=self.account.peak_balance_minor,
            current_minor=self.account.equity_minor,
            largest_position_minor=largest,
            balance_minor=self.account.current_balance_minor,
        )


_SELECT_ACCOUNTS: Final = f"SELECT {', '.join(_ACCOUNT_COLUMNS)} FROM view_funded_accounts"  # noqa: S608
# The account and its positions in one statement, so one snapshot: a page
# written between two statements could show figures without their positions.
_SELECT_DETAIL: Final = (
    f"SELECT {', '.join(f'a.{column}' for column in _ACCOUNT_COLUMNS)},"  # noqa: S608
    f" {', '.join(f'p.{column}' for column in _POSITION_COLUMNS)}"
    " FROM view_funded_accounts AS a LEFT JOIN view_funded_positions AS p"
    " ON p.funded_account_id = a.funded_account_id"
    " WHERE a.funded_account_id = %s ORDER BY p.opened_log_position"
)


def funded_account_detail(cursor: Cursor, funded_account_id: UUID) -> FundedAccountDetail | None:
    cursor.execute(_SELECT_DETAIL, (funded_account_id,))
    rows = cursor.fetchall()
    if not rows:
        return None
    width = len(_ACCOUNT_COLUMNS)
    return FundedAccountDetail(
        account=FundedAccountRow(*rows[0][:width]),
        # Without positions the join gives one row of nulls on the right.
        positions=tuple(_open_position(row[width:]) for row in rows if row[width] is not None),
    )


def funded_account_page(
    cursor: Cursor,
    *,
    owner_id: str | None = None,
    state: FundedAccountState | None = None,
    tier: TierName | None = None,
    activated_from: datetime | None = None,
    activated_to: datetime | None = None,
    after_position: int,
    limit: int,
) -> list[FundedAccountRow]:
    """Accounts activated after log position `after_position`, in activation
    order, at most `limit`: of one owner, state and tier when given,
    activated in [activated_from, activated_to)."""
    conditions = ["activated_log_position > %s"]
    parameters: list[Any] = [after_position]
    for column, value in (
        ("owner_id", owner_id),
        ("state", None if state is None else state.value),
        ("tier", None if tier is None else tier.value),
    ):
        if value is not None:
            conditions.append(f"{column} = %s")
            parameters.append(value)
    if activated_from is not None:
        conditions.append("activated_at >= %s")
        parameters.append(activated_from)
    if activated_to is not None:
        conditions.append("activated_at < %s")
        parameters.append(activated_to)
    cursor.execute(
        f"{_SELECT_ACCOUNTS} WHERE {' AND '.join(conditions)}"
        " ORDER BY activated_log_position LIMIT %s",
        [*parameters, limit],
    )
    return [FundedAccountRow(*row) for row in cursor.fetchall()]


def account_of_open_position(cursor: Cursor, position_id: str) -> UUID | None:
    """The funded account holding an open position with this id (None: no
    open position has it). Ids are the broker's, one account's each."""
    cursor.execute(
        "SELECT funded_account_id FROM view_funded_positions WHERE position_id = %s"
        " ORDER BY funded_account_id LIMIT 1",
        (position_id,),
    )
    found = cursor.fetchone()
    return None if found is None else UUID(str(found[0]))


def accounts_to_watch(cursor: Cursor, *, after: UUID | None, limit: int) -> list[UUID]:
    """Accounts the rules monitor marks, in id order after `after`, at most
    `limit`: those holding open positions (their equity moves with prices) and
    those in the violation band but not closed (their closing was cut short)."""
    cursor.execute(
        "SELECT funded_account_id FROM ("
        " SELECT DISTINCT funded_account_id FROM view_funded_positions"
        " UNION SELECT funded_account_id FROM view_funded_accounts"
        " WHERE band = 'violation' AND state <> 'closed') AS watched"
        " WHERE funded_account_id > %s ORDER BY funded_account_id LIMIT %s",
        (after or _UUID_MIN, limit),
    )
    return [row[0] for row in cursor.fetchall()]


_UUID_MIN: Final = UUID(int=0)


def accounts_to_sync(cursor: Cursor, *, after: UUID | None, limit: int) -> list[UUID]:
    """Accounts the broker sync looks at, in id order after `after`, at most
    `limit`: those trading or held (active, suspended), and any other holding
    open positions (safe, winding down: the broker still holds them)."""
    cursor.execute(
        "SELECT funded_account_id FROM ("
        " SELECT DISTINCT funded_account_id FROM view_funded_positions"
        " UNION SELECT funded_account_id FROM view_funded_accounts"
        " WHERE state IN ('active', 'suspended')) AS synced"
        " WHERE funded_account_id > %s ORDER BY funded_account_id LIMIT %s",
        (after or _UUID_MIN, limit),
    )
    return [row[0] for row in cursor.fetchall()]


def fork_candidates(
    cursor: Cursor, thresholds: dict[str, int], *, after_position: int, limit: int
) -> list[FundedAccountRow]:
    """Active accounts whose balance has reached their tier's fork threshold
    (`thresholds`: tier name -> threshold, for the tiers that fork), in
    activation order after a log position."""
    if not thresholds:
        return []
    cursor.execute(
        f"{_SELECT_ACCOUNTS} WHERE state = 'active' AND activated_log_position > %s"
        " AND current_balance_minor >= (CASE tier "
        + " ".join("WHEN %s THEN %s" for _ in thresholds)
        + " END) ORDER BY activated_log_position LIMIT %s",
        (after_position, *[value for pair in thresholds.items() for value in pair], limit),
    )
    return [FundedAccountRow(*row) for row in cursor.fetchall()]
