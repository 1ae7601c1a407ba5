"""Whatever the writer accepts, every view applies it, and a rebuild comes out
identical to the live views.

Commands go through the real writer on PostgreSQL with the widest values the
edge could let through: text from every Unicode plane, NUL and the other
control characters among them, up to the longest each field allows; metadata
at its largest; amounts up to the stored integer range; holds posted in part,
voided, reversals. The runner follows the log (the views' incremental
path); then the views are rebuilt through a shadow (the journal set-based
in SQL, the others replayed from empty) and, in half the examples, in place;
after each every view's digest must equal the live one. No view may stop.

Lone surrogates are left out: the writer's JSON encoder cannot store them.
One database serves every example; each adds to the log the ones before left.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from uuid import UUID

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application.clock import SettableClock
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
    Command,
    CreateTransfer,
    PostPendingTransfer,
    ReverseTransfer,
    VoidPendingTransfer,
    change_account_state,
    create_transfer,
    open_account,
)
from domain.money import AMOUNT_MINOR_MAX
from domain.transfer import Posting, Side
from interface.bootstrap import Ledger, build_ledger
from interface.settings import Settings
from projections import journal
from projections.digest import view_digest
from projections.rebuild import LIVE_SCHEMA, rebuild_all_with_shadow, rebuild_views_in_place
from projections.registry import all_views
from projections.runner import ProjectionRunner
from tests.support import databases
from tests.support.ledgers import EPOCH

# Kept modest: this runs in `make test`, and each example rebuilds every view
# once or twice (a second or two each, on a small log).
EXAMPLES = 20
CURRENCIES = ("USD", "JPY")
# Characters a naive escape gets wrong, and ones at the ends of Unicode.
AWKWARD_CHARACTERS = (
    "\x00\x01\x1f\x7f\x85\\\"'\u2028\u2029\ufeff\ufffd\U0001f600\U000e0001\U0010ffff"
)
# Text that looks like an escaped NUL without being one.
LOOKALIKES = ("\\u0000", "\\\x00", "\\\\u0000", "\\\\\x00\\", "\\x00", "%s", "%(x)s")

_character = st.one_of(
    # Any code point of any plane but a lone surrogate (unassigned ones too).
    st.characters(exclude_categories=["Cs"]),
    st.sampled_from(AWKWARD_CHARACTERS),
)


def _text(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    """Short text, text at the longest allowed, or a lookalike of an escape."""
    return st.one_of(
        st.text(_character, min_size=min_size, max_size=min(max_size, 12)),
        st.text(_character, min_size=max_size, max_size=max_size),
        st.sampled_from(LOOKALIKES).filter(lambda text: min_size <= len(text) <= max_size),
    )


_metadata = st.one_of(
    st.dictionaries(
        _text(1, METADATA_KEY_LENGTH_MAX), _text(0, METADATA_VALUE_LENGTH_MAX), max_size=3
    ),
    st.dictionaries(
        _text(1, METADATA_KEY_LENGTH_MAX),
        _text(0, METADATA_VALUE_LENGTH_MAX),
        min_size=METADATA_KEYS_MAX,
        max_size=METADATA_KEYS_MAX,
    ),
)
_amount = st.one_of(
    st.integers(1, 10_000),
    st.just(AMOUNT_MINOR_MAX),
    st.integers(1, AMOUNT_MINOR_MAX),
)


@dataclass(frozen=True)
class AccountPlan:
    owner_id: str
    kind: AccountKind
    metadata: dict[str, str]


@dataclass(frozen=True)
class TransferPlan:
    # Indexes into the example's accounts (taken modulo their number).
    debit: int
    credit: int
    amount_minor: int
    pending: bool
    metadata: dict[str, str]


@dataclass(frozen=True)
class LaterPlan:
    """One of: post a hold (in part when `amount_minor`), void one, reverse a
    transfer, change an account's state; indexes taken modulo."""

    kind: str
    index: int
    amount_minor: int | None
    metadata: dict[str, str]
    new_state: AccountState
    reason: str
    actor: str


@dataclass(frozen=True)
class Plan:
    """One example's writes, drawn whole before any is made (so the drawing
    never depends on the database the examples share)."""

    currency: str
    accounts: list[AccountPlan]
    transfers: list[TransferPlan]
    later: list[LaterPlan]
    # Also rebuild in place, after the shadow rebuild (half the time: each
    # costs about a second here).
    in_place: bool


_index = st.integers(0, 3)
_plans = st.builds(
    Plan,
    currency=st.sampled_from(CURRENCIES),
    accounts=st.lists(
        st.builds(
            AccountPlan,
            owner_id=_text(1, ACTOR_LENGTH_MAX),
            kind=st.sampled_from(AccountKind),
            metadata=_metadata,
        ),
        min_size=2,
        max_size=3,
    ),
    transfers=st.lists(
        st.builds(
            TransferPlan,
            debit=_index,
            credit=_index,
            amount_minor=_amount,
            pending=st.booleans(),
            metadata=_metadata,
        ),
        max_size=4,
    ),
    later=st.lists(
        st.builds(
            LaterPlan,
            kind=st.sampled_from(("post", "void", "reverse", "state")),
            index=_index,
            amount_minor=st.none() | _amount,
            metadata=_metadata,
            new_state=st.sampled_from(AccountState),
            reason=_text(1, REASON_LENGTH_MAX),
            actor=_text(1, ACTOR_LENGTH_MAX),
        ),
        max_size=3,
    ),
    in_place=st.booleans(),
)


@dataclass
class Written:
    accounts: list[UUID] = field(default_factory=list)
    holds: list[UUID] = field(default_factory=list)
    transfers: list[UUID] = field(default_factory=list)


@pytest.fixture(scope="module")
def world(
    postgres_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Ledger, ProjectionRunner]]:
    with databases.fresh_database(postgres_server_url) as database_url:
        settings_ = Settings(database_url=database_url, data_dir=tmp_path_factory.mktemp("views"))
        ledger = build_ledger(settings_, clock=SettableClock(EPOCH), start_projections=False)
        runner = ProjectionRunner(database_url, all_views())
        try:
            yield ledger, runner
        finally:
            runner.stop()
            ledger.close()


def _write(ledger: Ledger, plan: Plan) -> None:
    written = Written()
    opens = [
        open_account(
            idempotency_key=f"account-{uuid.uuid4()}",
            currency=plan.currency,
            owner_id=account.owner_id,
            kind=account.kind,
            metadata=account.metadata,
        )
        for account in plan.accounts
    ]
    receipt = ledger.service.execute(opens)
    written.accounts = [
        command.account_id
        for command, result in zip(opens, receipt.results, strict=True)
        if result.succeeded
    ]
    transfers = [
        _transfer(written.accounts, plan.currency, transfer) for transfer in plan.transfers
    ]
    made = [command for command in transfers if command is not None]
    results = ledger.service.execute(made).results if made else []
    for command, result in zip(made, results, strict=True):
        if result.succeeded:
            (written.holds if command.pending else written.transfers).append(command.transfer_id)
    # Each alone: one refused (a hold already voided, say) refuses no other.
    for later in plan.later:
        later_command = _later(written, later)
        if later_command is not None:
            ledger.service.execute([later_command])


def _transfer(accounts: list[UUID], currency: str, plan: TransferPlan) -> CreateTransfer | None:
    if len(accounts) < 2:
        return None
    debit = accounts[plan.debit % len(accounts)]
    credit = accounts[plan.credit % len(accounts)]
    if debit == credit:
        credit = accounts[(plan.credit + 1) % len(accounts)]
    return create_transfer(
        idempotency_key=f"transfer-{uuid.uuid4()}",
        postings=(
            Posting(debit, Side.DEBIT, plan.amount_minor, currency),
            Posting(credit, Side.CREDIT, plan.amount_minor, currency),
        ),
        pending=plan.pending,
        metadata=plan.metadata,
    )


def _later(written: Written, plan: LaterPlan) -> Command | None:
    if plan.kind in ("post", "void") and written.holds:
        hold = written.holds[plan.index % len(written.holds)]
        if plan.kind == "void":
            return VoidPendingTransfer(hold)
        return PostPendingTransfer(hold, plan.amount_minor)
    if plan.kind == "reverse" and written.transfers:
        return ReverseTransfer(
            written.transfers[plan.index % len(written.transfers)], plan.metadata
        )
    if plan.kind == "state" and written.accounts:
        return change_account_state(
            account_id=written.accounts[plan.index % len(written.accounts)],
            new_state=plan.new_state,
            reason=plan.reason,
            actor=plan.actor,
        )
    return None


def _digests(database_url: str) -> dict[str, dict[str, str]]:
    with psycopg.connect(database_url) as connection:
        return {view.name: view_digest(connection, view, LIVE_SCHEMA) for view in all_views()}


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(plan=_plans)
def test_every_view_applies_what_the_writer_accepts_and_rebuilds_equal(
    world: tuple[Ledger, ProjectionRunner], plan: Plan
) -> None:
    ledger, runner = world
    _write(ledger, plan)
    database_url = ledger.database_url
    runner.catch_up()
    assert runner.failures() == {}
    head = ledger.writer.last_position
    assert set(runner.positions().values()) == {head}
    live = _digests(database_url)

    # Through a shadow, as `ledger projections rebuild` does (here in this
    # process: the journal set-based, then the others from one read).
    views = all_views()
    journal_views = [view for view in views if view.name == journal.NAME]
    rebuild_all_with_shadow(database_url, journal_views)
    rebuild_all_with_shadow(database_url, [view for view in views if view not in journal_views])
    assert _digests(database_url) == live

    if plan.in_place:
        positions = rebuild_views_in_place(database_url, all_views())
        assert set(positions.values()) == {head}
        assert _digests(database_url) == live
    with psycopg.connect(database_url) as connection:
        failed = connection.execute(
            "SELECT name FROM projection_tracking WHERE failed_position IS NOT NULL"
        ).fetchall()
    assert failed == []
