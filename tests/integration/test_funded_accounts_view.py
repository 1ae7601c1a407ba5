"""The funded accounts view against the aggregate, on real PostgreSQL.

Random sequences of funded-account commands (activations, opens, closes,
marks, withdrawals, state changes, rule readings) run on the aggregates,
whose events are saved into the log a few at a time, in between other
accounts' and with the projection runner catching up now and then in pages
of random size, by a runner that remembers the accounts or by a new one that
must read them back. Then every row must hold the aggregate's own figures,
open positions, rule status and withdrawable amount, and replaying the view
from an empty schema must give the same tables (equal digests).

Examples share one database, so later ones build on a log that already holds
earlier ones' accounts (and a ledger account, whose events the view ignores).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any, Final
from uuid import UUID

import psycopg
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from application.clock import SettableClock
from domain.funded_account import FundedAccount
from domain.funded_account_states import FundedAccountState
from domain.positions import PositionSide, position_pnl_minor
from domain.result_codes import LedgerRefusal
from domain.tiers import TierName
from interface.bootstrap import Ledger, build_ledger
from interface.settings import Settings
from projections.digest import view_digest
from projections.events import LoggedEvent
from projections.funded_accounts import FundedAccountsView, funded_account_detail
from projections.rebuild import LIVE_SCHEMA, replay_into_schema
from projections.runner import ProjectionRunner
from tests.support.funded_accounts import activated_account, save_funded_accounts
from tests.support.ledgers import EPOCH, platform_account

# Real PostgreSQL: few examples, each a story of up to STEPS_MAX commands.
EXAMPLES: Final[int] = 25
STEPS_MIN: Final[int] = 10
STEPS_MAX: Final[int] = 40
ACCOUNTS_MAX: Final[int] = 3
PAGE_SIZE_MAX: Final[int] = 12
SCRATCH_SCHEMA: Final[str] = "funded_view_replay"
SYMBOLS: Final = ("ACME", "BOLT", "CORE")
OWNERS: Final = ("trader-1", "trader-2")

# Unique across examples, which share a database (an assessment funds one account).
_assessments = itertools.count(1)

account_indexes = st.integers(0, ACCOUNTS_MAX - 1)
prices = st.integers(1, 10_000)
# What each kind of step draws besides the account it acts on.
step_arguments: Final[dict[str, st.SearchStrategy[tuple[Any, ...]]]] = {
    "open": st.tuples(
        st.sampled_from(SYMBOLS),
        st.sampled_from(list(PositionSide)),
        st.integers(1, 60),
        st.integers(100, 5_000),
    ),
    # Which open position, and its exit price's change from entry, in percent.
    "close": st.tuples(st.integers(0, 20), st.integers(-60, 120)),
    "mark": st.tuples(
        st.fixed_dictionaries(dict.fromkeys(SYMBOLS, prices))
        | st.dictionaries(st.sampled_from(SYMBOLS), prices, min_size=1, max_size=len(SYMBOLS))
    ),
    # A share of what is withdrawable now, in percent.
    "withdraw": st.tuples(st.integers(1, 100)),
    "reserve": st.tuples(st.integers(1, 100)),
    # The oldest reservation: paid out (True) or given back.
    "settle": st.tuples(st.booleans()),
    # Mostly back to ACTIVE, or the accounts would soon stop trading for good.
    "state": st.tuples(
        st.just(FundedAccountState.ACTIVE) | st.sampled_from(list(FundedAccountState))
    ),
    "rules": st.tuples(),
    "save": st.tuples(),
    # Catch the view up now (whatever the account): with the example's runner,
    # or with a new one, which must read back what it lacks.
    "project": st.tuples(st.booleans()),
}
# Some more often than the rest: trades and marks make the figures move, and
# withdrawals and rule readings need moved figures to record anything.
STEP_KINDS: Final = (
    *("open", "open", "mark", "close", "withdraw", "reserve", "settle", "rules", "rules"),
    *step_arguments,
)


def _step(kind: str) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.tuples(st.just(kind), account_indexes, step_arguments[kind]).map(
        lambda drawn: (drawn[0], drawn[1], *drawn[2])
    )


steps = st.sampled_from(STEP_KINDS).flatmap(_step)

# A story with every event the view handles, replayed by a runner that
# remembers and by one that reads back. On Gen's $10,000: a $400 long
# (4 % of the balance: risk in the warning band), marked up and closed with
# $100 profit, of which the trader takes half of the withdrawable $80; then a
# short closed at a profit and a $2,000 long at +120 %, and two requests held:
# one paid out, one given back.
EVERY_EVENT: Final[list[tuple[Any, ...]]] = [
    ("open", 0, "ACME", PositionSide.LONG, 10, 4_000),
    ("open", 0, "BOLT", PositionSide.SHORT, 5, 2_000),
    ("rules", 0),
    ("save", 0),
    ("project", 0, False),
    ("mark", 0, {"ACME": 4_500, "BOLT": 2_100}),
    ("close", 0, 0, 25),
    ("withdraw", 0, 50),
    ("project", 0, True),
    ("close", 0, 0, -60),
    ("open", 0, "ACME", PositionSide.LONG, 50, 4_000),
    ("close", 0, 0, 120),
    ("reserve", 0, 50),
    ("reserve", 0, 100),
    ("settle", 0, True),
    ("settle", 0, False),
    ("state", 0, FundedAccountState.SAFE),
    ("rules", 0),
    ("state", 0, FundedAccountState.ACTIVE),
]
activations = st.tuples(
    # Mostly Gen: its small capital lets the test's positions move the bands.
    st.sampled_from([TierName.GEN, TierName.GEN, *TierName]),
    st.sampled_from([Fraction(4, 5), Fraction(9, 10), Fraction(1, 2), Fraction(1)]),
    st.sampled_from(OWNERS),
)


@pytest.fixture
def idle_ledger(settings: Settings, clock: SettableClock) -> Iterator[Ledger]:
    """A ledger whose writer and runner do not run: the test drives both."""
    running = build_ledger(settings, clock=clock, start_writer=False, start_projections=False)
    try:
        yield running
    finally:
        running.close()


class Story:
    """One example: its accounts, the clock, and the runner it catches up with."""

    def __init__(self, ledger: Ledger, ledger_account_id: UUID, page_size: int) -> None:
        self.ledger = ledger
        self.ledger_account_id = ledger_account_id
        self.page_size = page_size
        self.accounts: list[FundedAccount] = []
        self.minutes = itertools.count(1)
        self.runner = self.new_runner()

    def new_runner(self) -> ProjectionRunner:
        return ProjectionRunner(
            self.ledger.database_url, [FundedAccountsView()], page_size=self.page_size
        )

    def now(self) -> datetime:
        return EPOCH + timedelta(minutes=next(self.minutes))

    def activate(self, tier: TierName, split: Fraction, owner_id: str) -> None:
        self.accounts.append(
            activated_account(
                owner_id=owner_id,
                at=self.now(),
                tier=tier,
                profit_split=split,
                assessment_id=f"assessment-{next(_assessments)}",
                ledger_account_id=self.ledger_account_id,
            )
        )

    def save(self, *accounts: FundedAccount) -> None:
        save_funded_accounts(self.ledger.app, *accounts)

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
        account = self.accounts[account_index % len(self.accounts)]
        if kind == "save":
            self.save(account)
            return
        recorded_before = len(account.pending_events)
        try:
            self.command(account, kind, arguments)
        except LedgerRefusal:
            # Refused: nothing recorded, and the view must not move either.
            event(f"{kind}: refused")
            return
        event(f"{kind}: recorded" if len(account.pending_events) > recorded_before else kind)

    def command(self, account: FundedAccount, kind: str, arguments: list[Any]) -> None:
        at = self.now()
        if kind == "open":
            symbol, side, quantity, price = arguments
            account.open_position(
                f"position-{at.timestamp():.0f}", symbol, side, quantity, price, at
            )
        elif kind == "close" and account.positions:
            index, change_percent = arguments
            held = account.positions[index % len(account.positions)]
            price = max(1, held.entry_price_minor * (100 + change_percent) // 100)
            pnl = position_pnl_minor(held.side, held.entry_price_minor, price, held.quantity)
            account.close_position(held.position_id, price, pnl, at)
        elif kind == "mark":
            (marks,) = arguments
            account.mark_to_market(marks, at)
        elif kind == "withdraw":
            (percent,) = arguments
            amount = account.withdrawable_minor() * percent // 100
            if amount > 0:
                account.record_withdrawal(amount, f"withdrawal-{at.timestamp():.0f}", at)
        elif kind == "reserve":
            (percent,) = arguments
            amount = account.withdrawable_minor() * percent // 100
            account.reserve_withdrawal(amount, f"reserved-{at.timestamp():.0f}", at)
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


def _last_events(database_url: str, ids: list[UUID]) -> dict[UUID, tuple[int, int, datetime]]:
    """Per aggregate: (first position, last position, last event's logged time)."""
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT originator_id, min(notification_id), max(notification_id),"
            " (array_agg(recorded_at ORDER BY notification_id DESC))[1]"
            " FROM ledger_events WHERE originator_id = ANY(%s) GROUP BY originator_id",
            (ids,),
        ).fetchall()
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


def _check_rows_equal_the_aggregates(ledger: Ledger, accounts: list[FundedAccount]) -> None:
    logged = _last_events(ledger.database_url, [account.id for account in accounts])
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        for kept in accounts:
            # The stored history, not the object the story drove.
            account = ledger.app.load_funded_account(kept.id)
            assert account is not None
            assert account.version == kept.version
            detail = funded_account_detail(cursor, account.id)
            assert detail is not None
            row = detail.account
            first_position, last_position, last_logged_at = logged[account.id]
            assert (
                row.funded_account_id,
                row.assessment_id,
                row.owner_id,
                row.tier,
                row.state,
                row.state_reason,
                row.profit_split,
                row.ledger_account_id,
                row.band,
                row.activated_at,
                row.completed_at,
            ) == (
                account.id,
                account.assessment_id,
                account.owner_id,
                account.tier.name.value,
                account.state.value,
                account.state_reason,
                str(account.profit_split),
                account.ledger_account_id,
                account.band.value,
                account.activated_at,
                account.completed_at,
            )
            assert (
                row.starting_balance_minor,
                row.current_balance_minor,
                row.peak_balance_minor,
                row.realized_pnl_minor,
                row.unrealized_pnl_minor,
                row.total_withdrawn_minor,
                row.reserved_withdrawals_minor,
                row.equity_minor,
            ) == (
                account.starting_balance_minor,
                account.current_balance_minor,
                account.peak_balance_minor,
                account.realized_pnl_minor,
                account.unrealized_pnl_minor,
                account.total_withdrawn_minor,
                account.reserved_withdrawals_minor,
                account.equity_minor,
            )
            assert (row.activated_log_position, row.position, row.updated_at) == (
                first_position,
                last_position,
                last_logged_at,
            )
            assert detail.positions == account.positions
            assert detail.rule_status() == account.rule_status()
            assert detail.withdrawable_minor() == account.withdrawable_minor()


def _live_equals_a_replay(database_url: str) -> None:
    replay_into_schema(database_url, FundedAccountsView(), SCRATCH_SCHEMA)
    with psycopg.connect(database_url) as connection:
        live = view_digest(connection, FundedAccountsView(), LIVE_SCHEMA)
        replayed = view_digest(connection, FundedAccountsView(), SCRATCH_SCHEMA)
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
# Every kind of event, every run, whatever the random examples reach.
@example(accounts=[(TierName.GEN, Fraction(4, 5), OWNERS[0])], story_steps=EVERY_EVENT, page_size=2)
def test_each_row_holds_the_aggregates_figures_and_a_replay_gives_the_same_view(
    idle_ledger: Ledger,
    accounts: list[tuple[TierName, Fraction, str]],
    story_steps: list[tuple[Any, ...]],
    page_size: int,
) -> None:
    # Events of other aggregates in the log, which the view must pass over.
    ledger_account = platform_account()
    idle_ledger.local_writer.apply([ledger_account])
    story = Story(idle_ledger, ledger_account.account_id, page_size)
    try:
        for tier, split, owner_id in accounts:
            story.activate(tier, split, owner_id)
        for step in story_steps:
            story.run(step)
        story.save(*story.accounts)
        story.project(fresh=False)
    finally:
        story.runner.stop()
    _check_rows_equal_the_aggregates(idle_ledger, story.accounts)
    _live_equals_a_replay(idle_ledger.database_url)


def test_events_of_other_aggregates_and_unknown_types_are_passed_over() -> None:
    view = FundedAccountsView()
    view.forget(starts_empty=True)
    unknown = LoggedEvent(1, UUID(int=1), 1, "somewhere:Unknown.Happened", b"{}", EPOCH)
    page = view.prepare(None, [unknown])
    assert (page.account_rows, page.position_rows) == ([], [])
