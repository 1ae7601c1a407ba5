"""The reconciliation reports view: runs, their checks, and the exceptions raised.

What it answers (docs/rules.md#reconciliation): the list of reports and one
report with its checks, the exceptions by severity and whether they are
resolved, the open exceptions by fingerprint (a later run names an open one
instead of raising it again), and the figures the metrics export. Each handler
sets what the aggregate's handler of the same event sets
(domain/reconciliation.py).

Runs are few (two dozen a day) and checks six per run, so their rows are
written as they come; exceptions change after they are raised (corrected,
resolved), so a page updates the ones an earlier page wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from psycopg.types.json import Jsonb

from domain.reconciliation import CheckStatus, ExceptionStatus, RunStatus, Severity
from projections.aggregate_rows import AggregateRows, RowsPage
from projections.events import (
    RECONCILIATION_CHECK_RECORDED,
    RECONCILIATION_COMPLETED,
    RECONCILIATION_EXCEPTION_CORRECTED,
    RECONCILIATION_EXCEPTION_RAISED,
    RECONCILIATION_EXCEPTION_RESOLVED,
    RECONCILIATION_LATER_TOPICS,
    RECONCILIATION_STARTED,
    LoggedEvent,
    parse_time,
)
from projections.view import Cursor, copy_rows

NAME: Final[str] = "reconciliation"
REMEMBERED_RUNS_MAX: Final[int] = 10_000

_RUN_COLUMNS: Final = (
    "run_id",
    "started_log_position",
    "run_type",
    "status",
    "started_at",
    "started_by",
    "completed_at",
    "checks_passed",
    "checks_failed",
    "exceptions_raised",
    "position",
)
_CHECK_COLUMNS: Final = (
    "run_id",
    "name",
    "status",
    "measure",
    "expected",
    "actual",
    "difference",
    "discrepancies_found",
    "already_open",
    "reason",
    "elapsed_ms",
    "recorded_at",
    "position",
)
_EXCEPTION_COLUMNS: Final = (
    "exception_id",
    "run_id",
    "raised_log_position",
    "check_name",
    "kind",
    "severity",
    "subject",
    "message",
    "amount_minor",
    "currency",
    "expected",
    "actual",
    "fingerprint",
    "correction",
    "status",
    "raised_at",
    "closed_at",
    "closed_by",
    "closing_note",
    "position",
)


@dataclass(slots=True)
class RunRow:
    run_id: UUID
    started_log_position: int
    run_type: str
    status: str
    started_at: datetime
    started_by: str
    completed_at: datetime | None
    checks_passed: int
    checks_failed: int
    exceptions_raised: int
    position: int

    def row(self) -> tuple[Any, ...]:
        return tuple(getattr(self, column) for column in _RUN_COLUMNS)


@dataclass(slots=True)
class CheckRow:
    run_id: UUID
    name: str
    status: str
    measure: str
    expected: int
    actual: int
    difference: int
    discrepancies_found: int
    # Fingerprint -> the open exception (of an earlier run) it is.
    already_open: dict[str, str]
    reason: str | None
    elapsed_ms: int
    recorded_at: datetime
    position: int


@dataclass(slots=True)
class ExceptionRow:
    exception_id: UUID
    run_id: UUID
    raised_log_position: int
    check_name: str
    kind: str
    severity: str
    subject: str
    message: str
    amount_minor: int
    currency: str | None
    expected: str | None
    actual: str | None
    fingerprint: str
    correction: str | None
    status: str
    raised_at: datetime
    closed_at: datetime | None
    # The person who resolved it, or the service that corrected it.
    closed_by: str | None
    # The person's note, or the correction the service made.
    closing_note: str | None
    position: int

    def row(self) -> tuple[Any, ...]:
        return tuple(getattr(self, column) for column in _EXCEPTION_COLUMNS)


def _time(data: dict[str, Any]) -> datetime:
    at = parse_time(data["at"])
    assert at is not None
    return at


def _started(event: LoggedEvent) -> RunRow:
    data = event.data()
    return RunRow(
        run_id=event.originator_id,
        started_log_position=event.position,
        run_type=data["run_type"],
        status=RunStatus.RUNNING.value,
        started_at=_time(data),
        started_by=data["actor"],
        completed_at=None,
        checks_passed=0,
        checks_failed=0,
        exceptions_raised=0,
        position=event.position,
    )


def _apply(row: RunRow, event: LoggedEvent) -> None:
    data = event.data()
    if event.topic == RECONCILIATION_CHECK_RECORDED:
        if data["status"] == CheckStatus.PASSED.value:
            row.checks_passed += 1
        elif data["status"] != CheckStatus.SKIPPED.value:
            row.checks_failed += 1
    elif event.topic == RECONCILIATION_EXCEPTION_RAISED:
        row.exceptions_raised += 1
    elif event.topic == RECONCILIATION_COMPLETED:
        row.status = data["status"]
        row.completed_at = _time(data)
    row.position = event.position


@dataclass(frozen=True, slots=True)
class ReconciliationPage:
    runs: RowsPage
    checks: list[tuple[Any, ...]]
    exceptions: list[tuple[Any, ...]]
    # (status, closed_at, closed_by, closing_note, position, exception_id) of
    # exceptions an earlier page wrote.
    closures: list[tuple[Any, ...]] = field(default_factory=list)

    def write(self, cursor: Cursor) -> None:
        self.runs.write(cursor)
        copy_rows(cursor, "view_reconciliation_checks", _CHECK_COLUMNS, self.checks)
        copy_rows(cursor, "view_reconciliation_exceptions", _EXCEPTION_COLUMNS, self.exceptions)
        if self.closures:
            cursor.executemany(
                "UPDATE view_reconciliation_exceptions SET status = %s, closed_at = %s,"
                " closed_by = %s, closing_note = %s, position = %s WHERE exception_id = %s",
                self.closures,
            )


class ReconciliationView:
    name = NAME
    # 2: the checks' totals are numeric (a bigint overflowed on large books).
    version = 2
    tables: tuple[str, ...] = (
        "view_reconciliation_runs",
        "view_reconciliation_checks",
        "view_reconciliation_exceptions",
    )

    def __init__(self) -> None:
        self._runs = AggregateRows(
            table="view_reconciliation_runs",
            columns=_RUN_COLUMNS,
            first_topic=RECONCILIATION_STARTED,
            later_topics=RECONCILIATION_LATER_TOPICS,
            created=_started,
            apply=_apply,
            from_columns=RunRow,
            remembered_max=REMEMBERED_RUNS_MAX,
        )

    def create_tables(self, cursor: Cursor) -> None:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS view_reconciliation_runs ("
            " run_id uuid PRIMARY KEY, started_log_position bigint NOT NULL,"
            " run_type text NOT NULL, status text NOT NULL, started_at timestamptz NOT NULL,"
            " started_by text NOT NULL, completed_at timestamptz,"
            " checks_passed integer NOT NULL, checks_failed integer NOT NULL,"
            " exceptions_raised integer NOT NULL, position bigint NOT NULL)"
        )
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS view_reconciliation_checks ("
            " run_id uuid NOT NULL, name text NOT NULL, status text NOT NULL,"
            " measure text NOT NULL, expected numeric NOT NULL, actual numeric NOT NULL,"
            " difference numeric NOT NULL, discrepancies_found integer NOT NULL,"
            " already_open jsonb NOT NULL, reason text, elapsed_ms bigint NOT NULL,"
            " recorded_at timestamptz NOT NULL, position bigint NOT NULL,"
            " PRIMARY KEY (run_id, name))"
        )
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS view_reconciliation_exceptions ("
            " exception_id uuid PRIMARY KEY, run_id uuid NOT NULL,"
            " raised_log_position bigint NOT NULL, check_name text NOT NULL,"
            " kind text NOT NULL, severity text NOT NULL, subject text NOT NULL,"
            " message text NOT NULL, amount_minor bigint NOT NULL, currency text,"
            " expected text, actual text, fingerprint text NOT NULL, correction text,"
            " status text NOT NULL, raised_at timestamptz NOT NULL, closed_at timestamptz,"
            " closed_by text, closing_note text, position bigint NOT NULL)"
        )

    def create_indexes(self, cursor: Cursor) -> None:
        cursor.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS view_reconciliation_runs_started_idx"
            " ON view_reconciliation_runs (started_log_position)"
        )
        cursor.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS view_reconciliation_exceptions_raised_idx"
            " ON view_reconciliation_exceptions (raised_log_position)"
        )
        cursor.execute(
            "CREATE INDEX IF NOT EXISTS view_reconciliation_exceptions_open_idx"
            " ON view_reconciliation_exceptions (fingerprint) WHERE status = 'open'"
        )
        cursor.execute(
            "CREATE INDEX IF NOT EXISTS view_reconciliation_exceptions_run_idx"
            " ON view_reconciliation_exceptions (run_id)"
        )

    def forget(self, *, starts_empty: bool) -> None:
        self._runs.forget(starts_empty=starts_empty)

    def digest_order(self, table: str) -> str:
        return {
            "view_reconciliation_runs": "run_id",
            "view_reconciliation_checks": "run_id, name",
            "view_reconciliation_exceptions": "exception_id",
        }[table]

    def prepare(self, cursor: Cursor | None, events: Sequence[LoggedEvent]) -> ReconciliationPage:
        runs = self._runs.prepare(cursor, events)
        checks: list[tuple[Any, ...]] = []
        raised: dict[UUID, ExceptionRow] = {}
        closures: list[tuple[Any, ...]] = []
        for event in events:
            if event.topic == RECONCILIATION_CHECK_RECORDED:
                checks.append(_check_row(event))
            elif event.topic == RECONCILIATION_EXCEPTION_RAISED:
                exception = _exception_row(event)
                raised[exception.exception_id] = exception
            elif event.topic in (
                RECONCILIATION_EXCEPTION_CORRECTED,
                RECONCILIATION_EXCEPTION_RESOLVED,
            ):
                data = event.data()
                exception_id = UUID(data["exception_id"])
                if event.topic == RECONCILIATION_EXCEPTION_CORRECTED:
                    closing = (
                        ExceptionStatus.CORRECTED.value,
                        _time(data),
                        "reconciliation",
                        data["action"],
                    )
                else:
                    closing = (
                        ExceptionStatus.RESOLVED.value,
                        _time(data),
                        data["resolved_by"],
                        data["note"],
                    )
                row = raised.get(exception_id)
                if row is None:
                    closures.append((*closing, event.position, exception_id))
                else:
                    row.status, row.closed_at, row.closed_by, row.closing_note = closing
                    row.position = event.position
        return ReconciliationPage(
            runs=runs,
            checks=checks,
            exceptions=[row.row() for row in raised.values()],
            closures=closures,
        )


def _check_row(event: LoggedEvent) -> tuple[Any, ...]:
    data = event.data()
    return (
        event.originator_id,
        data["name"],
        data["status"],
        data["measure"],
        data["expected"],
        data["actual"],
        data["actual"] - data["expected"],
        data["discrepancies_found"],
        Jsonb(data["already_open"]),
        data["reason"],
        data["elapsed_ms"],
        _time(data),
        event.position,
    )


def _exception_row(event: LoggedEvent) -> ExceptionRow:
    data = event.data()
    return ExceptionRow(
        exception_id=UUID(data["exception_id"]),
        run_id=event.originator_id,
        raised_log_position=event.position,
        check_name=data["check"],
        kind=data["kind"],
        severity=data["severity"],
        subject=data["subject"],
        message=data["message"],
        amount_minor=data["amount_minor"],
        currency=data["currency"],
        expected=data["expected"],
        actual=data["actual"],
        fingerprint=data["fingerprint"],
        correction=data["correction"],
        status=ExceptionStatus.OPEN.value,
        raised_at=_time(data),
        closed_at=None,
        closed_by=None,
        closing_note=None,
        position=event.position,
    )


# Queries ---------------------------------------------------------------------

_SELECT_RUN: Final[str] = f"SELECT {', '.join(_RUN_COLUMNS)} FROM view_reconciliation_runs"  # noqa: S608
_SELECT_EXCEPTION: Final[str] = (
    f"SELECT {', '.join(_EXCEPTION_COLUMNS)} FROM view_reconciliation_exceptions"  # noqa: S608
)


def run_page(
    cursor: Cursor,
    *,
    before_position: int | None,
    limit: int,
    run_type: str | None = None,
    status: str | None = None,
    started_from: datetime | None = None,
    started_to: datetime | None = None,
) -> list[RunRow]:
    """Runs newest first, those started before `before_position` (all when
    None), of one type and status when given, started in [started_from,
    started_to)."""
    conditions = ["started_log_position < %s"]
    parameters: list[Any] = [before_position if before_position is not None else 2**63 - 1]
    for column, value in (("run_type", run_type), ("status", status)):
        if value is not None:
            conditions.append(f"{column} = %s")
            parameters.append(value)
    if started_from is not None:
        conditions.append("started_at >= %s")
        parameters.append(started_from)
    if started_to is not None:
        conditions.append("started_at < %s")
        parameters.append(started_to)
    cursor.execute(
        f"{_SELECT_RUN} WHERE {' AND '.join(conditions)}"
        " ORDER BY started_log_position DESC LIMIT %s",
        [*parameters, limit],
    )
    return [RunRow(*found) for found in cursor.fetchall()]


def run_by_id(cursor: Cursor, run_id: UUID) -> RunRow | None:
    cursor.execute(f"{_SELECT_RUN} WHERE run_id = %s", (run_id,))
    found = cursor.fetchone()
    return None if found is None else RunRow(*found)


def latest_run(cursor: Cursor) -> RunRow | None:
    cursor.execute(f"{_SELECT_RUN} ORDER BY started_log_position DESC LIMIT 1")
    found = cursor.fetchone()
    return None if found is None else RunRow(*found)


def checks_of(cursor: Cursor, run_id: UUID) -> list[CheckRow]:
    cursor.execute(
        f"SELECT {', '.join(_CHECK_COLUMNS)} FROM view_reconciliation_checks"  # noqa: S608
        " WHERE run_id = %s ORDER BY position",
        (run_id,),
    )
    return [_check_of(found) for found in cursor.fetchall()]


_CHECK_TOTALS: Final = frozenset({"expected", "actual", "difference"})


def _check_of(found: tuple[Any, ...]) -> CheckRow:
    # The totals are numeric, not bigint: a check may total amounts that no
    # single account could hold (every account's debits together), and a view
    # column that overflows would stop the view for good.
    values: list[Any] = [
        int(value) if column in _CHECK_TOTALS else value
        for column, value in zip(_CHECK_COLUMNS, found, strict=True)
    ]
    return CheckRow(*values)


def exceptions_of(cursor: Cursor, run_id: UUID) -> list[ExceptionRow]:
    cursor.execute(
        f"{_SELECT_EXCEPTION} WHERE run_id = %s ORDER BY raised_log_position",
        (run_id,),
    )
    return [ExceptionRow(*found) for found in cursor.fetchall()]


def exception_by_id(cursor: Cursor, exception_id: UUID) -> ExceptionRow | None:
    cursor.execute(f"{_SELECT_EXCEPTION} WHERE exception_id = %s", (exception_id,))
    found = cursor.fetchone()
    return None if found is None else ExceptionRow(*found)


def exception_page(
    cursor: Cursor,
    *,
    severity: Severity | None,
    resolved: bool | None,
    after_position: int,
    limit: int,
) -> list[ExceptionRow]:
    """Exceptions oldest first, raised after the position (each was raised by
    an event of its own, so the position is its key in log order).
    `resolved`: True for corrected or resolved ones, False for open ones."""
    conditions: list[str] = ["raised_log_position > %s"]
    parameters: list[Any] = [after_position]
    if severity is not None:
        conditions.append("severity = %s")
        parameters.append(severity.value)
    if resolved is not None:
        conditions.append("status <> 'open'" if resolved else "status = 'open'")
    cursor.execute(
        f"{_SELECT_EXCEPTION} WHERE {' AND '.join(conditions)}"
        " ORDER BY raised_log_position LIMIT %s",
        [*parameters, limit],
    )
    return [ExceptionRow(*found) for found in cursor.fetchall()]


def open_by_fingerprint(cursor: Cursor) -> dict[str, UUID]:
    cursor.execute(
        "SELECT fingerprint, exception_id FROM view_reconciliation_exceptions"
        " WHERE status = 'open' ORDER BY raised_log_position"
    )
    # The earliest open exception of a fingerprint is the one a run names.
    found: dict[str, UUID] = {}
    for fingerprint, exception_id in cursor.fetchall():
        found.setdefault(fingerprint, exception_id)
    return found


def run_of_exception(cursor: Cursor, exception_id: UUID) -> UUID | None:
    cursor.execute(
        "SELECT run_id FROM view_reconciliation_exceptions WHERE exception_id = %s",
        (exception_id,),
    )
    found = cursor.fetchone()
    return None if found is None else UUID(str(found[0]))


def unresolved_by_severity(cursor: Cursor) -> dict[str, int]:
    cursor.execute(
        "SELECT severity, count(*) FROM view_reconciliation_exceptions"
        " WHERE status = 'open' GROUP BY severity"
    )
    counts = {severity.value: 0 for severity in Severity}
    for severity, count in cursor.fetchall():
        counts[severity] = int(count)
    return counts
