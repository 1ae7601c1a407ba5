from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.account import (
    METADATA_KEY_LENGTH_MAX,
    METADATA_KEYS_MAX,
    METADATA_VALUE_LENGTH_MAX,
    AccountKind,
    AccountState,
)
from domain.commands import (
    ACTOR_LENGTH_MAX,
    REASON_LENGTH_MAX,
    CreateTransfer,
    ReverseTransfer,
    change_account_state,
    create_transfer,
    open_account,
)
from domain.identifiers import (
    IDEMPOTENCY_KEY_LENGTH_MAX,
    account_id_for,
    reversal_id_for,
    transfer_id_for,
)
from domain.result_codes import LedgerRefusal, ResultCode
from domain.transfer import PENDING_TIMEOUT_S_MAX, POSTINGS_MAX, Posting, Side

ALICE = UUID("00000000-0000-4000-8000-00000000a11c")
BOB = UUID("00000000-0000-4000-8000-000000000b0b")
CAROL = UUID("00000000-0000-4000-8000-0000000ca201")


def debit(account_id: UUID, amount_minor: int, currency: str = "USD") -> Posting:
    return Posting(account_id, Side.DEBIT, amount_minor, currency)


def credit(account_id: UUID, amount_minor: int, currency: str = "USD") -> Posting:
    return Posting(account_id, Side.CREDIT, amount_minor, currency)


def simple_transfer(**overrides: Any) -> CreateTransfer:
    arguments: dict[str, Any] = {
        "idempotency_key": "key-1",
        "postings": (debit(ALICE, 100), credit(BOB, 100)),
    }
    arguments.update(overrides)
    return create_transfer(**arguments)


def refusal_of(**overrides: Any) -> ResultCode:
    with pytest.raises(LedgerRefusal) as refused:
        simple_transfer(**overrides)
    return refused.value.code


# Postings --------------------------------------------------------------------


def test_a_balanced_two_posting_transfer_is_accepted() -> None:
    command = simple_transfer()
    assert command.postings == (debit(ALICE, 100), credit(BOB, 100))
    assert command.pending is False
    assert command.linked is False


def test_a_balanced_multi_leg_transfer_is_accepted() -> None:
    command = simple_transfer(postings=(debit(ALICE, 70), debit(BOB, 30), credit(CAROL, 100)))
    assert len(command.postings) == 3


def test_postings_whose_debits_and_credits_differ_are_refused_as_unbalanced() -> None:
    assert refusal_of(postings=(debit(ALICE, 100), credit(BOB, 99))) is (
        ResultCode.UNBALANCED_POSTINGS
    )


def test_postings_balanced_in_total_but_not_per_currency_are_refused_as_unbalanced() -> None:
    postings = (debit(ALICE, 100, "USD"), credit(BOB, 100, "EUR"))
    with pytest.raises(LedgerRefusal) as refused:
        simple_transfer(postings=postings)
    assert refused.value.code is ResultCode.UNBALANCED_POSTINGS
    assert refused.value.details["debits_minus_credits_minor"] == {"USD": 100, "EUR": -100}
    # As money too, never summed across the two currencies.
    assert refused.value.details["debits_minus_credits"] == {"USD": "1.00", "EUR": "-1.00"}
    assert "1.00 USD, -1.00 EUR" in refused.value.message


def test_postings_balanced_in_each_of_two_currencies_are_accepted() -> None:
    postings = (
        debit(ALICE, 100, "USD"),
        credit(BOB, 100, "USD"),
        debit(uuid4(), 90, "EUR"),
        credit(CAROL, 90, "EUR"),
    )
    assert simple_transfer(postings=postings).postings == postings


@pytest.mark.parametrize("count", [0, 1])
def test_fewer_than_two_postings_are_refused(count: int) -> None:
    postings = (debit(ALICE, 100), credit(BOB, 100))[:count]
    assert refusal_of(postings=postings) is ResultCode.TOO_FEW_POSTINGS


def test_as_many_postings_as_the_limit_are_accepted() -> None:
    debits = POSTINGS_MAX - 1
    postings = (*(debit(uuid4(), 1) for _ in range(debits)), credit(BOB, debits))
    assert len(postings) == POSTINGS_MAX
    assert len(simple_transfer(postings=postings).postings) == POSTINGS_MAX


def test_more_postings_than_the_limit_are_refused() -> None:
    count = POSTINGS_MAX + 1
    postings = (*(debit(uuid4(), 1) for _ in range(count - 1)), credit(BOB, count - 1))
    assert refusal_of(postings=postings) is ResultCode.TOO_MANY_POSTINGS


def test_an_account_both_debited_and_credited_by_one_transfer_is_refused() -> None:
    assert refusal_of(postings=(debit(ALICE, 100), credit(ALICE, 100))) is (
        ResultCode.ACCOUNTS_MUST_BE_DIFFERENT
    )


def test_an_account_debited_and_credited_among_several_legs_is_refused() -> None:
    postings = (debit(ALICE, 100), credit(BOB, 60), credit(ALICE, 40))
    assert refusal_of(postings=postings) is ResultCode.ACCOUNTS_MUST_BE_DIFFERENT


@pytest.mark.parametrize("amount", [0, -100])
def test_a_posting_amount_that_is_not_positive_is_refused(amount: int) -> None:
    postings = (debit(ALICE, amount), credit(BOB, amount))
    assert refusal_of(postings=postings) is ResultCode.AMOUNT_MUST_BE_POSITIVE


def test_a_posting_amount_given_as_a_float_is_refused() -> None:
    # Floats are refused everywhere (docs/architecture.md#key-decisions), not
    # only at the API.
    postings = (debit(ALICE, 1.5), credit(BOB, 1.5))  # type: ignore[arg-type]
    with pytest.raises(LedgerRefusal):
        simple_transfer(postings=postings)


# Metadata ------------------------------------------------------------------


def test_metadata_up_to_its_limits_is_accepted() -> None:
    metadata = {
        f"{index:0{METADATA_KEY_LENGTH_MAX}d}": "v" * METADATA_VALUE_LENGTH_MAX
        for index in range(METADATA_KEYS_MAX)
    }
    assert simple_transfer(metadata=metadata).metadata == metadata


@pytest.mark.parametrize(
    "metadata",
    [
        {f"key-{index}": "value" for index in range(METADATA_KEYS_MAX + 1)},
        {"k" * (METADATA_KEY_LENGTH_MAX + 1): "value"},
        {"": "value"},
        {"reference": "v" * (METADATA_VALUE_LENGTH_MAX + 1)},
        {"reference": 42},
        {"reference": None},
        {"reference": {"nested": "value"}},
        {7: "value"},
        ["reference", "value"],
        "reference=value",
    ],
)
def test_metadata_beyond_its_limits_or_not_a_flat_map_of_strings_is_refused(
    metadata: object,
) -> None:
    assert refusal_of(metadata=metadata) is ResultCode.INVALID_METADATA


def test_metadata_is_copied_so_later_changes_by_the_caller_do_not_reach_the_command() -> None:
    metadata = {"reference": "invoice-1"}
    command = simple_transfer(metadata=metadata)
    metadata["reference"] = "changed"
    assert command.metadata == {"reference": "invoice-1"}


# Timeouts ------------------------------------------------------------------


@pytest.mark.parametrize("timeout_s", [1, 60, PENDING_TIMEOUT_S_MAX])
def test_a_pending_transfer_takes_a_timeout_within_its_limits(timeout_s: int) -> None:
    command = simple_transfer(pending=True, timeout_s=timeout_s)
    assert command.pending is True
    assert command.timeout_s == timeout_s


def test_a_pending_transfer_without_a_timeout_is_accepted() -> None:
    assert simple_transfer(pending=True).timeout_s is None


@pytest.mark.parametrize("timeout_s", [0, -1, PENDING_TIMEOUT_S_MAX + 1, 1.5, "60"])
def test_a_pending_timeout_outside_its_limits_or_not_whole_seconds_is_refused(
    timeout_s: object,
) -> None:
    assert refusal_of(pending=True, timeout_s=timeout_s) is ResultCode.INVALID_TIMEOUT


def test_a_timeout_on_a_transfer_that_is_not_pending_is_refused() -> None:
    assert refusal_of(pending=False, timeout_s=60) is ResultCode.INVALID_TIMEOUT


# Idempotency keys ------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "",
        "k" * (IDEMPOTENCY_KEY_LENGTH_MAX + 1),
        "has space",
        "tab\there",
        "new\nline",
        "caf\u00e9",
        "\u0000",
        None,
        42,
    ],
)
def test_an_idempotency_key_that_is_empty_too_long_or_not_printable_ascii_is_refused(
    key: object,
) -> None:
    assert refusal_of(idempotency_key=key) is ResultCode.INVALID_IDEMPOTENCY_KEY


@pytest.mark.parametrize("key", ["k", "k" * IDEMPOTENCY_KEY_LENGTH_MAX, "order:42/attempt#1~!"])
def test_an_idempotency_key_of_printable_ascii_up_to_its_limit_is_accepted(key: str) -> None:
    assert simple_transfer(idempotency_key=key).transfer_id == transfer_id_for(key)


def test_an_account_key_follows_the_same_rules_as_a_transfer_key() -> None:
    with pytest.raises(LedgerRefusal) as refused:
        open_account(idempotency_key="has space", currency="USD", owner_id="owner-1")
    assert refused.value.code is ResultCode.INVALID_IDEMPOTENCY_KEY


# Identifiers -----------------------------------------------------------------


def test_the_same_key_always_names_the_same_transfer() -> None:
    first = simple_transfer(idempotency_key="order-42")
    again = simple_transfer(idempotency_key="order-42", postings=(debit(BOB, 5), credit(ALICE, 5)))
    assert first.transfer_id == again.transfer_id == transfer_id_for("order-42")


def test_different_keys_name_different_transfers() -> None:
    assert (
        simple_transfer(idempotency_key="order-42").transfer_id
        != simple_transfer(idempotency_key="order-43").transfer_id
    )


def test_the_same_key_in_two_scopes_names_two_transfers() -> None:
    first = simple_transfer(idempotency_key="order-42", scope="client-a")
    second = simple_transfer(idempotency_key="order-42", scope="client-b")
    unscoped = simple_transfer(idempotency_key="order-42")
    assert len({first.transfer_id, second.transfer_id, unscoped.transfer_id}) == 3
    assert first.transfer_id == transfer_id_for("order-42", "client-a")


def test_a_scope_and_key_cannot_be_shifted_into_each_other() -> None:
    assert transfer_id_for("b-c", "a") != transfer_id_for("c", "a-b")


def test_an_account_key_and_a_transfer_key_name_different_aggregates() -> None:
    assert account_id_for("same") != transfer_id_for("same")
    account = open_account(idempotency_key="same", currency="USD", owner_id="owner-1")
    assert account.account_id == account_id_for("same")
    scoped = open_account(idempotency_key="same", currency="USD", owner_id="o", scope="x")
    assert scoped.account_id == account_id_for("same", "x") != account.account_id


def test_a_reversal_is_named_by_the_transfer_it_reverses() -> None:
    original = transfer_id_for("order-42")
    assert ReverseTransfer(original).reversal_id == reversal_id_for(original)
    assert ReverseTransfer(original).reversal_id == ReverseTransfer(original).reversal_id
    assert reversal_id_for(original) != reversal_id_for(transfer_id_for("order-43"))
    assert reversal_id_for(original) != original


# Fingerprints ----------------------------------------------------------------


def test_identical_transfer_requests_have_the_same_fingerprint() -> None:
    options: dict[str, Any] = {
        "pending": True,
        "timeout_s": 60,
        "metadata": {"reference": "invoice-1", "channel": "api"},
    }
    assert simple_transfer(**options).fingerprint == simple_transfer(**options).fingerprint


def test_the_fingerprint_does_not_depend_on_the_order_of_metadata_keys() -> None:
    first = simple_transfer(metadata={"a": "1", "b": "2"})
    second = simple_transfer(metadata={"b": "2", "a": "1"})
    assert first.fingerprint == second.fingerprint


def test_the_fingerprint_does_not_depend_on_the_key_it_was_sent_with() -> None:
    first = simple_transfer(idempotency_key="k-1")
    second = simple_transfer(idempotency_key="k-2")
    assert first.fingerprint == second.fingerprint


@pytest.mark.parametrize(
    "overrides",
    [
        {"postings": (debit(ALICE, 101), credit(BOB, 101))},
        {"postings": (debit(BOB, 100), credit(ALICE, 100))},
        {"postings": (debit(ALICE, 100), credit(CAROL, 100))},
        {"postings": (debit(ALICE, 100, "EUR"), credit(BOB, 100, "EUR"))},
        {"postings": (debit(ALICE, 100), credit(BOB, 60), credit(CAROL, 40))},
        {"pending": True},
        {"pending": True, "timeout_s": 60},
        {"metadata": {"reference": "invoice-1"}},
    ],
)
def test_transfer_requests_that_differ_in_any_detail_have_different_fingerprints(
    overrides: dict[str, Any],
) -> None:
    assert simple_transfer(**overrides).fingerprint != simple_transfer().fingerprint


def test_pending_requests_with_different_timeouts_have_different_fingerprints() -> None:
    first = simple_transfer(pending=True, timeout_s=60)
    second = simple_transfer(pending=True, timeout_s=61)
    assert first.fingerprint != second.fingerprint


def test_metadata_values_that_differ_give_different_fingerprints() -> None:
    first = simple_transfer(metadata={"reference": "invoice-1"})
    second = simple_transfer(metadata={"reference": "invoice-2"})
    assert first.fingerprint != second.fingerprint


def test_identical_account_requests_have_the_same_fingerprint() -> None:
    def request() -> str:
        return open_account(
            idempotency_key="acct-1",
            currency="EUR",
            owner_id="owner-1",
            debits_must_not_exceed_credits=True,
            metadata={"b": "2", "a": "1"},
        ).fingerprint

    assert request() == request()


@pytest.mark.parametrize(
    "overrides",
    [
        {"currency": "EUR"},
        {"owner_id": "owner-2"},
        {"kind": AccountKind.FEES},
        {"debits_must_not_exceed_credits": True},
        {"credits_must_not_exceed_debits": True},
        {"metadata": {"label": "main"}},
    ],
)
def test_account_requests_that_differ_in_any_detail_have_different_fingerprints(
    overrides: dict[str, Any],
) -> None:
    arguments: dict[str, Any] = {
        "idempotency_key": "acct-1",
        "currency": "USD",
        "owner_id": "owner-1",
    }
    base = open_account(**arguments)
    changed = open_account(**{**arguments, **overrides})
    assert changed.fingerprint != base.fingerprint


def test_an_account_and_a_transfer_never_share_a_fingerprint() -> None:
    account = open_account(idempotency_key="k", currency="USD", owner_id="owner-1")
    assert account.fingerprint != simple_transfer().fingerprint


# Accounts and state changes ----------------------------------------------------


def test_an_account_cannot_limit_both_debits_and_credits() -> None:
    with pytest.raises(LedgerRefusal) as refused:
        open_account(
            idempotency_key="acct-1",
            currency="USD",
            owner_id="owner-1",
            debits_must_not_exceed_credits=True,
            credits_must_not_exceed_debits=True,
        )
    assert refused.value.code is ResultCode.INVALID_ACCOUNT_FLAGS


def test_an_account_in_an_unknown_currency_is_refused() -> None:
    with pytest.raises(LedgerRefusal) as refused:
        open_account(idempotency_key="acct-1", currency="XXX", owner_id="owner-1")
    assert refused.value.code is ResultCode.UNKNOWN_CURRENCY


@pytest.mark.parametrize("owner_id", ["", "o" * (ACTOR_LENGTH_MAX + 1)])
def test_an_account_owner_id_that_is_empty_or_too_long_is_refused(owner_id: str) -> None:
    with pytest.raises(LedgerRefusal) as refused:
        open_account(idempotency_key="acct-1", currency="USD", owner_id=owner_id)
    assert refused.value.code is ResultCode.INVALID_METADATA


def test_an_account_with_invalid_metadata_is_refused() -> None:
    with pytest.raises(LedgerRefusal) as refused:
        open_account(
            idempotency_key="acct-1",
            currency="USD",
            owner_id="owner-1",
            metadata={"k": "v" * (METADATA_VALUE_LENGTH_MAX + 1)},
        )
    assert refused.value.code is ResultCode.INVALID_METADATA


def test_an_open_account_request_carries_its_terms() -> None:
    command = open_account(
        idempotency_key="acct-1",
        currency="JPY",
        owner_id="owner-1",
        kind=AccountKind.FEES,
        credits_must_not_exceed_debits=True,
        metadata={"label": "fees"},
    )
    assert (command.currency, command.owner_id, command.kind) == ("JPY", "owner-1", "fees")
    assert command.credits_must_not_exceed_debits is True
    assert command.debits_must_not_exceed_credits is False
    assert command.metadata == {"label": "fees"}


@pytest.mark.parametrize(
    ("reason", "actor"),
    [
        ("", "operator-1"),
        ("r" * (REASON_LENGTH_MAX + 1), "operator-1"),
        ("fraud review", ""),
        ("fraud review", "a" * (ACTOR_LENGTH_MAX + 1)),
    ],
)
def test_a_state_change_needs_a_reason_and_an_actor_within_their_limits(
    reason: str, actor: str
) -> None:
    with pytest.raises(LedgerRefusal) as refused:
        change_account_state(
            account_id=ALICE, new_state=AccountState.SUSPENDED, reason=reason, actor=actor
        )
    assert refused.value.code is ResultCode.INVALID_METADATA


def test_a_state_change_with_a_reason_and_an_actor_is_accepted() -> None:
    command = change_account_state(
        account_id=ALICE, new_state=AccountState.SUSPENDED, reason="fraud review", actor="op-1"
    )
    assert (command.account_id, command.new_state) == (ALICE, AccountState.SUSPENDED)
    assert (command.reason, command.actor, command.linked) == ("fraud review", "op-1", False)
