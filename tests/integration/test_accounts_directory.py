"""The accounts directory's subtree query: an account and every descendant,
by depth, however the parent links are laid out (rows written directly: no
command sets a parent yet; forks will)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from uuid import UUID

import psycopg

from projections.accounts_directory import SUBTREE_DEPTH_MAX, AccountsDirectoryView, subtree


def _insert(connection: psycopg.Connection[object], parents: dict[UUID, UUID | None]) -> None:
    with connection.cursor() as cursor:
        AccountsDirectoryView().create_tables(cursor)
        for position, (account_id, parent) in enumerate(parents.items(), start=1):
            cursor.execute(
                "INSERT INTO view_accounts VALUES"
                " (%s, %s, 'owner', 'user', 'active', 'USD', %s, true, false, '{}',"
                " %s, '', 1)",
                (account_id, position, parent, datetime(2026, 1, 1, tzinfo=UTC)),
            )


def test_a_subtree_holds_every_descendant_by_depth_and_nothing_else(database_url: str) -> None:
    root, child_a, child_b, grandchild, stranger = (uuid.uuid4() for _ in range(5))
    parents = {
        root: None,
        child_a: root,
        child_b: root,
        grandchild: child_a,
        stranger: None,
    }
    with psycopg.connect(database_url) as connection:
        _insert(connection, parents)
        with connection.cursor() as cursor:
            tree = [(entry.account_id, depth) for entry, depth in subtree(cursor, root)]
            leaf = [(entry.account_id, depth) for entry, depth in subtree(cursor, grandchild)]
            nothing = subtree(cursor, uuid.uuid4())
    assert tree == [(root, 0), (child_a, 1), (child_b, 1), (grandchild, 2)]
    assert leaf == [(grandchild, 0)]
    assert nothing == []


def test_a_cycle_in_the_data_stops_at_the_depth_limit(database_url: str) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(database_url) as connection:
        _insert(connection, {first: second, second: first})
        with connection.cursor() as cursor:
            depths = [depth for _, depth in subtree(cursor, first)]
    assert max(depths) == SUBTREE_DEPTH_MAX
