"""Merges (consolidation): capital of one funded account moves into another.

See docs/rules.md#tiers-forks-and-merges.

A merge goes into the source's parent, into a sibling (same parent), or into a
new account that takes the source's place under its parent; whole (the source
is emptied and CLOSED) or partial (an amount; the source trades on). Each
records its trigger (underperformance, risk, idle capital, manual) and its
urgency (critical, high, medium, low).

A process kept as an aggregate: PROPOSED, APPROVED, EXECUTING, COMPLETED, or
ROLLED_BACK with the reason. Approval: a merge an admin asks for (manual) or
a critical one (risk cannot wait) is approved at once; the rest wait for an
admin. Every proposal records its consolidation confidence, the weighted sum
of trigger reliability (30 %), benefit magnitude (40 %) and risk assessment
(30 %), each factor with its inputs (`merge_confidence`); the score informs
the admin and does not change who approves. Positions must be closed (or
moved) first: a source holding open positions is refused (`open_positions`).
The capital moves in one balanced transfer written with both accounts'
events, so a failure moves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from fractions import Fraction
from typing import Any, Final
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.field_checks import require_aware, require_text
from domain.result_codes import LedgerRefusal, ResultCode

MERGE_NAMESPACE: Final = UUID("6a1f0c83-9e27-4d5b-8f4a-2c7e1b9d3f60")
REASON_LENGTH_MAX: Final[int] = 500
ACTOR_LENGTH_MAX: Final[int] = 128
SERVICE_ACTOR: Final[str] = "merge-service"


class MergeTarget(StrEnum):
    PARENT = "parent"
    SIBLING = "sibling"
    NEW_ACCOUNT = "new_account"


class MergeTrigger(StrEnum):
    UNDERPERFORMANCE = "underperformance"
    RISK = "risk"
    IDLE_CAPITAL = "idle_capital"
    MANUAL = "manual"


class MergeUrgency(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


TRIGGER_RELIABILITY_WEIGHT: Final = Fraction(3, 10)
BENEFIT_WEIGHT: Final = Fraction(4, 10)
RISK_WEIGHT: Final = Fraction(3, 10)
# How far each trigger is to be trusted: a person's request and a rule band
# are facts; idle capital is measured over 30 days; underperformance is a
# noisy reading of returns.
TRIGGER_RELIABILITY: Final[dict[str, Fraction]] = {
    "manual": Fraction(1),
    "risk": Fraction(1),
    "idle_capital": Fraction(3, 4),
    "underperformance": Fraction(1, 2),
}
# What waiting would risk, by urgency.
URGENCY_RISK: Final[dict[str, Fraction]] = {
    "critical": Fraction(1),
    "high": Fraction(3, 4),
    "medium": Fraction(1, 2),
    "low": Fraction(1, 4),
}


@dataclass(frozen=True, slots=True)
class MergeConfidence:
    score: Fraction
    factors: tuple[dict[str, Any], ...]


def merge_confidence(
    trigger: str, urgency: str, amount_minor: int | None, source_balance_minor: int
) -> MergeConfidence:
    """Trigger reliability 30 %, benefit magnitude 40 % (the share of the
    source's balance that moves: a whole merge 1) and risk assessment 30 %
    (what waiting would risk, by urgency)."""
    reliability = TRIGGER_RELIABILITY[trigger]
    if amount_minor is None:
        benefit = Fraction(1)
    elif source_balance_minor <= 0:
        benefit = Fraction(0)
    else:
        benefit = min(Fraction(1), Fraction(amount_minor, source_balance_minor))
    risk = URGENCY_RISK[urgency]
    factors = (
        ("trigger_reliability", TRIGGER_RELIABILITY_WEIGHT, reliability, {"trigger": trigger}),
        (
            "benefit_magnitude",
            BENEFIT_WEIGHT,
            benefit,
            {
                "amount_minor": "whole" if amount_minor is None else str(amount_minor),
                "source_balance_minor": str(source_balance_minor),
            },
        ),
        ("risk_assessment", RISK_WEIGHT, risk, {"urgency": urgency}),
    )
    return MergeConfidence(
        score=sum((weight * value for _, weight, value, _ in factors), Fraction(0)),
        factors=tuple(
            {"name": name, "weight": str(weight), "value": str(value), "inputs": inputs}
            for name, weight, value, inputs in factors
        ),
    )


class MergeStatus(StrEnum):
    PROPOSED = "proposed"
    APPROVED = "approved"
    EXECUTING = "executing"
    COMPLETED = "completed"
    ROLLED_BACK = "rolled_back"


def merge_id_for(source_id: UUID, request_key: str) -> UUID:
    """The one merge a request key makes of a source: asking again finds it."""
    return uuid5(MERGE_NAMESPACE, f"{source_id}/{request_key}")


def new_account_assessment_id(merge_id: UUID) -> str:
    return f"merge:{merge_id}"


def _confidence_fields(confidence: MergeConfidence) -> dict[str, Any]:
    return {"confidence": str(confidence.score), "factors": list(confidence.factors)}


class Merge(Aggregate):
    @classmethod
    def propose(
        cls,
        *,
        merge_id: UUID,
        source_id: UUID,
        target_kind: MergeTarget,
        target_id: UUID | None,
        amount_minor: int | None,
        trigger: MergeTrigger,
        urgency: MergeUrgency,
        reason: str,
        at: datetime,
        actor: str,
        source_balance_minor: int = 0,
    ) -> Merge:
        if (target_kind is MergeTarget.NEW_ACCOUNT) != (target_id is None):
            raise ValueError("a merge into a new account has no target yet; the others have one")
        if amount_minor is not None and (type(amount_minor) is not int or amount_minor <= 0):
            raise ValueError("a partial merge moves a positive amount")
        merge = cls(
            id=merge_id,
            source_id=str(source_id),
            target_kind=target_kind.value,
            target_id=None if target_id is None else str(target_id),
            amount_minor=amount_minor,
            trigger=trigger.value,
            urgency=urgency.value,
            reason=require_text("reason", reason, REASON_LENGTH_MAX),
            at=require_aware("at", at),
            actor=require_text("actor", actor, ACTOR_LENGTH_MAX),
            **_confidence_fields(
                merge_confidence(trigger.value, urgency.value, amount_minor, source_balance_minor)
            ),
        )
        if trigger is MergeTrigger.MANUAL or urgency is MergeUrgency.CRITICAL:
            merge._approved(at=at, actor=actor if trigger is MergeTrigger.MANUAL else SERVICE_ACTOR)
        return merge

    @event("Proposed")
    def __init__(
        self,
        id: UUID,  # noqa: A002 - the library takes the aggregate id by this name
        source_id: str,
        target_kind: str,
        target_id: str | None,
        amount_minor: int | None,
        trigger: str,
        urgency: str,
        reason: str,
        at: datetime,
        actor: str,
        # None on merges proposed before the confidence was recorded.
        confidence: str | None = None,
        factors: list[dict[str, Any]] | None = None,
    ) -> None:
        self._source_id = source_id
        self.confidence = None if confidence is None else Fraction(confidence)
        self.confidence_factors = list(factors or [])
        self.target_kind = MergeTarget(target_kind)
        self._target_id = target_id
        # None: the whole balance (known when it executes).
        self.amount_minor = amount_minor
        self.trigger = MergeTrigger(trigger)
        self.urgency = MergeUrgency(urgency)
        self.reason = reason
        self.proposed_at = at
        self.proposed_by = actor
        self._status = MergeStatus.PROPOSED.value
        self.approved_by: str | None = None
        self.moved_minor: int | None = None
        self.rollback_reason: str | None = None
        self.settled_at: datetime | None = None
        self.updated_at = at

    @property
    def status(self) -> MergeStatus:
        return MergeStatus(self._status)

    @property
    def source_id(self) -> UUID:
        return UUID(self._source_id)

    @property
    def target_id(self) -> UUID | None:
        return None if self._target_id is None else UUID(self._target_id)

    @property
    def is_partial(self) -> bool:
        return self.amount_minor is not None

    def approve(self, actor: str, at: datetime) -> None:
        self._require(MergeStatus.PROPOSED, "approve")
        self._approved(at=require_aware("at", at), actor=require_text("actor", actor, 128))

    @event("Approved")
    def _approved(self, at: datetime, actor: str) -> None:
        self._status = MergeStatus.APPROVED.value
        self.approved_by = actor
        self.updated_at = at

    def start(self, at: datetime) -> None:
        self._require(MergeStatus.APPROVED, "execute")
        self._started(at=require_aware("at", at))

    @event("Executing")
    def _started(self, at: datetime) -> None:
        self._status = MergeStatus.EXECUTING.value
        self.updated_at = at

    def complete(self, target_id: UUID, moved_minor: int, at: datetime) -> None:
        self._require(MergeStatus.EXECUTING, "complete")
        self._completed(
            target_id=str(target_id), moved_minor=moved_minor, at=require_aware("at", at)
        )

    @event("Completed")
    def _completed(self, target_id: str, moved_minor: int, at: datetime) -> None:
        self._status = MergeStatus.COMPLETED.value
        self._target_id = target_id
        self.moved_minor = moved_minor
        self.settled_at = at
        self.updated_at = at

    def roll_back(self, reason: str, at: datetime) -> None:
        """Approved or executing: it cannot be carried out."""
        if self.status in (MergeStatus.COMPLETED, MergeStatus.ROLLED_BACK, MergeStatus.PROPOSED):
            self._require(MergeStatus.EXECUTING, "roll back")
        self._rolled_back(
            reason=(reason.strip() or "rolled back")[:REASON_LENGTH_MAX], at=require_aware("at", at)
        )

    @event("RolledBack")
    def _rolled_back(self, reason: str, at: datetime) -> None:
        self._status = MergeStatus.ROLLED_BACK.value
        self.rollback_reason = reason
        self.settled_at = at
        self.updated_at = at

    def _require(self, status: MergeStatus, action: str) -> None:
        if self.status is not status:
            raise LedgerRefusal(
                ResultCode.INVALID_STATE_TRANSITION,
                f"a {self.status.value} merge cannot {action}",
                from_state=self.status.value,
                required_state=status.value,
            )
