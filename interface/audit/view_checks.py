"""Each view against a fresh replay of the log, for `ledger audit verify` and
the reconciliation's projections check.

Every live view and its tracking position are read in one snapshot; the log
is replayed up to those positions into a scratch schema and the digests of
each table compared. A table that differs is copied as the snapshot saw it,
so its differing rows can be listed in the finding.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
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
from projections.digest import differing_rows, view_digest
from projections.rebuild import LIVE_SCHEMA, replay_views_into_schema
from projections.registry import all_views
from projections.view import View

# Where a view is replayed afresh, and where the live view is copied as of
# the verify's snapshot when the two differ (to list the differing rows).
VERIFY_SCHEMA: Final[str] = "ledger_verify"
LIVE_COPY_SCHEMA: Final[str] = "ledger_verify_live"
# Differing rows listed per view table.
DIFFERING_ROWS_SHOWN: Final[int] = 20


def check_views(database_url: str, *, progress: Progress | None = None) -> VerifyReport:
    """Only each view against a fresh replay of the log, not the log itself:
    the report's `views`, and a VIEW_MISMATCH finding per differing table."""
    started = time.perf_counter()
    report = VerifyReport()
    compare_views(database_url, report, progress)
    report.elapsed_s = time.perf_counter() - started
    return report


def compare_views(database_url: str, report: VerifyReport, progress: Progress | None) -> None:
    """Every view against its replay: its `ViewCheck` and any VIEW_MISMATCH to `report`."""
    with psycopg.connect(database_url, autocommit=True) as guard:
        # The scratch schemas are shared: one verify at a time.
        guard.execute("SELECT pg_advisory_lock(%s)", (AUDIT_VERIFY_LOCK_KEY,))
        report.views.extend(_check_all_views(database_url, report, progress))
        if all(check.status is not ViewStatus.DIFFERENT for check in report.views):
            # Kept when a view differs, for a look; the next verify replaces them.
            for schema in (VERIFY_SCHEMA, LIVE_COPY_SCHEMA):
                guard.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                )


def _check_all_views(
    database_url: str, report: VerifyReport, progress: Progress | None
) -> list[ViewCheck]:
    """Digest every live view and its tracking position in one snapshot,
    replay the log up to those positions into a scratch schema, and compare.

    The runner moves its views together, so they have mostly reached one
    position: the views at one position are replayed together, in one read
    of the log (`replay_views_into_schema`), rather than each in its own."""
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
        live: dict[str, dict[str, str]] = {}
        by_position: dict[int, list[View]] = {}
        for view in views:
            found = tracked.get(view.name)
            if found is None:
                checks[view.name] = ViewCheck(view.name, ViewStatus.NOT_BUILT, 0)
            elif found[1] != view.version:
                checks[view.name] = ViewCheck(view.name, ViewStatus.OTHER_VERSION, found[0])
            else:
                live[view.name] = view_digest(snapshot, view, LIVE_SCHEMA)
                by_position.setdefault(found[0], []).append(view)
        # The snapshot's transaction stays open (read only so far) while the
        # replays run on connections of their own.
        replayed: dict[str, dict[str, str]] = {}
        for position, replaying in sorted(by_position.items()):
            label = f"view:{','.join(view.name for view in replaying)}"
            replay_views_into_schema(
                database_url,
                replaying,
                VERIFY_SCHEMA,
                until=position,
                progress=None
                if progress is None
                else partial(_view_progress, progress, label, position),
            )
            with reader.transaction():
                for view in replaying:
                    replayed[view.name] = view_digest(reader, view, VERIFY_SCHEMA)
        differing: dict[str, list[str]] = {}
        for position, compared in by_position.items():
            for view in compared:
                tables = [
                    table
                    for table in view.tables
                    if live[view.name][table] != replayed[view.name][table]
                ]
                if tables:
                    differing[view.name] = tables
                status = ViewStatus.DIFFERENT if tables else ViewStatus.EQUAL
                checks[view.name] = ViewCheck(
                    view.name, status, position, live[view.name], replayed[view.name]
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


def _view_progress(progress: Progress, label: str, position: int, reached: int) -> None:
    progress(label, reached, position)


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
