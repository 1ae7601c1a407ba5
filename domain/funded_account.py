"""The funded account aggregate: a trader's account funded after a passed assessment.

See docs/rules.md#funded-accounts-and-withdrawals (figures, withdrawable, rules
and bands) and docs/rules.md#tiers-forks-and-merges (tiers, states). Money is
integer minor units of `domain.tiers.TIER_CURRENCY`; prices and quantities are
ints, as in the Broker port; ratios are `Fraction`s.

Figures, all kept from events only:
    current balance    = starting + realized P&L - total withdrawn
    equity             = current balance + unrealized P&L
    peak               = the highest equity seen at activation, a mark or a
                         close, lowered by each withdrawal (money the trader
                         took out is not a drawdown), so peak >= equity always
    unrealized P&L     = sum over open positions of the P&L at their last mark
                         (a position is marked at its entry price until marked)
Drawdown compares equity with the peak; risk per trade is the largest open
position's value at its mark over the current balance (the capital the tier
share is measured against, too).

Creation. `FundedAccount.activate` validates and records one `Activated` event,
and the account starts ACTIVE: the account is activated with its starting
balance (docs/rules.md#funded-accounts-and-withdrawals), and one event makes
activation all or nothing (a SAFE account waiting for a second "activate" event
would be the half-way state activation must never leave). SAFE stays as the
"figures kept, no new trading" state an account can be put into and taken out
of. The id is derived from the assessment id (`funded_account_id_for`), so an
assessment funds at most one account: a second activation finds the first.

Profit split. Kept in events and state as the text of a normalised fraction
(`str(Fraction)`: "4/5", "1"), exact and readable in the stored JSON; the
`profit_split` property gives the Fraction back.

Refusals. Every refusal raises `LedgerRefusal` with a stable `ResultCode`
(an account not active, an invalid state transition, a withdrawal over the
withdrawable amount). Those particular to funded accounts raise its subclass
`FundedAccountRefusal`, which also names the `FundedRefusalReason` (whose
values are the codes'; the tier reasons match
`domain.tiers.PositionRefusalReason`). Inputs of the wrong type or shape (a
float price, a naive time) are programming errors: TypeError / ValueError.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from fractions import Fraction
from typing import Any, Final
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.funded_account_states import ALLOWED_TRANSITIONS, FundedAccountState
from domain.funded_rules import (
    WITHDRAWAL_MINIMUM_MINOR,
    AccountRuleStatus,
    RuleBand,
    rule_status,
    withdrawable_minor,
)
from domain.marks import Mark, marks_missing_or_stale
from domain.money import describe_money, format_amount, require_valid_minor
from domain.positions import PositionSide, position_pnl_minor
from domain.result_codes import LedgerRefusal, ResultCode
from domain.tiers import (
    TIER_CURRENCY,
    TIERS,
    PositionRefusalReason,
    Tier,
    TierName,
    position_decision,
)

# uuid5 namespace of funded account ids; never change it, or every id changes.
FUNDED_ACCOUNT_NAMESPACE: Final = UUID("5d2b7c1e-8f4a-4e9b-b3c6-1a7d9e2f4c80")
NAME_LENGTH_MAX: Final[int] = 128


def funding_transfer_key(funded_account_id: UUID) -> str:
    """The idempotency key of the transfer that funds an activated account
    (reconciliation finds the transfer by it)."""
    return f"funding-{funded_account_id}"


def fork_capital_transfer_key(fork_id: UUID) -> str:
    """The idempotency key of the transfer a fork moves capital with."""
    return f"fork-capital-{fork_id}"


def merge_capital_transfer_key(merge_id: UUID) -> str:
    """The idempotency key of the transfer a merge moves capital with."""
    return f"merge-capital-{merge_id}"


def funded_account_id_for(assessment_id: str) -> UUID:
    """The one funded account an assessment can fund."""
    return uuid5(FUNDED_ACCOUNT_NAMESPACE, _require_name("assessment_id", assessment_id))


class FundedRefusalReason(StrEnum):
    """Refusals particular to funded accounts; each value is a ResultCode's."""

    TOO_MANY_OPEN_POSITIONS = PositionRefusalReason.TOO_MANY_OPEN_POSITIONS.value
    POSITION_EXCEEDS_TIER_SHARE = PositionRefusalReason.POSITION_EXCEEDS_TIER_SHARE.value
    CAPITAL_NOT_POSITIVE = PositionRefusalReason.CAPITAL_NOT_POSITIVE.value
    POSITION_ALREADY_OPEN = "position_already_open"
    POSITION_NOT_FOUND = "position_not_found"
    REALIZED_PNL_MISMATCH = "realized_pnl_mismatch"
    OPEN_POSITIONS_REMAIN = "open_positions_remain"
    STARTING_BALANCE_BELOW_TIER_MINIMUM = "starting_balance_below_tier_minimum"


class FundedAccountRefusal(LedgerRefusal):
    """A funded-account command refused; nothing was recorded."""

    def __init__(self, reason: FundedRefusalReason, message: str, **details: object) -> None:
        super().__init__(ResultCode(reason.value), message, **details)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RuleDecision:
    """The rules read on the newest marks. `taken` False: a mark was missing or
    too old (`stale` says which and why), and nothing was recorded."""

    rule_status: AccountRuleStatus
    taken: bool
    marks: Mapping[str, Mark]
    stale: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class OpenPosition:
    position_id: str
    symbol: str
    side: PositionSide
    quantity: int
    entry_price_minor: int
    mark_price_minor: int
    opened_at: datetime

    @property
    def unrealized_pnl_minor(self) -> int:
        return position_pnl_minor(
            self.side, self.entry_price_minor, self.mark_price_minor, self.quantity
        )

    @property
    def market_value_minor(self) -> int:
        """The position's size at its mark, whichever its side: never negative."""
        return self.mark_price_minor * self.quantity


class FundedAccount(Aggregate):
    @classmethod
    def activate(
        cls,
        *,
        assessment_id: str,
        owner_id: str,
        tier: TierName,
        profit_split: Fraction,
        completed_at: datetime,
        ledger_account_id: UUID,
        activated_at: datetime,
        actor: str,
        starting_balance_minor: int | None = None,
    ) -> FundedAccount:
        """Fund an account for a passed assessment (the caller checked it passed).

        The starting balance is the tier's minimum capital unless given; a
        given one may not be below it.
        """
        tier_limits = TIERS[TierName(tier)]
        starting = require_valid_minor(
            tier_limits.minimum_capital_minor
            if starting_balance_minor is None
            else starting_balance_minor
        )
        if starting < tier_limits.minimum_capital_minor:
            raise FundedAccountRefusal(
                FundedRefusalReason.STARTING_BALANCE_BELOW_TIER_MINIMUM,
                f"a {tier_limits.name} account starts with at least "
                f"{describe_money(tier_limits.minimum_capital_minor, TIER_CURRENCY)}",
                currency=TIER_CURRENCY,
                starting_balance=format_amount(starting, TIER_CURRENCY),
                minimum_capital=format_amount(tier_limits.minimum_capital_minor, TIER_CURRENCY),
                starting_balance_minor=starting,
                minimum_capital_minor=tier_limits.minimum_capital_minor,
            )
        if not isinstance(profit_split, Fraction) or not 0 < profit_split <= 1:
            raise ValueError(f"profit_split must be a Fraction in (0, 1], not {profit_split!r}")
        return cls(
            id=funded_account_id_for(assessment_id),
            assessment_id=assessment_id,
            owner_id=_require_name("owner_id", owner_id),
            tier=tier_limits.name.value,
            profit_split=str(profit_split),
            completed_at=_require_aware("completed_at", completed_at),
            ledger_account_id=str(ledger_account_id),
            starting_balance_minor=starting,
            activated_at=_require_aware("activated_at", activated_at),
            actor=_require_name("actor", actor),
        )

    @event("Activated")
    def __init__(
        self,
        id: UUID,  # noqa: A002 - the library takes the aggregate id by this name
        assessment_id: str,
        owner_id: str,
        tier: str,
        profit_split: str,
        completed_at: datetime,
        ledger_account_id: str,
        starting_balance_minor: int,
        activated_at: datetime,
        actor: str,
    ) -> None:
        # Plain values only (str, int, dict), so a snapshot's JSON round trip
        # gives back exactly what was there; the properties below type them.
        self.assessment_id = assessment_id
        self.owner_id = owner_id
        self._tier = tier
        self._profit_split = profit_split
        self.completed_at = completed_at
        self._ledger_account_id = ledger_account_id
        self.activated_at = activated_at
        self.activated_by = actor
        self._state = FundedAccountState.ACTIVE.value
        self.state_reason = "activated"
        self.state_changed_by = actor
        self.state_changed_at = activated_at
        self._band = RuleBand.SAFE.value
        self.starting_balance_minor = starting_balance_minor
        self.current_balance_minor = starting_balance_minor
        self.peak_balance_minor = starting_balance_minor
        self.realized_pnl_minor = 0
        self.unrealized_pnl_minor = 0
        self.total_withdrawn_minor = 0
        # position id -> {symbol, side, quantity, entry/mark price, opened_at (ISO)}
        self._positions: dict[str, dict[str, Any]] = {}
        # withdrawal id -> amount, so recording one twice is recognised
        self._withdrawals: dict[str, int] = {}
        # withdrawal id -> amount held for a requested withdrawal
        self._reserved_withdrawals: dict[str, int] = {}

    # Reading -------------------------------------------------------------------------

    @property
    def state(self) -> FundedAccountState:
        return FundedAccountState(self._state)

    @property
    def tier(self) -> Tier:
        return TIERS[TierName(self._tier)]

    @property
    def profit_split(self) -> Fraction:
        return Fraction(self._profit_split)

    @property
    def ledger_account_id(self) -> UUID:
        return UUID(self._ledger_account_id)

    @property
    def band(self) -> RuleBand:
        """The band last recorded by `record_rule_status` (SAFE at activation)."""
        return RuleBand(self._band)

    @property
    def equity_minor(self) -> int:
        return self.current_balance_minor + self.unrealized_pnl_minor

    @property
    def positions(self) -> tuple[OpenPosition, ...]:
        """Open positions, in the order they were opened."""
        return tuple(
            OpenPosition(
                position_id=position_id,
                symbol=data["symbol"],
                side=PositionSide(data["side"]),
                quantity=data["quantity"],
                entry_price_minor=data["entry_price_minor"],
                mark_price_minor=data["mark_price_minor"],
                opened_at=datetime.fromisoformat(data["opened_at"]),
            )
            for position_id, data in self._positions.items()
        )

    @property
    def _reservations(self) -> dict[str, int]:
        # A snapshot taken before withdrawals were reserved has no such field.
        reserved: dict[str, int] = self.__dict__.get("_reserved_withdrawals", {})
        return reserved

    @property
    def withdrawal_reservations(self) -> dict[str, int]:
        """Withdrawal id -> amount, for each requested withdrawal still held."""
        return dict(self._reservations)

    @property
    def reserved_withdrawals_minor(self) -> int:
        """What requested withdrawals hold until they are paid or given back."""
        return sum(self._reservations.values())

    def withdrawable_minor(self) -> int:
        """The trader's share of the profit made, less what was withdrawn and
        what requests hold (`funded_rules.withdrawable_minor` on the formula)."""
        return withdrawable_minor(
            self.profit_split,
            self.current_balance_minor,
            self.starting_balance_minor,
            self.total_withdrawn_minor,
            self.reserved_withdrawals_minor,
        )

    def rule_status(self) -> AccountRuleStatus:
        largest = max((position.market_value_minor for position in self.positions), default=0)
        return rule_status(
            self.tier,
            peak_minor=self.peak_balance_minor,
            current_minor=self.equity_minor,
            largest_position_minor=largest,
            balance_minor=self.current_balance_minor,
        )

    # State ---------------------------------------------------------------------------

    @staticmethod
    def require_state_change(
        current: FundedAccountState, new_state: FundedAccountState, open_positions: int
    ) -> None:
        """May an account in `current` with this many open positions go to `new_state`?"""
        if new_state not in ALLOWED_TRANSITIONS[current]:
            raise LedgerRefusal(
                ResultCode.INVALID_STATE_TRANSITION,
                f"a funded account cannot go from {current.value} to {new_state.value}",
                from_state=current.value,
                to_state=new_state.value,
            )
        if new_state is FundedAccountState.CLOSED and open_positions:
            raise FundedAccountRefusal(
                FundedRefusalReason.OPEN_POSITIONS_REMAIN,
                "close the account's positions before closing it",
                open_positions=open_positions,
            )

    def change_state(
        self, new_state: FundedAccountState, reason: str, actor: str, at: datetime
    ) -> None:
        self.require_state_change(self.state, FundedAccountState(new_state), len(self._positions))
        self._state_changed(
            from_state=self.state.value,
            to_state=FundedAccountState(new_state).value,
            reason=_require_name("reason", reason, length_max=1024),
            actor=_require_name("actor", actor),
            at=_require_aware("at", at),
        )

    @event("StateChanged")
    def _state_changed(
        self, from_state: str, to_state: str, reason: str, actor: str, at: datetime
    ) -> None:
        self._state = to_state
        self.state_reason = reason
        self.state_changed_by = actor
        self.state_changed_at = at

    # Positions -----------------------------------------------------------------------

    def open_position(
        self,
        position_id: str,
        symbol: str,
        side: PositionSide,
        quantity: int,
        entry_price_minor: int,
        at: datetime,
    ) -> None:
        """Record an opened position; the tier's count and share limits apply."""
        self._require_state(FundedAccountState.ACTIVE)
        _require_name("position_id", position_id)
        _require_name("symbol", symbol)
        _require_positive_int("quantity", quantity)
        _require_positive_int("entry_price_minor", entry_price_minor)
        if position_id in self._positions:
            raise FundedAccountRefusal(
                FundedRefusalReason.POSITION_ALREADY_OPEN,
                f"position {position_id} is already open",
                position_id=position_id,
            )
        decision = position_decision(
            self.tier,
            len(self._positions),
            quantity * entry_price_minor,
            self.current_balance_minor,
        )
        if decision.refusal is not None:
            raise FundedAccountRefusal(
                FundedRefusalReason(decision.refusal.value), decision.message, **decision.details
            )
        self._position_opened(
            position_id=position_id,
            symbol=symbol,
            side=PositionSide(side).value,
            quantity=quantity,
            entry_price_minor=entry_price_minor,
            at=_require_aware("at", at),
        )

    @event("PositionOpened")
    def _position_opened(
        self,
        position_id: str,
        symbol: str,
        side: str,
        quantity: int,
        entry_price_minor: int,
        at: datetime,
    ) -> None:
        # Copied, never changed in place: a snapshot taken earlier shares nothing.
        self._positions = {
            **self._positions,
            position_id: {
                "symbol": symbol,
                "side": side,
                "quantity": quantity,
                "entry_price_minor": entry_price_minor,
                "mark_price_minor": entry_price_minor,
                "opened_at": at.isoformat(),
            },
        }

    def close_position(
        self, position_id: str, exit_price_minor: int, realized_pnl_minor: int, at: datetime
    ) -> None:
        """Record a close at `exit_price_minor`; the caller's P&L (from the fill)
        must be what the long/short rule gives, or the fill and the books disagree."""
        self._require_not_closed()
        _require_positive_int("exit_price_minor", exit_price_minor)
        if type(realized_pnl_minor) is not int:
            raise TypeError("realized_pnl_minor must be an int of minor units")
        position = next((p for p in self.positions if p.position_id == position_id), None)
        if position is None:
            raise FundedAccountRefusal(
                FundedRefusalReason.POSITION_NOT_FOUND,
                f"no open position {position_id}",
                position_id=position_id,
            )
        expected = position_pnl_minor(
            position.side, position.entry_price_minor, exit_price_minor, position.quantity
        )
        if realized_pnl_minor != expected:
            raise FundedAccountRefusal(
                FundedRefusalReason.REALIZED_PNL_MISMATCH,
                f"a {position.side.value} position closed at "
                f"{describe_money(exit_price_minor, TIER_CURRENCY)} realizes "
                f"{describe_money(expected, TIER_CURRENCY)}, not "
                f"{describe_money(realized_pnl_minor, TIER_CURRENCY)}",
                position_id=position_id,
                currency=TIER_CURRENCY,
                expected_pnl=format_amount(expected, TIER_CURRENCY),
                realized_pnl=format_amount(realized_pnl_minor, TIER_CURRENCY),
                expected_pnl_minor=expected,
                realized_pnl_minor=realized_pnl_minor,
            )
        self._position_closed(
            position_id=position_id,
            exit_price_minor=exit_price_minor,
            realized_pnl_minor=realized_pnl_minor,
            at=_require_aware("at", at),
        )

    @event("PositionClosed")
    def _position_closed(
        self, position_id: str, exit_price_minor: int, realized_pnl_minor: int, at: datetime
    ) -> None:
        self._positions = {
            other: data for other, data in self._positions.items() if other != position_id
        }
        self.realized_pnl_minor += realized_pnl_minor
        self.current_balance_minor += realized_pnl_minor
        self._revalue()

    def mark_to_market(self, prices: Mapping[str, int], at: datetime) -> None:
        """Mark open positions at these prices (minor units per unit, by symbol).

        One price per symbol: the caller passes the mark (bid for a long, ask
        for a short). Symbols without an open position are ignored; nothing is
        recorded when no mark changes.
        """
        self._require_not_closed()
        for symbol, price in prices.items():
            _require_positive_int(f"prices[{symbol!r}]", price)
        changed = {
            symbol: price
            for symbol, price in sorted(prices.items())
            if any(
                data["symbol"] == symbol and data["mark_price_minor"] != price
                for data in self._positions.values()
            )
        }
        if changed:
            self._marked_to_market(prices=changed, at=_require_aware("at", at))

    @event("MarkedToMarket")
    def _marked_to_market(self, prices: dict[str, int], at: datetime) -> None:
        self._positions = {
            position_id: {
                **data,
                "mark_price_minor": prices.get(data["symbol"], data["mark_price_minor"]),
            }
            for position_id, data in self._positions.items()
        }
        self._revalue()

    def _revalue(self) -> None:
        """Unrealized P&L from the marks; the peak follows equity up."""
        self.unrealized_pnl_minor = sum(p.unrealized_pnl_minor for p in self.positions)
        self.peak_balance_minor = max(self.peak_balance_minor, self.equity_minor)

    # Withdrawals ---------------------------------------------------------------------

    def reserve_withdrawal(
        self, amount_minor: int, withdrawal_id: str, at: datetime, *, closing: bool = False
    ) -> None:
        """Hold an amount for a requested withdrawal, so that requests can
        never together pass what is withdrawable. The checks of
        docs/rules.md#funded-accounts-and-withdrawals, each with its own code,
        in this order: the account is active, holds no open position, the
        amount is at least the minimum and at most withdrawable. A closure's
        tranche (`closing`) is paid from an account pending closure and pays
        out the last cent, so it has no minimum. Reserving the same id with the
        same amount again records nothing."""
        _require_name("withdrawal_id", withdrawal_id)
        require_valid_minor(amount_minor)
        reserved = self._reservations.get(withdrawal_id)
        if reserved is not None or withdrawal_id in self._withdrawals:
            if amount_minor in (reserved, self._withdrawals.get(withdrawal_id)):
                return
            raise LedgerRefusal(
                ResultCode.IDEMPOTENCY_KEY_REUSED,
                f"withdrawal {withdrawal_id} was reserved with another amount",
                withdrawal_id=withdrawal_id,
            )
        self._require_state(
            FundedAccountState.PENDING_CLOSURE if closing else FundedAccountState.ACTIVE
        )
        if self._positions:
            raise LedgerRefusal(
                ResultCode.OPEN_POSITIONS,
                f"close the account's {len(self._positions)} open positions before withdrawing",
                open_positions=len(self._positions),
            )
        if amount_minor < WITHDRAWAL_MINIMUM_MINOR and not closing:
            raise LedgerRefusal(
                ResultCode.BELOW_MINIMUM,
                "a withdrawal is at least "
                f"{describe_money(WITHDRAWAL_MINIMUM_MINOR, TIER_CURRENCY)}",
                currency=TIER_CURRENCY,
                amount=format_amount(amount_minor, TIER_CURRENCY),
                minimum=format_amount(WITHDRAWAL_MINIMUM_MINOR, TIER_CURRENCY),
                amount_minor=amount_minor,
                minimum_minor=WITHDRAWAL_MINIMUM_MINOR,
            )
        withdrawable = self.withdrawable_minor()
        if amount_minor > withdrawable:
            raise LedgerRefusal(
                ResultCode.EXCEEDS_WITHDRAWABLE,
                f"at most {describe_money(withdrawable, TIER_CURRENCY)} is withdrawable now; "
                f"{describe_money(amount_minor, TIER_CURRENCY)} was requested",
                currency=TIER_CURRENCY,
                requested=format_amount(amount_minor, TIER_CURRENCY),
                withdrawable=format_amount(withdrawable, TIER_CURRENCY),
                amount_minor=amount_minor,
                withdrawable_minor=withdrawable,
            )
        self._withdrawal_reserved(
            amount_minor=amount_minor, withdrawal_id=withdrawal_id, at=_require_aware("at", at)
        )

    @event("WithdrawalReserved")
    def _withdrawal_reserved(self, amount_minor: int, withdrawal_id: str, at: datetime) -> None:
        self._reserved_withdrawals = {**self._reservations, withdrawal_id: amount_minor}

    def release_withdrawal(self, withdrawal_id: str, at: datetime) -> None:
        """Give a reserved amount back (the withdrawal was rejected or its payout
        failed). Releasing one not reserved (any more) records nothing."""
        amount = self._reservations.get(withdrawal_id)
        if amount is None:
            return
        self._withdrawal_released(
            withdrawal_id=withdrawal_id, amount_minor=amount, at=_require_aware("at", at)
        )

    @event("WithdrawalReleased")
    def _withdrawal_released(self, withdrawal_id: str, amount_minor: int, at: datetime) -> None:
        self._reserved_withdrawals = {
            key: amount for key, amount in self._reservations.items() if key != withdrawal_id
        }

    def record_withdrawal(self, amount_minor: int, withdrawal_id: str, at: datetime) -> None:
        """Record money paid out to the trader.

        A reserved withdrawal is a fact once paid: it is recorded whatever the
        account's state now, and its reservation becomes part of the total
        withdrawn. One not reserved must be withdrawable now from an active
        (or closing) account. The same id with the same amount again records
        nothing; with another amount it is refused.
        """
        _require_name("withdrawal_id", withdrawal_id)
        require_valid_minor(amount_minor)
        recorded = self._withdrawals.get(withdrawal_id)
        if recorded is not None:
            if recorded == amount_minor:
                return
            raise LedgerRefusal(
                ResultCode.IDEMPOTENCY_KEY_REUSED,
                f"withdrawal {withdrawal_id} was recorded with another amount",
                withdrawal_id=withdrawal_id,
                recorded_amount_minor=recorded,
            )
        reserved = self._reservations.get(withdrawal_id)
        if reserved is not None and reserved != amount_minor:
            raise LedgerRefusal(
                ResultCode.IDEMPOTENCY_KEY_REUSED,
                f"withdrawal {withdrawal_id} was reserved with another amount",
                withdrawal_id=withdrawal_id,
                reserved_amount_minor=reserved,
            )
        if reserved is None:
            if self.state not in (FundedAccountState.ACTIVE, FundedAccountState.PENDING_CLOSURE):
                raise LedgerRefusal(
                    ResultCode.ACCOUNT_NOT_ACTIVE,
                    f"a {self.state.value} funded account pays out nothing",
                    state=self.state.value,
                )
            withdrawable = self.withdrawable_minor()
            if amount_minor > withdrawable:
                raise LedgerRefusal(
                    ResultCode.EXCEEDS_WITHDRAWABLE,
                    f"at most {describe_money(withdrawable, TIER_CURRENCY)} is withdrawable; "
                    f"{describe_money(amount_minor, TIER_CURRENCY)} was requested",
                    currency=TIER_CURRENCY,
                    requested=format_amount(amount_minor, TIER_CURRENCY),
                    withdrawable=format_amount(withdrawable, TIER_CURRENCY),
                    amount_minor=amount_minor,
                    withdrawable_minor=withdrawable,
                )
        at = _require_aware("at", at)
        if reserved is not None:
            # The reservation ends as the amount becomes withdrawn: two events
            # in one write, so a reader adds and subtracts, never guesses.
            self._withdrawal_released(withdrawal_id=withdrawal_id, amount_minor=reserved, at=at)
        self._withdrawal_recorded(amount_minor=amount_minor, withdrawal_id=withdrawal_id, at=at)

    @event("WithdrawalRecorded")
    def _withdrawal_recorded(self, amount_minor: int, withdrawal_id: str, at: datetime) -> None:
        self._withdrawals = {**self._withdrawals, withdrawal_id: amount_minor}
        self.total_withdrawn_minor += amount_minor
        self.current_balance_minor -= amount_minor
        # Money the trader took out is not a loss: the peak goes down with it.
        self.peak_balance_minor -= amount_minor

    # Capital moved by forks and merges --------------------------------------------------

    @property
    def last_fork_attempt_at(self) -> datetime | None:
        attempted: datetime | None = self.__dict__.get("_last_fork_attempt_at")
        return attempted

    @property
    def parent_id(self) -> UUID | None:
        parent: str | None = self.__dict__.get("_parent_id")
        return None if parent is None else UUID(parent)

    def record_fork_attempt(self, fork_id: UUID, at: datetime, cooldown: timedelta) -> None:
        """At most one fork attempt per `cooldown` (24 hours,
        docs/rules.md#tiers-forks-and-merges)."""
        at = _require_aware("at", at)
        last = self.last_fork_attempt_at
        if last is not None and at < last + cooldown:
            raise LedgerRefusal(
                ResultCode.FORK_COOLDOWN,
                f"the account's last fork attempt was at {last.isoformat()}; the next may "
                f"start at {(last + cooldown).isoformat()}",
                ends_at=(last + cooldown).isoformat(),
            )
        self._fork_attempted(fork_id=str(fork_id), at=at)

    @event("ForkAttempted")
    def _fork_attempted(self, fork_id: str, at: datetime) -> None:
        self._last_fork_attempt_at = at

    def link_to_parent(self, parent_id: UUID, process_id: UUID, at: datetime) -> None:
        """A child made by a fork names its parent (once, at its start)."""
        if self.parent_id is not None:
            raise ValueError("the account has a parent already")
        self._linked_to_parent(
            parent_id=str(parent_id), process_id=str(process_id), at=_require_aware("at", at)
        )

    @event("LinkedToParent")
    def _linked_to_parent(self, parent_id: str, process_id: str, at: datetime) -> None:
        self._parent_id = parent_id

    def move_capital_out(
        self, amount_minor: int, to_account_id: UUID, process_id: UUID, at: datetime
    ) -> None:
        """Capital leaves for another funded account (a fork's child, a merge's
        target): the balance and the peak fall with it (it is not a loss); it
        cannot take what withdrawals hold."""
        require_valid_minor(amount_minor)
        available = self.current_balance_minor - self.reserved_withdrawals_minor
        if amount_minor > available:
            raise LedgerRefusal(
                ResultCode.INSUFFICIENT_CAPITAL,
                f"at most {describe_money(available, TIER_CURRENCY)} can move out of the "
                f"account; {describe_money(amount_minor, TIER_CURRENCY)} was requested",
                currency=TIER_CURRENCY,
                requested=format_amount(amount_minor, TIER_CURRENCY),
                available=format_amount(available, TIER_CURRENCY),
                amount_minor=amount_minor,
                available_minor=available,
            )
        self._capital_moved_out(
            amount_minor=amount_minor,
            to_account_id=str(to_account_id),
            process_id=str(process_id),
            at=_require_aware("at", at),
        )

    @event("CapitalMovedOut")
    def _capital_moved_out(
        self, amount_minor: int, to_account_id: str, process_id: str, at: datetime
    ) -> None:
        self.current_balance_minor -= amount_minor
        self.peak_balance_minor -= amount_minor

    def move_capital_in(
        self, amount_minor: int, from_account_id: UUID, process_id: UUID, at: datetime
    ) -> None:
        """Capital arrives from another funded account (a merge): it is capital,
        not profit, so the starting balance rises with the balance and the peak."""
        require_valid_minor(amount_minor)
        self._capital_moved_in(
            amount_minor=amount_minor,
            from_account_id=str(from_account_id),
            process_id=str(process_id),
            at=_require_aware("at", at),
        )

    @event("CapitalMovedIn")
    def _capital_moved_in(
        self, amount_minor: int, from_account_id: str, process_id: str, at: datetime
    ) -> None:
        self.current_balance_minor += amount_minor
        self.peak_balance_minor += amount_minor
        self.starting_balance_minor += amount_minor

    # Rules ---------------------------------------------------------------------------

    def record_rule_status(self, at: datetime) -> AccountRuleStatus:
        """Read the rules on the marks held; record `BandChanged` only when the
        overall band moved. Decisions on the market use `decide_rules`, which
        first takes the newest marks.

        A VIOLATION does not close the account here: the caller closes its
        positions, then changes the state to CLOSED with the reason.
        """
        return self._record_band(self.rule_status(), at, marks=None)

    def decide_rules(
        self, marks: Mapping[str, Mark], at: datetime, mark_age_max: timedelta
    ) -> RuleDecision:
        """The rules decided on the newest mark of every open position: the
        marks are taken (`MarkedToMarket` when a price moved), then the band is
        recorded if it moved, with the marks it was read on and their times.

        A position without a mark, or with one quoted more than `mark_age_max`
        before `at`, stops the decision: nothing is recorded and the band
        stays as last decided (docs/rules.md#funded-accounts-and-withdrawals).
        """
        at = _require_aware("at", at)
        held = {position.symbol for position in self.positions}
        problems = marks_missing_or_stale(held, marks, at, mark_age_max)
        if problems:
            return RuleDecision(self.rule_status(), taken=False, marks={}, stale=problems)
        used = {symbol: marks[symbol] for symbol in sorted(held)}
        if used:
            self.mark_to_market({symbol: mark.price_minor for symbol, mark in used.items()}, at)
        status = self._record_band(self.rule_status(), at, marks=used)
        return RuleDecision(status, taken=True, marks=used, stale={})

    def _record_band(
        self, status: AccountRuleStatus, at: datetime, marks: Mapping[str, Mark] | None
    ) -> AccountRuleStatus:
        if status.band is not self.band:
            risk = status.risk_per_trade.value
            self._band_changed(
                from_band=self.band.value,
                to_band=status.band.value,
                drawdown=str(status.drawdown.value),
                risk_per_trade=None if risk is None else str(risk),
                at=_require_aware("at", at),
                marks=None
                if marks is None
                else {symbol: mark.as_record() for symbol, mark in marks.items()},
            )
        return status

    @event("BandChanged")
    def _band_changed(
        self,
        from_band: str,
        to_band: str,
        drawdown: str,
        risk_per_trade: str | None,
        at: datetime,
        # symbol -> {price_minor, quoted_at}: the marks the decision was read
        # on. None on events recorded before decisions named their marks.
        marks: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self._band = to_band

    # Checks --------------------------------------------------------------------------

    def _require_state(self, required: FundedAccountState) -> None:
        if self.state is not required:
            raise LedgerRefusal(
                ResultCode.ACCOUNT_NOT_ACTIVE,
                f"the funded account is {self.state.value}, not {required.value}",
                state=self.state.value,
            )

    def _require_not_closed(self) -> None:
        if self.state is FundedAccountState.CLOSED:
            raise LedgerRefusal(
                ResultCode.ACCOUNT_NOT_ACTIVE, "the funded account is closed", state="closed"
            )


def _require_name(name: str, value: object, length_max: int = NAME_LENGTH_MAX) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= length_max or value != value.strip():
        raise ValueError(f"{name} must be 1 to {length_max} characters, without outer spaces")
    return value


def _require_positive_int(name: str, value: object) -> int:
    # bool is an int subclass and a float may look whole: neither is a price.
    if type(value) is not int:
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, not {value}")
    return value


def _require_aware(name: str, at: datetime) -> datetime:
    if not isinstance(at, datetime) or at.tzinfo is None:
        raise ValueError(f"{name} must be a datetime with a time zone")
    return at
