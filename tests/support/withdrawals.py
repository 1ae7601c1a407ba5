"""Funded accounts with profit to withdraw, made the way a trader makes it:
a position opened and closed at a higher price through the simulated broker."""

from __future__ import annotations

from typing import Final
from uuid import UUID

from domain.positions import PositionSide
from domain.tiers import TierName
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.bootstrap import Ledger
from tests.support.funded_accounts import activate_funded_account

SYMBOL: Final[str] = "WDRL"
# Four units at $100: 4 % of a Gen account's $10,000, inside the 5 % risk limit.
QUANTITY: Final[int] = 4
ENTRY_MINOR: Final[int] = 100_00


def profitable_funded_account(ledger: Ledger, owner_id: str, profit_minor: int) -> UUID:
    """A Gen account (4/5 split) that closed one trade `profit_minor` up, so
    4/5 of it is withdrawable. `profit_minor` is a multiple of 4 cents."""
    if profit_minor <= 0 or profit_minor % QUANTITY:
        raise ValueError(f"the profit is a positive multiple of {QUANTITY} minor units")
    broker = ledger.broker
    assert isinstance(broker, SimulatedBroker)
    funded_account_id = activate_funded_account(ledger, owner_id=owner_id, tier=TierName.GEN)
    broker.set_price(SYMBOL, bid_minor=ENTRY_MINOR - 1, ask_minor=ENTRY_MINOR)
    opened = ledger.funded_accounts.open_position(
        funded_account_id, SYMBOL, PositionSide.LONG, QUANTITY
    )
    exit_minor = ENTRY_MINOR + profit_minor // QUANTITY
    broker.set_price(SYMBOL, bid_minor=exit_minor, ask_minor=exit_minor + 1)
    ledger.funded_accounts.close_position(funded_account_id, opened.position_id)
    return funded_account_id
