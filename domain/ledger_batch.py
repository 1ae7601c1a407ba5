"""One batch of ledger commands, decided in order against current totals.

This is the unit of work behind group commit. Each command succeeds or fails
on its own (TigerBeetle's semantics), except a linked chain, which succeeds
or fails as a whole. Decisions are staged, not applied: nothing touches an
aggregate until `finish()`, so a failed chain is undone by dropping what it
staged. `finish()` then turns the staged decisions into events: one per new
or changed transfer and one `PostingsApplied` per touched account with the net
change of the whole batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.account import Account, AccountState, Totals
from domain.commands import (
    ChangeAccountState,
    Command,
    CreateTransfer,
    ExpirePendingTransfer,
    OpenAccount,
    PostPendingTransfer,
    ReverseTransfer,
    VoidPendingTransfer,
)
from domain.money import format_amount
from domain.result_codes import LedgerRefusal, ResultCode
from domain.transfer import Posting, Side, Transfer, TransferStatus

_MISSING: Final = object()


@dataclass(frozen=True, slots=True)
class CommandResult:
    code: ResultCode
    # The account or transfer the command made or found; None when refused.
    id: UUID | None = None
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.code.succeeded


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    # Events of transfers created and not otherwise touched in this batch:
    # recorded without building their aggregates (see Transfer.recorded_event).
    recorded_transfers: list[Transfer.Recorded]
    aggregates: list[Aggregate]
    pending_deadlines_added: dict[UUID, datetime]
    pending_deadlines_removed: set[UUID]


@dataclass(frozen=True, slots=True)
class _StagedStateChange:
    account_id: UUID
    # The account's staged totals, and how many transfer effects had been
    # staged, when the change was decided: its events are written in order.
    totals_before: Totals
    effects_before: int
    command: ChangeAccountState


@dataclass(slots=True)
class _NewTransfer:
    recorded: Transfer.Recorded
    # Built only when a later command of the same batch needs the aggregate.
    aggregate: Transfer | None = None

    def materialized(self) -> Transfer:
        if self.aggregate is None:
            self.aggregate = Transfer.materialize(self.recorded)
        return self.aggregate


@dataclass(frozen=True, slots=True)
class _TransferChange:
    status: TransferStatus
    posted_postings: tuple[Posting, ...] = ()
    reversed_by: UUID | None = None


def transfer_ids_to_load(command: Command) -> tuple[UUID, ...]:
    if isinstance(command, ReverseTransfer):
        return (command.transfer_id, command.reversal_id)
    if isinstance(command, (OpenAccount, ChangeAccountState)):
        return ()
    return (command.transfer_id,)


def account_ids_to_load(command: Command, transfers: Mapping[UUID, Transfer]) -> Iterable[UUID]:
    """Accounts a command touches; for commands on a transfer, its postings' accounts."""
    if isinstance(command, (OpenAccount, ChangeAccountState)):
        return (command.account_id,)
    if isinstance(command, CreateTransfer):
        return (posting.account_id for posting in command.postings)
    transfer = transfers.get(command.transfer_id)
    if transfer is None:
        return ()
    return (posting.account_id for posting in transfer.postings)


class LedgerBatch:
    def __init__(
        self, accounts: Mapping[UUID, Account], transfers: Mapping[UUID, Transfer], now: datetime
    ) -> None:
        self._accounts: dict[UUID, Account] = dict(accounts)
        self._transfers: dict[UUID, Transfer] = dict(transfers)
        self._now = now
        # Staged state, layered over the aggregates.
        self._totals: dict[UUID, Totals] = {}
        self._new_accounts: dict[UUID, Account] = {}
        self._new_transfers: dict[UUID, _NewTransfer] = {}
        self._transfer_changes: dict[UUID, tuple[_TransferChange, ...]] = {}
        self._account_transfer_ids: list[tuple[UUID, UUID]] = []
        self._states: dict[UUID, AccountState] = {}
        self._state_changes: list[_StagedStateChange] = []
        self._deadlines_added: dict[UUID, datetime] = {}
        self._deadlines_removed: set[UUID] = set()
        # While a linked chain runs, every staged write is logged to be undone.
        self._undo: list[tuple[dict[Any, Any] | set[Any], Any, Any]] | None = None
        self._finished = False

    # Staging with undo -------------------------------------------------

    def _put(self, mapping: dict[Any, Any], key: Any, value: Any) -> None:
        if self._undo is not None:
            self._undo.append((mapping, key, mapping.get(key, _MISSING)))
        mapping[key] = value

    def _add(self, target: set[Any], key: Any) -> None:
        if self._undo is not None and key not in target:
            self._undo.append((target, key, False))
        target.add(key)

    def _staged_lengths(self) -> tuple[int, int]:
        return len(self._account_transfer_ids), len(self._state_changes)

    def _roll_back(self, undo: list[tuple[Any, Any, Any]], lengths: tuple[int, int]) -> None:
        for target, key, previous in reversed(undo):
            if isinstance(target, set):
                (target.add if previous else target.discard)(key)
            elif previous is _MISSING:
                del target[key]
            else:
                target[key] = previous
        del self._account_transfer_ids[lengths[0] :]
        del self._state_changes[lengths[1] :]

    # Views over aggregates plus what this batch staged ------------------

    def _account(self, account_id: UUID) -> Account | None:
        return self._new_accounts.get(account_id) or self._accounts.get(account_id)

    def _current_totals(self, account: Account) -> Totals:
        return self._totals.get(account.id) or account.totals

    def _current_state(self, account: Account) -> AccountState:
        return self._states.get(account.id) or account.state

    def _transfer(self, transfer_id: UUID) -> Transfer | None:
        new = self._new_transfers.get(transfer_id)
        if new is not None:
            return new.materialized()
        return self._transfers.get(transfer_id)

    def _fingerprint_of_transfer(self, transfer_id: UUID) -> tuple[str, UUID] | None:
        new = self._new_transfers.get(transfer_id)
        if new is not None:
            return new.recorded.fingerprint, transfer_id
        existing = self._transfers.get(transfer_id)
        return None if existing is None else (existing.fingerprint, existing.id)

    def _transfer_state(self, transfer: Transfer) -> _TransferChange:
        changes = self._transfer_changes.get(transfer.id)
        if changes:
            status = changes[-1].status
            posted = next((c.posted_postings for c in changes if c.posted_postings), ())
            reversed_by = next((c.reversed_by for c in changes if c.reversed_by), None)
            return _TransferChange(
                status,
                posted or transfer.posted_postings,
                reversed_by or _uuid_or_none(transfer.reversed_by_transfer_id),
            )
        return _TransferChange(
            transfer.status,
            transfer.posted_postings,
            _uuid_or_none(transfer.reversed_by_transfer_id),
        )

    def _stage_transfer_change(self, transfer: Transfer, change: _TransferChange) -> None:
        self._put(
            self._transfer_changes,
            transfer.id,
            (*self._transfer_changes.get(transfer.id, ()), change),
        )

    # Running commands ---------------------------------------------------

    def execute_all(self, commands: Sequence[Command]) -> list[CommandResult]:
        results: list[CommandResult] = []
        chain_start: int | None = None
        chain_failed = False
        lengths = (0, 0)
        for index, command in enumerate(commands):
            if chain_start is None and command.linked:
                chain_start, chain_failed = index, False
                self._undo, lengths = [], self._staged_lengths()
            if chain_start is not None and chain_failed:
                result = CommandResult(ResultCode.LINKED_EVENT_FAILED)
            else:
                result = self.execute(command)
            results.append(result)
            if chain_start is None:
                continue
            if not result.succeeded and not chain_failed:
                chain_failed = True
            chain_ends = not command.linked
            if chain_ends or index == len(commands) - 1:
                if not chain_ends:
                    # The last command of the batch still asks to be linked.
                    chain_failed = True
                    results[index] = CommandResult(
                        ResultCode.LINKED_EVENT_CHAIN_OPEN,
                        message="the last command of a batch cannot be linked to a next one",
                    )
                undo, self._undo = self._undo or [], None
                if chain_failed:
                    self._roll_back(undo, lengths)
                    for position in range(chain_start, index + 1):
                        if results[position].succeeded:
                            results[position] = CommandResult(ResultCode.LINKED_EVENT_FAILED)
                chain_start = None
        return results

    def execute(self, command: Command) -> CommandResult:
        assert not self._finished, "a finished batch takes no more commands"
        try:
            if isinstance(command, CreateTransfer):
                return self._create_transfer(command)
            if isinstance(command, PostPendingTransfer):
                return self._post_pending(command)
            if isinstance(command, VoidPendingTransfer):
                return self._release_pending(command.transfer_id, TransferStatus.VOIDED)
            if isinstance(command, ExpirePendingTransfer):
                return self._release_pending(command.transfer_id, TransferStatus.EXPIRED)
            if isinstance(command, ReverseTransfer):
                return self._reverse(command)
            if isinstance(command, OpenAccount):
                return self._open_account(command)
            return self._change_account_state(command)
        except LedgerRefusal as refusal:
            return CommandResult(refusal.code, None, refusal.message, refusal.details)

    def _open_account(self, command: OpenAccount) -> CommandResult:
        existing = self._account(command.account_id)
        if existing is not None:
            return _exists_or_reused(existing.fingerprint, command.fingerprint, existing.id)
        account = Account(
            id=command.account_id,
            currency=command.currency,
            owner_id=command.owner_id,
            kind=command.kind.value,
            debits_must_not_exceed_credits=command.debits_must_not_exceed_credits,
            credits_must_not_exceed_debits=command.credits_must_not_exceed_debits,
            metadata=command.metadata,
            fingerprint=command.fingerprint,
            opened_at=self._now,
        )
        self._put(self._new_accounts, account.id, account)
        return CommandResult(ResultCode.OK, account.id)

    def _change_account_state(self, command: ChangeAccountState) -> CommandResult:
        account = self._account(command.account_id)
        if account is None:
            raise LedgerRefusal(ResultCode.ACCOUNT_NOT_FOUND, "no such account")
        totals = self._current_totals(account)
        Account.require_state_change(self._current_state(account), command.new_state, totals)
        self._put(self._states, account.id, command.new_state)
        self._state_changes.append(
            _StagedStateChange(account.id, totals, len(self._account_transfer_ids), command)
        )
        return CommandResult(ResultCode.OK, account.id)

    def _require_postable_accounts(
        self, postings: Iterable[Posting], *, require_active: bool
    ) -> dict[UUID, Account]:
        accounts: dict[UUID, Account] = {}
        for posting in postings:
            account_id = posting.account_id
            account = self._account(account_id)
            if account is None:
                raise LedgerRefusal(
                    ResultCode.ACCOUNT_NOT_FOUND,
                    f"account {account_id} does not exist",
                    account_id=str(account_id),
                )
            if require_active:
                state = self._current_state(account)
                if state is not AccountState.ACTIVE:
                    raise LedgerRefusal(
                        ResultCode.ACCOUNT_NOT_ACTIVE,
                        f"account {account_id} is {state.value}",
                        account_id=str(account_id),
                        state=state.value,
                    )
            if account.currency != posting.currency:
                raise LedgerRefusal(
                    ResultCode.CURRENCY_MISMATCH,
                    f"account {account_id} holds {account.currency}, not {posting.currency}",
                    account_id=str(account_id),
                    account_currency=account.currency,
                    posting_currency=posting.currency,
                )
            accounts[account_id] = account
        return accounts

    def _stage_totals(
        self,
        accounts: Mapping[UUID, Account],
        changes: Mapping[UUID, Totals],
        transfer_id: UUID,
        *,
        enforce_limits: bool = True,
    ) -> None:
        """Check every account's new totals first, then stage them all."""
        new_totals: dict[UUID, Totals] = {}
        for account_id, change in changes.items():
            account = accounts[account_id]
            before = self._current_totals(account)
            after = Totals(
                before[0] + change[0],
                before[1] + change[1],
                before[2] + change[2],
                before[3] + change[3],
            )
            refusal = account.refusal_for(after) if enforce_limits else None
            if refusal is not None:
                raise limit_refusal(refusal, account, before, change)
            new_totals[account_id] = after
        for account_id, after in new_totals.items():
            self._put(self._totals, account_id, after)
            self._account_transfer_ids.append((account_id, transfer_id))

    def _create_transfer(self, command: CreateTransfer) -> CommandResult:
        existing = self._fingerprint_of_transfer(command.transfer_id)
        if existing is not None:
            return _exists_or_reused(existing[0], command.fingerprint, existing[1])
        accounts = self._require_postable_accounts(command.postings, require_active=True)
        changes = _changes_for(command.postings, pending=command.pending)
        self._stage_totals(accounts, changes, command.transfer_id)
        expires_at = (
            self._now + timedelta(seconds=command.timeout_s)
            if command.pending and command.timeout_s is not None
            else None
        )
        recorded = Transfer.recorded_event(
            transfer_id=command.transfer_id,
            postings=command.postings,
            pending=command.pending,
            expires_at=expires_at,
            reverses_transfer_id=None,
            metadata=command.metadata,
            fingerprint=command.fingerprint,
            recorded_at=self._now,
        )
        self._put(self._new_transfers, command.transfer_id, _NewTransfer(recorded))
        if expires_at is not None:
            self._put(self._deadlines_added, command.transfer_id, expires_at)
        return CommandResult(ResultCode.OK, command.transfer_id)

    def _pending_transfer(self, transfer_id: UUID) -> tuple[Transfer, _TransferChange]:
        transfer = self._transfer(transfer_id)
        if transfer is None:
            raise LedgerRefusal(ResultCode.PENDING_TRANSFER_NOT_FOUND, "no such pending transfer")
        if not transfer.was_pending:
            raise LedgerRefusal(
                ResultCode.PENDING_TRANSFER_NOT_PENDING, "the transfer was not made pending"
            )
        state = self._transfer_state(transfer)
        if state.status is TransferStatus.POSTED:
            raise LedgerRefusal(
                ResultCode.PENDING_TRANSFER_ALREADY_POSTED, "the pending transfer is already posted"
            )
        if state.status is TransferStatus.VOIDED:
            raise LedgerRefusal(
                ResultCode.PENDING_TRANSFER_ALREADY_VOIDED, "the pending transfer is already voided"
            )
        if state.status is TransferStatus.EXPIRED:
            raise LedgerRefusal(
                ResultCode.PENDING_TRANSFER_EXPIRED, "the pending transfer has expired"
            )
        return transfer, state

    def _is_past_deadline(self, transfer: Transfer) -> bool:
        return transfer.expires_at is not None and self._now >= transfer.expires_at

    def _post_pending(self, command: PostPendingTransfer) -> CommandResult:
        transfer, _ = self._pending_transfer(command.transfer_id)
        if self._is_past_deadline(transfer):
            raise LedgerRefusal(
                ResultCode.PENDING_TRANSFER_EXPIRED,
                "the pending transfer passed its deadline",
                expired_at=str(transfer.expires_at),
            )
        posted_postings = _postings_to_post(transfer.postings, command.amount_minor)
        accounts = self._require_postable_accounts(transfer.postings, require_active=True)
        changes = _changes_for(transfer.postings, pending=True, sign=-1)
        for account_id, change in _changes_for(posted_postings, pending=False).items():
            changes[account_id] = changes[account_id].plus(change)
        self._stage_totals(accounts, changes, transfer.id)
        self._stage_transfer_change(
            transfer, _TransferChange(TransferStatus.POSTED, posted_postings)
        )
        self._put(self._deadlines_added, transfer.id, None)
        self._add(self._deadlines_removed, transfer.id)
        return CommandResult(ResultCode.OK, transfer.id)

    def _release_pending(self, transfer_id: UUID, outcome: TransferStatus) -> CommandResult:
        transfer, _ = self._pending_transfer(transfer_id)
        past_deadline = self._is_past_deadline(transfer)
        if outcome is TransferStatus.VOIDED and past_deadline:
            raise LedgerRefusal(
                ResultCode.PENDING_TRANSFER_EXPIRED, "the pending transfer passed its deadline"
            )
        if outcome is TransferStatus.EXPIRED and not past_deadline:
            raise LedgerRefusal(
                ResultCode.PENDING_TRANSFER_NOT_EXPIRED,
                "the pending transfer has not reached its deadline",
            )
        # Releasing a hold never needs the account active or within limits.
        accounts = self._require_postable_accounts(transfer.postings, require_active=False)
        changes = _changes_for(transfer.postings, pending=True, sign=-1)
        self._stage_totals(accounts, changes, transfer.id, enforce_limits=False)
        self._stage_transfer_change(transfer, _TransferChange(outcome))
        self._put(self._deadlines_added, transfer.id, None)
        self._add(self._deadlines_removed, transfer.id)
        return CommandResult(ResultCode.OK, transfer.id)

    def _reverse(self, command: ReverseTransfer) -> CommandResult:
        original = self._transfer(command.transfer_id)
        if original is None:
            raise LedgerRefusal(ResultCode.TRANSFER_NOT_FOUND, "no such transfer")
        if original.reverses_transfer_id is not None:
            raise LedgerRefusal(
                ResultCode.REVERSAL_NOT_REVERSIBLE,
                "a reversal cannot be reversed; post a new transfer instead",
                reverses_transfer_id=original.reverses_transfer_id,
            )
        state = self._transfer_state(original)
        if state.reversed_by is not None:
            return self._reversed_already(state.reversed_by, command)
        if state.status is not TransferStatus.POSTED:
            raise LedgerRefusal(
                ResultCode.TRANSFER_NOT_POSTED,
                f"only a posted transfer can be reversed; this one is {state.status.value}",
            )
        reversal_postings = tuple(
            posting._replace(side=posting.side.opposite) for posting in state.posted_postings
        )
        accounts = self._require_postable_accounts(reversal_postings, require_active=True)
        reversal_id = command.reversal_id
        self._stage_totals(accounts, _changes_for(reversal_postings, pending=False), reversal_id)
        recorded = Transfer.recorded_event(
            transfer_id=reversal_id,
            postings=reversal_postings,
            pending=False,
            expires_at=None,
            reverses_transfer_id=str(original.id),
            metadata=command.metadata,
            fingerprint=f"reversal:{original.id}",
            recorded_at=self._now,
        )
        self._put(self._new_transfers, reversal_id, _NewTransfer(recorded))
        self._stage_transfer_change(
            original,
            _TransferChange(TransferStatus.POSTED, state.posted_postings, reversed_by=reversal_id),
        )
        return CommandResult(ResultCode.OK, reversal_id)

    def _reversed_already(self, reversal_id: UUID, command: ReverseTransfer) -> CommandResult:
        """The same request again (the same metadata) is a retry and finds the
        reversal; other metadata asks for a second reversal, which is refused."""
        reversal = self._transfer(reversal_id)
        if reversal is None or reversal.metadata == command.metadata:
            return CommandResult(ResultCode.EXISTS, reversal_id)
        raise LedgerRefusal(
            ResultCode.TRANSFER_ALREADY_REVERSED,
            "this transfer was reversed already, with other metadata",
            reversal_transfer_id=str(reversal_id),
        )

    # Turning decisions into events -------------------------------------

    def finish(self) -> BatchOutcome:
        """Apply the staged decisions to the aggregates, as events."""
        assert self._undo is None, "a linked chain is still open"
        self._finished = True
        touched: dict[UUID, Aggregate] = {}
        recorded_transfers = [new.recorded for new in self._new_transfers.values()]
        for transfer_id, changes in self._transfer_changes.items():
            touched[transfer_id] = self._apply_transfer_changes(transfer_id, changes)
        touched.update(self._new_accounts)
        for account in self._apply_staged_totals():
            touched[account.id] = account
        for account in self._accounts.values():
            if account.pending_events:
                touched[account.id] = account
        return BatchOutcome(
            recorded_transfers=recorded_transfers,
            aggregates=[aggregate for aggregate in touched.values() if aggregate.pending_events],
            pending_deadlines_added={
                transfer_id: deadline
                for transfer_id, deadline in self._deadlines_added.items()
                if deadline is not None
            },
            pending_deadlines_removed=set(self._deadlines_removed),
        )

    def _apply_transfer_changes(
        self, transfer_id: UUID, changes: tuple[_TransferChange, ...]
    ) -> Transfer:
        transfer = self._transfer(transfer_id)
        assert transfer is not None, transfer_id
        for change in changes:
            if change.reversed_by is not None:
                transfer.mark_reversed(change.reversed_by, self._now)
            elif change.status is TransferStatus.POSTED:
                transfer.post_pending(change.posted_postings, self._now)
            elif change.status is TransferStatus.VOIDED:
                transfer.void_pending(self._now)
            elif change.status is TransferStatus.EXPIRED:
                transfer.expire_pending(self._now)
        return transfer

    def _apply_staged_totals(self) -> list[Account]:
        """Per account, in the order decided: one PostingsApplied with the net
        change and the transfers behind it, and a StateChanged where a state
        change came between them."""
        effects_by_account: dict[UUID, list[tuple[int, UUID]]] = {}
        for position, (account_id, transfer_id) in enumerate(self._account_transfer_ids):
            effects_by_account.setdefault(account_id, []).append((position, transfer_id))
        state_changes_by_account: dict[UUID, list[_StagedStateChange]] = {}
        for state_change in self._state_changes:
            state_changes_by_account.setdefault(state_change.account_id, []).append(state_change)
        changed: list[Account] = []
        for account_id in dict.fromkeys([*self._totals, *state_changes_by_account]):
            account = self._account(account_id)
            assert account is not None, account_id
            effects = effects_by_account.get(account_id, [])
            for state_change in state_changes_by_account.get(account_id, []):
                self._apply_postings_up_to(
                    account,
                    state_change.totals_before,
                    [tid for position, tid in effects if position < state_change.effects_before],
                )
                effects = [(p, tid) for p, tid in effects if p >= state_change.effects_before]
                command = state_change.command
                account.change_state(command.new_state, command.reason, command.actor, self._now)
            self._apply_postings_up_to(
                account, self._current_totals(account), [tid for _, tid in effects]
            )
            changed.append(account)
        return changed

    @staticmethod
    def _apply_postings_up_to(account: Account, totals: Totals, transfer_ids: list[UUID]) -> None:
        change = Totals(
            *(after - prior for after, prior in zip(totals, account.totals, strict=True))
        )
        if transfer_ids or any(change):
            account.apply_postings(change, _unique(str(tid) for tid in transfer_ids))


def _uuid_or_none(text: str | None) -> UUID | None:
    return UUID(text) if text else None


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _exists_or_reused(stored_fingerprint: str, fingerprint: str, found_id: UUID) -> CommandResult:
    if stored_fingerprint == fingerprint:
        return CommandResult(ResultCode.EXISTS, found_id)
    raise LedgerRefusal(
        ResultCode.IDEMPOTENCY_KEY_REUSED,
        "this idempotency key was already used for a request with other details",
        existing_id=str(found_id),
    )


def _changes_for(
    postings: Iterable[Posting], *, pending: bool, sign: int = 1
) -> dict[UUID, Totals]:
    """Each account's change in its four totals (the order of `Totals`)."""
    changes: dict[UUID, list[int]] = {}
    for posting in postings:
        change = changes.get(posting.account_id)
        if change is None:
            change = changes[posting.account_id] = [0, 0, 0, 0]
        # Index into (debits_pending, debits_posted, credits_pending, credits_posted).
        index = (0 if posting.side is Side.DEBIT else 2) + (0 if pending else 1)
        change[index] += sign * posting.amount_minor
    return {account_id: Totals(*change) for account_id, change in changes.items()}


def _postings_to_post(
    postings: tuple[Posting, ...], amount_minor: int | None
) -> tuple[Posting, ...]:
    if amount_minor is None:
        return postings
    full = postings[0].amount_minor
    if len(postings) != 2:
        if all(posting.amount_minor == amount_minor for posting in postings):
            return postings
        raise LedgerRefusal(
            ResultCode.PARTIAL_POST_NEEDS_TWO_POSTINGS,
            "a smaller amount can be posted only for a two-posting transfer; post it in full",
        )
    if amount_minor <= 0:
        raise LedgerRefusal(ResultCode.AMOUNT_MUST_BE_POSITIVE, "amount must be greater than zero")
    if amount_minor > full:
        currency = postings[0].currency
        raise LedgerRefusal(
            ResultCode.EXCEEDS_PENDING_TRANSFER_AMOUNT,
            f"cannot post {format_amount(amount_minor, currency)} {currency}: the hold holds "
            f"{format_amount(full, currency)} {currency}",
            currency=currency,
            pending_amount=format_amount(full, currency),
            requested=format_amount(amount_minor, currency),
            pending_amount_minor=full,
        )
    return tuple(posting._replace(amount_minor=amount_minor) for posting in postings)


def limit_refusal(
    code: ResultCode, account: Account, before: Totals, change: Totals
) -> LedgerRefusal:
    """An account limit refused the change: say how much the account had room
    for and how much was asked, as money in its currency (minor units alongside,
    named so), so a client can tell the user what to do."""
    currency = account.currency
    if code is ResultCode.INSUFFICIENT_FUNDS:
        available = before.credits_posted - before.debits_posted - before.debits_pending
        requested = change.debits_pending + change.debits_posted
        what = "available"
    elif code is ResultCode.EXCEEDS_DEBITS:
        available = before.debits_posted - before.credits_posted - before.credits_pending
        requested = change.credits_pending + change.credits_posted
        what = "creditable"
    else:
        return LedgerRefusal(
            code,
            f"account {account.id} cannot take this transfer: a total would pass its maximum",
            account_id=str(account.id),
        )
    available_text = format_amount(available, currency)
    requested_text = format_amount(requested, currency)
    return LedgerRefusal(
        code,
        f"account {account.id} has {available_text} {currency} {what}; "
        f"this transfer needs {requested_text} {currency}",
        account_id=str(account.id),
        currency=currency,
        available=available_text,
        requested=requested_text,
        available_minor_units=available,
        requested_minor_units=requested,
    )
