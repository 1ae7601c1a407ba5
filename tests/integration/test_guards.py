"""The guards on real PostgreSQL and the simulated broker: a scripted crash
walked through warning, grace and liquidation; a recovery in the grace; one
close failing while the others go through; the market guard at its edges;
closing a position twice; notifications written once
(docs/rules.md#position-sync-and-guards)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import pytest

from application.clock import SettableClock
from application.guards import GUARDS_ACTOR, GuardOutcome, GuardsService
from application.ports.broker import BrokerUnavailable
from application.ports.guard_notifier import (
    GuardNotification,
    GuardNotificationFailed,
    GuardNotificationKind,
    NotifiedPosition,
)
from domain.account_guard import DrawdownLevel, guard_id_for
from domain.funded_account_states import FundedAccountState
from domain.funded_rules import RuleBand
from domain.positions import PositionSide
from domain.result_codes import LedgerRefusal, ResultCode
from domain.tiers import TierName
from interface.adapters.broker.price_path import PricePath, PriceStep
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.adapters.notifications.guard_notification_files import (
    GUARD_NOTIFICATIONS_FOLDER,
    FileGuardNotifier,
)
from interface.bootstrap import Ledger
from tests.support.funded_accounts import activate_funded_account

CRASH_SYMBOL: Final[str] = "CRASH"
# Ten longs of 4 units at $100 (4 % of a Gen account's $10,000 each, inside
# the 5 % risk limit): 40 units, so each cent the price falls is 40 cents of
# equity, and the edges fall on whole prices.
POSITION_COUNT: Final[int] = 10
QUANTITY: Final[int] = 4
ENTRY_MINOR: Final[int] = 100_00
STARTING_MINOR: Final[int] = 1_000_000
# Equity 850,000 (15 % exactly) at 62.50; 800,000 (20 % exactly, which only
# warns) at 50.00; 799,000 (20.1 %, over MAX_DRAWDOWN_PERCENT) at 49.75.
WARN_PRICE_MINOR: Final[int] = 62_50
EXACTLY_MAX_DRAWDOWN_PRICE_MINOR: Final[int] = 50_00
LIQUIDATE_PRICE_MINOR: Final[int] = 49_75
CRASH_STEP: Final = timedelta(minutes=1)
# Settings' default (PRE_LIQUIDATION_WARNING_SECONDS).
GRACE: Final = timedelta(seconds=10)
MANUAL_ACTOR: Final[str] = "test:trader"


def _broker(ledger: Ledger) -> SimulatedBroker:
    assert isinstance(ledger.broker, SimulatedBroker)
    return ledger.broker


def _clock(ledger: Ledger) -> SettableClock:
    assert isinstance(ledger.clock, SettableClock)
    return ledger.clock


def _invested_account(ledger: Ledger, path: PricePath) -> tuple[UUID, list[str]]:
    """A Gen account holding POSITION_COUNT longs of CRASH_SYMBOL, priced by `path`."""
    account_id = activate_funded_account(ledger, owner_id="trader-guarded", tier=TierName.GEN)
    _broker(ledger).load_path(CRASH_SYMBOL, path)
    position_ids = [
        ledger.funded_accounts.open_position(
            account_id, CRASH_SYMBOL, PositionSide.LONG, QUANTITY
        ).position_id
        for _ in range(POSITION_COUNT)
    ]
    return account_id, position_ids


def _crash_path(start: datetime) -> PricePath:
    """100.00, 87.50, 75.00, 62.50 (15 % down), 49.75 (20.1 % down), a minute apart."""
    prices = (ENTRY_MINOR, 87_50, 75_00, WARN_PRICE_MINOR, LIQUIDATE_PRICE_MINOR)
    return PricePath(
        tuple(
            PriceStep(start + CRASH_STEP * index, price, price)
            for index, price in enumerate(prices)
        )
    )


def _pass(ledger: Ledger, account_id: UUID) -> GuardOutcome:
    return ledger.guards.guard_account(account_id, ledger.broker.equity(account_id))


def _guard_events(ledger: Ledger, account_id: UUID) -> list[Any]:
    return list(ledger.app.events.get(guard_id_for(account_id)))


def _named(events: list[Any], name: str) -> list[dict[str, Any]]:
    return [vars(event) for event in events if type(event).__name__ == name]


def _decisions(ledger: Ledger, account_id: UUID) -> list[str]:
    decided = {"DrawdownWarned", "LiquidationScheduled", "DrawdownRecovered", "Liquidated"}
    names = (type(event).__name__ for event in _guard_events(ledger, account_id))
    return [name for name in names if name in decided]


def _notifications(ledger: Ledger) -> list[dict[str, Any]]:
    folder = ledger.settings.data_dir / GUARD_NOTIFICATIONS_FOLDER
    documents = [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]
    return sorted(documents, key=lambda document: int(document["notification_id"].split(".")[1]))


def _positions_closed(ledger: Ledger, account_id: UUID) -> list[dict[str, Any]]:
    return _named(list(ledger.app.events.get(account_id)), "PositionClosed")


# The drawdown guard ------------------------------------------------------------------


def test_a_crash_walks_the_account_through_warning_grace_and_liquidation(
    ledger: Ledger,
) -> None:
    clock = _clock(ledger)
    start = clock.now()
    account_id, position_ids = _invested_account(ledger, _crash_path(start))

    # 100.00, 87.50, 75.00: at most 10 % down, nothing to say.
    for minutes in range(3):
        clock.set(start + CRASH_STEP * minutes)
        assert _pass(ledger, account_id).level is DrawdownLevel.OK
    assert _decisions(ledger, account_id) == []

    clock.set(start + CRASH_STEP * 3)
    assert ledger.broker.equity(account_id).equity_minor == 850_000
    assert _pass(ledger, account_id).level is DrawdownLevel.WARN

    clock.set(start + CRASH_STEP * 4)
    scheduled_at = clock.now()
    assert ledger.broker.equity(account_id).equity_minor == 799_000
    assert _pass(ledger, account_id).level is DrawdownLevel.LIQUIDATE

    # Within the grace, and with the market still falling, nothing is closed.
    clock.set(scheduled_at + GRACE - timedelta(seconds=1))
    waiting = _pass(ledger, account_id)
    assert (waiting.level, waiting.closed) == (DrawdownLevel.LIQUIDATE, [])
    assert len(ledger.funded_accounts.require_funded_account(account_id).positions) == 10

    clock.set(scheduled_at + GRACE)
    liquidated = _pass(ledger, account_id)
    assert sorted(liquidated.closed) == sorted(position_ids)
    assert liquidated.failed == {}
    assert liquidated.level is DrawdownLevel.OK

    # Every close went through the ledger: 40 units sold 50.25 below their entry.
    account = ledger.funded_accounts.require_funded_account(account_id)
    assert account.positions == ()
    assert account.realized_pnl_minor == -201_000
    closes = _positions_closed(ledger, account_id)
    assert sorted(close["position_id"] for close in closes) == sorted(position_ids)
    assert {close["exit_price_minor"] for close in closes} == {LIQUIDATE_PRICE_MINOR}
    trader = ledger.service.account(account.ledger_account_id)
    assert trader is not None
    assert trader.totals.credits_posted - trader.totals.debits_posted == 799_000

    assert _decisions(ledger, account_id) == [
        "DrawdownWarned",
        "LiquidationScheduled",
        "Liquidated",
    ]
    notified = _notifications(ledger)
    assert [document["kind"] for document in notified] == [
        "warned",
        "liquidation_scheduled",
        "liquidated",
    ]
    warned, scheduled, done = notified
    assert (warned["drawdown"], warned["drawdown_percent"]) == ("3/20", "15.00")
    assert warned["owner_id"] == "trader-guarded"
    assert warned["positions"][0] == {
        "position_id": position_ids[0],
        "symbol": CRASH_SYMBOL,
        "side": "long",
        "quantity": QUANTITY,
    }
    assert len(warned["positions"]) == 10
    assert scheduled["liquidation_due_at"] == (scheduled_at + GRACE).isoformat()
    assert (scheduled["equity_minor"], scheduled["peak_equity_minor"]) == (799_000, 1_000_000)
    assert sorted(held["position_id"] for held in done["positions"]) == sorted(position_ids)

    # The liquidation closes positions; the account's state is the rules'
    # business: its realized loss is a violation, which the rules monitor
    # enforces (here asked directly).
    assert account.state is FundedAccountState.ACTIVE and account.band is RuleBand.VIOLATION
    enforced = ledger.funded_accounts.enforce_rules(account_id)
    assert enforced.account.state is FundedAccountState.CLOSED
    # A closed account is not guarded any more.
    assert _pass(ledger, account_id).closed == []


def test_every_guard_decision_event_carries_its_inputs(ledger: Ledger) -> None:
    clock = _clock(ledger)
    start = clock.now()
    account_id, position_ids = _invested_account(ledger, _crash_path(start))
    clock.set(start + CRASH_STEP * 3)
    _pass(ledger, account_id)
    clock.set(start + CRASH_STEP * 4)
    _pass(ledger, account_id)
    clock.set(start + CRASH_STEP * 4 + GRACE)
    _pass(ledger, account_id)

    events = _guard_events(ledger, account_id)
    inputs = {
        "peak_equity_minor": 1_000_000,
        "minimum_equity_minor": 100_00,
        "warn_from": "3/20",
        "liquidate_above": "1/5",
    }
    [warned] = _named(events, "DrawdownWarned")
    assert warned | inputs == warned
    assert (warned["equity_minor"], warned["drawdown"]) == (850_000, "3/20")
    assert warned["positions"] == position_ids
    assert warned["at"] == start + CRASH_STEP * 3
    [scheduled] = _named(events, "LiquidationScheduled")
    assert scheduled | inputs == scheduled
    assert (scheduled["equity_minor"], scheduled["drawdown"]) == (799_000, "201/1000")
    assert scheduled["due_at"] == start + CRASH_STEP * 4 + GRACE
    assert scheduled["positions"] == position_ids
    [liquidated] = _named(events, "Liquidated")
    assert liquidated | inputs == liquidated
    assert liquidated["equity_minor"] == 799_000
    assert liquidated["closed"] == position_ids and liquidated["failed"] == {}
    records = _named(events, "CloseRecorded")
    assert [record["position_id"] for record in records] == position_ids
    for record in records:
        assert record["actor"] == GUARDS_ACTOR
        assert record["reason"].startswith("drawdown liquidation")
        assert (record["price_minor"], record["realized_pnl_minor"]) == (49_75, -20_100)
        assert record["error"] is None


def test_just_below_each_edge_the_guard_does_not_move_up(ledger: Ledger) -> None:
    clock = _clock(ledger)
    start = clock.now()
    path = PricePath(
        (
            PriceStep(start, ENTRY_MINOR, ENTRY_MINOR),
            # 850,040: 14.996 % down.
            PriceStep(start + CRASH_STEP, WARN_PRICE_MINOR + 1, WARN_PRICE_MINOR + 1),
            # 800,000: 20 % down exactly, not over MAX_DRAWDOWN_PERCENT.
            PriceStep(
                start + CRASH_STEP * 2,
                EXACTLY_MAX_DRAWDOWN_PRICE_MINOR,
                EXACTLY_MAX_DRAWDOWN_PRICE_MINOR,
            ),
        )
    )
    account_id, _ = _invested_account(ledger, path)
    clock.set(start + CRASH_STEP)
    assert _pass(ledger, account_id).level is DrawdownLevel.OK
    clock.set(start + CRASH_STEP * 2)
    assert _pass(ledger, account_id).level is DrawdownLevel.WARN
    assert _decisions(ledger, account_id) == ["DrawdownWarned"]


def test_a_recovery_by_the_time_the_liquidation_is_due_closes_nothing(ledger: Ledger) -> None:
    clock = _clock(ledger)
    start = clock.now()
    due = start + CRASH_STEP + GRACE
    path = PricePath(
        (
            PriceStep(start, ENTRY_MINOR, ENTRY_MINOR),
            PriceStep(start + CRASH_STEP, LIQUIDATE_PRICE_MINOR, LIQUIDATE_PRICE_MINOR),
            # Back to 90.00 exactly when the liquidation falls due: 4 % down.
            PriceStep(due, 90_00, 90_00),
        )
    )
    account_id, _ = _invested_account(ledger, path)
    clock.set(start + CRASH_STEP)
    assert _pass(ledger, account_id).level is DrawdownLevel.LIQUIDATE
    clock.set(due)
    recovered = _pass(ledger, account_id)
    assert (recovered.level, recovered.closed) == (DrawdownLevel.OK, [])
    clock.set(due + GRACE)
    assert _pass(ledger, account_id).closed == []
    assert len(ledger.funded_accounts.require_funded_account(account_id).positions) == 10
    assert _decisions(ledger, account_id) == ["LiquidationScheduled", "DrawdownRecovered"]
    [recovery] = _named(_guard_events(ledger, account_id), "DrawdownRecovered")
    assert (recovery["equity_minor"], recovery["drawdown"]) == (960_000, "1/25")
    assert _positions_closed(ledger, account_id) == []


def test_one_failing_close_does_not_stop_the_others_and_is_retried_next_pass(
    ledger: Ledger,
) -> None:
    clock = _clock(ledger)
    start = clock.now()
    account_id, position_ids = _invested_account(ledger, _crash_path(start))
    clock.set(start + CRASH_STEP * 4)
    _pass(ledger, account_id)
    clock.set(start + CRASH_STEP * 4 + GRACE)
    equity = ledger.broker.equity(account_id)
    # The account's next broker call, the first position's close, fails.
    _broker(ledger).fail_next(account_id, BrokerUnavailable("broker down for a moment"))
    first = ledger.guards.guard_account(account_id, equity)
    assert sorted(first.closed) == sorted(position_ids[1:])
    assert list(first.failed) == [position_ids[0]]
    assert first.failed[position_ids[0]].startswith("broker_unavailable")
    assert first.level is DrawdownLevel.LIQUIDATE
    remaining = ledger.funded_accounts.require_funded_account(account_id).positions
    assert [held.position_id for held in remaining] == [position_ids[0]]

    clock.advance(timedelta(seconds=10))
    second = _pass(ledger, account_id)
    assert (second.closed, second.failed) == ([position_ids[0]], {})
    assert second.level is DrawdownLevel.OK
    assert ledger.funded_accounts.require_funded_account(account_id).positions == ()

    events = _guard_events(ledger, account_id)
    partial, complete = _named(events, "Liquidated")
    assert partial["closed"] == position_ids[1:]
    assert list(partial["failed"]) == [position_ids[0]]
    assert (complete["closed"], complete["failed"]) == ([position_ids[0]], {})
    failed_record = _named(events, "CloseRecorded")[0]
    assert failed_record["position_id"] == position_ids[0]
    assert failed_record["error"].startswith("broker_unavailable")
    assert failed_record["price_minor"] is None
    assert len(_positions_closed(ledger, account_id)) == 10


class _UnreachableNotifier:
    def __init__(self) -> None:
        self.attempts: list[str] = []

    def notify(self, notification: GuardNotification) -> bool:
        self.attempts.append(notification.notification_id)
        raise GuardNotificationFailed(notification.notification_id, "channel down")


def test_a_notification_that_fails_leaves_the_decision_recorded(ledger: Ledger) -> None:
    clock = _clock(ledger)
    start = clock.now()
    account_id, _ = _invested_account(ledger, _crash_path(start))
    notifier = _UnreachableNotifier()
    guards = GuardsService(
        ledger.app,
        ledger.writer,
        ledger.funded_accounts,
        ledger.broker,
        clock,
        ledger.guards.thresholds,
        notifier=notifier,
    )
    clock.set(start + CRASH_STEP * 3)
    outcome = guards.guard_account(account_id, ledger.broker.equity(account_id))
    assert outcome.level is DrawdownLevel.WARN
    assert _decisions(ledger, account_id) == ["DrawdownWarned"]
    warned_version = _guard_events(ledger, account_id)[-1].originator_version
    assert notifier.attempts == [f"{guard_id_for(account_id)}.{warned_version}"]


# The market guard --------------------------------------------------------------------


def test_the_market_guard_closes_only_what_fails_past_each_edge(ledger: Ledger) -> None:
    broker = _broker(ledger)
    clock = _clock(ledger)
    start = clock.now()
    session = start + timedelta(hours=1)
    account_id = activate_funded_account(ledger, owner_id="trader-market", tier=TierName.GEN)
    # A gap of 5 % exactly, and one a cent over it.
    broker.load_path("GAPOK", PricePath.gap(start, session, 100_00, 105_00, spread_minor=0))
    broker.load_path("GAPBAD", PricePath.gap(start, session, 100_00, 105_01, spread_minor=0))
    # Spreads of 0.5 % of the bid exactly (100.00 / 100.50), and just over
    # (99.99 / 100.51).
    broker.load_path("SPREADOK", PricePath.widening_spread(start, session - start, 100_25, [0, 50]))
    broker.load_path(
        "SPREADBAD", PricePath.widening_spread(start, session - start, 100_25, [0, 52])
    )
    for symbol in ("VOLUMEOK", "VOLUMELOW"):
        broker.set_price(symbol, 100_00, 100_00)
    opened = {
        symbol: ledger.funded_accounts.open_position(
            account_id, symbol, PositionSide.LONG, QUANTITY
        ).position_id
        for symbol in ("GAPOK", "GAPBAD", "SPREADOK", "SPREADBAD", "VOLUMEOK", "VOLUMELOW")
    }
    clock.set(session)
    # The session trades as many units as the position holds, and one fewer.
    # MIN_LIQUIDITY_VOLUME_LOTS: 10 lots pass (and cover the 4 held); 9 fail.
    broker.set_price("VOLUMEOK", 100_00, 100_00, volume=10)
    broker.set_price("VOLUMELOW", 100_00, 100_00, volume=9)

    outcome = _pass(ledger, account_id)
    failing = [opened["GAPBAD"], opened["SPREADBAD"], opened["VOLUMELOW"]]
    assert outcome.marked == failing
    assert outcome.closed == failing and outcome.failed == {}
    still_open = ledger.funded_accounts.require_funded_account(account_id).positions
    assert {held.symbol for held in still_open} == {"GAPOK", "SPREADOK", "VOLUMEOK"}

    events = _guard_events(ledger, account_id)
    marks = {mark["position_id"]: mark for mark in _named(events, "PositionMarkedForClosing")}
    assert marks[opened["GAPBAD"]]["reasons"] == ["gap"]
    assert marks[opened["GAPBAD"]]["quote"]["open_minor"] == 105_01
    assert marks[opened["GAPBAD"]]["quote"]["last_close_minor"] == 100_00
    assert marks[opened["SPREADBAD"]]["reasons"] == ["spread"]
    assert (
        marks[opened["SPREADBAD"]]["quote"]["bid_minor"],
        marks[opened["SPREADBAD"]]["quote"]["ask_minor"],
    ) == (99_99, 100_51)
    assert marks[opened["VOLUMELOW"]]["reasons"] == ["volume"]
    assert marks[opened["VOLUMELOW"]]["quote"]["volume"] == 9
    assert all(mark["quantity"] == QUANTITY for mark in marks.values())
    assert all(
        mark["thresholds"]
        == {
            "gap_above": "1/20",
            "spread_above": "1/200",
            "liquidity_volume_lots_min": "10",
            "liquidity_check_enabled": "true",
        }
        for mark in marks.values()
    )
    records = {record["position_id"]: record for record in _named(events, "CloseRecorded")}
    assert records[opened["GAPBAD"]]["reason"] == "market guard: gap"
    assert records[opened["GAPBAD"]]["price_minor"] == 105_01
    assert records[opened["GAPBAD"]]["realized_pnl_minor"] == QUANTITY * 5_01

    # The next pass finds nothing new to mark or close.
    again = _pass(ledger, account_id)
    assert (again.marked, again.closed) == ([], [])


def test_a_marked_position_whose_close_failed_is_closed_by_the_next_pass(
    ledger: Ledger,
) -> None:
    broker = _broker(ledger)
    account_id = activate_funded_account(ledger, owner_id="trader-market", tier=TierName.GEN)
    broker.set_price("THIN", 100_00, 100_00)
    position_id = ledger.funded_accounts.open_position(
        account_id, "THIN", PositionSide.LONG, QUANTITY
    ).position_id
    broker.set_price("THIN", 100_00, 100_00, volume=0)
    equity = broker.equity(account_id)
    broker.fail_next(account_id, BrokerUnavailable("broker down for a moment"))
    first = ledger.guards.guard_account(account_id, equity)
    assert first.marked == [position_id] and first.closed == []
    assert first.failed[position_id].startswith("broker_unavailable")
    second = _pass(ledger, account_id)
    assert (second.marked, second.closed, second.failed) == ([], [position_id], {})
    guard = ledger.app.load_account_guard(guard_id_for(account_id))
    assert guard is not None and guard.marked_for_closing == {}


# Closing -----------------------------------------------------------------------------


def test_closing_the_same_position_twice_closes_it_once(ledger: Ledger) -> None:
    broker = _broker(ledger)
    account_id = activate_funded_account(ledger, owner_id="trader-manual", tier=TierName.GEN)
    broker.set_price("MANUAL", 100_00, 100_01)
    position_id = ledger.funded_accounts.open_position(
        account_id, "MANUAL", PositionSide.LONG, QUANTITY
    ).position_id
    broker.set_price("MANUAL", 101_00, 101_01)

    first = ledger.guards.close_position(
        account_id, position_id, reason="taking profit", actor=MANUAL_ACTOR
    )
    assert first.closed_now
    assert (first.price_minor, first.realized_pnl_minor) == (101_00, QUANTITY * 99)
    written = ledger.writer.last_position
    second = ledger.guards.close_position(
        account_id, position_id, reason="taking profit", actor=MANUAL_ACTOR
    )
    assert not second.closed_now
    assert (second.price_minor, second.realized_pnl_minor) == (101_00, QUANTITY * 99)
    assert ledger.writer.last_position == written
    assert len(_positions_closed(ledger, account_id)) == 1
    [record] = _named(_guard_events(ledger, account_id), "CloseRecorded")
    assert (record["actor"], record["reason"]) == (MANUAL_ACTOR, "taking profit")
    assert ledger.funded_accounts.require_funded_account(account_id).realized_pnl_minor == 396


def test_a_position_closed_elsewhere_is_answered_with_its_recorded_close(
    ledger: Ledger,
) -> None:
    broker = _broker(ledger)
    account_id = activate_funded_account(ledger, owner_id="trader-manual", tier=TierName.GEN)
    broker.set_price("ELSEWHERE", 100_00, 100_00)
    position_id = ledger.funded_accounts.open_position(
        account_id, "ELSEWHERE", PositionSide.LONG, QUANTITY
    ).position_id
    broker.set_price("ELSEWHERE", 99_00, 99_00)
    ledger.funded_accounts.close_position(account_id, position_id)

    answered = ledger.guards.close_position(
        account_id, position_id, reason="manual close", actor=MANUAL_ACTOR
    )
    assert not answered.closed_now
    assert (answered.price_minor, answered.realized_pnl_minor) == (99_00, -QUANTITY * 100)
    # The guard records it once, so an auditor sees who asked.
    ledger.guards.close_position(account_id, position_id, reason="manual close", actor="other")
    assert len(_named(_guard_events(ledger, account_id), "CloseRecorded")) == 1
    assert len(_positions_closed(ledger, account_id)) == 1


def test_closing_a_position_never_opened_is_refused(ledger: Ledger) -> None:
    account_id = activate_funded_account(ledger, owner_id="trader-manual", tier=TierName.GEN)
    with pytest.raises(LedgerRefusal) as refused:
        ledger.guards.close_position(
            account_id, "no-such-position", reason="manual close", actor=MANUAL_ACTOR
        )
    assert refused.value.code is ResultCode.POSITION_NOT_FOUND
    assert ledger.app.load_account_guard(guard_id_for(account_id)) is None


# The notifier ------------------------------------------------------------------------


def test_the_file_notifier_writes_each_notification_once(tmp_path: Path) -> None:
    notifier = FileGuardNotifier(tmp_path / GUARD_NOTIFICATIONS_FOLDER)
    guard_id = guard_id_for(UUID(int=7))
    notification = GuardNotification(
        notification_id=f"{guard_id}.3",
        kind=GuardNotificationKind.LIQUIDATION_SCHEDULED,
        funded_account_id=UUID(int=7),
        owner_id="trader-7",
        drawdown=Fraction(1, 5),
        equity_minor=800_000,
        peak_equity_minor=1_000_000,
        minimum_equity_minor=800_000,
        positions=(NotifiedPosition("position-1", "CRASH", "long", 4),),
        at=datetime.fromisoformat("2026-01-01T12:00:00+00:00"),
        liquidation_due_at=datetime.fromisoformat("2026-01-01T12:15:00+00:00"),
    )
    assert notifier.notify(notification)
    assert not notifier.notify(notification)
    [written] = list((tmp_path / GUARD_NOTIFICATIONS_FOLDER).iterdir())
    document = json.loads(written.read_text())
    assert written.name == f"{guard_id}.3.json"
    assert document["kind"] == "liquidation_scheduled"
    assert document["drawdown_percent"] == "20.00"
    assert document["liquidation_due_at"] == "2026-01-01T12:15:00+00:00"
    assert document["positions"] == [
        {"position_id": "position-1", "symbol": "CRASH", "side": "long", "quantity": 4}
    ]
