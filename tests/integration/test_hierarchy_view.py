"""The hierarchy view on real PostgreSQL, with real forks: a Gen account at
$120,000 forks a Rev child, which grows to $630,000 and forks a Com child.

The tree shows root -> child -> grandchild with each account's tier, state
and balance and the consolidated totals; lineage goes both ways; fresh
runners reading back page by page, and a replay from empty, make the same
rows as the live runner. On bare aggregates: a merge's capital is one flow
(its `CapitalMovedIn` adds none), and a link the view cannot follow stops it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final
from uuid import UUID, uuid4

import psycopg
import pytest

from application.clock import SettableClock
from domain.funded_account_states import FundedAccountState
from domain.positions import PositionSide
from domain.tiers import TierName
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.bootstrap import Ledger, build_ledger
from interface.settings import Settings
from projections import funded_accounts, hierarchy
from projections.digest import view_digest
from projections.funded_accounts import FundedAccountsView
from projections.hierarchy import (
    FLOW_FORK,
    FLOW_MERGE,
    CapitalFlow,
    HierarchyNode,
    HierarchyView,
    lineage,
    subtree,
    tree_of,
)
from projections.rebuild import LIVE_SCHEMA, replay_into_schema
from projections.runner import ProjectionRunner, lock_tracking, reset_view
from tests.support.funded_accounts import activated_account, save_funded_accounts
from tests.support.ledgers import EPOCH
from tests.support.withdrawals import profitable_funded_account

GEN_START: Final[int] = 10_000_00
WAIT_S: Final[float] = 30.0
SCRATCH_SCHEMA: Final[str] = "hierarchy_view_replay"
ACTOR: Final[str] = "service:platform"


@dataclass(frozen=True, slots=True)
class Family:
    root: UUID
    child: UUID
    grandchild: UUID
    # The forks that made the child and the grandchild.
    first_fork: UUID
    second_fork: UUID


def _family(ledger: Ledger, clock: SettableClock) -> Family:
    """As test_forks.test_the_rev_child_later_forks_a_com_child."""
    root = profitable_funded_account(ledger, "trader-1", 120_000_00 - GEN_START)
    first = ledger.forks.propose(root, ACTOR)
    assert first.child is not None
    child = first.child.id
    clock.advance(timedelta(days=2))
    # The Rev child trades up to $630,000 (40 units at $100, 4 % of its capital).
    broker = ledger.broker
    assert isinstance(broker, SimulatedBroker)
    broker.set_price("GROW", bid_minor=100_00, ask_minor=100_00)
    opened = ledger.funded_accounts.open_position(child, "GROW", PositionSide.LONG, 40)
    exit_minor = 100_00 + 530_000_00 // 40
    broker.set_price("GROW", bid_minor=exit_minor, ask_minor=exit_minor + 1)
    ledger.funded_accounts.close_position(child, opened.position_id)
    second = ledger.forks.propose(child, ACTOR)
    assert second.child is not None
    _caught_up(ledger)
    return Family(root, child, second.child.id, first.fork.id, second.fork.id)


def _caught_up(ledger: Ledger) -> None:
    assert ledger.projections is not None
    # The queries read both views.
    assert ledger.projections.wait_for(
        ledger.writer.last_position, [hierarchy.NAME, funded_accounts.NAME], WAIT_S
    )


def _balance(ledger: Ledger, funded_account_id: UUID) -> int:
    return ledger.funded_accounts.require_funded_account(funded_account_id).current_balance_minor


def _read(ledger: Ledger, query: Any, funded_account_id: UUID) -> Any:
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        return query(cursor, funded_account_id)


def _flow(flow: CapitalFlow) -> tuple[UUID, UUID, int, UUID, str, int]:
    return (
        flow.from_account_id,
        flow.to_account_id,
        flow.amount_minor,
        flow.process_id,
        flow.kind,
        flow.hops,
    )


def test_the_tree_shows_each_account_with_its_figures_and_the_totals(
    ledger: Ledger, clock: SettableClock
) -> None:
    family = _family(ledger, clock)
    balances = {
        account: _balance(ledger, account)
        for account in (family.root, family.child, family.grandchild)
    }
    # The root kept $20,000; the child $630,000 less the $500,000 it handed on.
    assert balances == {
        family.root: 20_000_00,
        family.child: 130_000_00,
        family.grandchild: 500_000_00,
    }

    tree = _read(ledger, tree_of, family.grandchild)
    assert tree == _read(ledger, tree_of, family.root) == _read(ledger, subtree, family.root)
    assert isinstance(tree, HierarchyNode)
    (child,) = tree.children
    (grandchild,) = child.children
    assert grandchild.children == ()
    shown = [
        (node.funded_account_id, node.parent_id, node.root_id, node.depth, node.tier)
        for node in (tree, child, grandchild)
    ]
    assert shown == [
        (family.root, None, family.root, 0, TierName.GEN.value),
        (family.child, family.root, family.root, 1, TierName.REV.value),
        (family.grandchild, family.child, family.root, 2, TierName.COM.value),
    ]
    for node in (tree, child, grandchild):
        assert node.state == FundedAccountState.ACTIVE.value
        assert node.balance_minor == balances[node.funded_account_id]
        assert node.owner_id == "trader-1"
        assert not node.truncated
    assert tree.created_log_position < child.created_log_position
    assert child.created_log_position < grandchild.created_log_position

    # Consolidated: the sum of the funded accounts' current balances.
    assert (tree.totals.accounts, tree.totals.balance_minor) == (3, sum(balances.values()))
    assert tree.totals.balances_unknown == 0
    assert {
        tier: (totals.accounts, totals.balance_minor)
        for tier, totals in tree.totals.by_tier.items()
    } == {
        TierName.GEN.value: (1, 20_000_00),
        TierName.REV.value: (1, 130_000_00),
        TierName.COM.value: (1, 500_000_00),
    }
    assert (child.totals.accounts, child.totals.balance_minor) == (2, 630_000_00)
    assert (grandchild.totals.accounts, grandchild.totals.balance_minor) == (1, 500_000_00)
    # A view per subtree: the child's is its part of the tree.
    assert _read(ledger, subtree, family.child) == child
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT sum(current_balance_minor) FROM view_funded_accounts"
            " WHERE funded_account_id = ANY(%s)",
            (list(balances),),
        )
        assert cursor.fetchone() == (tree.totals.balance_minor,)


def test_lineage_goes_up_to_the_sources_and_down_to_the_destinations(
    ledger: Ledger, clock: SettableClock
) -> None:
    family = _family(ledger, clock)

    of_grandchild = _read(ledger, lineage, family.grandchild)
    assert of_grandchild is not None and not of_grandchild.truncated
    assert of_grandchild.account.funded_account_id == family.grandchild
    assert of_grandchild.account.balance_minor == 500_000_00
    assert [ancestor.funded_account_id for ancestor in of_grandchild.sources.ancestors] == [
        family.child,
        family.root,
    ]
    assert [ancestor.tier for ancestor in of_grandchild.sources.ancestors] == [
        TierName.REV.value,
        TierName.GEN.value,
    ]
    # $500,000.00 came in from the child by the second fork, which the child
    # had from the root by the first (and from trading).
    assert [_flow(flow) for flow in of_grandchild.sources.flows] == [
        (family.child, family.grandchild, 500_000_00, family.second_fork, FLOW_FORK, 1),
        (family.root, family.child, 100_000_00, family.first_fork, FLOW_FORK, 2),
    ]
    assert of_grandchild.destinations.flows == ()

    of_root = _read(ledger, lineage, family.root)
    assert of_root is not None and not of_root.truncated
    assert of_root.sources.ancestors == () and of_root.sources.flows == ()
    # $100,000.00 went to the child, and on from there to the grandchild.
    assert [_flow(flow) for flow in of_root.destinations.flows] == [
        (family.root, family.child, 100_000_00, family.first_fork, FLOW_FORK, 1),
        (family.child, family.grandchild, 500_000_00, family.second_fork, FLOW_FORK, 2),
    ]
    at = {flow.process_id: flow.at for flow in of_root.destinations.flows}
    assert at[family.first_fork] < at[family.second_fork]

    of_child = _read(ledger, lineage, family.child)
    assert of_child is not None
    assert [ancestor.funded_account_id for ancestor in of_child.sources.ancestors] == [family.root]
    assert [_flow(flow) for flow in of_child.sources.flows] == [
        (family.root, family.child, 100_000_00, family.first_fork, FLOW_FORK, 1)
    ]
    assert [_flow(flow) for flow in of_child.destinations.flows] == [
        (family.child, family.grandchild, 500_000_00, family.second_fork, FLOW_FORK, 1)
    ]


def test_an_unknown_account_has_no_tree_and_no_lineage(
    ledger: Ledger, clock: SettableClock
) -> None:
    _family(ledger, clock)
    unknown = uuid4()
    assert _read(ledger, subtree, unknown) is None
    assert _read(ledger, tree_of, unknown) is None
    assert _read(ledger, lineage, unknown) is None


def _rows(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    view = HierarchyView()
    with psycopg.connect(database_url) as connection, connection.cursor() as cursor:
        found: dict[str, list[tuple[Any, ...]]] = {}
        for table in view.tables:
            cursor.execute(f"SELECT * FROM {table} ORDER BY {view.digest_order(table)}")
            found[table] = cursor.fetchall()
        return found


def _project_page_by_page_with_fresh_runners(database_url: str, page_size: int) -> int:
    """From empty, one page per new runner: each after the first reads back
    what it needs. The number of runners used."""
    with psycopg.connect(database_url) as connection, connection.cursor() as cursor:
        lock_tracking(cursor, hierarchy.NAME)
        reset_view(cursor, HierarchyView())
    runners = 0
    while True:
        runner = ProjectionRunner(database_url, [HierarchyView()], page_size=page_size)
        try:
            read = runner.run_once()
        finally:
            runner.stop()
        runners += 1
        if read < page_size:
            return runners


@pytest.mark.parametrize("page_size", [1, 3])
def test_fresh_runners_reading_back_and_a_replay_make_the_same_rows(
    ledger: Ledger, clock: SettableClock, page_size: int
) -> None:
    _family(ledger, clock)
    ledger.writer.stop()
    assert ledger.projections is not None
    ledger.projections.stop()
    live = _rows(ledger.database_url)
    assert len(live["view_hierarchy_nodes"]) == 3
    assert len(live["view_capital_flows"]) == 2
    with psycopg.connect(ledger.database_url) as connection:
        live_digest = view_digest(connection, HierarchyView(), LIVE_SCHEMA)

    assert _project_page_by_page_with_fresh_runners(ledger.database_url, page_size) > 1
    assert _rows(ledger.database_url) == live

    replay_into_schema(ledger.database_url, HierarchyView(), SCRATCH_SCHEMA)
    with psycopg.connect(ledger.database_url) as connection:
        assert view_digest(connection, HierarchyView(), SCRATCH_SCHEMA) == live_digest
        assert view_digest(connection, HierarchyView(), LIVE_SCHEMA) == live_digest


@pytest.fixture
def idle_ledger(settings: Settings, clock: SettableClock) -> Iterator[Ledger]:
    """A ledger whose writer and runner do not run: the test drives both."""
    running = build_ledger(settings, clock=clock, start_writer=False, start_projections=False)
    try:
        yield running
    finally:
        running.close()


def test_a_merge_is_one_flow_out_of_one_account_into_another(idle_ledger: Ledger) -> None:
    source = activated_account(owner_id="trader-1", at=EPOCH)
    target = activated_account(owner_id="trader-1", at=EPOCH, tier=TierName.REV)
    merge = uuid4()
    later = EPOCH + timedelta(hours=1)
    source.move_capital_out(4_000_00, target.id, merge, later)
    target.move_capital_in(4_000_00, source.id, merge, later)
    save_funded_accounts(idle_ledger.app, source, target)
    runner = ProjectionRunner(
        idle_ledger.database_url, [FundedAccountsView(), HierarchyView()], page_size=2
    )
    try:
        runner.catch_up()
    finally:
        runner.stop()

    expected = [(source.id, target.id, 4_000_00, merge, FLOW_MERGE, 1)]
    of_target = _read(idle_ledger, lineage, target.id)
    assert of_target is not None
    assert of_target.sources.ancestors == ()
    assert [_flow(flow) for flow in of_target.sources.flows] == expected
    assert of_target.sources.flows[0].at == later
    of_source = _read(idle_ledger, lineage, source.id)
    assert of_source is not None
    assert [_flow(flow) for flow in of_source.destinations.flows] == expected
    # A merge moves capital, not the account: each is still a tree of its own.
    tree = _read(idle_ledger, tree_of, target.id)
    assert tree is not None and tree.children == () and tree.parent_id is None
    assert (tree.balance_minor, tree.totals.balance_minor) == (
        target.current_balance_minor,
        target.current_balance_minor,
    )
    assert len(_rows(idle_ledger.database_url)["view_capital_flows"]) == 1


# 4: the middle is read back (with whether it has children); 100: remembered.
@pytest.mark.parametrize("page_size", [4, 100])
def test_a_node_linked_after_it_has_children_stops_the_view(
    idle_ledger: Ledger, page_size: int
) -> None:
    top, middle, bottom = (activated_account(owner_id="trader-1", at=EPOCH) for _ in range(3))
    save_funded_accounts(idle_ledger.app, top, middle, bottom)
    bottom.link_to_parent(middle.id, uuid4(), EPOCH)
    save_funded_accounts(idle_ledger.app, bottom)
    # The domain allows it (the middle had no parent); the fork service never
    # does it: its children are linked as they are made.
    middle.link_to_parent(top.id, uuid4(), EPOCH)
    save_funded_accounts(idle_ledger.app, middle)
    runner = ProjectionRunner(idle_ledger.database_url, [HierarchyView()], page_size=page_size)
    try:
        runner.catch_up()
    finally:
        runner.stop()
    # Stopped at the event that links the middle, and says why.
    failure = runner.failures()[HierarchyView.name]
    assert failure.position == runner.positions()[HierarchyView.name] + 1
    assert "ValueError" in failure.reason and "linked before it has any" in failure.reason


def test_reads_past_their_bounds_are_cut_and_say_so(
    idle_ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, *children = (activated_account(owner_id="trader-1", at=EPOCH) for _ in range(4))
    grandchild = activated_account(owner_id="trader-1", at=EPOCH)
    save_funded_accounts(idle_ledger.app, root, *children, grandchild)
    later = EPOCH + timedelta(hours=1)
    for child in children:
        child.link_to_parent(root.id, uuid4(), later)
    grandchild.link_to_parent(children[0].id, uuid4(), later)
    root.move_capital_out(1_000_00, children[0].id, uuid4(), later)
    children[0].move_capital_out(500_00, grandchild.id, uuid4(), later)
    save_funded_accounts(idle_ledger.app, root, *children, grandchild)
    runner = ProjectionRunner(idle_ledger.database_url, [FundedAccountsView(), HierarchyView()])
    try:
        runner.catch_up()
    finally:
        runner.stop()
    whole = _read(idle_ledger, tree_of, grandchild.id)
    assert whole is not None and not whole.truncated
    assert (whole.totals.accounts, len(whole.children)) == (5, 3)

    # Breadth first: the root and two of its children; the rest is left out.
    monkeypatch.setattr(hierarchy, "SUBTREE_NODES_MAX", 3)
    cut = _read(idle_ledger, subtree, root.id)
    assert cut is not None and cut.truncated
    assert (cut.totals.accounts, len(cut.children)) == (3, 2)
    assert all(child.truncated and child.children == () for child in cut.children)
    assert cut.totals.balance_minor == sum(node.balance_minor or 0 for node in (cut, *cut.children))

    monkeypatch.setattr(hierarchy, "LINEAGE_DEPTH_MAX", 1)
    of_grandchild = _read(idle_ledger, lineage, grandchild.id)
    assert of_grandchild is not None and of_grandchild.truncated
    assert [a.funded_account_id for a in of_grandchild.sources.ancestors] == [children[0].id]
    assert [flow.hops for flow in of_grandchild.sources.flows] == [1]
    of_root = _read(idle_ledger, lineage, root.id)
    assert of_root is not None and of_root.truncated
    assert [(flow.to_account_id, flow.hops) for flow in of_root.destinations.flows] == [
        (children[0].id, 1)
    ]
