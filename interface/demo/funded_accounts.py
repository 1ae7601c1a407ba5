"""The demo's funded accounts: one per tier with trading history, and one in
each rule band, traded on the simulated broker
(docs/rules.md#funded-accounts-and-withdrawals).

Round trips on the DEMO symbol make the history (realized P&L in the ledger);
small positions left open on ACME and GLOBEX keep the monitor's marks moving
nothing. The band accounts are Gen accounts ($10,000, drawdown limit 10 %)
that lost 8.52 % (WARNING), 9.52 % (DANGER) and 10.04 % (VIOLATION: closed by
the rules with the reason) of their peak.

Loading again finds every account by its assessment and trades nothing more:
an account's history is made only when its activation created it. Prices are
set every time (the simulated market lives in memory).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from typing import Final
from uuid import UUID

from application.funded_accounts import ActivationRequest, FundedAccountsService
from domain.positions import PositionSide
from domain.tiers import TierName
from interface.adapters.broker.simulated_broker import SimulatedBroker

DEMO_ACTOR: Final[str] = "demo"
HISTORY_SYMBOL: Final[str] = "DEMO"
COMPLETED_AT: Final = datetime(2026, 1, 15, tzinfo=UTC)
# The prices open positions are marked at, in minor units (bid, ask).
MARKET: Final[dict[str, tuple[int, int]]] = {"ACME": (10_000, 10_010), "GLOBEX": (19_990, 20_000)}


@dataclass(frozen=True, slots=True)
class RoundTrip:
    side: PositionSide
    quantity: int
    entry_minor: int
    exit_minor: int


@dataclass(frozen=True, slots=True)
class HeldPosition:
    symbol: str
    side: PositionSide
    quantity: int


@dataclass(frozen=True, slots=True)
class DemoFundedAccount:
    assessment_id: str
    owner_id: str
    tier: TierName
    history: tuple[RoundTrip, ...]
    held: tuple[HeldPosition, ...] = ()


def _losses(*drops: int) -> tuple[RoundTrip, ...]:
    """Longs of 400 units bought at 100 and sold `drop` lower (4 % of $10,000)."""
    return tuple(RoundTrip(PositionSide.LONG, 400, 100, 100 - drop) for drop in drops)


DEMO_FUNDED_ACCOUNTS: Final[tuple[DemoFundedAccount, ...]] = (
    DemoFundedAccount(
        "demo-assessment-gen",
        "user-01",
        TierName.GEN,
        tuple(RoundTrip(PositionSide.LONG, 400, 100, 110) for _ in range(3)),
        (HeldPosition("ACME", PositionSide.LONG, 2),),
    ),
    DemoFundedAccount(
        "demo-assessment-rev",
        "user-02",
        TierName.REV,
        (
            RoundTrip(PositionSide.LONG, 4_000, 100, 105),
            RoundTrip(PositionSide.SHORT, 3_000, 100, 98),
        ),
        (HeldPosition("ACME", PositionSide.LONG, 20),),
    ),
    DemoFundedAccount(
        "demo-assessment-com",
        "user-03",
        TierName.COM,
        (RoundTrip(PositionSide.LONG, 20_000, 100, 103),),
        (HeldPosition("GLOBEX", PositionSide.SHORT, 50),),
    ),
    # 39,600 + 39,600 + 6,000 lost of a 1,000,000 peak: 8.52 %.
    DemoFundedAccount("demo-assessment-warning", "user-01", TierName.GEN, _losses(99, 99, 15)),
    # ... + 16,000: 9.52 %.
    DemoFundedAccount("demo-assessment-danger", "user-04", TierName.GEN, _losses(99, 99, 40)),
    # ... + 21,200: 10.04 %, over the limit: the rules close the account.
    DemoFundedAccount("demo-assessment-violation", "user-05", TierName.GEN, _losses(99, 99, 53)),
)


@dataclass
class FundedDemoSummary:
    account_ids: list[UUID] = field(default_factory=list)
    created: int = 0
    tiers: Counter[str] = field(default_factory=Counter)
    bands: Counter[str] = field(default_factory=Counter)
    states: Counter[str] = field(default_factory=Counter)

    def lines(self) -> list[str]:
        return [
            f"funded accounts: {len(self.account_ids)} ({self.created} new); tiers: "
            + ", ".join(f"{tier} {count}" for tier, count in sorted(self.tiers.items())),
            "funded bands: "
            + ", ".join(f"{band} {count}" for band, count in sorted(self.bands.items()))
            + "; states: "
            + ", ".join(f"{state} {count}" for state, count in sorted(self.states.items())),
        ]


def load_funded_demo(service: FundedAccountsService, broker: SimulatedBroker) -> FundedDemoSummary:
    for symbol, (bid, ask) in MARKET.items():
        broker.set_price(symbol, bid_minor=bid, ask_minor=ask)
    summary = FundedDemoSummary()
    for demo in DEMO_FUNDED_ACCOUNTS:
        activation = service.activate(
            ActivationRequest(
                assessment_id=demo.assessment_id,
                owner_id=demo.owner_id,
                tier=demo.tier,
                profit_split=Fraction(4, 5),
                completed_at=COMPLETED_AT,
            ),
            actor=DEMO_ACTOR,
        )
        account_id = activation.account.id
        if activation.created:
            summary.created += 1
            _trade(service, broker, account_id, demo)
        account = service.require_funded_account(account_id)
        summary.account_ids.append(account_id)
        summary.tiers[account.tier.name.value] += 1
        summary.bands[account.band.value] += 1
        summary.states[account.state.value] += 1
    return summary


def activate_after_one_trade(
    service: FundedAccountsService,
    broker: SimulatedBroker,
    *,
    assessment_id: str,
    owner_id: str,
    symbol: str,
    quantity: int,
    entry_minor: int,
    exit_minor: int,
) -> UUID:
    """A Gen account (4/5 split) that bought `quantity` of `symbol` and sold
    it all, once: only when this call activated it (loading again trades
    nothing more). Its id."""
    activation = service.activate(
        ActivationRequest(
            assessment_id=assessment_id,
            owner_id=owner_id,
            tier=TierName.GEN,
            profit_split=Fraction(4, 5),
            completed_at=COMPLETED_AT,
        ),
        actor=DEMO_ACTOR,
    )
    account_id = activation.account.id
    if activation.created:
        broker.set_price(symbol, bid_minor=entry_minor, ask_minor=entry_minor)
        opened = service.open_position(
            account_id, symbol, PositionSide.LONG, quantity, client_order_id=f"{assessment_id}-0"
        )
        broker.set_price(symbol, bid_minor=exit_minor, ask_minor=exit_minor)
        service.close_position(account_id, opened.position_id)
    return account_id


def _trade(
    service: FundedAccountsService,
    broker: SimulatedBroker,
    account_id: UUID,
    demo: DemoFundedAccount,
) -> None:
    for number, trip in enumerate(demo.history):
        broker.set_price(HISTORY_SYMBOL, bid_minor=trip.entry_minor, ask_minor=trip.entry_minor)
        opened = service.open_position(
            account_id,
            HISTORY_SYMBOL,
            trip.side,
            trip.quantity,
            client_order_id=f"{demo.assessment_id}-{number}",
        )
        broker.set_price(HISTORY_SYMBOL, bid_minor=trip.exit_minor, ask_minor=trip.exit_minor)
        service.close_position(account_id, opened.position_id)
    for number, held in enumerate(demo.held):
        service.open_position(
            account_id,
            held.symbol,
            held.side,
            held.quantity,
            client_order_id=f"{demo.assessment_id}-held-{number}",
        )
