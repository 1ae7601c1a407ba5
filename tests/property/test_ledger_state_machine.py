"""Random command sequences against the ledger, checked after every step.

Every batch's results are compared with a plain model of the rules
(`ledger_model.py`). After every step the stored events are replayed, apart
from the service's own read paths, and the ledger's invariants are checked on
what they say: every transfer balanced per currency, total debits equal total
credits per currency, each account's totals equal the sum of its transfers'
postings, no flagged account past its limit, no key making a second transfer;
and the replayed state must equal the model's.

The same machine runs on the in-memory store (many examples) and on real
PostgreSQL (a few). The writers' caches are kept tiny so that aggregates are
evicted and reloaded all the time.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections import defaultdict
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Final
from uuid import UUID

from eventsourcing.domain import Aggregate
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from application.clock import SettableClock
from application.event_log import LedgerApplication
from application.writer import LedgerWriter, WriterLimits
from domain.account import Account, AccountKind, AccountState, Totals
from domain.commands import (
    CreateTransfer,
    ExpirePendingTransfer,
    PostPendingTransfer,
    ReverseTransfer,
    VoidPendingTransfer,
    change_account_state,
    open_account,
)
from domain.result_codes import ResultCode
from domain.transfer import Posting, Side, Transfer, TransferStatus
from interface.bootstrap import Ledger
from tests.property.ledger_model import (
    Expected,
    LedgerModel,
    Step,
    TransferRequest,
    predict_batch,
)
from tests.support import databases
from tests.support.ledgers import EPOCH, in_memory_writer

CURRENCIES = ("USD", "EUR")
# An id no account or transfer ever has: commands naming it must be refused.
GHOST = UUID("00000000-0000-4000-8000-00000000dead")
TINY_CACHES: Final[dict[str, int]] = {"account_cache_size_max": 3, "transfer_cache_size_max": 4}
SWEEP_LIMIT = 10_000
ACCOUNT_FLAGS = ((True, False), (False, True), (False, False))
COMMAND_KINDS = (
    "open",
    "reopen",
    "transfer",
    "transfer",
    "transfer",
    "deposit",
    "deposit",
    "hold",
    "hold",
    "multi_leg",
    "post",
    "post",
    "void",
    "reverse",
    "repeat",
    "change_state",
)
# Mostly suspensions and reactivations; closing is refused unless the account is empty.
NEW_STATES = (AccountState.ACTIVE, AccountState.ACTIVE, AccountState.SUSPENDED, AccountState.CLOSED)


@dataclass
class Backend:
    app: LedgerApplication
    writer: LedgerWriter
    clock: SettableClock
    close: Callable[[], None]
    # Checks the read side against the events at the end of a run.
    check_views: Callable[[], None] = lambda: None


def in_memory_backend() -> Backend:
    app, writer, clock = in_memory_writer(
        limits=WriterLimits(
            account_cache_size_max=TINY_CACHES["account_cache_size_max"],
            transfer_cache_size_max=TINY_CACHES["transfer_cache_size_max"],
        )
    )
    return Backend(app, writer, clock, app.close)


def _views_equal_a_fresh_replay(ledger: Ledger) -> None:
    """The live views, caught up, equal views rebuilt from scratch (digests)."""
    from interface.audit.verify import verify_ledger
    from projections.registry import view_names

    assert ledger.projections is not None
    assert ledger.projections.wait_for(ledger.writer.last_position, view_names(), 60.0)
    report = verify_ledger(ledger.database_url, check_views=True)
    assert report.ok, report.findings


def postgres_backend(server_url: str) -> Backend:
    """A fresh database and a ledger on it whose writer is driven synchronously:
    with its thread off, the expiry sweep runs only when the machine says so."""
    from interface.bootstrap import build_ledger
    from interface.settings import Settings

    stack = ExitStack()
    try:
        url = stack.enter_context(databases.fresh_database(server_url))
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        ledger_settings = Settings(
            database_url=url,
            data_dir=data_dir,
            database_pool_size=2,
            writer_account_cache_size_max=TINY_CACHES["account_cache_size_max"],
            writer_transfer_cache_size_max=TINY_CACHES["transfer_cache_size_max"],
        )
        clock = SettableClock(EPOCH)
        ledger = build_ledger(ledger_settings, clock=clock, start_writer=False)
        stack.callback(ledger.close)
    except BaseException:
        stack.close()
        raise
    return Backend(
        ledger.app,
        ledger.local_writer,
        clock,
        stack.close,
        lambda: _views_equal_a_fresh_replay(ledger),
    )


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self, backend_factory: Callable[[], Backend]) -> None:
        super().__init__()
        self.backend = backend_factory()
        self.model = LedgerModel(self.backend.clock.now())
        self.funding: dict[str, UUID] = {}
        # Every account key sent, whether or not the account came to exist.
        self.account_keys: dict[UUID, str] = {}
        self.requests: list[TransferRequest] = []
        self.created_transfer_ids: set[UUID] = set()
        self.reversal_ids: set[UUID] = set()
        self.replayed: dict[UUID, Aggregate] = {}
        self.replayed_position = 0
        self.sequence = 0

    def teardown(self) -> None:
        try:
            self.backend.check_views()
        finally:
            self.backend.close()

    # Sending commands and checking their results -----------------------------------

    def submit(self, steps: list[Step]) -> None:
        receipt = self.backend.writer.apply([step.command for step in steps])
        self.model, expected = predict_batch(self.model, steps)
        assert len(receipt.results) == len(steps)
        for step, result, wanted in zip(steps, receipt.results, expected, strict=True):
            assert result.code in wanted.codes, (
                f"{step.command!r} came back {result.code.value} ({result.message}); "
                f"the model allows {sorted(code.value for code in wanted.codes)}"
            )
            if wanted.succeeded and wanted.id is not None:
                assert result.id == wanted.id, (
                    f"{step.command!r} named {result.id}, not {wanted.id}"
                )
            if result.code is not ResultCode.OK:
                continue
            command = step.command
            if isinstance(command, CreateTransfer):
                assert command.transfer_id not in self.created_transfer_ids, "a key made two"
                self.created_transfer_ids.add(command.transfer_id)
            elif isinstance(command, ReverseTransfer):
                assert result.id is not None
                assert result.id not in self.reversal_ids, "a transfer was reversed twice"
                self.reversal_ids.add(result.id)

    def next_key(self, prefix: str) -> str:
        self.sequence += 1
        return f"{prefix}-{self.sequence}"

    # Choosing accounts and transfers ------------------------------------------------

    def accounts_where(
        self, *, currency: str | None = None, active: bool = False, users: bool = False
    ) -> list[UUID]:
        return [
            account.account_id
            for account in self.model.accounts.values()
            if (currency is None or account.currency == currency)
            and (not active or account.state is AccountState.ACTIVE)
            and (not users or account.account_id not in self.funding.values())
        ]

    def draw_account(self, data: st.DataObject, label: str, currency: str | None = None) -> UUID:
        """Mostly an active account; now and then any account, or one that does not exist."""
        choice = data.draw(st.integers(0, 19), label=f"{label} kind")
        active = self.accounts_where(currency=currency, active=True)
        if choice == 0:
            return GHOST
        if choice <= 3 or not active:
            return data.draw(st.sampled_from(self.accounts_where(currency=currency)), label=label)
        return data.draw(st.sampled_from(active), label=label)

    def currency_of(self, account_id: UUID) -> str:
        account = self.model.accounts.get(account_id)
        return "USD" if account is None else account.currency

    def draw_transfer_id(self, data: st.DataObject, *, pending_only: bool) -> UUID:
        transfers = list(self.model.transfers.values())
        pending = [t.transfer_id for t in transfers if t.status is TransferStatus.PENDING]
        candidates = [t.transfer_id for t in transfers if t.was_pending or not pending_only]
        choice = data.draw(st.integers(0, 9), label="transfer kind")
        if pending_only and pending and choice >= 3:
            return data.draw(st.sampled_from(pending), label="pending transfer")
        if not candidates or choice == 0:
            return GHOST
        return data.draw(st.sampled_from(candidates), label="transfer")

    # Drawing commands ---------------------------------------------------------------

    def request_step(self, request: TransferRequest) -> Step:
        self.requests.append(request)
        return Step(request.command(), lambda model: model.create_transfer(request))

    def open_step(
        self, key: str, currency: str, debits_limited: bool, credits_limited: bool
    ) -> Step:
        command = open_account(
            idempotency_key=key,
            currency=currency,
            owner_id="owner",
            debits_must_not_exceed_credits=debits_limited,
            credits_must_not_exceed_debits=credits_limited,
        )
        self.account_keys[command.account_id] = key
        return Step(
            command, _open_prediction(command.account_id, currency, debits_limited, credits_limited)
        )

    def draw_open_step(self, data: st.DataObject) -> Step:
        currency = data.draw(st.sampled_from(CURRENCIES), label="currency")
        flags = data.draw(st.sampled_from(ACCOUNT_FLAGS), label="flags")
        return self.open_step(self.next_key("a"), currency, *flags)

    def draw_reopen_step(self, data: st.DataObject) -> Step:
        """An account's key again, with the same details or with other ones."""
        account = self.model.accounts[
            data.draw(st.sampled_from(self.accounts_where(users=True)), label="reopened")
        ]
        currency = account.currency
        if not data.draw(st.booleans(), label="same details"):
            currency = CURRENCIES[1 - CURRENCIES.index(currency)]
        key = self.account_keys[account.account_id]
        return self.open_step(
            key,
            currency,
            account.debits_must_not_exceed_credits,
            account.credits_must_not_exceed_debits,
        )

    def draw_two_posting_request(self, data: st.DataObject, *, pending: bool) -> TransferRequest:
        if data.draw(st.integers(0, 9), label="from funding") < 3:
            debit_id = self.funding[data.draw(st.sampled_from(CURRENCIES), label="funding")]
        else:
            debit_id = self.draw_account(data, "debit account")
        currency = self.currency_of(debit_id)
        if data.draw(st.integers(0, 19), label="other currency") == 0:
            currency = CURRENCIES[1 - CURRENCIES.index(currency)]
        credit_id = self.draw_account(data, "credit account", currency)
        if credit_id == debit_id:
            others = [a for a in self.accounts_where(currency=currency) if a != debit_id]
            credit_id = data.draw(st.sampled_from(others), label="other credit account")
        amount = data.draw(st.integers(1, 3_000), label="amount")
        timeout_s = (
            data.draw(st.none() | st.integers(1, 900), label="timeout_s") if pending else None
        )
        return TransferRequest(
            self.next_key("t"),
            (
                Posting(debit_id, Side.DEBIT, amount, currency),
                Posting(credit_id, Side.CREDIT, amount, currency),
            ),
            pending,
            timeout_s,
        )

    def draw_deposit(self, data: st.DataObject) -> TransferRequest:
        account_id = data.draw(st.sampled_from(self.accounts_where(users=True)), label="payee")
        currency = self.currency_of(account_id)
        amount = data.draw(st.integers(1, 10_000), label="deposit")
        return TransferRequest(
            self.next_key("d"),
            (
                Posting(self.funding[currency], Side.DEBIT, amount, currency),
                Posting(account_id, Side.CREDIT, amount, currency),
            ),
        )

    def draw_multi_leg_request(self, data: st.DataObject) -> TransferRequest | None:
        currency = data.draw(st.sampled_from(CURRENCIES), label="currency")
        accounts = self.accounts_where(currency=currency)
        if len(accounts) < 3:
            return None
        leg_count = data.draw(st.integers(3, min(5, len(accounts))), label="leg count")
        chosen = data.draw(st.permutations(accounts), label="legs")[:leg_count]
        debit_count = data.draw(st.integers(1, leg_count - 1), label="debit legs")
        credit_count = leg_count - debit_count
        # Multiples of the credit count split evenly into the credit legs.
        debit_amounts = [
            credit_count * data.draw(st.integers(1, 500), label="debit amount")
            for _ in range(debit_count)
        ]
        credit_amounts = [sum(debit_amounts) // credit_count] * credit_count
        postings = [
            Posting(account_id, Side.DEBIT, amount, currency)
            for account_id, amount in zip(chosen[:debit_count], debit_amounts, strict=True)
        ] + [
            Posting(account_id, Side.CREDIT, amount, currency)
            for account_id, amount in zip(chosen[debit_count:], credit_amounts, strict=True)
        ]
        other = CURRENCIES[1 - CURRENCIES.index(currency)]
        others = self.accounts_where(currency=other, users=True)
        if len(others) > 0 and data.draw(st.booleans(), label="second currency"):
            amount = data.draw(st.integers(1, 500), label="second currency amount")
            postings += [
                Posting(self.funding[other], Side.DEBIT, amount, other),
                Posting(data.draw(st.sampled_from(others)), Side.CREDIT, amount, other),
            ]
        pending = data.draw(st.booleans(), label="multi-leg hold")
        timeout_s = data.draw(st.none() | st.integers(1, 3_600)) if pending else None
        return TransferRequest(self.next_key("m"), tuple(postings), pending, timeout_s)

    def draw_repeated_request(self, data: st.DataObject) -> TransferRequest | None:
        if not self.requests:
            return None
        earlier = data.draw(st.sampled_from(self.requests), label="repeated request")
        if data.draw(st.booleans(), label="same details"):
            return earlier
        return dataclasses.replace(earlier, pending=not earlier.pending, timeout_s=None)

    def draw_step(self, data: st.DataObject, *, may_change_state: bool) -> Step:
        kind = data.draw(st.sampled_from(COMMAND_KINDS), label="command")
        if kind == "open":
            return self.draw_open_step(data)
        if kind == "reopen" and self.accounts_where(users=True):
            return self.draw_reopen_step(data)
        if kind == "deposit" and self.accounts_where(users=True):
            return self.request_step(self.draw_deposit(data))
        if kind == "hold":
            return self.request_step(self.draw_two_posting_request(data, pending=True))
        if kind == "multi_leg":
            request = self.draw_multi_leg_request(data)
            if request is not None:
                return self.request_step(request)
        if kind == "repeat":
            repeated = self.draw_repeated_request(data)
            if repeated is not None:
                return Step(repeated.command(), lambda model: model.create_transfer(repeated))
        if kind == "post":
            transfer_id = self.draw_transfer_id(data, pending_only=True)
            amount = data.draw(st.none() | st.integers(0, 3_100), label="post amount")
            return Step(
                PostPendingTransfer(transfer_id, amount),
                lambda model: model.post_pending(transfer_id, amount),
            )
        if kind == "void":
            transfer_id = self.draw_transfer_id(data, pending_only=True)
            return Step(
                VoidPendingTransfer(transfer_id), lambda model: model.void_pending(transfer_id)
            )
        if kind == "reverse":
            transfer_id = self.draw_transfer_id(data, pending_only=False)
            return Step(ReverseTransfer(transfer_id), lambda model: model.reverse(transfer_id))
        if kind == "change_state" and may_change_state:
            account_id = self.draw_account(data, "account")
            new_state = data.draw(st.sampled_from(NEW_STATES), label="new state")
            return Step(
                change_account_state(
                    account_id=account_id, new_state=new_state, reason="test", actor="machine"
                ),
                lambda model: model.change_state(account_id, new_state),
            )
        return self.request_step(self.draw_two_posting_request(data, pending=False))

    def draw_failing_step(self, data: st.DataObject) -> Step:
        """A transfer the ledger must refuse: more than a limited account holds,
        the wrong currency for an account, or an account that does not exist."""
        way = data.draw(st.sampled_from(["overdraw", "currency", "unknown"]), label="failure")
        limited = [
            account.account_id
            for account in self.model.accounts.values()
            if account.debits_must_not_exceed_credits and account.state is AccountState.ACTIVE
        ]
        euro_users = self.accounts_where(currency="EUR", users=True)
        usd_cash = self.funding["USD"]
        if way == "overdraw" and limited:
            payer = data.draw(st.sampled_from(limited), label="overdrawn account")
            currency = self.currency_of(payer)
            amount = self.model.spendable(payer) + data.draw(st.integers(1, 10**6))
            postings = (
                Posting(payer, Side.DEBIT, amount, currency),
                Posting(self.funding[currency], Side.CREDIT, amount, currency),
            )
        elif way == "currency" and euro_users:
            payee = data.draw(st.sampled_from(euro_users), label="euro account")
            postings = (
                Posting(usd_cash, Side.DEBIT, 10, "USD"),
                Posting(payee, Side.CREDIT, 10, "USD"),
            )
        else:
            postings = (
                Posting(usd_cash, Side.DEBIT, 10, "USD"),
                Posting(GHOST, Side.CREDIT, 10, "USD"),
            )
        return self.request_step(TransferRequest(self.next_key("f"), postings))

    # Rules --------------------------------------------------------------------------

    @initialize()
    def open_funding_and_user_accounts(self) -> None:
        steps = []
        for currency in CURRENCIES:
            command = open_account(
                idempotency_key=f"funding-{currency}",
                currency=currency,
                owner_id="platform",
                kind=AccountKind.FUNDING,
            )
            self.funding[currency] = command.account_id
            self.account_keys[command.account_id] = f"funding-{currency}"
            steps.append(
                Step(command, _open_prediction(command.account_id, currency, False, False))
            )
            for flags in ACCOUNT_FLAGS[:2]:
                steps.append(self.open_step(self.next_key("a"), currency, *flags))
        self.submit(steps)

    @rule(data=st.data())
    def open_an_account(self, data: st.DataObject) -> None:
        self.submit([self.draw_open_step(data)])

    @precondition(lambda self: len(self.model.accounts) > len(CURRENCIES))
    @rule(data=st.data())
    def send_one_command(self, data: st.DataObject) -> None:
        self.submit([self.draw_step(data, may_change_state=True)])

    @precondition(lambda self: len(self.model.accounts) > len(CURRENCIES))
    @rule(data=st.data())
    def send_a_batch_of_independent_commands(self, data: st.DataObject) -> None:
        count = data.draw(st.integers(2, 6), label="batch size")
        self.submit([self.draw_step(data, may_change_state=True) for _ in range(count)])

    @precondition(lambda self: len(self.model.accounts) > len(CURRENCIES))
    @rule(data=st.data())
    def send_a_linked_chain(self, data: st.DataObject) -> None:
        """A chain, maybe with a member that must fail, between independent commands."""
        before = [self.draw_step(data, may_change_state=True)] if data.draw(st.booleans()) else []
        members = [
            self.draw_step(data, may_change_state=False)
            for _ in range(data.draw(st.integers(1, 4), label="chain length"))
        ]
        if data.draw(st.booleans(), label="with a failing member"):
            position = data.draw(st.integers(0, len(members)), label="failing position")
            members.insert(position, self.draw_failing_step(data))
        # Now and then the batch ends while the chain still asks for more.
        left_open = data.draw(st.integers(0, 9), label="left open") == 0
        chain = [
            Step(
                dataclasses.replace(step.command, linked=index < len(members) - 1 or left_open),
                step.predict,
            )
            for index, step in enumerate(members)
        ]
        after = []
        if not left_open and data.draw(st.booleans(), label="command after the chain"):
            after = [self.draw_step(data, may_change_state=True)]
        self.submit([*before, *chain, *after])

    @precondition(lambda self: len(self.model.accounts) > len(CURRENCIES))
    @rule(data=st.data())
    def move_an_accounts_money_out_and_maybe_close_it(self, data: st.DataObject) -> None:
        account_id = data.draw(st.sampled_from(self.accounts_where(users=True)), label="account")
        currency = self.currency_of(account_id)
        totals = self.model.accounts[account_id].totals
        balance = totals.credits_posted - totals.debits_posted
        steps = []
        if balance:
            side = Side.DEBIT if balance > 0 else Side.CREDIT
            postings = (
                Posting(account_id, side, abs(balance), currency),
                Posting(self.funding[currency], side.opposite, abs(balance), currency),
            )
            steps.append(self.request_step(TransferRequest(self.next_key("c"), postings)))
        if not steps or data.draw(st.integers(0, 2), label="close") == 0:
            command = change_account_state(
                account_id=account_id,
                new_state=AccountState.CLOSED,
                reason="test",
                actor="machine",
            )
            steps.append(
                Step(command, lambda model: model.change_state(account_id, AccountState.CLOSED))
            )
        self.submit(steps)

    @rule(seconds=st.sampled_from([1, 30, 59, 60, 61, 600, 3_599, 3_600, 4_000]))
    def advance_the_clock_and_sweep_due_holds(self, seconds: int) -> None:
        self.backend.clock.advance(timedelta(seconds=seconds))
        self.model.now = self.backend.clock.now()
        due = self.backend.app.ledger_recorder.select_due_pending_transfer_ids(
            self.backend.clock.now(), SWEEP_LIMIT
        )
        assert set(due) == self.model.due_pending_transfer_ids()
        assert len(due) == len(set(due))
        if due:
            self.submit(
                [
                    Step(ExpirePendingTransfer(transfer_id), _expire_prediction(transfer_id))
                    for transfer_id in due
                ]
            )
            assert not self.backend.app.ledger_recorder.select_due_pending_transfer_ids(
                self.backend.clock.now(), SWEEP_LIMIT
            )

    # Invariants, from the stored events ------------------------------------------------

    def replay_new_events(self) -> None:
        app = self.backend.app
        while True:
            notifications = app.recorder.select_notifications(
                start=self.replayed_position + 1, limit=1_000
            )
            if not notifications:
                return
            for notification in notifications:
                domain_event: Any = app.mapper.to_domain_event(notification)
                originator_id = domain_event.originator_id
                self.replayed[originator_id] = domain_event.mutate(self.replayed.get(originator_id))
                self.replayed_position = notification.id

    @invariant()
    def the_stored_events_tell_a_balanced_consistent_story(self) -> None:
        self.replay_new_events()
        accounts = {i: a for i, a in self.replayed.items() if isinstance(a, Account)}
        transfers = {i: t for i, t in self.replayed.items() if isinstance(t, Transfer)}
        assert len(accounts) + len(transfers) == len(self.replayed)

        from_postings: dict[UUID, Totals] = defaultdict(Totals)
        for transfer in transfers.values():
            assert_balanced(transfer.postings)
            if transfer.status is TransferStatus.PENDING:
                add_postings(from_postings, transfer.postings, pending=True)
            elif transfer.status is TransferStatus.POSTED:
                assert_balanced(transfer.posted_postings)
                add_postings(from_postings, transfer.posted_postings, pending=False)

        sums: dict[str, Totals] = defaultdict(Totals)
        for account_id, account in accounts.items():
            totals = account.totals
            assert totals == from_postings.get(account_id, Totals()), account_id
            assert all(total >= 0 for total in totals)
            sums[account.currency] = sums[account.currency].plus(totals)
            if account.debits_must_not_exceed_credits:
                assert totals.debits_pending + totals.debits_posted <= totals.credits_posted
            if account.credits_must_not_exceed_debits:
                assert totals.credits_pending + totals.credits_posted <= totals.debits_posted
        assert set(from_postings) <= set(accounts)
        for currency, total in sums.items():
            assert total.debits_posted == total.credits_posted, currency
            assert total.debits_pending == total.credits_pending, currency

        # A repeated key never made a second transfer.
        assert set(transfers) == self.created_transfer_ids | self.reversal_ids
        assert not self.created_transfer_ids & self.reversal_ids

    @invariant()
    def the_stored_state_is_the_models(self) -> None:
        self.replay_new_events()
        assert {i for i, a in self.replayed.items() if isinstance(a, Account)} == set(
            self.model.accounts
        )
        for account_id, expected in self.model.accounts.items():
            account = self.replayed[account_id]
            assert isinstance(account, Account)
            assert account.totals == expected.totals, account_id
            assert account.state is expected.state, account_id
            assert account.currency == expected.currency
        assert {i for i, t in self.replayed.items() if isinstance(t, Transfer)} == set(
            self.model.transfers
        )
        for transfer_id, wanted in self.model.transfers.items():
            transfer = self.replayed[transfer_id]
            assert isinstance(transfer, Transfer)
            assert transfer.status is wanted.status, transfer_id
            assert transfer.postings == wanted.postings
            assert transfer.posted_postings == wanted.posted_postings
            assert transfer.expires_at == wanted.expires_at
            assert transfer.reversed_by_transfer_id == (
                str(wanted.reversed_by) if wanted.reversed_by else None
            )
            assert transfer.reverses_transfer_id == (
                str(wanted.reverses) if wanted.reverses else None
            )


def _open_prediction(
    account_id: UUID, currency: str, debits_limited: bool, credits_limited: bool
) -> Callable[[LedgerModel], Expected]:
    return lambda model: model.open_account(account_id, currency, debits_limited, credits_limited)


def _expire_prediction(transfer_id: UUID) -> Callable[[LedgerModel], Expected]:
    return lambda model: model.expire_pending(transfer_id)


def assert_balanced(postings: tuple[Posting, ...]) -> None:
    assert len(postings) >= 2
    net: dict[str, int] = defaultdict(int)
    for posting in postings:
        assert posting.amount_minor > 0
        net[posting.currency] += (
            posting.amount_minor if posting.side is Side.DEBIT else -posting.amount_minor
        )
    assert set(net.values()) == {0}, net


def add_postings(
    totals: dict[UUID, Totals], postings: tuple[Posting, ...], *, pending: bool
) -> None:
    for posting in postings:
        amount = posting.amount_minor
        if posting.side is Side.DEBIT:
            change = Totals(debits_pending=amount) if pending else Totals(debits_posted=amount)
        else:
            change = Totals(credits_pending=amount) if pending else Totals(credits_posted=amount)
        totals[posting.account_id] = totals[posting.account_id].plus(change)


# Hypothesis needs its full five minutes to shrink a failing run of this
# machine, on every run until the failure is fixed. The unshrunk run is
# printed step by step with the command, its result and the codes the model
# allowed, which is enough to read; LEDGER_HYPOTHESIS_SHRINK=1 shrinks anyway.
PHASES = tuple(
    phase
    for phase in Phase
    if os.environ.get("LEDGER_HYPOTHESIS_SHRINK") == "1"
    or phase not in (Phase.shrink, Phase.explain)
)
IN_MEMORY_SETTINGS = settings(
    max_examples=100,
    stateful_step_count=30,
    deadline=None,
    phases=PHASES,
    suppress_health_check=[HealthCheck.too_slow],
)
POSTGRES_SETTINGS = settings(
    max_examples=15,
    stateful_step_count=25,
    deadline=None,
    phases=PHASES,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_random_commands_keep_the_in_memory_ledger_balanced_and_as_modelled() -> None:
    class InMemoryLedgerMachine(LedgerMachine):
        def __init__(self) -> None:
            super().__init__(in_memory_backend)

    run_state_machine_as_test(InMemoryLedgerMachine, settings=IN_MEMORY_SETTINGS)


def test_random_commands_keep_the_postgres_ledger_balanced_and_as_modelled(
    postgres_server_url: str,
) -> None:
    class PostgresLedgerMachine(LedgerMachine):
        def __init__(self) -> None:
            super().__init__(lambda: postgres_backend(postgres_server_url))

    run_state_machine_as_test(PostgresLedgerMachine, settings=POSTGRES_SETTINGS)
