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
three factors, each in [0, 1] and shown with the decision:

    performance  0.5   how far the account is from its drawdown limit:
                       1 - drawdown / limit (0 at or past the limit)
    load         0.3   1 - forks executing now / FORKS_EXECUTING_MAX
    timing       0.2   how far past the threshold the balance is, capped:
                       (balance - threshold) / threshold / 10 %, at most 1
                       (a fork proposed just at the threshold may see the
                       balance fall back under it before it executes)

At 0.70 or more the fork is approved by itself; below, an admin decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from fractions import Fraction
from typing import Final
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.field_checks import require_aware, require_text
from domain.result_codes import LedgerRefusal, ResultCode
from domain.tiers import TIERS, TierName

FORK_NAMESPACE: Final = UUID("3e7b9d2c-5a14-4f08-b6e3-8c1d0f7a2b95")
FORKS_EXECUTING_MAX: Final[int] = 5
FORK_COOLDOWN: Final = timedelta(hours=24)
AUTO_APPROVAL_CONFIDENCE: Final = Fraction(70, 100)
PERFORMANCE_WEIGHT: Final = Fraction(5, 10)
LOAD_WEIGHT: Final = Fraction(3, 10)
TIMING_WEIGHT: Final = Fraction(2, 10)
# How far past its threshold a balance must be for the timing factor to be full.
TIMING_FULL_MARGIN: Final = Fraction(10, 100)
REASON_LENGTH_MAX: Final[int] = 500
ACTOR_LENGTH_MAX: Final[int] = 128
SERVICE_ACTOR: Final[str] = "fork-service"


class ForkStatus(StrEnum):
    PROPOSED = "proposed"
    APPROVED = "approved"
    EXECUTING = "executing"
    COMPLETED = "completed"
    ROLLED_BACK = "rolled_back"


@dataclass(frozen=True, slots=True)
class ConfidenceFactor:
    name: str
    weight: Fraction
    value: Fraction
    explanation: str

    @property
    def contribution(self) -> Fraction:
        return self.weight * self.value


@dataclass(frozen=True, slots=True)
class Confidence:
    factors: tuple[ConfidenceFactor, ...]

    @property
    def score(self) -> Fraction:
        return sum((factor.contribution for factor in self.factors), Fraction(0))

    @property
    def approves_itself(self) -> bool:
        return self.score >= AUTO_APPROVAL_CONFIDENCE


def fork_confidence(
    *,
    balance_minor: int,
    threshold_minor: int,
    drawdown: Fraction,
    drawdown_limit: Fraction,
    forks_executing: int,
) -> Confidence:
    """The score and its factors (see the module's docstring)."""
    performance = max(Fraction(0), 1 - drawdown / drawdown_limit) if drawdown_limit else Fraction(0)
    load = max(Fraction(0), 1 - Fraction(forks_executing, FORKS_EXECUTING_MAX))
    margin = Fraction(balance_minor - threshold_minor, threshold_minor) if threshold_minor else 0
    timing = min(Fraction(1), max(Fraction(0), Fraction(margin) / TIMING_FULL_MARGIN))
    return Confidence(
        (
            ConfidenceFactor(
                "performance",
                PERFORMANCE_WEIGHT,
                performance,
                f"drawdown {float(drawdown):.2%} of a {float(drawdown_limit):.0%} limit",
            ),
            ConfidenceFactor(
                "load",
                LOAD_WEIGHT,
                load,
                f"{forks_executing} of at most {FORKS_EXECUTING_MAX} forks executing",
            ),
            ConfidenceFactor(
                "timing",
                TIMING_WEIGHT,
                timing,
                f"balance {float(margin):.2%} past the threshold",
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
            factors=[
                {
                    "name": factor.name,
                    "weight": str(factor.weight),
                    "value": str(factor.value),
                    "explanation": factor.explanation,
                }
                for factor in confidence.factors
            ],
            confidence=str(confidence.score),
            at=at,
            actor=require_text("actor", actor, ACTOR_LENGTH_MAX),
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
        factors: list[dict[str, str]],
        confidence: str,
        at: datetime,
        actor: str,
    ) -> None:
        self._parent_id = parent_id
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
