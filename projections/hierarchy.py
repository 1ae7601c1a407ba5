"""The hierarchy view: funded accounts as a tree, and the capital moved between them.

The full parent/child tree, with views per subtree
(docs/rules.md#tiers-forks-and-merges). Built from the `FundedAccount` events
(domain/funded_account.py):

    Activated        a node: its own root, depth 0, no parent
    LinkedToParent   the node hangs under its parent: root = the parent's
                     root, depth = the parent's depth + 1
    CapitalMovedOut  one row of `view_capital_flows`

`view_hierarchy_nodes` has one row per funded account: its parent (NULL for
a root), its root (the top ancestor; itself for a root), its depth (0 for a
root), its tier and owner (they never change), the log position of its
activation (`created_log_position`, the order children are listed in) and
of the last event that changed the row (`position`).

Linking assumes what the domain and the services guarantee: a node is
linked once (`FundedAccount.link_to_parent` refuses a second parent), and
an account made by a fork (or by a merge into a new account) is linked right
after its activation, in the same write, so it has no children of its own
when it is linked. Then a link moves one node and nothing under it. The view
checks the assumption and raises `ValueError` naming the account and the log
position (the page is not written) rather than leave descendants with a
stale root and depth: what it remembers of a node includes whether the node
has children (read back with it).

`view_capital_flows` has one row per `CapitalMovedOut`: from the account
that recorded it to `to_account_id`, the amount, the process (a fork or a
merge) and the business time. `flow_id` is the event's log position as
text: unique by construction, so a process that moved capital twice between
the same two accounts would still make two rows. The receiving side's
`CapitalMovedIn` (a merge into an account that exists already) is the same
money arriving: it makes no row, so nothing is counted twice. An account
made by a process (a fork's child, a merge's new account) records no
`CapitalMovedIn`: it is activated with the capital.

`kind` is `fork` when the target is the account the process made as its
child: a fork's child's id is derived from the fork's
(`funded_account_id_for(child_assessment_id(fork_id))`), so this needs
nothing remembered and no event order within the fork's write. Any other
flow is a `merge` (the only other process that moves capital between funded
accounts), a merge into a new account included: that account is made under
the source's parent, not the source, and its id is derived otherwise.

A merged account stays in the tree (CLOSED after a whole merge, with a
balance of 0): the tree is who was made from whom, the flows are where the
capital went.

Nodes seen lately are remembered between pages; a page that links a node
whose row (or whose parent's) memory lacks reads them back from the table,
once per page for every miss together. A page rewrites the rows of the
nodes it touched (delete, then COPY) and appends its flows (COPY).

Queries join `view_funded_accounts` (the funded accounts view) for each
node's state and balance at read time, so they read two views: a reader
catches up both (`NAME` and `funded_accounts.NAME`) before reading. A node
whose funded account row is not there yet shows state and balance None.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final
from uuid import UUID

from domain.fork import child_assessment_id
from domain.funded_account import funded_account_id_for
from projections.events import (
    FUNDED_ACTIVATED,
    FUNDED_CAPITAL_MOVED_OUT,
    FUNDED_LINKED_TO_PARENT,
    LoggedEvent,
    parse_time,
)
from projections.view import Cursor, copy_rows

NAME: Final[str] = "hierarchy"
# Nodes remembered between pages; past this the memory is dropped and misses
# are read back from the table.
REMEMBERED_NODES_MAX: Final[int] = 100_000
# The most nodes one subtree read returns; a larger subtree is cut (breadth
# first: whole levels from the top, part of the last) and marked truncated.
SUBTREE_NODES_MAX: Final[int] = 10_000
# How far a lineage read goes: ancestors up the parent chain, and flows
# followed from account to account, each at most this many steps.
LINEAGE_DEPTH_MAX: Final[int] = 32
# The most flows a lineage read returns on each side (sources, destinations).
LINEAGE_FLOWS_MAX: Final[int] = 10_000

FLOW_FORK: Final[str] = "fork"
FLOW_MERGE: Final[str] = "merge"

_NODE_COLUMNS: Final = (
    "funded_account_id",
    "parent_id",
    "root_id",
    "depth",
    "tier",
    "owner_id",
    "created_log_position",
    "position",
)
_FLOW_COLUMNS: Final = (
    "flow_id",
    "from_account_id",
    "to_account_id",
    "amount_minor",
    "process_id",
    "kind",
    "at",
    "position",
)


@dataclass(slots=True)
class _Node:
    """A node as the view remembers it: its row, and whether it has children."""

    funded_account_id: UUID
    parent_id: UUID | None
    root_id: UUID
    depth: int
    tier: str
    owner_id: str
    created_log_position: int
    position: int
    has_children: bool = False

    def row(self) -> tuple[Any, ...]:
        return (
            self.funded_account_id,
            self.parent_id,
            self.root_id,
            self.depth,
            self.tier,
            self.owner_id,
            self.created_log_position,
            self.position,
        )


def _activated(event: LoggedEvent) -> _Node:
    data = event.data()
    return _Node(
        funded_account_id=event.originator_id,
        parent_id=None,
        root_id=event.originator_id,
        depth=0,
        tier=data["tier"],
        owner_id=data["owner_id"],
        created_log_position=event.position,
        position=event.position,
    )


def flow_kind(to_account_id: UUID, process_id: UUID) -> str:
    """`fork` when the target is the child the process (a fork) made, else `merge`."""
    if to_account_id == funded_account_id_for(child_assessment_id(process_id)):
        return FLOW_FORK
    return FLOW_MERGE


def _flow_row(event: LoggedEvent) -> tuple[Any, ...]:
    data = event.data()
    at = parse_time(data["at"])
    assert at is not None
    to_account_id = UUID(data["to_account_id"])
    process_id = UUID(data["process_id"])
    return (
        str(event.position),
        event.originator_id,
        to_account_id,
        data["amount_minor"],
        process_id,
        flow_kind(to_account_id, process_id),
        at,
        event.position,
    )


class HierarchyView:
    name = NAME
    version = 1
    tables: tuple[str, ...] = ("view_hierarchy_nodes", "view_capital_flows")

    def __init__(self) -> None:
        self._nodes: dict[UUID, _Node] = {}
        self._complete = False

    def create_tables(self, cursor: Cursor) -> None:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS view_hierarchy_nodes ("
            " funded_account_id uuid PRIMARY KEY, parent_id uuid, root_id uuid NOT NULL,"
            " depth integer NOT NULL, tier text NOT NULL, owner_id text NOT NULL,"
            " created_log_position bigint NOT NULL, position bigint NOT NULL)"
        )
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS view_capital_flows ("
            " flow_id text PRIMARY KEY, from_account_id uuid NOT NULL,"
            " to_account_id uuid NOT NULL, amount_minor bigint NOT NULL,"
            " process_id uuid NOT NULL, kind text NOT NULL, at timestamptz NOT NULL,"
            " position bigint NOT NULL)"
        )

    def create_indexes(self, cursor: Cursor) -> None:
        cursor.execute(
            "CREATE INDEX IF NOT EXISTS view_hierarchy_nodes_parent_idx"
            " ON view_hierarchy_nodes (parent_id, created_log_position)"
        )
        cursor.execute(
            "CREATE INDEX IF NOT EXISTS view_hierarchy_nodes_root_idx"
            " ON view_hierarchy_nodes (root_id)"
        )
        cursor.execute(
            "CREATE INDEX IF NOT EXISTS view_capital_flows_from_idx"
            " ON view_capital_flows (from_account_id, position)"
        )
        cursor.execute(
            "CREATE INDEX IF NOT EXISTS view_capital_flows_to_idx"
            " ON view_capital_flows (to_account_id, position)"
        )

    def forget(self, *, starts_empty: bool) -> None:
        self._nodes = {}
        self._complete = starts_empty

    def digest_order(self, table: str) -> str:
        if table == "view_capital_flows":
            return "flow_id"
        return "funded_account_id"

    def prepare(self, cursor: Cursor | None, events: Sequence[LoggedEvent]) -> _HierarchyPage:
        # A replay from empty (no cursor) keeps everything: it cannot read back.
        if cursor is not None and len(self._nodes) > REMEMBERED_NODES_MAX:
            self.forget(starts_empty=False)
        self._remember(cursor, events)
        nodes = self._nodes
        created: set[UUID] = set()
        touched: dict[UUID, None] = {}
        flows: list[tuple[Any, ...]] = []
        for event in events:
            topic = event.topic
            if topic == FUNDED_ACTIVATED:
                nodes[event.originator_id] = _activated(event)
                created.add(event.originator_id)
                touched[event.originator_id] = None
            elif topic == FUNDED_LINKED_TO_PARENT:
                self._link(event)
                touched[event.originator_id] = None
            elif topic == FUNDED_CAPITAL_MOVED_OUT:
                flows.append(_flow_row(event))
        # Rows are copied out of memory now: memory moves on with the next page.
        return _HierarchyPage(
            replaced_nodes=[node_id for node_id in touched if node_id not in created],
            node_rows=[nodes[node_id].row() for node_id in touched],
            flow_rows=flows,
        )

    def _link(self, event: LoggedEvent) -> None:
        parent_id = UUID(event.data()["parent_id"])
        node = self._require(event.originator_id, event)
        parent = self._require(parent_id, event)
        if node.parent_id is not None:
            raise ValueError(
                f"{NAME}: account {node.funded_account_id} is linked a second time at "
                f"position {event.position}; it has parent {node.parent_id}"
            )
        if parent_id == node.funded_account_id:
            raise ValueError(
                f"{NAME}: account {parent_id} is linked to itself at position {event.position}"
            )
        if node.has_children:
            # Its descendants' roots and depths would have to move with it.
            raise ValueError(
                f"{NAME}: account {node.funded_account_id} is linked to {parent_id} at "
                f"position {event.position} after it had children; the view assumes "
                "a node is linked before it has any"
            )
        node.parent_id = parent_id
        node.root_id = parent.root_id
        node.depth = parent.depth + 1
        node.position = event.position
        parent.has_children = True

    def _require(self, node_id: UUID, event: LoggedEvent) -> _Node:
        node = self._nodes.get(node_id)
        if node is None:
            raise LookupError(
                f"{NAME}: account {node_id} is named at position {event.position} "
                "but was never activated"
            )
        return node

    def _remember(self, cursor: Cursor | None, events: Sequence[LoggedEvent]) -> None:
        """Read back the nodes this page links, and their parents, that memory lacks."""
        if self._complete:
            return
        if cursor is None:
            raise ValueError("only a view that replays from empty prepares without a cursor")
        wanted: dict[UUID, None] = {}
        for event in events:
            if event.topic == FUNDED_LINKED_TO_PARENT:
                wanted[event.originator_id] = None
                wanted[UUID(event.data()["parent_id"])] = None
        missing = [node_id for node_id in wanted if node_id not in self._nodes]
        if not missing:
            return
        cursor.execute(
            f"SELECT {', '.join(f'n.{column}' for column in _NODE_COLUMNS)},"  # noqa: S608
            " EXISTS (SELECT 1 FROM view_hierarchy_nodes AS c"
            " WHERE c.parent_id = n.funded_account_id)"
            " FROM view_hierarchy_nodes AS n WHERE n.funded_account_id = ANY(%s)",
            (missing,),
        )
        for row in cursor.fetchall():
            self._nodes[row[0]] = _Node(*row)


@dataclass(frozen=True, slots=True)
class _HierarchyPage:
    # Nodes whose earlier rows this page replaces.
    replaced_nodes: list[UUID]
    node_rows: list[tuple[Any, ...]]
    flow_rows: list[tuple[Any, ...]]

    def write(self, cursor: Cursor) -> None:
        if self.replaced_nodes:
            cursor.execute(
                "DELETE FROM view_hierarchy_nodes WHERE funded_account_id = ANY(%s)",
                (self.replaced_nodes,),
            )
        copy_rows(cursor, "view_hierarchy_nodes", _NODE_COLUMNS, self.node_rows)
        copy_rows(cursor, "view_capital_flows", _FLOW_COLUMNS, self.flow_rows)


# Queries ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TierTotals:
    tier: str
    accounts: int
    balance_minor: int


@dataclass(frozen=True, slots=True)
class SubtreeTotals:
    """A subtree's consolidated figures: its accounts (the node's own
    included) and the sum of their current balances, overall and by tier
    (tiers in the order first met, top down). `balances_unknown` counts
    accounts the funded accounts view does not show yet (their balance is
    not in the sum)."""

    accounts: int
    balance_minor: int
    by_tier: Mapping[str, TierTotals]
    balances_unknown: int


@dataclass(frozen=True, slots=True)
class HierarchyNode:
    funded_account_id: UUID
    parent_id: UUID | None
    root_id: UUID
    # From the root of the whole tree (0 for a root).
    depth: int
    tier: str
    owner_id: str
    # From the funded accounts view at read time; None if it lacks the account.
    state: str | None
    balance_minor: int | None
    created_log_position: int
    # In the order they were made (activation log position).
    children: tuple[HierarchyNode, ...]
    totals: SubtreeTotals
    # The read stopped at SUBTREE_NODES_MAX nodes: accounts may be missing
    # below any node, and totals count only the nodes shown. Set on every
    # node of such a read.
    truncated: bool


@dataclass(frozen=True, slots=True)
class LineageAccount:
    funded_account_id: UUID
    parent_id: UUID | None
    depth: int
    tier: str
    owner_id: str
    state: str | None
    balance_minor: int | None


@dataclass(frozen=True, slots=True)
class CapitalFlow:
    flow_id: str
    from_account_id: UUID
    to_account_id: UUID
    amount_minor: int
    process_id: UUID
    kind: str
    at: datetime
    position: int
    # Steps from the account the lineage is of: 1 for a flow into (or out of)
    # the account itself, 2 for one into its source (out of its destination), ...
    hops: int


@dataclass(frozen=True, slots=True)
class LineageSources:
    # Up the parent chain: the parent first, the root last.
    ancestors: tuple[LineageAccount, ...]
    # Capital into the account (hops 1), and into each source before that
    # source moved it on (hops 2, ...); by hops, then log position.
    flows: tuple[CapitalFlow, ...]


@dataclass(frozen=True, slots=True)
class LineageDestinations:
    # Capital out of the account (hops 1), and out of each destination after
    # the capital arrived there (hops 2, ...); by hops, then log position.
    flows: tuple[CapitalFlow, ...]


@dataclass(frozen=True, slots=True)
class Lineage:
    account: LineageAccount
    sources: LineageSources
    destinations: LineageDestinations
    # Stopped at LINEAGE_DEPTH_MAX steps or LINEAGE_FLOWS_MAX flows on a side.
    truncated: bool


_SUBTREE_FROM: Final = (
    "WITH RECURSIVE subtree AS ("
    " SELECT n.funded_account_id, n.parent_id, n.root_id, n.depth, n.tier, n.owner_id,"
    " n.created_log_position FROM view_hierarchy_nodes AS n"
    " WHERE n.funded_account_id = {start}"
    " UNION ALL"
    " SELECT c.funded_account_id, c.parent_id, c.root_id, c.depth, c.tier, c.owner_id,"
    " c.created_log_position FROM view_hierarchy_nodes AS c"
    " JOIN subtree AS s ON c.parent_id = s.funded_account_id)"
    # The recursion is evaluated only as far as rows are fetched: the limit
    # stops it, breadth first (level by level from the start).
    " SELECT s.funded_account_id, s.parent_id, s.root_id, s.depth, s.tier, s.owner_id,"
    " s.created_log_position, f.state, f.current_balance_minor"
    " FROM (SELECT * FROM subtree LIMIT %s) AS s"
    " LEFT JOIN view_funded_accounts AS f ON f.funded_account_id = s.funded_account_id"
)
_SELECT_SUBTREE: Final = _SUBTREE_FROM.format(start="%s")
_SELECT_TREE_OF: Final = _SUBTREE_FROM.format(
    start="(SELECT r.root_id FROM view_hierarchy_nodes AS r WHERE r.funded_account_id = %s)"
)


def subtree(cursor: Cursor, funded_account_id: UUID) -> HierarchyNode | None:
    """The subtree rooted at the account, each node with its figures, its
    children and its subtree's totals; None for an account not in the view.
    One statement (one snapshot of both views)."""
    cursor.execute(_SELECT_SUBTREE, (funded_account_id, SUBTREE_NODES_MAX + 1))
    return _tree(cursor.fetchall())


def tree_of(cursor: Cursor, funded_account_id: UUID) -> HierarchyNode | None:
    """The whole tree the account is part of (the subtree of its root)."""
    cursor.execute(_SELECT_TREE_OF, (funded_account_id, SUBTREE_NODES_MAX + 1))
    return _tree(cursor.fetchall())


def _tree(rows: list[tuple[Any, ...]]) -> HierarchyNode | None:
    if not rows:
        return None
    # Deepest first, so each node's children are made before it; the start is
    # the one shallowest node (every other row is its descendant).
    rows = sorted(rows, key=lambda found: found[3], reverse=True)
    truncated = len(rows) > SUBTREE_NODES_MAX
    if truncated:
        # The rows are the first the breadth-first walk met, so each one's
        # parent is there; the one past the limit dropped is of the deepest
        # level (nobody's parent here), so that stays true.
        rows = rows[1:]
    start_id = rows[-1][0]
    children: dict[UUID, list[HierarchyNode]] = {}
    built: HierarchyNode | None = None
    for row in rows:
        (node_id, parent_id, root_id, depth, tier, owner_id, created, state, balance) = row
        below = sorted(children.pop(node_id, []), key=lambda child: child.created_log_position)
        built = HierarchyNode(
            funded_account_id=node_id,
            parent_id=parent_id,
            root_id=root_id,
            depth=depth,
            tier=tier,
            owner_id=owner_id,
            state=state,
            balance_minor=balance,
            created_log_position=created,
            children=tuple(below),
            totals=_totals(tier, balance, [child.totals for child in below]),
            truncated=truncated,
        )
        if node_id == start_id:
            return built
        children.setdefault(parent_id, []).append(built)
    raise AssertionError("a subtree read without its start node")


def _totals(tier: str, balance: int | None, below: Sequence[SubtreeTotals]) -> SubtreeTotals:
    by_tier: dict[str, list[int]] = {tier: [1, balance or 0]}
    for totals in below:
        for tier_totals in totals.by_tier.values():
            counted = by_tier.setdefault(tier_totals.tier, [0, 0])
            counted[0] += tier_totals.accounts
            counted[1] += tier_totals.balance_minor
    return SubtreeTotals(
        accounts=1 + sum(totals.accounts for totals in below),
        balance_minor=(balance or 0) + sum(totals.balance_minor for totals in below),
        by_tier={
            name: TierTotals(name, accounts, balance_minor)
            for name, (accounts, balance_minor) in by_tier.items()
        },
        balances_unknown=(balance is None) + sum(totals.balances_unknown for totals in below),
    )


_SELECT_CHAIN: Final = (
    "WITH RECURSIVE chain AS ("
    " SELECT n.funded_account_id, n.parent_id, n.depth, n.tier, n.owner_id, 0 AS up"
    " FROM view_hierarchy_nodes AS n WHERE n.funded_account_id = %s"
    " UNION ALL"
    " SELECT p.funded_account_id, p.parent_id, p.depth, p.tier, p.owner_id, c.up + 1"
    " FROM view_hierarchy_nodes AS p JOIN chain AS c ON p.funded_account_id = c.parent_id"
    " WHERE c.up < %s)"
    " SELECT c.funded_account_id, c.parent_id, c.depth, c.tier, c.owner_id,"
    " f.state, f.current_balance_minor"
    " FROM chain AS c"
    " LEFT JOIN view_funded_accounts AS f ON f.funded_account_id = c.funded_account_id"
    " ORDER BY c.up"
)
_FLOW_SELECT: Final = ", ".join(f"f.{column}" for column in _FLOW_COLUMNS)
# Flows are followed while the capital could have moved on: out of a
# destination only after it arrived there (a later log position), into a
# source only before it left (an earlier one). Each side goes one step past
# LINEAGE_DEPTH_MAX and one row past LINEAGE_FLOWS_MAX, so a cut is seen.
_SELECT_FLOWS: Final = (
    "WITH RECURSIVE inflow AS ("  # noqa: S608
    f" SELECT {_FLOW_SELECT}, 1 AS hops FROM view_capital_flows AS f"
    " WHERE f.to_account_id = %(account)s"
    " UNION ALL"
    f" SELECT {_FLOW_SELECT}, i.hops + 1 FROM view_capital_flows AS f"
    " JOIN inflow AS i ON f.to_account_id = i.from_account_id AND f.position < i.position"
    " WHERE i.hops <= %(depth)s),"
    " outflow AS ("
    f" SELECT {_FLOW_SELECT}, 1 AS hops FROM view_capital_flows AS f"
    " WHERE f.from_account_id = %(account)s"
    " UNION ALL"
    f" SELECT {_FLOW_SELECT}, o.hops + 1 FROM view_capital_flows AS f"
    " JOIN outflow AS o ON f.from_account_id = o.to_account_id AND f.position > o.position"
    " WHERE o.hops <= %(depth)s)"
    " (SELECT 'in', * FROM inflow LIMIT %(rows)s)"
    " UNION ALL (SELECT 'out', * FROM outflow LIMIT %(rows)s)"
)


def lineage(cursor: Cursor, funded_account_id: UUID) -> Lineage | None:
    """Where the account's capital came from (its ancestors, and the flows
    into it and on up) and where it went (the flows out of it and on down);
    None for an account not in the view.

    Two statements: the parent chain, then the flows. A page written between
    them can only add (a new account, a new flow): a node's parent is set
    once, right after it is made, and flows are never changed."""
    cursor.execute(_SELECT_CHAIN, (funded_account_id, LINEAGE_DEPTH_MAX))
    chain = [LineageAccount(*row) for row in cursor.fetchall()]
    if not chain:
        return None
    cursor.execute(
        _SELECT_FLOWS,
        {"account": funded_account_id, "depth": LINEAGE_DEPTH_MAX, "rows": LINEAGE_FLOWS_MAX + 1},
    )
    found: dict[str, list[tuple[Any, ...]]] = {"in": [], "out": []}
    for side, *row in cursor.fetchall():
        found[side].append(tuple(row))
    sources, sources_cut = _flows(found["in"])
    destinations, destinations_cut = _flows(found["out"])
    return Lineage(
        account=chain[0],
        sources=LineageSources(ancestors=tuple(chain[1:]), flows=sources),
        destinations=LineageDestinations(flows=destinations),
        truncated=chain[-1].parent_id is not None or sources_cut or destinations_cut,
    )


def _flows(rows: list[tuple[Any, ...]]) -> tuple[tuple[CapitalFlow, ...], bool]:
    """The flows of one side, each once (at its fewest hops: merges can reach
    a flow by two ways), by hops then position; and whether the side was cut."""
    cut = len(rows) > LINEAGE_FLOWS_MAX
    flows: dict[str, CapitalFlow] = {}
    for row in rows[:LINEAGE_FLOWS_MAX]:
        flow = CapitalFlow(*row)
        if flow.hops > LINEAGE_DEPTH_MAX:
            cut = True
            continue
        known = flows.get(flow.flow_id)
        if known is None or flow.hops < known.hops:
            flows[flow.flow_id] = flow
    return tuple(sorted(flows.values(), key=lambda flow: (flow.hops, flow.position))), cut


@dataclass(frozen=True, slots=True)
class MergeCandidate:
    funded_account_id: UUID
    parent_id: UUID
    tier: str
    band: str
    balance_minor: int
    # Days since the account last had a day with a closed trade (None: never).
    idle_days: int | None


def merge_candidates(
    cursor: Cursor, *, today: date, idle_after_days: int, limit: int
) -> list[MergeCandidate]:
    """Children (accounts with a parent) that are active and either in a rule
    band past SAFE, or idle: no open position and no trade closed for
    `idle_after_days`. Joins the funded accounts and daily values views."""
    cursor.execute(
        "SELECT n.funded_account_id, n.parent_id, n.tier, f.band, f.current_balance_minor,"
        " (SELECT max(d.day) FROM view_daily_values AS d"
        "  WHERE d.funded_account_id = n.funded_account_id AND d.trades_closed > 0),"
        " (SELECT count(*) FROM view_funded_positions AS p"
        "  WHERE p.funded_account_id = n.funded_account_id)"
        " FROM view_hierarchy_nodes AS n"
        " JOIN view_funded_accounts AS f ON f.funded_account_id = n.funded_account_id"
        " WHERE n.parent_id IS NOT NULL AND f.state = 'active'"
        " ORDER BY n.created_log_position LIMIT %s",
        (limit,),
    )
    found = []
    for (
        account_id,
        parent_id,
        tier,
        band,
        balance,
        last_trade_day,
        open_positions,
    ) in cursor.fetchall():
        idle_days = None if last_trade_day is None else (today - last_trade_day).days
        idle = open_positions == 0 and (idle_days is None or idle_days >= idle_after_days)
        if band != "safe" or idle:
            found.append(MergeCandidate(account_id, parent_id, tier, band, balance, idle_days))
    return found
