"""Forks: an account that outgrew its tier hands capital to a child of the next.

See docs/rules.md#tiers-forks-and-merges.

When a funded account's balance crosses its tier's fork threshold (Gen at
$100,000 to a Rev child, Rev at $500,000 to a Com child; Com never forks) a
fork is proposed. A fork is a process kept as an aggregate: PROPOSED, then
APPROVED (by itself at a confidence of 70 % or more, otherwise by an admin),
EXECUTING, and COMPLETED with its child, or ROLLED_BACK with the reason. Every
step is an event with time and actor.

How much moves. The child starts with exactly its tier's minimum capital
(Rev $100,000, Com $500,000), all of it from the parent, in one balanced
transfer written with the child's activation; the parent keeps the rest. A
fork executes only if the parent keeps at least its own tier's minimum
(`insufficient_capital` otherwise): a Gen account proposes at $100,000 and
can execute from $110,000; a Rev account proposes at $500,000 and executes
from $600,000. Conservation holds by construction, to the cent: the
parent's balance before equals its balance after plus the child's.

Confidence: a documented, deterministic score in [0, 1], the weighted sum of
four factors, each in [0, 1] and recorded with the decision with its inputs
(docs/rules.md#tiers-forks-and-merges):

    market conditions  30 %  the mean of volatility (1 - the largest gap
                             |open - last close| / last close among the
                             symbols held, over 5 %), liquidity (1 - the
                             widest spread (ask - bid) / bid, over 0.5 %) and
                             the session (below); a symbol without a quote
                             scores 0 for both
    account performance 40 % the mean of recent returns (how far past the
                             threshold the balance is, full at 10 %),
                             consistency (the rules' band: safe 1, warning
                             1/2, danger or violation 0) and risk (1 -
                             drawdown / the tier's limit)
    system load        20 %  1 - forks executing now / FORKS_EXECUTING_MAX
    timing             10 %  the session: 1 in regular US market hours
                             (14:30 to 21:00 UTC, Monday to Friday), 0 in
                             their volatile first and last 30 minutes, 1/2
                             outside them

80 % or more: approved and executed at once. 70 % to under 80 %: approved by
itself but executed only at its execution step (the next scan, or an explicit
execute). Under 70 %: it waits for a person (manual review).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from fractions import Fraction
from typing import Any, Final
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.field_checks import require_aware, require_text
from domain.result_codes import LedgerRefusal, ResultCode
from domain.tiers import TIERS, TierName

FORK_NAMESPACE: Final = UUID("3e7b9d2c-5a14-4f08-b6e3-8c1d0f7a2b95")
FORKS_EXECUTING_MAX: Final[int] = 5
FORK_COOLDOWN: Final = timedelta(hours=24)
# At least this: approved by itself; at least EXECUTE_AT_ONCE_CONFIDENCE
# also executed at once.
AUTO_APPROVAL_CONFIDENCE: Final = Fraction(70, 100)
EXECUTE_AT_ONCE_CONFIDENCE: Final = Fraction(80, 100)
MARKET_WEIGHT: Final = Fraction(3, 10)
PERFORMANCE_WEIGHT: Final = Fraction(4, 10)
LOAD_WEIGHT: Final = Fraction(2, 10)
TIMING_WEIGHT: Final = Fraction(1, 10)
# How far past its threshold a balance must be for recent returns to be full.
RETURNS_FULL_MARGIN: Final = Fraction(10, 100)
# A gap or a spread this wide scores 0 (the market guard's edges).
VOLATILITY_ZERO_AT: Final = Fraction(5, 100)
SPREAD_ZERO_AT: Final = Fraction(5, 1000)
# The regular US session in UTC (standard time; no holidays), and how long its
# volatile opening and closing periods last.
SESSION_OPENS_AT: Final = time(14, 30)
SESSION_CLOSES_AT: Final = time(21, 0)
VOLATILE_PERIOD: Final = timedelta(minutes=30)
REASON_LENGTH_MAX: Final[int] = 500
ACTOR_LENGTH_MAX: Final[int] = 128
SERVICE_ACTOR: Final[str] = "fork-service"


class ForkStatus(StrEnum):
    PROPOSED = "proposed"
    APPROVED = "approved"
    EXECUTING = "executing"
    COMPLETED = "completed"
    ROLLED_BACK = "rolled_back"


class ForkDecision(StrEnum):
    """What a fork's confidence decides at its proposal."""

    EXECUTE_AT_ONCE = "execute_at_once"
    APPROVE_AND_WAIT = "approve_and_wait"
    MANUAL_REVIEW = "manual_review"


@dataclass(frozen=True, slots=True)
class ConfidenceFactor:
    name: str
    weight: Fraction
    value: Fraction
    explanation: str
    # What the value was computed from, as text (exact fractions, times).
    inputs: dict[str, str] = field(default_factory=dict)

    @property
    def contribution(self) -> Fraction:
        return self.weight * self.value

    def as_record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "weight": str(self.weight),
            "value": str(self.value),
            "explanation": self.explanation,
            "inputs": dict(self.inputs),
        }


@dataclass(frozen=True, slots=True)
class Confidence:
    factors: tuple[ConfidenceFactor, ...]

    @property
    def score(self) -> Fraction:
        return sum((factor.contribution for factor in self.factors), Fraction(0))

    @property
    def decision(self) -> ForkDecision:
        if self.score >= EXECUTE_AT_ONCE_CONFIDENCE:
            return ForkDecision.EXECUTE_AT_ONCE
        if self.score >= AUTO_APPROVAL_CONFIDENCE:
            return ForkDecision.APPROVE_AND_WAIT
        return ForkDecision.MANUAL_REVIEW

    @property
    def approves_itself(self) -> bool:
        return self.decision is not ForkDecision.MANUAL_REVIEW


@dataclass(frozen=True, slots=True)
class SymbolMarket:
    """A held symbol's quote now, as the market factor reads it."""

    symbol: str
    open_minor: int
    last_close_minor: int
    bid_minor: int
    ask_minor: int

    @property
    def gap(self) -> Fraction:
        if self.last_close_minor <= 0:
            return Fraction(1)
        return Fraction(abs(self.open_minor - self.last_close_minor), self.last_close_minor)

    @property
    def spread(self) -> Fraction:
        if self.bid_minor <= 0:
            return Fraction(1)
        return Fraction(self.ask_minor - self.bid_minor, self.bid_minor)


@dataclass(frozen=True, slots=True)
class ForkInputs:
    """Everything a fork's confidence is computed from."""

    balance_minor: int
    threshold_minor: int
    drawdown: Fraction
    drawdown_limit: Fraction
    # The rules' band now, by name: safe, warning, danger, violation.
    band: str
    forks_executing: int
    # The symbols held, quoted now; `unquoted` those the broker gave no quote for.
    markets: tuple[SymbolMarket, ...]
    unquoted: tuple[str, ...]
    at: datetime


def session_score(at: datetime) -> Fraction:
    """1 in regular hours, 0 in their volatile first and last 30 minutes, 1/2
    outside them (nights, weekends)."""
    moment = require_aware("at", at).astimezone(UTC)
    if moment.weekday() >= 5:
        return Fraction(1, 2)
    opens = datetime.combine(moment.date(), SESSION_OPENS_AT, tzinfo=UTC)
    closes = datetime.combine(moment.date(), SESSION_CLOSES_AT, tzinfo=UTC)
    if not opens <= moment < closes:
        return Fraction(1, 2)
    if moment < opens + VOLATILE_PERIOD or moment >= closes - VOLATILE_PERIOD:
        return Fraction(0)
    return Fraction(1)


_BAND_SCORES: Final[dict[str, Fraction]] = {
    "safe": Fraction(1),
    "warning": Fraction(1, 2),
    "danger": Fraction(0),
    "violation": Fraction(0),
}


def _falling_score(value: Fraction, zero_at: Fraction) -> Fraction:
    """1 at 0, falling in a straight line to 0 at `zero_at` and beyond."""
    return max(Fraction(0), 1 - value / zero_at)


def _mean(*values: Fraction) -> Fraction:
    return sum(values, Fraction(0)) / len(values)


def fork_confidence(inputs: ForkInputs) -> Confidence:
    """The score and its factors, each with its inputs (see the module's docstring)."""
    session = session_score(inputs.at)
    volatility = max((market.gap for market in inputs.markets), default=Fraction(0))
    spread = max((market.spread for market in inputs.markets), default=Fraction(0))
    quoted = not inputs.unquoted
    volatility_score = _falling_score(volatility, VOLATILITY_ZERO_AT) if quoted else Fraction(0)
    liquidity_score = _falling_score(spread, SPREAD_ZERO_AT) if quoted else Fraction(0)
    market = _mean(volatility_score, liquidity_score, session)

    limit = inputs.drawdown_limit
    risk = max(Fraction(0), 1 - inputs.drawdown / limit) if limit else Fraction(0)
    threshold = inputs.threshold_minor
    margin = Fraction(inputs.balance_minor - threshold, threshold) if threshold else Fraction(0)
    returns = min(Fraction(1), max(Fraction(0), margin / RETURNS_FULL_MARGIN))
    consistency = _BAND_SCORES.get(inputs.band, Fraction(0))
    performance = _mean(returns, consistency, risk)

    load = max(Fraction(0), 1 - Fraction(inputs.forks_executing, FORKS_EXECUTING_MAX))
    return Confidence(
        (
            ConfidenceFactor(
                "market_conditions",
                MARKET_WEIGHT,
                market,
                f"largest gap {float(volatility):.2%}, widest spread {float(spread):.3%}, "
                f"session {session}",
                {
                    "volatility": str(volatility),
                    "volatility_score": str(volatility_score),
                    "spread": str(spread),
                    "liquidity_score": str(liquidity_score),
                    "session_score": str(session),
                    "symbols": ",".join(market.symbol for market in inputs.markets),
                    "unquoted": ",".join(inputs.unquoted),
                },
            ),
            ConfidenceFactor(
                "account_performance",
                PERFORMANCE_WEIGHT,
                performance,
                f"balance {float(margin):.2%} past the threshold, band {inputs.band}, "
                f"drawdown {float(inputs.drawdown):.2%} of a {float(limit):.0%} limit",
                {
                    "balance_minor": str(inputs.balance_minor),
                    "threshold_minor": str(threshold),
                    "returns_score": str(returns),
                    "band": inputs.band,
                    "consistency_score": str(consistency),
                    "drawdown": str(inputs.drawdown),
                    "drawdown_limit": str(limit),
                    "risk_score": str(risk),
                },
            ),
            ConfidenceFactor(
                "system_load",
                LOAD_WEIGHT,
                load,
                f"{inputs.forks_executing} of at most {FORKS_EXECUTING_MAX} forks executing",
                {
                    "forks_executing": str(inputs.forks_executing),
                    "forks_executing_max": str(FORKS_EXECUTING_MAX),
                },
            ),
            ConfidenceFactor(
                "timing",
                TIMING_WEIGHT,
                session,
                "regular hours"
                if session == 1
                else ("a volatile period" if session == 0 else "outside market hours"),
                {"at": inputs.at.isoformat(), "session_score": str(session)},
            ),
        )
    )


@dataclass(frozen=True, slots=True)
class ForkPlan:
    """What a fork of this account would do."""

    child_tier: TierName
    amount_minor: int
    # The balance it may execute from: the child's capital plus what the
    # parent must keep.
    executable_from_minor: int


def fork_plan(tier: TierName) -> ForkPlan | None:
    """None for a tier that never forks."""
    limits = TIERS[tier]
    if limits.next_tier is None:
        return None
    child = TIERS[limits.next_tier]
    return ForkPlan(
        child_tier=child.name,
        amount_minor=child.minimum_capital_minor,
        executable_from_minor=child.minimum_capital_minor + limits.minimum_capital_minor,
    )


def fork_id_for(parent_id: UUID, proposed_at: datetime) -> UUID:
    """One fork per account per proposal time (the cooldown allows one a day)."""
    return uuid5(FORK_NAMESPACE, f"{parent_id}/{proposed_at.isoformat()}")


def child_assessment_id(fork_id: UUID) -> str:
    """The child's 'assessment': the fork that made it (so its id is derived)."""
    return f"fork:{fork_id}"


class Fork(Aggregate):
    @classmethod
    def propose(
        cls,
        *,
        parent_id: UUID,
        parent_tier: TierName,
        balance_minor: int,
        confidence: Confidence,
        at: datetime,
        actor: str,
    ) -> Fork:
        plan = fork_plan(parent_tier)
        if plan is None:
            raise LedgerRefusal(
                ResultCode.FORK_NOT_ALLOWED,
                f"a {parent_tier.value} account never forks",
                tier=parent_tier.value,
            )
        threshold = TIERS[parent_tier].fork_threshold_minor or 0
        if balance_minor < threshold:
            raise LedgerRefusal(
                ResultCode.FORK_NOT_ALLOWED,
                f"the balance has not reached the {parent_tier.value} fork threshold",
                balance_minor=balance_minor,
                threshold_minor=threshold,
            )
        at = require_aware("at", at)
        fork = cls(
            id=fork_id_for(parent_id, at),
            parent_id=str(parent_id),
            parent_tier=parent_tier.value,
            child_tier=plan.child_tier.value,
            amount_minor=plan.amount_minor,
            balance_minor=balance_minor,
            factors=[factor.as_record() for factor in confidence.factors],
            confidence=str(confidence.score),
            at=at,
            actor=require_text("actor", actor, ACTOR_LENGTH_MAX),
            decision=confidence.decision.value,
        )
        if confidence.approves_itself:
            fork._approved(at=at, actor=SERVICE_ACTOR, automatic=True)
        return fork

    @event("Proposed")
    def __init__(
        self,
        id: UUID,  # noqa: A002 - the library takes the aggregate id by this name
        parent_id: str,
        parent_tier: str,
        child_tier: str,
        amount_minor: int,
        balance_minor: int,
        factors: list[dict[str, Any]],
        confidence: str,
        at: datetime,
        actor: str,
        # None on forks proposed before decisions were recorded (then 70 %
        # approved and executed at once).
        decision: str | None = None,
    ) -> None:
        self._parent_id = parent_id
        self._decision = decision
        self.parent_tier = TierName(parent_tier)
        self.child_tier = TierName(child_tier)
        self.amount_minor = amount_minor
        self.balance_at_proposal_minor = balance_minor
        self.factors = factors
        self._confidence = confidence
        self.proposed_at = at
        self.proposed_by = actor
        self._status = ForkStatus.PROPOSED.value
        self.approved_by: str | None = None
        self.approved_automatically = False
        self.approved_at: datetime | None = None
        self.child_id: str | None = None
        self.rollback_reason: str | None = None
        self.settled_at: datetime | None = None
        self.updated_at = at

    @property
    def status(self) -> ForkStatus:
        return ForkStatus(self._status)

    @property
    def parent_id(self) -> UUID:
        return UUID(self._parent_id)

    @property
    def confidence(self) -> Fraction:
        return Fraction(self._confidence)

    @property
    def decision(self) -> ForkDecision:
        """What the confidence decided at the proposal (forks proposed before
        this was recorded executed at once when they approved themselves)."""
        recorded: str | None = self.__dict__.get("_decision")
        if recorded is not None:
            return ForkDecision(recorded)
        return (
            ForkDecision.EXECUTE_AT_ONCE
            if self.approved_automatically
            else (ForkDecision.MANUAL_REVIEW)
        )

    def approve(self, actor: str, at: datetime) -> None:
        self._require(ForkStatus.PROPOSED, "approve")
        self._approved(
            at=require_aware("at", at),
            actor=require_text("actor", actor, ACTOR_LENGTH_MAX),
            automatic=False,
        )

    @event("Approved")
    def _approved(self, at: datetime, actor: str, automatic: bool) -> None:
        self._status = ForkStatus.APPROVED.value
        self.approved_by = actor
        self.approved_automatically = automatic
        self.approved_at = at
        self.updated_at = at

    def start(self, at: datetime) -> None:
        self._require(ForkStatus.APPROVED, "execute")
        self._started(at=require_aware("at", at))

    @event("Executing")
    def _started(self, at: datetime) -> None:
        self._status = ForkStatus.EXECUTING.value
        self.updated_at = at

    def complete(self, child_id: UUID, at: datetime) -> None:
        self._require(ForkStatus.EXECUTING, "complete")
        self._completed(child_id=str(child_id), at=require_aware("at", at))

    @event("Completed")
    def _completed(self, child_id: str, at: datetime) -> None:
        self._status = ForkStatus.COMPLETED.value
        self.child_id = child_id
        self.settled_at = at
        self.updated_at = at

    def roll_back(self, reason: str, at: datetime) -> None:
        """Approved or executing: it cannot be carried out."""
        if self.status in (ForkStatus.COMPLETED, ForkStatus.ROLLED_BACK, ForkStatus.PROPOSED):
            self._require(ForkStatus.EXECUTING, "roll back")
        self._rolled_back(
            reason=(reason.strip() or "rolled back")[:REASON_LENGTH_MAX],
            at=require_aware("at", at),
        )

    @event("RolledBack")
    def _rolled_back(self, reason: str, at: datetime) -> None:
        self._status = ForkStatus.ROLLED_BACK.value
        self.rollback_reason = reason
        self.settled_at = at
        self.updated_at = at

    def _require(self, status: ForkStatus, action: str) -> None:
        if self.status is not status:
            raise LedgerRefusal(
                ResultCode.INVALID_STATE_TRANSITION,
                f"a {self.status.value} fork cannot {action}",
                from_state=self.status.value,
                required_state=status.value,
            )
