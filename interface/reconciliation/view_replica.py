"""The views as the log makes them at their last verified position, kept to
go on from: what an incremental projections check compares with.

See docs/operations.md#reconciliation.

A full projections check replays every view from the log into a scratch
schema and compares it with the live view (interface/audit/view_checks.py).
The replays of the views found equal are then kept, in REPLICA_SCHEMA, and
the position each was equal at recorded in `reconciliation_positions`, in
one transaction: the replica of a view is exactly the log's view at its
verified position.

An incremental check goes on from there, in one REPEATABLE READ transaction
(so the live views, their tracking positions, the log and the replica are
one consistent picture): the events after each view's verified position up
to the live view's are applied to the replica through the view's own
handlers (as the live runner applies them), a trigger on each replica table
noting the key of every row they write; those rows, and only those, are
compared with the live view's rows of the same keys. A view that matches
moves its verified position on; one that differs is reported with the rows
that differ and its replica is put back where it was (a savepoint), so the
next run compares the same rows again, after the correction rebuilt the
live view. The cost is the events since the last clean run, whatever the
length of the log.

What an incremental check does not look at: live rows the new events did
not touch (a row changed or deleted behind the runner's back, long after
the events that wrote it), and events changed before the verified
position. The daily full run compares everything.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from psycopg import IsolationLevel, sql

from interface.adapters.persistence.advisory_locks import AUDIT_VERIFY_LOCK_KEY
from interface.audit.report import Finding, FindingKind, VerifyReport, ViewCheck, ViewStatus
from interface.audit.view_checks import DIFFERING_ROWS_SHOWN, VERIFY_SCHEMA
from projections.events import LoggedEvent
from projections.rebuild import LIVE_SCHEMA
from projections.registry import all_views
from projections.runner import read_events
from projections.view import View, apply_page

REPLICA_SCHEMA: Final[str] = "ledger_reconciled"
# The name the projections check keeps its positions under.
PROJECTIONS_CHECK_NAME: Final[str] = "projections"
# Events applied to the replica per page.
REPLICA_PAGE_EVENTS: Final[int] = 5_000
# Events since the last clean run read once for every view, held in memory,
# up to this many (an hourly run's are far fewer); past it, each view reads
# its own pages.
REPLICA_EVENTS_HELD_MAX: Final[int] = 100_000
# Noted by the replica tables' trigger, for this transaction only.
TOUCHED_TABLE: Final[str] = "reconciliation_touched_rows"
_NOTE_FUNCTION: Final[str] = "note_touched_row"
_TRIGGER: Final[str] = "note_touched"

# An AFTER ROW trigger: the key columns (the trigger's arguments) of the row
# written, into the session's temporary table (which exists only while an
# incremental check applies events: nothing else writes the replica).
_CREATE_NOTE_FUNCTION: Final = sql.SQL(
    "CREATE OR REPLACE FUNCTION {schema}.{function}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
    "DECLARE written jsonb;\n"
    "BEGIN\n"
    "  IF TG_OP = 'DELETE' THEN written := to_jsonb(OLD); ELSE written := to_jsonb(NEW); END IF;\n"
    "  INSERT INTO pg_temp.{touched} (table_name, key)\n"
    "    SELECT TG_TABLE_NAME, jsonb_object_agg(name, written -> name)\n"
    "    FROM unnest(TG_ARGV) AS name;\n"
    "  IF TG_OP = 'UPDATE' THEN\n"
    "    written := to_jsonb(OLD);\n"
    "    INSERT INTO pg_temp.{touched} (table_name, key)\n"
    "      SELECT TG_TABLE_NAME, jsonb_object_agg(name, written -> name)\n"
    "      FROM unnest(TG_ARGV) AS name;\n"
    "  END IF;\n"
    "  RETURN NULL;\n"
    "END $$"
)


@dataclass(frozen=True, slots=True)
class Verified:
    position: int
    version: int


# Full checks: keeping the replays -------------------------------------------------


def keep_replays(database_url: str, checks: Sequence[ViewCheck]) -> None:
    """After a full comparison (its replays still in VERIFY_SCHEMA, its lock
    held): keep the replay of each view found equal as its replica, at the
    position it was equal at; forget the verified position of every other
    view (it is checked in full next time)."""
    views = {view.name: view for view in all_views()}
    with psycopg.connect(database_url) as connection, connection.transaction():
        cursor = connection.cursor()
        _prepare_schema(cursor)
        for check in checks:
            view = views[check.name]
            if check.status is not ViewStatus.EQUAL:
                cursor.execute(
                    "DELETE FROM reconciliation_positions WHERE check_name = %s AND subject = %s",
                    (PROJECTIONS_CHECK_NAME, view.name),
                )
                continue
            for table in view.tables:
                cursor.execute(
                    sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(REPLICA_SCHEMA, table))
                )
                cursor.execute(
                    sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(
                        sql.Identifier(VERIFY_SCHEMA, table), sql.Identifier(REPLICA_SCHEMA)
                    )
                )
                cursor.execute(
                    sql.SQL(
                        "CREATE TRIGGER {} AFTER INSERT OR UPDATE OR DELETE ON {} "
                        "FOR EACH ROW EXECUTE FUNCTION {}({})"
                    ).format(
                        sql.Identifier(_TRIGGER),
                        sql.Identifier(REPLICA_SCHEMA, table),
                        sql.Identifier(REPLICA_SCHEMA, _NOTE_FUNCTION),
                        sql.SQL(", ").join(
                            sql.Literal(column) for column in _key_columns(cursor, table)
                        ),
                    )
                )
            _save_position(cursor, view, check.position)


def _prepare_schema(cursor: psycopg.Cursor[Any]) -> None:
    cursor.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(REPLICA_SCHEMA)))
    cursor.execute(
        _CREATE_NOTE_FUNCTION.format(
            schema=sql.Identifier(REPLICA_SCHEMA),
            function=sql.Identifier(_NOTE_FUNCTION),
            touched=sql.Identifier(TOUCHED_TABLE),
        )
    )


def _key_columns(cursor: psycopg.Cursor[Any], table: str) -> list[str]:
    """The replica table's primary key, else its first unique index, else
    every column: what names one of its rows."""
    cursor.execute(
        "SELECT a.attname FROM pg_index AS i"
        " JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) ON true"
        " JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
        " WHERE i.indrelid = %s::regclass AND i.indisunique AND i.indpred IS NULL"
        " AND i.indexprs IS NULL"
        " ORDER BY i.indisprimary DESC, i.indexrelid, k.n",
        (f"{REPLICA_SCHEMA}.{table}",),
    )
    rows = [str(row[0]) for row in cursor.fetchall()]
    if rows:
        # The first index's columns only (the rows of several are in order).
        cursor.execute(
            "SELECT i.indnkeyatts FROM pg_index AS i WHERE i.indrelid = %s::regclass"
            " AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL"
            " ORDER BY i.indisprimary DESC, i.indexrelid LIMIT 1",
            (f"{REPLICA_SCHEMA}.{table}",),
        )
        count = cursor.fetchone()
        assert count is not None
        return rows[: int(count[0])]
    cursor.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
        " AND NOT attisdropped ORDER BY attnum",
        (f"{REPLICA_SCHEMA}.{table}",),
    )
    return [str(row[0]) for row in cursor.fetchall()]


def _save_position(cursor: psycopg.Cursor[Any], view: View, position: int) -> None:
    cursor.execute(
        "INSERT INTO reconciliation_positions (check_name, subject, position, version)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (check_name, subject) DO UPDATE"
        " SET position = excluded.position, version = excluded.version, verified_at = now()",
        (PROJECTIONS_CHECK_NAME, view.name, position, view.version),
    )


# Incremental checks -----------------------------------------------------------


def verified_positions(database_url: str) -> dict[str, Verified]:
    """Each view's verified position whose replica is whole (every table of it kept)."""
    views = all_views()
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT subject, position, version FROM reconciliation_positions WHERE check_name = %s",
            (PROJECTIONS_CHECK_NAME,),
        ).fetchall()
        kept = {
            str(row[0])
            for row in connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s", (REPLICA_SCHEMA,)
            ).fetchall()
        }
    recorded = {
        str(subject): Verified(int(position), int(version)) for subject, position, version in rows
    }
    return {
        view.name: recorded[view.name]
        for view in views
        if view.name in recorded
        and recorded[view.name].version == view.version
        and all(table in kept for table in view.tables)
    }


def check_views_incrementally(database_url: str) -> VerifyReport | None:
    """Each view's rows the events since its verified position wrote, against
    the live view's rows of the same keys; the report as a full check's
    (`views`, a VIEW_MISMATCH finding per differing table). None when a view
    has nothing to go on from: no replica, or a live view behind it (the
    caller checks in full; nothing was changed)."""
    started = time.perf_counter()
    report = VerifyReport()
    views = all_views()
    with psycopg.connect(database_url, autocommit=True) as guard:
        # The replica and the scratch schemas are shared: one at a time.
        guard.execute("SELECT pg_advisory_lock(%s)", (AUDIT_VERIFY_LOCK_KEY,))
        verified = verified_positions(database_url)
        if len(verified) < len(views):
            return None
        try:
            _check_all(database_url, views, verified, report)
        except CannotGoOn:
            # Its transaction undone: nothing changed.
            return None
    report.elapsed_s = time.perf_counter() - started
    return report


def _check_all(
    database_url: str, views: Sequence[View], verified: dict[str, Verified], report: VerifyReport
) -> None:
    """Every view in one REPEATABLE READ transaction, committed at the end."""
    with psycopg.connect(database_url) as connection:
        connection.isolation_level = IsolationLevel.REPEATABLE_READ
        with connection.transaction():
            cursor = connection.cursor()
            cursor.execute(
                sql.SQL("SET LOCAL search_path TO {}, {}").format(
                    sql.Identifier(REPLICA_SCHEMA), sql.Identifier(LIVE_SCHEMA)
                )
            )
            cursor.execute(
                sql.SQL(
                    "CREATE TEMPORARY TABLE {} (table_name text NOT NULL, key jsonb NOT NULL)"
                    " ON COMMIT DROP"
                ).format(sql.Identifier(TOUCHED_TABLE))
            )
            tracked = {
                str(name): (int(position), int(version))
                for name, position, version in cursor.execute(
                    "SELECT name, position, version FROM projection_tracking"
                ).fetchall()
            }
            since = _events_since(cursor, views, verified, tracked)
            for view in views:
                report.views.append(
                    _check_view(
                        connection, cursor, view, verified[view.name], tracked, since, report
                    )
                )


def _events_since(
    cursor: psycopg.Cursor[Any],
    views: Sequence[View],
    verified: dict[str, Verified],
    tracked: dict[str, tuple[int, int]],
) -> list[LoggedEvent] | None:
    """The events every view has to apply, read once for all of them when
    they are at most REPLICA_EVENTS_HELD_MAX (the hourly run's case); None
    past that, each view then reading its own pages (memory stays bounded)."""
    after = min(found.position for found in verified.values())
    until = max((position for position, _ in tracked.values()), default=after)
    if until - after > REPLICA_EVENTS_HELD_MAX:
        return None
    events: list[LoggedEvent] = []
    while after < until:
        page = [
            event
            for event in read_events(cursor, after, REPLICA_PAGE_EVENTS)
            if event.position <= until
        ]
        if not page:
            break
        events.extend(page)
        after = page[-1].position
    return events


def _check_view(
    connection: psycopg.Connection[Any],
    cursor: psycopg.Cursor[Any],
    view: View,
    verified: Verified,
    tracked: dict[str, tuple[int, int]],
    since: list[LoggedEvent] | None,
    report: VerifyReport,
) -> ViewCheck:
    found = tracked.get(view.name)
    if found is None:
        return ViewCheck(view.name, ViewStatus.NOT_BUILT, 0)
    position, version = found
    if version != view.version:
        return ViewCheck(view.name, ViewStatus.OTHER_VERSION, position)
    if position < verified.position:
        # The live view is behind its verified position (rebuilt in place and
        # still catching up): there is nothing to go on from.
        raise CannotGoOn(f"view {view.name} is at {position}, verified at {verified.position}")
    differing: list[Finding] = []
    live_digests: dict[str, str] = {}
    replica_digests: dict[str, str] = {}
    try:
        with connection.transaction():  # a savepoint: undone when the view differs
            _apply_since(cursor, view, verified.position, position, since)
            for table in view.tables:
                keys = _key_columns(cursor, table)
                live_digests[table] = _touched_digest(cursor, LIVE_SCHEMA, table, keys)
                replica_digests[table] = _touched_digest(cursor, REPLICA_SCHEMA, table, keys)
                if live_digests[table] != replica_digests[table]:
                    differing.append(
                        _mismatch(cursor, view, table, keys, position, verified.position)
                    )
            if differing:
                # Back to the verified replica: the next run compares these rows again.
                raise _Differs
            cursor.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(TOUCHED_TABLE)))
            _save_position(cursor, view, position)
    except _Differs:
        for finding in differing:
            report.add(finding)
        return ViewCheck(view.name, ViewStatus.DIFFERENT, position, live_digests, replica_digests)
    return ViewCheck(view.name, ViewStatus.EQUAL, position, live_digests, replica_digests)


def _apply_since(
    cursor: psycopg.Cursor[Any],
    view: View,
    after: int,
    until: int,
    since: list[LoggedEvent] | None,
) -> None:
    """The log's events after `after` up to `until` (from `since` when it
    holds them), applied to the replica (the search_path finds it) through
    the view's handlers, which read back what they need from it."""
    view.forget(starts_empty=False)
    if since is not None:
        wanted = [event for event in since if after < event.position <= until]
        for start in range(0, len(wanted), REPLICA_PAGE_EVENTS):
            apply_page(view, cursor, wanted[start : start + REPLICA_PAGE_EVENTS])
        return
    while after < until:
        events = [
            event
            for event in read_events(cursor, after, REPLICA_PAGE_EVENTS)
            if event.position <= until
        ]
        if not events:
            return
        apply_page(view, cursor, events)
        after = events[-1].position


def _touched_rows(schema: str, table: str, keys: Sequence[str]) -> sql.Composed:
    """The rows of `schema`.`table` whose keys the replica's trigger noted."""
    columns = sql.SQL(", ").join(sql.Identifier(column) for column in keys)
    return sql.SQL(
        "SELECT t::text AS row FROM {table} AS t WHERE ({columns}) IN ("
        "SELECT {columns} FROM jsonb_populate_recordset(NULL::{replica},"
        " (SELECT jsonb_agg(DISTINCT key) FROM {touched} WHERE table_name = {name})))"
    ).format(
        table=sql.Identifier(schema, table),
        columns=columns,
        replica=sql.Identifier(REPLICA_SCHEMA, table),
        touched=sql.Identifier(TOUCHED_TABLE),
        name=sql.Literal(table),
    )


def _touched_digest(
    cursor: psycopg.Cursor[Any], schema: str, table: str, keys: Sequence[str]
) -> str:
    cursor.execute(
        sql.SQL(
            "SELECT md5(coalesce(string_agg(row, E'\\n' ORDER BY row), '')) FROM ({}) AS touched"
        ).format(_touched_rows(schema, table, keys))
    )
    found = cursor.fetchone()
    assert found is not None
    return str(found[0])


def _mismatch(
    cursor: psycopg.Cursor[Any],
    view: View,
    table: str,
    keys: Sequence[str],
    position: int,
    verified: int,
) -> Finding:
    found: list[list[str]] = []
    for first, second in ((REPLICA_SCHEMA, LIVE_SCHEMA), (LIVE_SCHEMA, REPLICA_SCHEMA)):
        cursor.execute(
            sql.SQL("SELECT * FROM ({} EXCEPT ALL {}) AS d LIMIT {}").format(
                _touched_rows(first, table, keys),
                _touched_rows(second, table, keys),
                sql.Literal(DIFFERING_ROWS_SHOWN),
            )
        )
        found.append([str(row[0]) for row in cursor.fetchall()])
    only_replayed, only_live = found
    return Finding(
        FindingKind.VIEW_MISMATCH,
        None,
        f"view {view.name} table {table} at position {position} differs from the log's "
        f"events after position {verified} applied to its last verified replay: "
        f"{len(only_live)} rows only in the live view, {len(only_replayed)} only in the "
        f"replay (at most {DIFFERING_ROWS_SHOWN} of each shown)",
        tuple(
            [f"live only:   {text}" for text in only_live]
            + [f"replay only: {text}" for text in only_replayed]
        ),
        subject=f"view {view.name}",
    )


class CannotGoOn(Exception):
    """A view the incremental check cannot go on with: check in full."""


class _Differs(Exception):
    """Undoes a view's savepoint."""
