"""A lone surrogate can never reach the event store: UTF-8 and JSON cannot
encode it, and one in a batch would fail every command written with it."""

from __future__ import annotations

import pytest

from domain.account import AccountState
from domain.commands import change_account_state, open_account
from domain.field_checks import is_storable_text, require_text
from domain.identifiers import account_id_for
from domain.result_codes import LedgerRefusal, ResultCode

LONE_SURROGATE = "\ud800"


def test_text_with_a_lone_surrogate_is_not_storable_and_any_other_text_is() -> None:
    assert not is_storable_text(f"a{LONE_SURROGATE}b")
    assert is_storable_text("plain, \u00e9, \u4e2d, \U0001f600 and a NUL \x00")


def test_an_account_whose_owner_id_holds_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(LedgerRefusal) as refusal:
        open_account(idempotency_key="k-1", currency="USD", owner_id=f"o{LONE_SURROGATE}")
    assert refusal.value.code is ResultCode.INVALID_METADATA


@pytest.mark.parametrize("metadata", [{"note": LONE_SURROGATE}, {LONE_SURROGATE: "x"}])
def test_metadata_holding_a_lone_surrogate_is_refused(metadata: dict[str, str]) -> None:
    with pytest.raises(LedgerRefusal) as refusal:
        open_account(idempotency_key="k-2", currency="USD", owner_id="o", metadata=metadata)
    assert refusal.value.code is ResultCode.INVALID_METADATA


def test_a_state_change_whose_reason_holds_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(LedgerRefusal) as refusal:
        change_account_state(
            account_id=account_id_for("k-3", ""),
            new_state=AccountState.SUSPENDED,
            reason=f"r{LONE_SURROGATE}",
            actor="ops",
        )
    assert refusal.value.code is ResultCode.INVALID_METADATA


def test_a_process_field_with_a_lone_surrogate_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="valid Unicode"):
        require_text("note", f"n{LONE_SURROGATE}", 100)
