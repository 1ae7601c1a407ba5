"""The demo's guards: three Gen accounts, each under a scripted market that
makes one guard fire, traded on the simulated broker
(docs/rules.md#position-sync-and-guards).

- Crash: ten longs of CRSH (98 units at $5.00, 4.9 % of the balance each,
  inside the 5 % risk rule) fall along a ramp to $3.30 (a 16.7 % drawdown
  from the peak: the drawdown guard warns) and on to $2.90 (20.6 %:
  liquidation scheduled after the grace period, the owner warned with the
  positions to be closed).
- Gap: a long of GAPX bought at $10.00 when the next session opens 10 %
  higher: the market guard marks it for closing (gap over 5 %) and closes it.
- Spread: a long of SPRD whose spread widens from 0.2 % to 1.6 % of the bid:
  marked for closing (spread over 0.5 %) and closed.

Prices are scripted as `PricePath`s whose steps all lie before the clock's
time now, so the last step holds from now on whatever the clock: the demo
runs under the system clock (`ledger serve --demo`) and the tests' settable
one alike. The crash is two ramps, one guard pass after each, so the account
walks through the warning to the scheduled liquidation.

The funded rules (docs/rules.md#funded-accounts-and-withdrawals) close a Gen
account at 10 % from its peak, before the guards' 15 %: the rules monitor of
`ledger serve` closes the crashed account on its next pass. The guards'
decisions stay recorded (they are events), which is what the demo shows.

Loading again finds each account by its assessment and trades nothing more;
the markets (in memory) are scripted again to where the first load left
them and each account is guarded once more, which changes nothing new.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Final
from uuid import UUID

from application.funded_accounts import ActivationRequest, FundedAccountsService
from application.guards import GuardOutcome, GuardsService
from application.ports.clock import Clock
from domain.positions import PositionSide
from domain.tiers import TierName
from interface.adapters.broker.price_path import PricePath
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.demo.funded_accounts import COMPLETED_AT, DEMO_ACTOR

CRASH_ASSESSMENT_ID: Final[str] = "demo-assessment-guard-crash"
GAP_ASSESSMENT_ID: Final[str] = "demo-assessment-guard-gap"
SPREAD_ASSESSMENT_ID: Final[str] = "demo-assessment-guard-spread"
GUARDS_OWNER_ID: Final[str] = "user-06"

CRASH_SYMBOL: Final[str] = "CRSH"
CRASH_POSITIONS: Final[int] = 10
CRASH_QUANTITY: Final[int] = 98
CRASH_ENTRY_MINOR: Final[int] = 500
# Where each ramp ends: a warning (16.7 % down), then a liquidation (20.6 %).
CRASH_WARNING_MINOR: Final[int] = 330
CRASH_LIQUIDATION_MINOR: Final[int] = 290
CRASH_STEPS: Final[int] = 5
# One cent: under the market guard's 0.5 % spread at every price of the ramp.
CRASH_SPREAD_MINOR: Final[int] = 1

GAP_SYMBOL: Final[str] = "GAPX"
GAP_QUANTITY: Final[int] = 40
GAP_LAST_CLOSE_MINOR: Final[int] = 1_000
GAP_OPEN_MINOR: Final[int] = 1_100
GAP_SPREAD_MINOR: Final[int] = 2

SPREAD_SYMBOL: Final[str] = "SPRD"
SPREAD_QUANTITY: Final[int] = 40
SPREAD_MID_MINOR: Final[int] = 1_000
# 0.2 % of the bid at first, then wider until 1.6 %.
SPREADS_MINOR: Final[tuple[int, ...]] = (2, 4, 8, 16)

# The scripted steps end this long before now, a step this long apart.
SCRIPT_ENDS_BEFORE: Final[timedelta] = timedelta(seconds=1)
STEP_INTERVAL: Final[timedelta] = timedelta(minutes=1)
# The session before the gap closed this long before the open.
OVERNIGHT: Final[timedelta] = timedelta(hours=16)


@dataclass
class GuardsDemoSummary:
    # Assessment -> the funded account guarded, and what its last pass did.
    account_ids: dict[str, UUID] = field(default_factory=dict)
    outcomes: dict[str, GuardOutcome] = field(default_factory=dict)
    created: int = 0

    def lines(self) -> list[str]:
        described = [
            f"{assessment_id.removeprefix('demo-assessment-guard-')} {outcome.funded_account_id}"
            f" (level {outcome.level.value}"
            + (f", closed {len(outcome.closed)}" if outcome.closed else "")
            + ")"
            for assessment_id, outcome in self.outcomes.items()
        ]
        return [
            f"guards: {len(self.account_ids)} accounts ({self.created} new): "
            + "; ".join(described)
            + "; GET /v1/guards, /v1/accounts/{id}/positions"
        ]


def load_guards_demo(
    funded_accounts: FundedAccountsService,
    guards: GuardsService,
    broker: SimulatedBroker,
    clock: Clock,
) -> GuardsDemoSummary:
    summary = GuardsDemoSummary()
    _crash(funded_accounts, guards, broker, clock, summary)
    _gap(funded_accounts, guards, broker, clock, summary)
    _spread(funded_accounts, guards, broker, clock, summary)
    return summary


def _crash(
    funded_accounts: FundedAccountsService,
    guards: GuardsService,
    broker: SimulatedBroker,
    clock: Clock,
    summary: GuardsDemoSummary,
) -> None:
    account_id, created = _activate(funded_accounts, CRASH_ASSESSMENT_ID, summary)
    if created:
        broker.set_price(CRASH_SYMBOL, bid_minor=CRASH_ENTRY_MINOR, ask_minor=CRASH_ENTRY_MINOR)
        for number in range(CRASH_POSITIONS):
            funded_accounts.open_position(
                account_id,
                CRASH_SYMBOL,
                PositionSide.LONG,
                CRASH_QUANTITY,
                client_order_id=f"{CRASH_ASSESSMENT_ID}-{number}",
            )
        broker.load_path(CRASH_SYMBOL, _ramp(clock.now(), CRASH_ENTRY_MINOR, CRASH_WARNING_MINOR))
        _guard(guards, broker, account_id, CRASH_ASSESSMENT_ID, summary)
    broker.load_path(CRASH_SYMBOL, _ramp(clock.now(), CRASH_WARNING_MINOR, CRASH_LIQUIDATION_MINOR))
    _guard(guards, broker, account_id, CRASH_ASSESSMENT_ID, summary)


def _gap(
    funded_accounts: FundedAccountsService,
    guards: GuardsService,
    broker: SimulatedBroker,
    clock: Clock,
    summary: GuardsDemoSummary,
) -> None:
    account_id, created = _activate(funded_accounts, GAP_ASSESSMENT_ID, summary)
    if created:
        broker.set_price(GAP_SYMBOL, bid_minor=GAP_LAST_CLOSE_MINOR, ask_minor=GAP_LAST_CLOSE_MINOR)
        funded_accounts.open_position(
            account_id,
            GAP_SYMBOL,
            PositionSide.LONG,
            GAP_QUANTITY,
            client_order_id=f"{GAP_ASSESSMENT_ID}-0",
        )
    opens_at = clock.now() - SCRIPT_ENDS_BEFORE
    broker.load_path(
        GAP_SYMBOL,
        PricePath.gap(
            opens_at - OVERNIGHT, opens_at, GAP_LAST_CLOSE_MINOR, GAP_OPEN_MINOR, GAP_SPREAD_MINOR
        ),
    )
    _guard(guards, broker, account_id, GAP_ASSESSMENT_ID, summary)


def _spread(
    funded_accounts: FundedAccountsService,
    guards: GuardsService,
    broker: SimulatedBroker,
    clock: Clock,
    summary: GuardsDemoSummary,
) -> None:
    account_id, created = _activate(funded_accounts, SPREAD_ASSESSMENT_ID, summary)
    if created:
        broker.set_price(SPREAD_SYMBOL, bid_minor=SPREAD_MID_MINOR, ask_minor=SPREAD_MID_MINOR)
        funded_accounts.open_position(
            account_id,
            SPREAD_SYMBOL,
            PositionSide.LONG,
            SPREAD_QUANTITY,
            client_order_id=f"{SPREAD_ASSESSMENT_ID}-0",
        )
    broker.load_path(
        SPREAD_SYMBOL,
        PricePath.widening_spread(
            _script_start(clock.now(), len(SPREADS_MINOR)),
            STEP_INTERVAL,
            SPREAD_MID_MINOR,
            SPREADS_MINOR,
        ),
    )
    _guard(guards, broker, account_id, SPREAD_ASSESSMENT_ID, summary)


def _activate(
    funded_accounts: FundedAccountsService, assessment_id: str, summary: GuardsDemoSummary
) -> tuple[UUID, bool]:
    activation = funded_accounts.activate(
        ActivationRequest(
            assessment_id=assessment_id,
            owner_id=GUARDS_OWNER_ID,
            tier=TierName.GEN,
            profit_split=Fraction(4, 5),
            completed_at=COMPLETED_AT,
        ),
        actor=DEMO_ACTOR,
    )
    summary.account_ids[assessment_id] = activation.account.id
    summary.created += int(activation.created)
    return activation.account.id, activation.created


def _guard(
    guards: GuardsService,
    broker: SimulatedBroker,
    account_id: UUID,
    assessment_id: str,
    summary: GuardsDemoSummary,
) -> None:
    summary.outcomes[assessment_id] = guards.guard_account(account_id, broker.equity(account_id))


def _script_start(now: datetime, steps: int) -> datetime:
    """The first step's time, so the last of `steps` lies just before now."""
    return now - SCRIPT_ENDS_BEFORE - STEP_INTERVAL * (steps - 1)


def _ramp(now: datetime, from_mid_minor: int, to_mid_minor: int) -> PricePath:
    return PricePath.ramp(
        _script_start(now, CRASH_STEPS),
        STEP_INTERVAL,
        from_mid_minor,
        to_mid_minor,
        CRASH_STEPS,
        CRASH_SPREAD_MINOR,
    )
