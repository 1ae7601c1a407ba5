"""The account aggregate: one currency, four running totals, a state.

Balances are never stored as one number that gets overwritten. An account
keeps posted and pending debit and credit totals (as TigerBeetle does), and
every change to them is a `PostingsApplied` event that names the transfers
behind it. The ledger writer applies one such event per account per batch,
with the net change of every transfer in the batch that touched the account.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import NamedTuple
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.field_checks import is_storable_text
from domain.money import AMOUNT_MINOR_MAX, currency_exponent
from domain.result_codes import LedgerRefusal, ResultCode


class AccountKind(StrEnum):
    USER = "user"
    CASH = "cash"
    FUNDING = "funding"
    PAYOUTS_CLEARING = "payouts_clearing"
    FEES = "fees"
    EQUITY = "equity"
    TRADING_PNL = "trading_pnl"


class AccountState(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"


# Which state may follow which. CLOSED is final.
_ALLOWED_TRANSITIONS: dict[AccountState, frozenset[AccountState]] = {
    AccountState.ACTIVE: frozenset({AccountState.SUSPENDED, AccountState.CLOSED}),
    AccountState.SUSPENDED: frozenset({AccountState.ACTIVE, AccountState.CLOSED}),
    AccountState.CLOSED: frozenset(),
}


class Totals(NamedTuple):
    """An account's four running totals in minor units."""

    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0

    def plus(self, other: Totals) -> Totals:
        return Totals(
            self.debits_pending + other.debits_pending,
            self.debits_posted + other.debits_posted,
            self.credits_pending + other.credits_pending,
            self.credits_posted + other.credits_posted,
        )

    def is_within_bounds(self) -> bool:
        limit = AMOUNT_MINOR_MAX
        return (
            0 <= self[0] <= limit
            and 0 <= self[1] <= limit
            and 0 <= self[2] <= limit
            and 0 <= self[3] <= limit
        )


METADATA_KEYS_MAX = 16
METADATA_KEY_LENGTH_MAX = 64
METADATA_VALUE_LENGTH_MAX = 512


def require_valid_metadata(metadata: object) -> dict[str, str]:
    """Metadata is a small flat map of strings, for references and labels."""
    if not isinstance(metadata, dict):
        raise LedgerRefusal(ResultCode.INVALID_METADATA, "metadata must be an object of strings")
    if len(metadata) > METADATA_KEYS_MAX:
        raise LedgerRefusal(
            ResultCode.INVALID_METADATA, f"metadata may have at most {METADATA_KEYS_MAX} keys"
        )
    for key, value in metadata.items():
        if (
            isinstance(key, str)
            and isinstance(value, str)
            and not (is_storable_text(key) and is_storable_text(value))
        ):
            raise LedgerRefusal(
                ResultCode.INVALID_METADATA,
                "metadata keys and values must be valid Unicode (no lone surrogates)",
            )
        if not isinstance(key, str) or not 1 <= len(key) <= METADATA_KEY_LENGTH_MAX:
            raise LedgerRefusal(
                ResultCode.INVALID_METADATA,
                f"metadata keys must be strings of 1 to {METADATA_KEY_LENGTH_MAX} characters",
            )
        if not isinstance(value, str) or len(value) > METADATA_VALUE_LENGTH_MAX:
            raise LedgerRefusal(
                ResultCode.INVALID_METADATA,
                f"metadata value of {key!r} must be a string of at most "
                f"{METADATA_VALUE_LENGTH_MAX} characters",
            )
    return dict(metadata)


class Account(Aggregate):
    @event("Opened")
    def __init__(
        self,
        id: UUID,  # noqa: A002 - the library takes the aggregate id by this name
        currency: str,
        owner_id: str,
        kind: str,
        debits_must_not_exceed_credits: bool,
        credits_must_not_exceed_debits: bool,
        metadata: dict[str, str],
        fingerprint: str,
        opened_at: datetime,
    ) -> None:
        self.currency = currency
        self.owner_id = owner_id
        # Plain values, not enums or tuples, so a snapshot's JSON round trip
        # gives back exactly what was there; the properties below type them.
        self._kind = AccountKind(kind).value
        self.debits_must_not_exceed_credits = debits_must_not_exceed_credits
        self.credits_must_not_exceed_debits = credits_must_not_exceed_debits
        self.metadata = metadata
        self.fingerprint = fingerprint
        self.opened_at = opened_at
        self._state = AccountState.ACTIVE.value
        self._totals = (0, 0, 0, 0)
        self.state_reason = ""

    @property
    def kind(self) -> AccountKind:
        return AccountKind(self._kind)

    @property
    def state(self) -> AccountState:
        return AccountState(self._state)

    @property
    def totals(self) -> Totals:
        return Totals(*self._totals)

    @staticmethod
    def require_valid_terms(
        currency: str, debits_must_not_exceed_credits: bool, credits_must_not_exceed_debits: bool
    ) -> None:
        currency_exponent(currency)
        if debits_must_not_exceed_credits and credits_must_not_exceed_debits:
            raise LedgerRefusal(
                ResultCode.INVALID_ACCOUNT_FLAGS,
                "an account cannot limit both debits by credits and credits by debits",
            )

    def refusal_for(self, totals: Totals) -> ResultCode | None:
        """Would these totals break one of the account's limits? Which one?"""
        if not totals.is_within_bounds():
            return ResultCode.OVERFLOW
        if self.debits_must_not_exceed_credits and (
            totals.debits_pending + totals.debits_posted > totals.credits_posted
        ):
            return ResultCode.INSUFFICIENT_FUNDS
        if self.credits_must_not_exceed_debits and (
            totals.credits_pending + totals.credits_posted > totals.debits_posted
        ):
            return ResultCode.EXCEEDS_DEBITS
        return None

    def apply_postings(self, change: Totals, transfer_ids: list[str]) -> None:
        after = self.totals.plus(change)
        # The batch that computed `change` already refused anything that would
        # break a limit; this is the last line of defence, not the check.
        if after.debits_pending < 0 or after.credits_pending < 0:
            raise AssertionError(f"account {self.id} pending totals would go negative")
        if self.refusal_for(after) is not None and not _only_releases(change):
            raise AssertionError(f"account {self.id} would break its limit: {after}")
        self._postings_applied(
            debits_pending=change.debits_pending,
            debits_posted=change.debits_posted,
            credits_pending=change.credits_pending,
            credits_posted=change.credits_posted,
            transfer_ids=transfer_ids,
        )

    @event("PostingsApplied")
    def _postings_applied(
        self,
        debits_pending: int,
        debits_posted: int,
        credits_pending: int,
        credits_posted: int,
        transfer_ids: list[str],
    ) -> None:
        before = self._totals
        self._totals = (
            before[0] + debits_pending,
            before[1] + debits_posted,
            before[2] + credits_pending,
            before[3] + credits_posted,
        )

    @staticmethod
    def require_state_change(
        current: AccountState, new_state: AccountState, totals: Totals
    ) -> None:
        """May an account in `current` with these totals go to `new_state`?"""
        if new_state not in _ALLOWED_TRANSITIONS[current]:
            raise LedgerRefusal(
                ResultCode.INVALID_STATE_TRANSITION,
                f"account cannot go from {current.value} to {new_state.value}",
                from_state=current.value,
                to_state=new_state.value,
            )
        if new_state is AccountState.CLOSED:
            if totals.debits_pending or totals.credits_pending:
                raise LedgerRefusal(
                    ResultCode.ACCOUNT_HAS_PENDING_TRANSFERS,
                    "void or post the account's pending transfers before closing it",
                )
            if totals.debits_posted != totals.credits_posted:
                raise LedgerRefusal(
                    ResultCode.ACCOUNT_BALANCE_NOT_ZERO,
                    "move the account's balance out before closing it",
                )

    def change_state(self, new_state: AccountState, reason: str, actor: str, at: datetime) -> None:
        self.require_state_change(self.state, new_state, self.totals)
        self._state_changed(
            from_state=self.state.value, to_state=new_state.value, reason=reason, actor=actor, at=at
        )

    @event("StateChanged")
    def _state_changed(
        self, from_state: str, to_state: str, reason: str, actor: str, at: datetime
    ) -> None:
        self._state = AccountState(to_state).value
        self.state_reason = reason


def _only_releases(change: Totals) -> bool:
    """A change that only lowers pending totals (void, expiry) is always allowed."""
    return (
        change.debits_pending <= 0
        and change.credits_pending <= 0
        and change.debits_posted == 0
        and change.credits_posted == 0
    )
