"""Each view against a fresh replay of the log, for `ledger audit verify` and
the reconciliation's projections check.

Every live view and its tracking position are read in one snapshot; the log
is replayed up to those positions into a scratch schema and the digests of
each table compared. A table that differs is copied as the snapshot saw it,
so its differing rows can be listed in the finding.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Final

import psycopg
from psycopg import IsolationLevel, sql

from interface.adapters.persistence.advisory_locks import AUDIT_VERIFY_LOCK_KEY
from interface.audit.report import (
    Finding,
    FindingKind,
    Progress,
    VerifyReport,
    ViewCheck,
    ViewStatus,
)
from projections.digest import differing_rows
from projections.parallel_replay import replay_and_digest
from projections.rebuild import LIVE_SCHEMA
from projections.registry import all_views

# Where a view is replayed afresh, and where the live view is copied as of
# the verify's snapshot when the two differ (to list the differing rows).
VERIFY_SCHEMA: Final[str] = "ledger_verify"
LIVE_COPY_SCHEMA: Final[str] = "ledger_verify_live"
# Differing rows listed per view table.
DIFFERING_ROWS_SHOWN: Final[int] = 20


def check_views(
    database_url: str, *, progress: Progress | None = None, compared: Compared | None = None
) -> VerifyReport:
    """Only each view against a fresh replay of the log, not the log itself:
    the report's `views`, and a VIEW_MISMATCH finding per differing table."""
    started = time.perf_counter()
    report = VerifyReport()
    compare_views(database_url, report, progress, compared=compared)
    report.elapsed_s = time.perf_counter() - started
    return report


# Called with the views' comparisons while the replays are still in
# VERIFY_SCHEMA (and the lock held): the reconciliation keeps the replays of
# the views found equal, to go on from (interface/reconciliation/view_replica.py).
Compared = Callable[[Sequence[ViewCheck]], None]


def compare_views(
    database_url: str,
    report: VerifyReport,
    progress: Progress | None,
    *,
    compared: Compared | None = None,
) -> None:
    """Every view against its replay: its `ViewCheck` and any VIEW_MISMATCH to `report`."""
    with psycopg.connect(database_url, autocommit=True) as guard:
        # The scratch schemas are shared: one verify at a time.
        guard.execute("SELECT pg_advisory_lock(%s)", (AUDIT_VERIFY_LOCK_KEY,))
        report.views.extend(_check_all_views(database_url, report, progress))
        if compared is not None:
            compared(report.views)
        if all(check.status is not ViewStatus.DIFFERENT for check in report.views):
            # Kept when a view differs, for a look; the next verify replaces them.
            for schema in (VERIFY_SCHEMA, LIVE_COPY_SCHEMA):
                guard.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                )


def _check_all_views(
    database_url: str, report: VerifyReport, progress: Progress | None
) -> list[ViewCheck]:
    """Read every view's tracking position in one snapshot, replay the log
    up to those positions into a scratch schema and digest it, digest the
    live views in that snapshot, and compare.

    The replays and the digests run on every core, with the engine of
    `ledger projections rebuild` (`projections.parallel_replay`); the live
    digests in the snapshot exported to the workers, so each view is
    compared exactly at the position its tracking row says."""
    views = all_views()
    checks: dict[str, ViewCheck] = {}
    with (
        psycopg.connect(database_url) as snapshot,
        psycopg.connect(database_url, autocommit=True) as reader,
    ):
        snapshot.isolation_level = IsolationLevel.REPEATABLE_READ
        tracked = {
            str(name): (int(position), int(version))
            for name, position, version in snapshot.execute(
                "SELECT name, position, version FROM projection_tracking"
            ).fetchall()
        }
        exported = snapshot.execute("SELECT pg_export_snapshot()").fetchone()
        assert exported is not None
        positions: dict[str, int] = {}
        for view in views:
            found = tracked.get(view.name)
            if found is None:
                checks[view.name] = ViewCheck(view.name, ViewStatus.NOT_BUILT, 0)
            elif found[1] != view.version:
                checks[view.name] = ViewCheck(view.name, ViewStatus.OTHER_VERSION, found[0])
            else:
                positions[view.name] = found[0]
        # The snapshot's transaction stays open (read only so far) while the
        # workers replay and digest on connections of their own.
        replayed, live = replay_and_digest(
            database_url,
            positions,
            VERIFY_SCHEMA,
            live_snapshot=str(exported[0]),
            progress=None if progress is None else partial(_view_progress, progress, positions),
        )
        differing: dict[str, list[str]] = {}
        for view in views:
            if view.name not in positions:
                continue
            tables = [
                table
                for table in view.tables
                if live[view.name][table] != replayed[view.name][table]
            ]
            if tables:
                differing[view.name] = tables
            status = ViewStatus.DIFFERENT if tables else ViewStatus.EQUAL
            checks[view.name] = ViewCheck(
                view.name, status, positions[view.name], live[view.name], replayed[view.name]
            )
        if not differing:
            snapshot.rollback()
            return [checks[view.name] for view in views]
        _copy_live_tables(snapshot, [table for tables in differing.values() for table in tables])
        snapshot.commit()
        for name, tables in differing.items():
            for table in tables:
                only_replayed, only_live = differing_rows(
                    reader, table, VERIFY_SCHEMA, LIVE_COPY_SCHEMA, DIFFERING_ROWS_SHOWN
                )
                report.add(
                    Finding(
                        FindingKind.VIEW_MISMATCH,
                        None,
                        f"view {name} table {table} at position {checks[name].position} "
                        f"differs from a fresh replay of the log: {len(only_live)} rows only "
                        f"in the live view, {len(only_replayed)} only in the replay (at most "
                        f"{DIFFERING_ROWS_SHOWN} of each shown)",
                        tuple(
                            [f"live only:   {text}" for text in only_live]
                            + [f"replay only: {text}" for text in only_replayed]
                        ),
                        subject=f"view {name}",
                    )
                )
    return [checks[view.name] for view in views]


def _view_progress(progress: Progress, positions: dict[str, int], name: str, reached: int) -> None:
    progress(f"view:{name}", reached, positions.get(name, reached))


def _copy_live_tables(snapshot: psycopg.Connection[Any], tables: Sequence[str]) -> None:
    """Copy live tables as the snapshot sees them, so their rows can be
    compared with the replay's after the snapshot's transaction ends."""
    snapshot.execute(
        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(LIVE_COPY_SCHEMA))
    )
    for table in tables:
        copy = sql.Identifier(LIVE_COPY_SCHEMA, table)
        snapshot.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(copy))
        snapshot.execute(
            sql.SQL("CREATE TABLE {} AS SELECT * FROM {}").format(
                copy, sql.Identifier(LIVE_SCHEMA, table)
            )
        )
