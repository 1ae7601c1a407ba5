"""Merges' use cases: propose, approve, execute (or roll back).

See docs/rules.md#tiers-forks-and-merges; the rules are in domain/merge.py.

Like a fork, execution is two writes: `Executing` with the source MERGING,
then, all or nothing, the capital's balanced transfer, the source's
CapitalMovedOut (and, for a whole merge, its ledger account and funded account
CLOSED), the target's CapitalMovedIn (or, for a new account, its activation
under the source's parent), and `Completed`. A refusal in the second rolls the
merge back: the source trades again, nothing moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import structlog

from application.aggregate_writes import (
    change_alone,
    require_funded_account,
    retry_while_stale,
    write_with_aggregates,
)
from application.event_log import LedgerApplication
from application.funded_accounts import FUNDED_SCOPE
from application.ports.clock import Clock
from application.ports.writer import Writer
from domain.account import AccountState
from domain.commands import Command, change_account_state, create_transfer, open_account
from domain.funded_account import FundedAccount, funded_account_id_for, merge_capital_transfer_key
from domain.funded_account_states import FundedAccountState
from domain.merge import (
    Merge,
    MergeStatus,
    MergeTarget,
    MergeTrigger,
    MergeUrgency,
    merge_id_for,
    new_account_assessment_id,
)
from domain.ratios import format_ratio
from domain.result_codes import LedgerRefusal, ResultCode
from domain.tiers import TIER_CURRENCY
from domain.transfer import Posting, Side

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class MergeRequest:
    source_id: UUID
    target_kind: MergeTarget
    # A sibling's id; None for the parent (it is known) and a new account.
    target_id: UUID | None
    # None: the whole balance; otherwise a partial merge of this amount.
    amount_minor: int | None
    trigger: MergeTrigger
    urgency: MergeUrgency
    reason: str
    request_key: str
    actor: str


class MergesService:
    def __init__(self, app: LedgerApplication, writer: Writer, clock: Clock) -> None:
        self._app = app
        self._writer = writer
        self._clock = clock

    def merge(self, merge_id: UUID) -> Merge | None:
        return self._app.load_merge(merge_id)

    def require_merge(self, merge_id: UUID) -> Merge:
        merge = self.merge(merge_id)
        if merge is None:
            raise LedgerRefusal(
                ResultCode.MERGE_NOT_FOUND, f"no merge {merge_id}", merge_id=str(merge_id)
            )
        return merge

    def propose(self, request: MergeRequest) -> Merge:
        """Record the merge (once per request key); one approved at once (manual,
        or critical) is executed at once."""
        merge_id = merge_id_for(request.source_id, request.request_key)
        existing = self.merge(merge_id)
        if existing is not None:
            _require_same_request(existing, request)
            # Approved but not executed (a process stopped): carry on.
            return self.execute(merge_id) if existing.status is MergeStatus.APPROVED else existing
        source = self._require_account(request.source_id)
        if source.state is not FundedAccountState.ACTIVE:
            raise LedgerRefusal(
                ResultCode.ACCOUNT_NOT_ACTIVE,
                f"a {source.state.value} funded account is not merged",
                state=source.state.value,
            )
        target_id = self._target_id(source, request.target_kind, request.target_id)
        _require_no_positions(source)
        merge = Merge.propose(
            merge_id=merge_id,
            source_id=source.id,
            target_kind=request.target_kind,
            target_id=target_id,
            amount_minor=request.amount_minor,
            trigger=request.trigger,
            urgency=request.urgency,
            reason=request.reason,
            at=self._clock.now(),
            actor=request.actor,
            source_balance_minor=source.current_balance_minor,
        )
        if write_with_aggregates(self._writer, [], merge) is None:
            return self.require_merge(merge_id)
        log.info(
            "merge_proposed",
            merge_id=str(merge_id),
            source_id=str(source.id),
            target_kind=request.target_kind.value,
            trigger=request.trigger.value,
            urgency=request.urgency.value,
            status=merge.status.value,
            confidence=None if merge.confidence is None else format_ratio(merge.confidence),
        )
        if merge.status is MergeStatus.APPROVED:
            return self.execute(merge_id)
        return merge

    def approve(self, merge_id: UUID, actor: str) -> Merge:
        change_alone(
            self._writer,
            lambda: self.require_merge(merge_id),
            lambda merge: merge.approve(actor, self._clock.now()),
            lambda: _contended(merge_id),
        )
        return self.execute(merge_id)

    def execute(self, merge_id: UUID) -> Merge:
        merge = self.require_merge(merge_id)
        try:
            if merge.status is MergeStatus.APPROVED:
                merge = self._start(merge_id)
            if merge.status is not MergeStatus.EXECUTING:
                return merge
            return self._move_capital(merge_id)
        except LedgerRefusal as refusal:
            if refusal.code is ResultCode.CONCURRENT_CHANGE:
                raise
            return self._give_up(merge_id, refusal.message)

    # Inside -------------------------------------------------------------------------

    def _target_id(
        self, source: FundedAccount, kind: MergeTarget, target_id: UUID | None
    ) -> UUID | None:
        if kind is not MergeTarget.SIBLING and target_id is not None:
            raise _invalid_target(
                f"a merge into the {kind.value.replace('_', ' ')} names no target"
            )
        if kind is MergeTarget.NEW_ACCOUNT:
            return None
        if kind is MergeTarget.PARENT:
            if source.parent_id is None:
                raise _invalid_target("the account has no parent to merge into")
            return source.parent_id
        if target_id is None or target_id == source.id:
            raise _invalid_target("a merge into a sibling names the sibling")
        sibling = self._require_account(target_id)
        if source.parent_id is None or sibling.parent_id != source.parent_id:
            raise _invalid_target("the target is not a sibling of the account (same parent)")
        return target_id

    def _start(self, merge_id: UUID) -> Merge:
        def attempt() -> Merge | None:
            merge = self.require_merge(merge_id)
            if merge.status is not MergeStatus.APPROVED:
                return merge
            source = self._require_account(merge.source_id)
            now = self._clock.now()
            merge.start(now)
            source.change_state(FundedAccountState.MERGING, f"merge {merge.id}", _actor(merge), now)
            if write_with_aggregates(self._writer, [], source, merge) is None:
                return None
            return merge

        return retry_while_stale(attempt, lambda: _contended(merge_id))

    def _move_capital(self, merge_id: UUID) -> Merge:
        def attempt() -> Merge | None:
            merge = self.require_merge(merge_id)
            if merge.status is not MergeStatus.EXECUTING:
                return merge
            source = self._require_account(merge.source_id)
            _require_no_positions(source)
            now = self._clock.now()
            whole = not merge.is_partial
            if whole and source.reserved_withdrawals_minor:
                raise LedgerRefusal(
                    ResultCode.INSUFFICIENT_CAPITAL,
                    "withdrawals still hold part of the balance: a whole merge waits for them",
                    reserved_minor=source.reserved_withdrawals_minor,
                )
            amount = source.current_balance_minor if whole else merge.amount_minor
            assert amount is not None
            commands: list[Command] = []
            aggregates: list[FundedAccount | Merge] = []
            if merge.target_kind is MergeTarget.NEW_ACCOUNT:
                target, opened = self._new_account(merge, source, amount)
                commands.append(opened)
            else:
                assert merge.target_id is not None
                target = self._require_account(merge.target_id)
                if target.state not in (FundedAccountState.ACTIVE, FundedAccountState.SAFE):
                    raise _invalid_target(
                        f"the target account is {target.state.value}: it takes no capital"
                    )
                target.move_capital_in(amount, source.id, merge.id, now)
            source.move_capital_out(amount, target.id, merge.id, now)
            commands.append(
                create_transfer(
                    idempotency_key=merge_capital_transfer_key(merge.id),
                    scope=FUNDED_SCOPE,
                    postings=(
                        Posting(source.ledger_account_id, Side.DEBIT, amount, TIER_CURRENCY),
                        Posting(target.ledger_account_id, Side.CREDIT, amount, TIER_CURRENCY),
                    ),
                    metadata={
                        "merge_id": str(merge.id),
                        "source_funded_account_id": str(source.id),
                        "target_funded_account_id": str(target.id),
                        "purpose": "merge",
                    },
                )
            )
            if whole:
                commands.append(
                    change_account_state(
                        account_id=source.ledger_account_id,
                        new_state=AccountState.CLOSED,
                        reason=f"merge {merge.id}",
                        actor=_actor(merge),
                    )
                )
            source.change_state(
                FundedAccountState.CLOSED if whole else FundedAccountState.ACTIVE,
                f"merge {merge.id} completed",
                _actor(merge),
                now,
            )
            merge.complete(target.id, amount, now)
            aggregates = [source, target, merge]
            if write_with_aggregates(self._writer, commands, *aggregates) is None:
                return None
            log.info(
                "merge_completed",
                merge_id=str(merge.id),
                source_id=str(source.id),
                target_id=str(target.id),
                amount_minor=amount,
            )
            return merge

        return retry_while_stale(attempt, lambda: _contended(merge_id))

    def _new_account(
        self, merge: Merge, source: FundedAccount, amount_minor: int
    ) -> tuple[FundedAccount, Command]:
        """The account that takes the source's place, under the same parent."""
        now = self._clock.now()
        assessment = new_account_assessment_id(merge.id)
        account_id = funded_account_id_for(assessment)
        opened = open_account(
            idempotency_key=f"account-{account_id}",
            scope=FUNDED_SCOPE,
            currency=TIER_CURRENCY,
            owner_id=source.owner_id,
            metadata={"funded_account_id": str(account_id), "tier": source.tier.name.value},
        )
        account = FundedAccount.activate(
            assessment_id=assessment,
            owner_id=source.owner_id,
            tier=source.tier.name,
            profit_split=source.profit_split,
            completed_at=now,
            ledger_account_id=opened.account_id,
            activated_at=now,
            actor=_actor(merge),
            starting_balance_minor=amount_minor,
        )
        if source.parent_id is not None:
            account.link_to_parent(source.parent_id, merge.id, now)
        return account, opened

    def _give_up(self, merge_id: UUID, reason: str) -> Merge:
        """Roll back a merge that cannot be carried out (approved or executing):
        the source trades again, nothing moved."""

        def attempt() -> Merge | None:
            merge = self.require_merge(merge_id)
            if merge.status not in (MergeStatus.APPROVED, MergeStatus.EXECUTING):
                return merge
            source = self._require_account(merge.source_id)
            now = self._clock.now()
            merge.roll_back(reason, now)
            if source.state is FundedAccountState.MERGING:
                source.change_state(
                    FundedAccountState.ACTIVE, f"merge {merge.id} rolled back", _actor(merge), now
                )
            if write_with_aggregates(self._writer, [], source, merge) is None:
                return None
            log.warning("merge_rolled_back", merge_id=str(merge.id), reason=reason)
            return merge

        return retry_while_stale(attempt, lambda: _contended(merge_id))

    def _require_account(self, funded_account_id: UUID) -> FundedAccount:
        return require_funded_account(self._app, funded_account_id)


def _require_no_positions(source: FundedAccount) -> None:
    if source.positions:
        raise LedgerRefusal(
            ResultCode.OPEN_POSITIONS,
            f"close or move the account's {len(source.positions)} open positions first",
            open_positions=len(source.positions),
        )


def _require_same_request(existing: Merge, request: MergeRequest) -> None:
    same = (
        existing.target_kind is request.target_kind
        and existing.amount_minor == request.amount_minor
        and existing.trigger is request.trigger
        and existing.urgency is request.urgency
        and (
            request.target_kind is not MergeTarget.SIBLING
            or existing.target_id == request.target_id
        )
    )
    if not same:
        raise LedgerRefusal(
            ResultCode.IDEMPOTENCY_KEY_REUSED,
            "this request key made another merge; use a new key for a new request",
            merge_id=str(existing.id),
        )


def _invalid_target(message: str) -> LedgerRefusal:
    return LedgerRefusal(ResultCode.MERGE_TARGET_INVALID, message)


def _actor(merge: Merge) -> str:
    return f"merge:{merge.id}"


def _contended(merge_id: UUID) -> LedgerRefusal:
    return LedgerRefusal(
        ResultCode.CONCURRENT_CHANGE,
        "the merge kept changing under this request; send it again",
        merge_id=str(merge_id),
    )
