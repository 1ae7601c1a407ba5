"""The daily values view against the aggregates, on real PostgreSQL.

Generated stories drive funded accounts through opens, closes at a profit or
a loss, marks, withdrawals (reserved or not), state changes and rule readings
over several days (and now and then a leap of a year or two), their times
given in the accounts' own time zones. The test keeps, beside the story, what
each account's row of each UTC day must hold, from the aggregate's own
figures after the day's last command and from the commands themselves (the
P&L of each close, the amount of each withdrawal); the log positions come
from the recordings. The view is caught up now and then by a runner that
remembers or a new one that reads back; at the end every row must be the
expected one (past the history kept: none), and two more copies must equal
the live one: one by a runner that forgets after every page (so reads back
every time), one replayed from empty.

Examples share one database, so later ones build on a log that already holds
earlier ones' accounts (and a ledger account, whose events the view ignores).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from fractions import Fraction
from typing import Any, Final
from uuid import UUID

import psycopg
import pytest
from eventsourcing.persistence import Recording
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from psycopg.conninfo import make_conninfo

from application.clock import SettableClock
from domain.funded_account import FundedAccount
from domain.funded_account_states import FundedAccountState
from domain.positions import PositionSide, position_pnl_minor
from domain.result_codes import LedgerRefusal
from domain.tiers import TierName
from interface.bootstrap import Ledger, build_ledger
from interface.settings import Settings
from projections.daily_values import (
    HISTORY_KEPT_DAYS,
    ClosedPnls,
    DailyRow,
    DailyValuesView,
    closed_pnls,
    daily_values,
    values_carried_in,
)
from projections.digest import view_digest
from projections.events import LoggedEvent
from projections.rebuild import LIVE_SCHEMA, replay_into_schema
from projections.runner import ProjectionRunner
from projections.view import Cursor
from tests.support.funded_accounts import activated_account
from tests.support.ledgers import EPOCH, platform_account

EXAMPLES: Final[int] = 25
STEPS_MIN: Final[int] = 10
STEPS_MAX: Final[int] = 40
ACCOUNTS_MAX: Final[int] = 3
PAGE_SIZE_MAX: Final[int] = 12
REPLAY_SCHEMA: Final[str] = "daily_values_replay"
FORGETFUL_SCHEMA: Final[str] = "daily_values_forgetful"
SYMBOLS: Final = ("ACME", "BOLT", "CORE")
# Offsets the accounts give their times in: days are still UTC days.
ZONES: Final = (UTC, timezone(timedelta(hours=10)), timezone(timedelta(hours=-7)))
# Between two commands of a story.
COMMAND_STEP: Final = timedelta(minutes=7)

_assessments = itertools.count(1)

account_indexes = st.integers(0, ACCOUNTS_MAX - 1)
prices = st.integers(1, 10_000)
step_arguments: Final[dict[str, st.SearchStrategy[tuple[Any, ...]]]] = {
    "open": st.tuples(
        st.sampled_from(SYMBOLS),
        st.sampled_from(list(PositionSide)),
        st.integers(1, 60),
        st.integers(100, 5_000),
    ),
    # Which open position, and its exit price's change from entry, in percent.
    "close": st.tuples(st.integers(0, 20), st.integers(-60, 120)),
    "mark": st.tuples(st.dictionaries(st.sampled_from(SYMBOLS), prices, min_size=1)),
    # A share of what is withdrawable now, in percent.
    "withdraw": st.tuples(st.integers(1, 100)),
    "reserve": st.tuples(st.integers(1, 100)),
    # The oldest reservation: paid out (True) or given back.
    "settle": st.tuples(st.booleans()),
    "state": st.tuples(st.sampled_from([FundedAccountState.SAFE, FundedAccountState.ACTIVE])),
    "rules": st.tuples(),
    # Time moves on: hours (often past midnight), days, or a leap of years.
    "later": st.tuples(st.integers(1, 20).map(lambda hours: timedelta(hours=hours))),
    "days": st.tuples(st.integers(1, 3).map(lambda days: timedelta(days=days))),
    "leap": st.tuples(st.integers(300, 800).map(lambda days: timedelta(days=days))),
    "save": st.tuples(),
    # Catch the view up now: with the story's runner, or with a new one.
    "project": st.tuples(st.booleans()),
}
STEP_KINDS: Final = (
    *("open", "open", "close", "close", "mark", "withdraw", "withdraw", "later", "days"),
    *step_arguments,
)


def _step(kind: str) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.tuples(st.just(kind), account_indexes, step_arguments[kind]).map(
        lambda drawn: (drawn[0], drawn[1], *drawn[2])
    )


steps = st.sampled_from(STEP_KINDS).flatmap(_step)
activations = st.tuples(st.sampled_from([TierName.GEN, *TierName]), st.sampled_from(ZONES))

# Every kind of event and of day change, every run: a win and a loss on the
# first day (one position left open at a mark), a day later a mark and a
# withdrawal, a read back, then rows touched without figures, then a leap
# past the history kept.
EVERY_KIND: Final[list[tuple[Any, ...]]] = [
    ("open", 0, "ACME", PositionSide.LONG, 10, 4_000),
    ("open", 0, "BOLT", PositionSide.SHORT, 5, 2_000),
    ("open", 0, "CORE", PositionSide.LONG, 5, 1_000),
    ("mark", 0, {"ACME": 4_500, "BOLT": 2_100}),
    ("close", 0, 0, 25),
    ("close", 0, 0, 10),
    ("save", 0),
    ("project", 0, False),
    ("days", 0, timedelta(days=1)),
    ("mark", 0, {"CORE": 1_200}),
    ("close", 0, 0, 0),
    ("withdraw", 0, 50),
    ("project", 0, True),
    ("later", 0, timedelta(hours=20)),
    ("reserve", 0, 50),
    ("settle", 0, False),
    ("rules", 0),
    ("state", 0, FundedAccountState.SAFE),
    ("leap", 0, timedelta(days=730)),
    ("state", 0, FundedAccountState.ACTIVE),
]


@pytest.fixture
def idle_ledger(settings: Settings, clock: SettableClock) -> Iterator[Ledger]:
    """A ledger whose writer and runner do not run: the test drives both."""
    running = build_ledger(settings, clock=clock, start_writer=False, start_projections=False)
    try:
        yield running
    finally:
        running.close()


@dataclass(slots=True)
class Expected:
    """What the test expects of one account's row of one day."""

    close_balance_minor: int
    close_equity_minor: int
    flow_minor: int = 0
    realized_pnl_minor: int = 0
    trades_closed: int = 0
    wins: int = 0
    losses: int = 0
    gross_profit_minor: int = 0
    gross_loss_minor: int = 0

    def figures(self) -> tuple[int, ...]:
        return (
            self.close_balance_minor,
            self.close_equity_minor,
            self.flow_minor,
            self.realized_pnl_minor,
            self.trades_closed,
            self.wins,
            self.losses,
            self.gross_profit_minor,
            self.gross_loss_minor,
        )


def _figures(row: DailyRow) -> tuple[int, ...]:
    return (
        row.close_balance_minor,
        row.close_equity_minor,
        row.flow_minor,
        row.realized_pnl_minor,
        row.trades_closed,
        row.wins,
        row.losses,
        row.gross_profit_minor,
        row.gross_loss_minor,
    )


def _event_day(domain_event: Any) -> date:
    at = getattr(domain_event, "at", None) or domain_event.activated_at
    assert isinstance(at, datetime)
    return at.astimezone(UTC).date()


class Story:
    """One example: its accounts, the time, what each day's row must hold,
    and the runner it catches up with."""

    def __init__(self, ledger: Ledger, ledger_account_id: UUID, page_size: int) -> None:
        self.ledger = ledger
        self.ledger_account_id = ledger_account_id
        self.page_size = page_size
        self.accounts: list[FundedAccount] = []
        self.zones: dict[UUID, timezone] = {}
        self.now = EPOCH + timedelta(hours=9)
        # Per account: its days' expected rows, in day order.
        self.expected: dict[UUID, dict[date, Expected]] = {}
        # Per (account, day): the log position of the day's last event.
        self.positions: dict[tuple[UUID, date], int] = {}
        self.runner = self.new_runner()

    def new_runner(self) -> ProjectionRunner:
        return ProjectionRunner(
            self.ledger.database_url, [DailyValuesView()], page_size=self.page_size
        )

    def at(self, account: FundedAccount) -> datetime:
        """The next command's time, in the account's own zone."""
        self.now += COMMAND_STEP
        return self.now.astimezone(self.zones[account.id])

    def activate(self, tier: TierName, zone: timezone) -> None:
        self.now += COMMAND_STEP
        account = activated_account(
            owner_id="trader-1",
            at=self.now.astimezone(zone),
            tier=tier,
            assessment_id=f"assessment-{next(_assessments)}",
            ledger_account_id=self.ledger_account_id,
        )
        self.accounts.append(account)
        self.zones[account.id] = zone
        starting = account.starting_balance_minor
        self.expected[account.id] = {
            self.now.date(): Expected(starting, starting, flow_minor=starting)
        }

    def save(self, *accounts: FundedAccount) -> None:
        recordings: list[Recording[Any]] = self.ledger.app.save(*accounts)
        for recording in recordings:
            key = (recording.domain_event.originator_id, _event_day(recording.domain_event))
            self.positions[key] = max(self.positions.get(key, 0), recording.notification.id)

    def project(self, fresh: bool) -> None:
        if fresh:
            self.runner.stop()
            self.runner = self.new_runner()
        self.runner.catch_up()

    def run(self, step: tuple[Any, ...]) -> None:
        kind, account_index, *arguments = step
        if kind == "project":
            self.project(*arguments)
            return
        if kind in ("later", "days", "leap"):
            (span,) = arguments
            self.now += span
            return
        account = self.accounts[account_index % len(self.accounts)]
        if kind == "save":
            self.save(account)
            return
        recorded_before = len(account.pending_events)
        withdrawn_before = account.total_withdrawn_minor
        at = self.at(account)
        try:
            pnl = self.command(account, kind, arguments, at)
        except LedgerRefusal:
            event(f"{kind}: refused")
            return
        if len(account.pending_events) == recorded_before:
            event(f"{kind}: nothing recorded")
            return
        event(f"{kind}: recorded")
        days = self.expected[account.id]
        day = at.astimezone(UTC).date()
        latest = max(days)
        assert day >= latest, "the story's times only go forward"
        if day not in days:
            days[day] = Expected(days[latest].close_balance_minor, days[latest].close_equity_minor)
        row = days[day]
        row.close_balance_minor = account.current_balance_minor
        row.close_equity_minor = account.equity_minor
        row.flow_minor -= account.total_withdrawn_minor - withdrawn_before
        if pnl is not None:
            row.realized_pnl_minor += pnl
            row.trades_closed += 1
            row.wins += pnl > 0
            row.losses += pnl < 0
            row.gross_profit_minor += max(pnl, 0)
            row.gross_loss_minor += max(-pnl, 0)

    def command(
        self, account: FundedAccount, kind: str, arguments: list[Any], at: datetime
    ) -> int | None:
        """Run one command; the P&L of a position it closed."""
        if kind == "open":
            symbol, side, quantity, price = arguments
            account.open_position(
                f"position-{self.now.timestamp():.0f}", symbol, side, quantity, price, at
            )
        elif kind == "close" and account.positions:
            index, change_percent = arguments
            held = account.positions[index % len(account.positions)]
            price = max(1, held.entry_price_minor * (100 + change_percent) // 100)
            pnl = position_pnl_minor(held.side, held.entry_price_minor, price, held.quantity)
            account.close_position(held.position_id, price, pnl, at)
            return pnl
        elif kind == "mark":
            (marks,) = arguments
            account.mark_to_market(marks, at)
        elif kind == "withdraw":
            (percent,) = arguments
            amount = account.withdrawable_minor() * percent // 100
            if amount > 0:
                account.record_withdrawal(amount, f"withdrawal-{self.now.timestamp():.0f}", at)
        elif kind == "reserve":
            (percent,) = arguments
            amount = account.withdrawable_minor() * percent // 100
            account.reserve_withdrawal(amount, f"reserved-{self.now.timestamp():.0f}", at)
        elif kind == "settle" and account.withdrawal_reservations:
            (paid,) = arguments
            withdrawal_id, amount = next(iter(account.withdrawal_reservations.items()))
            if paid:
                account.record_withdrawal(amount, withdrawal_id, at)
            else:
                account.release_withdrawal(withdrawal_id, at)
        elif kind == "state":
            (state,) = arguments
            account.change_state(state, "test", "test:operator", at)
        elif kind == "rules":
            account.record_rule_status(at)
        return None


def _kept(days: dict[date, Any]) -> list[date]:
    """The days of the history kept, in order."""
    latest = max(days)
    return sorted(day for day in days if day > latest - timedelta(days=HISTORY_KEPT_DAYS))


def _check_rows(ledger: Ledger, story: Story) -> None:
    ids = [account.id for account in story.accounts]
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        found = daily_values(cursor, ids, date.min, date.max)
        stored_positions = _stored_positions(cursor, ids)
    for account in story.accounts:
        days = story.expected[account.id]
        kept = _kept(days)
        rows = found[account.id]
        assert [row.day for row in rows] == kept
        for row in rows:
            assert row.funded_account_id == account.id
            assert _figures(row) == days[row.day].figures(), row.day
            assert row.position == story.positions[(account.id, row.day)]
        # The last row closes on the aggregate's own figures.
        stored = ledger.app.load_funded_account(account.id)
        assert stored is not None
        assert (rows[-1].close_balance_minor, rows[-1].close_equity_minor) == (
            stored.current_balance_minor,
            stored.equity_minor,
        )
        assert stored_positions.get(account.id, set()) == {
            (
                held.position_id,
                held.symbol,
                held.side.value,
                held.quantity,
                held.entry_price_minor,
                held.mark_price_minor,
            )
            for held in stored.positions
        }


def _stored_positions(cursor: Cursor, ids: list[UUID]) -> dict[UUID, set[tuple[Any, ...]]]:
    cursor.execute(
        "SELECT funded_account_id, position_id, symbol, side, quantity, entry_price_minor,"
        " mark_price_minor FROM view_daily_value_positions WHERE funded_account_id = ANY(%s)",
        (ids,),
    )
    found: dict[UUID, set[tuple[Any, ...]]] = {}
    for row in cursor.fetchall():
        found.setdefault(row[0], set()).add(tuple(row[1:]))
    return found


class ForgetfulDailyValuesView(DailyValuesView):
    """The view under a name of its own that forgets before every page it
    works out with a cursor: it reads back all it needs every time."""

    name = "daily_values_forgetful"

    def prepare(self, cursor: Cursor | None, events: Sequence[LoggedEvent]) -> Any:
        if cursor is not None:
            self.forget(starts_empty=False)
        return super().prepare(cursor, events)


def _in_schema(database_url: str, schema: str) -> str:
    """A connection string whose unqualified tables are made and found in `schema`."""
    return make_conninfo(database_url, options=f"-c search_path={schema},{LIVE_SCHEMA}")


def _forgetful_copy_equals_the_live_view(database_url: str, page_size: int) -> None:
    view = ForgetfulDailyValuesView()
    with psycopg.connect(database_url) as connection:
        connection.execute(f"CREATE SCHEMA IF NOT EXISTS {FORGETFUL_SCHEMA}")
        for table in view.tables:
            connection.execute(f"DROP TABLE IF EXISTS {FORGETFUL_SCHEMA}.{table}")
        connection.execute("DELETE FROM projection_tracking WHERE name = %s", (view.name,))
    runner = ProjectionRunner(
        _in_schema(database_url, FORGETFUL_SCHEMA), [view], page_size=page_size
    )
    try:
        runner.catch_up()
    finally:
        runner.stop()
    with psycopg.connect(database_url) as connection:
        live = view_digest(connection, DailyValuesView(), LIVE_SCHEMA)
        forgetful = view_digest(connection, view, FORGETFUL_SCHEMA)
    assert live == forgetful


def _replay_equals_the_live_view(database_url: str) -> None:
    replay_into_schema(database_url, DailyValuesView(), REPLAY_SCHEMA)
    with psycopg.connect(database_url) as connection:
        live = view_digest(connection, DailyValuesView(), LIVE_SCHEMA)
        replayed = view_digest(connection, DailyValuesView(), REPLAY_SCHEMA)
    assert live == replayed


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    accounts=st.lists(activations, min_size=1, max_size=ACCOUNTS_MAX),
    story_steps=st.lists(steps, min_size=STEPS_MIN, max_size=STEPS_MAX),
    page_size=st.integers(1, PAGE_SIZE_MAX),
)
@example(accounts=[(TierName.GEN, ZONES[1])], story_steps=EVERY_KIND, page_size=2)
def test_each_days_row_holds_the_aggregates_closing_figures_however_the_view_is_made(
    idle_ledger: Ledger,
    accounts: list[tuple[TierName, timezone]],
    story_steps: list[tuple[Any, ...]],
    page_size: int,
) -> None:
    ledger_account = platform_account()
    idle_ledger.local_writer.apply([ledger_account])
    story = Story(idle_ledger, ledger_account.account_id, page_size)
    try:
        for tier, zone in accounts:
            story.activate(tier, zone)
        for step in story_steps:
            story.run(step)
        story.save(*story.accounts)
        story.project(fresh=False)
    finally:
        story.runner.stop()
    _check_rows(idle_ledger, story)
    _forgetful_copy_equals_the_live_view(idle_ledger.database_url, page_size)
    _replay_equals_the_live_view(idle_ledger.database_url)


# Hand-written stories -------------------------------------------------------

DAY_1: Final = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
# Gen's minimum capital: $10,000.
STARTING: Final[int] = 1_000_000


def _catch_up(ledger: Ledger, *, page_size: int = 1) -> None:
    runner = ProjectionRunner(ledger.database_url, [DailyValuesView()], page_size=page_size)
    try:
        runner.catch_up()
    finally:
        runner.stop()


def _rows(ledger: Ledger, account_id: UUID) -> list[tuple[Any, ...]]:
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        found = daily_values(cursor, [account_id], date.min, date.max)[account_id]
    return [(row.day, *_figures(row)) for row in found]


def _new_account(at: datetime) -> FundedAccount:
    account = activated_account(owner_id="trader-1", at=at, tier=TierName.GEN)
    assert account.starting_balance_minor == STARTING
    return account


def test_three_days_a_win_a_loss_and_a_withdrawal(idle_ledger: Ledger) -> None:
    ledger = idle_ledger
    account = _new_account(DAY_1)
    hour = timedelta(hours=1)
    # Day 1: a long closed $50 up; a short left open, marked $5 against.
    account.open_position("p1", "ACME", PositionSide.LONG, 10, 4_000, DAY_1 + hour)
    account.open_position("p2", "BOLT", PositionSide.SHORT, 5, 2_000, DAY_1 + 2 * hour)
    account.mark_to_market({"ACME": 4_500, "BOLT": 2_100}, DAY_1 + 3 * hour)
    account.close_position("p1", 4_500, 5_000, DAY_1 + 4 * hour)
    ledger.app.save(account)
    _catch_up(ledger)
    # Day 2: the short closed $10 down.
    day_2 = DAY_1 + timedelta(days=1)
    account.close_position("p2", 2_200, -1_000, day_2)
    ledger.app.save(account)
    _catch_up(ledger)
    # Day 3, given at 06:00 in UTC+10 (20:00 UTC the day before): 80 % of
    # the $40 profit taken out.
    day_3_in_sydney = datetime(2026, 3, 5, 6, 0, tzinfo=timezone(timedelta(hours=10)))
    assert account.withdrawable_minor() == 3_200
    account.record_withdrawal(3_200, "w1", day_3_in_sydney)
    ledger.app.save(account)
    _catch_up(ledger)

    day = DAY_1.date()
    assert _rows(ledger, account.id) == [
        # day, balance, equity, flow, realized, trades, wins, losses, gross profit, gross loss
        (day, 1_005_000, 1_004_500, STARTING, 5_000, 1, 1, 0, 5_000, 0),
        (day + timedelta(days=1), 1_004_000, 1_004_000, 0, -1_000, 1, 0, 1, 0, 1_000),
        (day + timedelta(days=2), 1_000_800, 1_000_800, -3_200, 0, 0, 0, 0, 0, 0),
    ]
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        # One day asked: one row; a day without a row carries the last one in.
        assert [row.day for row in daily_values(cursor, [account.id], day, day)[account.id]] == [
            day
        ]
        after = day + timedelta(days=10)
        assert daily_values(cursor, [account.id], after, after) == {account.id: []}
        carried = values_carried_in(cursor, [account.id], after)
        assert carried[account.id].close_equity_minor == 1_000_800
        assert values_carried_in(cursor, [account.id], day) == {}
        totals = closed_pnls(cursor, [account.id], day, day + timedelta(days=2))
        assert totals[account.id] == ClosedPnls(
            trades_closed=2,
            wins=1,
            losses=1,
            gross_profit_minor=5_000,
            gross_loss_minor=1_000,
            realized_pnl_minor=4_000,
        )
        assert totals[account.id].win_rate == Fraction(1, 2)
        assert totals[account.id].profit_factor == Fraction(5)
        other = UUID(int=7)
        assert closed_pnls(cursor, [other], day, day)[other].win_rate is None


def test_an_event_dated_before_the_latest_day_counts_on_the_latest_day(
    idle_ledger: Ledger,
) -> None:
    ledger = idle_ledger
    account = _new_account(DAY_1)
    day_3 = DAY_1 + timedelta(days=2)
    account.open_position("p1", "ACME", PositionSide.LONG, 10, 4_000, day_3)
    # Reported late: closed "on day 2", after the log has day 3.
    account.close_position("p1", 4_100, 1_000, DAY_1 + timedelta(days=1))
    ledger.app.save(account)
    _catch_up(ledger, page_size=2)
    day = DAY_1.date()
    assert _rows(ledger, account.id) == [
        (day, STARTING, STARTING, STARTING, 0, 0, 0, 0, 0, 0),
        (day + timedelta(days=2), 1_001_000, 1_001_000, 0, 1_000, 1, 1, 0, 1_000, 0),
    ]
    _replay_equals_the_live_view(ledger.database_url)


def test_rows_older_than_the_history_kept_are_deleted_as_the_latest_day_moves_on(
    idle_ledger: Ledger,
) -> None:
    ledger = idle_ledger
    account = _new_account(DAY_1)
    first = DAY_1.date()
    kept = timedelta(days=HISTORY_KEPT_DAYS)
    for offset in (1, 2):
        account.change_state(
            FundedAccountState.SAFE if offset == 1 else FundedAccountState.ACTIVE,
            "test",
            "test:operator",
            DAY_1 + timedelta(days=offset),
        )
    ledger.app.save(account)
    _catch_up(ledger)
    assert [row[0] for row in _rows(ledger, account.id)] == [
        first,
        first + timedelta(days=1),
        first + timedelta(days=2),
    ]

    # The latest day 730 days after the first: the first day goes, the next stays.
    account.change_state(FundedAccountState.SAFE, "test", "test:operator", DAY_1 + kept)
    ledger.app.save(account)
    _catch_up(ledger)
    assert [row[0] for row in _rows(ledger, account.id)] == [
        first + timedelta(days=1),
        first + timedelta(days=2),
        first + kept,
    ]
    _replay_equals_the_live_view(ledger.database_url)

    # One day on, the second goes; in one page with the next day, the third too.
    account.change_state(
        FundedAccountState.ACTIVE, "test", "test:operator", DAY_1 + kept + timedelta(days=1)
    )
    account.change_state(
        FundedAccountState.SAFE, "test", "test:operator", DAY_1 + kept + timedelta(days=2)
    )
    ledger.app.save(account)
    _catch_up(ledger, page_size=10)
    assert [row[0] for row in _rows(ledger, account.id)] == [
        first + kept,
        first + kept + timedelta(days=1),
        first + kept + timedelta(days=2),
    ]
    rows = _rows(ledger, account.id)
    assert all(row[1:3] == (STARTING, STARTING) for row in rows)
    _replay_equals_the_live_view(ledger.database_url)


def test_capital_moved_in_and_out_is_a_flow(idle_ledger: Ledger) -> None:
    ledger = idle_ledger
    account = _new_account(DAY_1)
    process = UUID(int=1)
    account.move_capital_in(50_000, UUID(int=2), process, DAY_1 + timedelta(days=1))
    account.move_capital_out(20_000, UUID(int=3), process, DAY_1 + timedelta(days=1, hours=1))
    ledger.app.save(account)
    _catch_up(ledger)
    day = DAY_1.date()
    assert _rows(ledger, account.id) == [
        (day, STARTING, STARTING, STARTING, 0, 0, 0, 0, 0, 0),
        (day + timedelta(days=1), 1_030_000, 1_030_000, 30_000, 0, 0, 0, 0, 0, 0),
    ]


def test_events_of_other_aggregates_and_unknown_types_are_passed_over() -> None:
    view = DailyValuesView()
    view.forget(starts_empty=True)
    unknown = LoggedEvent(1, UUID(int=1), 1, "somewhere:Unknown.Happened", b"{}", EPOCH)
    page = view.prepare(None, [unknown])
    assert (page.rows, page.position_rows) == ([], [])
