"""The sync's matching rules (domain/account_guard.py): the 5 % volume
tolerance at its edge both ways, and each kind of divergence."""

from __future__ import annotations

from typing import Final

import pytest

from domain.account_guard import (
    DivergenceKind,
    HeldPosition,
    match_positions,
    within_volume_tolerance,
)

LEDGER_QUANTITY: Final[int] = 100
ENTRY_MINOR: Final[int] = 10_000


def _held(quantity: int, *, entry_minor: int = ENTRY_MINOR, side: str = "long") -> HeldPosition:
    return HeldPosition(
        position_id="position-1",
        symbol="ACME",
        side=side,
        quantity=quantity,
        entry_price_minor=entry_minor,
    )


@pytest.mark.parametrize("broker_quantity", [95, 100, 105])
def test_a_volume_within_five_percent_either_way_is_a_match(broker_quantity: int) -> None:
    assert within_volume_tolerance(LEDGER_QUANTITY, broker_quantity)
    assert match_positions([_held(LEDGER_QUANTITY)], [_held(broker_quantity)]) == []


def test_just_over_five_percent_less_at_the_broker_is_a_partial_fill() -> None:
    # 94.9 of 100: 5.1 % less, just past the edge (quantities in tenths).
    assert not within_volume_tolerance(1_000, 949)
    [found] = match_positions([_held(1_000)], [_held(949)])
    assert found.kind is DivergenceKind.PARTIAL_FILL
    assert (found.ledger_quantity, found.broker_quantity) == (1_000, 949)


def test_just_over_five_percent_more_at_the_broker_is_an_extra() -> None:
    assert not within_volume_tolerance(1_000, 1_051)
    [found] = match_positions([_held(1_000)], [_held(1_051)])
    assert found.kind is DivergenceKind.EXTRA
    assert found.fingerprint == "extra:position-1"


def test_the_edge_is_exact_in_integers() -> None:
    # 5 % of 20 is exactly 1: 19 and 21 match, 18 and 22 do not.
    assert within_volume_tolerance(20, 19) and within_volume_tolerance(20, 21)
    assert not within_volume_tolerance(20, 18) and not within_volume_tolerance(20, 22)


def test_another_entry_price_at_the_same_volume_is_slippage() -> None:
    [found] = match_positions(
        [_held(LEDGER_QUANTITY)], [_held(LEDGER_QUANTITY, entry_minor=10_050)]
    )
    assert found.kind is DivergenceKind.SLIPPAGE
    # 100 units 50 minor units apart.
    assert found.amount_minor == 5_000


def test_another_side_is_slippage_too() -> None:
    [found] = match_positions([_held(LEDGER_QUANTITY)], [_held(LEDGER_QUANTITY, side="short")])
    assert found.kind is DivergenceKind.SLIPPAGE


def test_a_volume_within_tolerance_and_another_price_is_slippage_not_a_match() -> None:
    [found] = match_positions([_held(LEDGER_QUANTITY)], [_held(104, entry_minor=10_001)])
    assert found.kind is DivergenceKind.SLIPPAGE


def test_a_position_only_the_ledger_holds_is_missing_and_only_the_broker_extra() -> None:
    mine = _held(LEDGER_QUANTITY)
    theirs = HeldPosition("position-2", "ACME", "short", 7, ENTRY_MINOR)
    missing, extra = match_positions([mine], [theirs])
    assert (missing.kind, missing.position_id) == (DivergenceKind.MISSING, "position-1")
    assert (missing.ledger_quantity, missing.broker_quantity) == (LEDGER_QUANTITY, None)
    assert (extra.kind, extra.position_id) == (DivergenceKind.EXTRA, "position-2")
    assert (extra.ledger_quantity, extra.broker_quantity) == (None, 7)
