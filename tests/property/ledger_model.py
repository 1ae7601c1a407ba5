"""A plain model of the ledger's rules, to predict what each command must return.

It is written from the rules (TigerBeetle's semantics,
docs/rules.md#ledger-core), not from the implementation: plain dictionaries and
integers, no staging, no events. A linked chain is predicted by copying the
model and throwing the copy away when a member fails.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from domain.account import AccountState, Totals
from domain.commands import Command, CreateTransfer, create_transfer
from domain.identifiers import reversal_id_for, transfer_id_for
from domain.money import AMOUNT_MINOR_MAX
from domain.result_codes import ResultCode
from domain.transfer import Posting, Side, TransferStatus

ALLOWED_TRANSITIONS: dict[AccountState, frozenset[AccountState]] = {
    AccountState.ACTIVE: frozenset({AccountState.SUSPENDED, AccountState.CLOSED}),
    AccountState.SUSPENDED: frozenset({AccountState.ACTIVE, AccountState.CLOSED}),
    AccountState.CLOSED: frozenset(),
}
SUCCESSES = frozenset({ResultCode.OK, ResultCode.EXISTS})


@dataclass(frozen=True)
class Expected:
    """The codes a command may come back with, and the id it must name if it succeeds."""

    codes: frozenset[ResultCode]
    id: UUID | None = None

    @classmethod
    def ok(cls, found_id: UUID) -> Expected:
        return cls(frozenset({ResultCode.OK}), found_id)

    @classmethod
    def exists(cls, found_id: UUID) -> Expected:
        return cls(frozenset({ResultCode.EXISTS}), found_id)

    @classmethod
    def refused(cls, *codes: ResultCode) -> Expected:
        assert codes and not SUCCESSES & set(codes)
        return cls(frozenset(codes))

    @property
    def succeeded(self) -> bool:
        return self.codes <= SUCCESSES


LINKED_EVENT_FAILED = Expected.refused(ResultCode.LINKED_EVENT_FAILED)
LINKED_EVENT_CHAIN_OPEN = Expected.refused(ResultCode.LINKED_EVENT_CHAIN_OPEN)


@dataclass(frozen=True)
class TransferRequest:
    """What a client sends to make a transfer; its key names the transfer."""

    key: str
    postings: tuple[Posting, ...]
    pending: bool = False
    timeout_s: int | None = None

    @property
    def transfer_id(self) -> UUID:
        return transfer_id_for(self.key)

    @property
    def details(self) -> tuple[object, ...]:
        return (self.postings, self.pending, self.timeout_s)

    def command(self) -> CreateTransfer:
        return create_transfer(
            idempotency_key=self.key,
            postings=self.postings,
            pending=self.pending,
            timeout_s=self.timeout_s,
        )


@dataclass
class ModelAccount:
    account_id: UUID
    currency: str
    debits_must_not_exceed_credits: bool
    credits_must_not_exceed_debits: bool
    details: tuple[object, ...]
    state: AccountState = AccountState.ACTIVE
    totals: Totals = field(default_factory=Totals)

    def limit_broken_by(self, totals: Totals) -> ResultCode | None:
        if any(not 0 <= total <= AMOUNT_MINOR_MAX for total in totals):
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


@dataclass
class ModelTransfer:
    transfer_id: UUID
    postings: tuple[Posting, ...]
    was_pending: bool
    status: TransferStatus
    expires_at: datetime | None
    # The request's details, to tell a retry from a reused key; None for reversals.
    details: tuple[object, ...] | None
    posted_postings: tuple[Posting, ...] = ()
    reversed_by: UUID | None = None
    reverses: UUID | None = None


def changes_for(postings: Iterable[Posting], *, pending: bool, sign: int = 1) -> dict[UUID, Totals]:
    changes: dict[UUID, Totals] = {}
    for posting in postings:
        amount = sign * posting.amount_minor
        if posting.side is Side.DEBIT:
            change = Totals(debits_pending=amount) if pending else Totals(debits_posted=amount)
        else:
            change = Totals(credits_pending=amount) if pending else Totals(credits_posted=amount)
        changes[posting.account_id] = changes.get(posting.account_id, Totals()).plus(change)
    return changes


def merged(*all_changes: dict[UUID, Totals]) -> dict[UUID, Totals]:
    result: dict[UUID, Totals] = {}
    for changes in all_changes:
        for account_id, change in changes.items():
            result[account_id] = result.get(account_id, Totals()).plus(change)
    return result


@dataclass
class LedgerModel:
    now: datetime
    accounts: dict[UUID, ModelAccount] = field(default_factory=dict)
    transfers: dict[UUID, ModelTransfer] = field(default_factory=dict)

    # Checks ------------------------------------------------------------------

    def _account_problems(
        self, postings: Iterable[Posting], *, require_active: bool
    ) -> set[ResultCode]:
        problems: set[ResultCode] = set()
        for posting in postings:
            account = self.accounts.get(posting.account_id)
            if account is None:
                problems.add(ResultCode.ACCOUNT_NOT_FOUND)
                continue
            if require_active and account.state is not AccountState.ACTIVE:
                problems.add(ResultCode.ACCOUNT_NOT_ACTIVE)
            if account.currency != posting.currency:
                problems.add(ResultCode.CURRENCY_MISMATCH)
        return problems

    def _limit_problems(self, changes: dict[UUID, Totals]) -> set[ResultCode]:
        problems: set[ResultCode] = set()
        for account_id, change in changes.items():
            account = self.accounts[account_id]
            broken = account.limit_broken_by(account.totals.plus(change))
            if broken is not None:
                problems.add(broken)
        return problems

    def _apply(self, changes: dict[UUID, Totals]) -> None:
        for account_id, change in changes.items():
            account = self.accounts[account_id]
            account.totals = account.totals.plus(change)

    def _is_past_deadline(self, transfer: ModelTransfer) -> bool:
        return transfer.expires_at is not None and self.now >= transfer.expires_at

    def _pending(self, transfer_id: UUID) -> ModelTransfer | Expected:
        transfer = self.transfers.get(transfer_id)
        if transfer is None:
            return Expected.refused(ResultCode.PENDING_TRANSFER_NOT_FOUND)
        if not transfer.was_pending:
            return Expected.refused(ResultCode.PENDING_TRANSFER_NOT_PENDING)
        refusal = {
            TransferStatus.POSTED: ResultCode.PENDING_TRANSFER_ALREADY_POSTED,
            TransferStatus.VOIDED: ResultCode.PENDING_TRANSFER_ALREADY_VOIDED,
            TransferStatus.EXPIRED: ResultCode.PENDING_TRANSFER_EXPIRED,
        }.get(transfer.status)
        return transfer if refusal is None else Expected.refused(refusal)

    # Commands ------------------------------------------------------------------

    def open_account(
        self,
        account_id: UUID,
        currency: str,
        debits_must_not_exceed_credits: bool,
        credits_must_not_exceed_debits: bool,
    ) -> Expected:
        details = (currency, debits_must_not_exceed_credits, credits_must_not_exceed_debits)
        existing = self.accounts.get(account_id)
        if existing is not None:
            if existing.details == details:
                return Expected.exists(account_id)
            return Expected.refused(ResultCode.IDEMPOTENCY_KEY_REUSED)
        self.accounts[account_id] = ModelAccount(
            account_id,
            currency,
            debits_must_not_exceed_credits,
            credits_must_not_exceed_debits,
            details,
        )
        return Expected.ok(account_id)

    def create_transfer(self, request: TransferRequest) -> Expected:
        transfer_id = request.transfer_id
        existing = self.transfers.get(transfer_id)
        if existing is not None:
            if existing.details == request.details:
                return Expected.exists(transfer_id)
            return Expected.refused(ResultCode.IDEMPOTENCY_KEY_REUSED)
        problems = self._account_problems(request.postings, require_active=True)
        if problems:
            return Expected.refused(*problems)
        changes = changes_for(request.postings, pending=request.pending)
        problems = self._limit_problems(changes)
        if problems:
            return Expected.refused(*problems)
        self._apply(changes)
        expires_at = (
            self.now + timedelta(seconds=request.timeout_s)
            if request.pending and request.timeout_s is not None
            else None
        )
        self.transfers[transfer_id] = ModelTransfer(
            transfer_id,
            request.postings,
            request.pending,
            TransferStatus.PENDING if request.pending else TransferStatus.POSTED,
            expires_at,
            request.details,
            posted_postings=() if request.pending else request.postings,
        )
        return Expected.ok(transfer_id)

    def post_pending(self, transfer_id: UUID, amount_minor: int | None) -> Expected:
        transfer = self._pending(transfer_id)
        if isinstance(transfer, Expected):
            return transfer
        if self._is_past_deadline(transfer):
            return Expected.refused(ResultCode.PENDING_TRANSFER_EXPIRED)
        problems: set[ResultCode] = set()
        posted = transfer.postings
        if amount_minor is not None:
            if len(transfer.postings) != 2:
                if any(p.amount_minor != amount_minor for p in transfer.postings):
                    problems.add(ResultCode.PARTIAL_POST_NEEDS_TWO_POSTINGS)
            elif amount_minor <= 0:
                problems.add(ResultCode.AMOUNT_MUST_BE_POSITIVE)
            elif amount_minor > transfer.postings[0].amount_minor:
                problems.add(ResultCode.EXCEEDS_PENDING_TRANSFER_AMOUNT)
            else:
                posted = tuple(p._replace(amount_minor=amount_minor) for p in transfer.postings)
        problems |= self._account_problems(transfer.postings, require_active=True)
        if problems:
            return Expected.refused(*problems)
        changes = merged(
            changes_for(transfer.postings, pending=True, sign=-1),
            changes_for(posted, pending=False),
        )
        problems = self._limit_problems(changes)
        if problems:
            return Expected.refused(*problems)
        self._apply(changes)
        transfer.status = TransferStatus.POSTED
        transfer.posted_postings = posted
        return Expected.ok(transfer_id)

    def void_pending(self, transfer_id: UUID) -> Expected:
        transfer = self._pending(transfer_id)
        if isinstance(transfer, Expected):
            return transfer
        if self._is_past_deadline(transfer):
            return Expected.refused(ResultCode.PENDING_TRANSFER_EXPIRED)
        return self._release(transfer, TransferStatus.VOIDED)

    def expire_pending(self, transfer_id: UUID) -> Expected:
        transfer = self._pending(transfer_id)
        if isinstance(transfer, Expected):
            return transfer
        if not self._is_past_deadline(transfer):
            return Expected.refused(ResultCode.PENDING_TRANSFER_NOT_EXPIRED)
        return self._release(transfer, TransferStatus.EXPIRED)

    def _release(self, transfer: ModelTransfer, outcome: TransferStatus) -> Expected:
        # Releasing a hold needs neither an active account nor room under a limit.
        self._apply(changes_for(transfer.postings, pending=True, sign=-1))
        transfer.status = outcome
        return Expected.ok(transfer.transfer_id)

    def reverse(self, transfer_id: UUID) -> Expected:
        original = self.transfers.get(transfer_id)
        if original is None:
            return Expected.refused(ResultCode.TRANSFER_NOT_FOUND)
        if original.reverses is not None:
            return Expected.refused(ResultCode.REVERSAL_NOT_REVERSIBLE)
        if original.reversed_by is not None:
            return Expected.exists(original.reversed_by)
        if original.status is not TransferStatus.POSTED:
            return Expected.refused(ResultCode.TRANSFER_NOT_POSTED)
        postings = tuple(p._replace(side=p.side.opposite) for p in original.posted_postings)
        problems = self._account_problems(postings, require_active=True)
        if problems:
            return Expected.refused(*problems)
        changes = changes_for(postings, pending=False)
        problems = self._limit_problems(changes)
        if problems:
            return Expected.refused(*problems)
        self._apply(changes)
        reversal_id = reversal_id_for(transfer_id)
        self.transfers[reversal_id] = ModelTransfer(
            reversal_id,
            postings,
            False,
            TransferStatus.POSTED,
            None,
            None,
            posted_postings=postings,
            reverses=transfer_id,
        )
        original.reversed_by = reversal_id
        return Expected.ok(reversal_id)

    def change_state(self, account_id: UUID, new_state: AccountState) -> Expected:
        account = self.accounts.get(account_id)
        if account is None:
            return Expected.refused(ResultCode.ACCOUNT_NOT_FOUND)
        if new_state not in ALLOWED_TRANSITIONS[account.state]:
            return Expected.refused(ResultCode.INVALID_STATE_TRANSITION)
        totals = account.totals
        if new_state is AccountState.CLOSED:
            if totals.debits_pending or totals.credits_pending:
                return Expected.refused(ResultCode.ACCOUNT_HAS_PENDING_TRANSFERS)
            if totals.debits_posted != totals.credits_posted:
                return Expected.refused(ResultCode.ACCOUNT_BALANCE_NOT_ZERO)
        account.state = new_state
        return Expected.ok(account_id)

    # Views ---------------------------------------------------------------------

    def due_pending_transfer_ids(self) -> set[UUID]:
        return {
            transfer.transfer_id
            for transfer in self.transfers.values()
            if transfer.status is TransferStatus.PENDING and self._is_past_deadline(transfer)
        }

    def spendable(self, account_id: UUID) -> int:
        totals = self.accounts[account_id].totals
        return totals.credits_posted - totals.debits_posted - totals.debits_pending


Prediction = Callable[[LedgerModel], Expected]


@dataclass(frozen=True)
class Step:
    """One command of a batch, with how the model predicts its result."""

    command: Command
    predict: Prediction


def predict_batch(model: LedgerModel, steps: Sequence[Step]) -> tuple[LedgerModel, list[Expected]]:
    """Each command alone, in order, except linked chains: all or nothing."""
    expected: list[Expected] = []
    chain_start: int | None = None
    saved: LedgerModel | None = None
    chain_failed = False
    last = len(steps) - 1
    for index, step in enumerate(steps):
        if chain_start is None and step.command.linked:
            chain_start, saved, chain_failed = index, copy.deepcopy(model), False
        if chain_start is not None and chain_failed:
            outcome = LINKED_EVENT_FAILED
        else:
            outcome = step.predict(model)
        expected.append(outcome)
        if chain_start is None:
            continue
        chain_failed = chain_failed or not outcome.succeeded
        chain_ends = not step.command.linked
        if chain_ends or index == last:
            if not chain_ends:
                chain_failed = True
                expected[index] = LINKED_EVENT_CHAIN_OPEN
            if chain_failed:
                assert saved is not None
                model = saved
                for position in range(chain_start, index + 1):
                    if expected[position].succeeded:
                        expected[position] = LINKED_EVENT_FAILED
            chain_start, saved = None, None
    return model, expected
