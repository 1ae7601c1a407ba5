"""A trading position's side and its profit or loss, exactly, in minor units.

The one P&L rule: the domain checks a closing fill's P&L with it, and the
Broker port (application/ports/broker.py) and its adapters price with it.
"""

from __future__ import annotations

from enum import StrEnum


class PositionSide(StrEnum):
    """Long or short: a position's side in the domain and at the Broker port alike."""

    LONG = "long"
    SHORT = "short"


def position_pnl_minor(
    side: PositionSide, entry_price_minor: int, exit_price_minor: int, quantity: int
) -> int:
    """long: (exit - entry) x quantity; short: (entry - exit) x quantity. Exact."""
    if side is PositionSide.LONG:
        return (exit_price_minor - entry_price_minor) * quantity
    return (entry_price_minor - exit_price_minor) * quantity
