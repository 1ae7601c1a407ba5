"""The guards view: each account guard's state, its open divergences, its
pending alerts, and the positions closed through it (domain/account_guard.py).

What it answers (docs/rules.md#position-sync-and-guards): an account's last
guard decision and level, the sync's divergences still open (reconciliation
status of an account), the alerts waiting (a drawdown warning, a liquidation
scheduled, a position marked for closing), and which account a closed position
belonged to (a close asked again answers with the first close).

Each handler sets what the aggregate's handler of the same event sets:

    Started                   a guard row: peak, level ok, nothing due
    PeakEquityRaised          peak = equity
    DrawdownWarned            level warn, nothing due; the drawdown alert
    LiquidationScheduled      level liquidate, due at; the drawdown alert
    DrawdownRecovered         level ok, nothing due; the drawdown alert goes
    Liquidated                with no failure: level ok, nothing due, peak =
                              equity, the drawdown alert goes (a failure
                              keeps the liquidation under way, as the
                              aggregate does)
    PositionMarkedForClosing  a position alert
    CloseRecorded             without an error: the position alert goes and
                              the close is kept (the first close of a
                              position, as a retry closes nothing more)
    DivergenceFound           a divergence row
    DivergenceCleared         the divergence row goes

The guard row is one per aggregate (`AggregateRows`); the other tables are
keyed by (guard, key) and a page writes each key's last state: the rows it
leaves are deleted and copied in again, the ones it clears deleted. So they
need no memory between pages, and a replay leaves exactly what was kept live.
Rows name the guard; its funded account comes from the guard row (the
guard's id is `guard_id_for(funded_account_id)`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final
from uuid import UUID

from psycopg.types.json import Jsonb

from domain.account_guard import DrawdownLevel, guard_id_for
from projections.aggregate_rows import AggregateRows, RowsPage
from projections.events import GUARD_LATER_TOPICS, GUARD_STARTED, LoggedEvent, parse_time
from projections.view import Cursor, copy_rows

NAME: Final[str] = "guards"
REMEMBERED_GUARDS_MAX: Final[int] = 100_000
# The key of a guard's one drawdown alert (a warning, then a liquidation).
DRAWDOWN_ALERT_KEY: Final[str] = "drawdown"
POSITION_ALERT_PREFIX: Final[str] = "position:"


class AlertKind(StrEnum):
    DRAWDOWN_WARNED = "drawdown_warned"
    LIQUIDATION_SCHEDULED = "liquidation_scheduled"
    POSITION_MARKED_FOR_CLOSING = "position_marked_for_closing"


# The guard's decisions, by event name, as the row's `last_decision` names them.
# Divergences are what a sync saw, not decisions, and leave it as it is.
DECISIONS: Final[dict[str, str]] = {
    "DrawdownWarned": "drawdown_warned",
    "LiquidationScheduled": "liquidation_scheduled",
    "DrawdownRecovered": "drawdown_recovered",
    "Liquidated": "liquidated",
    "PositionMarkedForClosing": "position_marked_for_closing",
    "CloseRecorded": "close_recorded",
}

_GUARD_COLUMNS: Final = (
    "guard_id",
    "funded_account_id",
    "started_log_position",
    "peak_equity_minor",
    "level",
    "liquidation_due_at",
    "last_decision",
    "last_decision_at",
    "last_drawdown",
    "started_at",
    "updated_at",
    "position",
)
_DIVERGENCE_COLUMNS: Final = (
    "guard_id",
    "fingerprint",
    "kind",
    "position_id",
    "symbol",
    "ledger_quantity",
    "broker_quantity",
    "ledger_entry_minor",
    "broker_entry_minor",
    "amount_minor",
    "found_at",
    "position",
)
_ALERT_COLUMNS: Final = (
    "guard_id",
    "alert_key",
    "kind",
    "position_id",
    "reasons",
    "equity_minor",
    "peak_equity_minor",
    "drawdown",
    "positions",
    "due_at",
    "raised_at",
    "position",
)
_CLOSE_COLUMNS: Final = (
    "guard_id",
    "position_id",
    "reason",
    "actor",
    "price_minor",
    "realized_pnl_minor",
    "closed_at",
    "position",
)


@dataclass(slots=True)
class GuardRow:
    guard_id: UUID
    funded_account_id: UUID
    started_log_position: int
    peak_equity_minor: int
    level: str
    liquidation_due_at: datetime | None
    # The last decision's kind (`DECISIONS`) and time; None before the first.
    last_decision: str | None
    last_decision_at: datetime | None
    # The drawdown from peak the last drawdown decision read, an exact ratio.
    last_drawdown: str | None
    started_at: datetime
    updated_at: datetime
    position: int

    def row(self) -> tuple[Any, ...]:
        return tuple(getattr(self, column) for column in _GUARD_COLUMNS)


@dataclass(frozen=True, slots=True)
class DivergenceRow:
    guard_id: UUID
    fingerprint: str
    kind: str
    position_id: str
    symbol: str
    ledger_quantity: int | None
    broker_quantity: int | None
    ledger_entry_minor: int | None
    broker_entry_minor: int | None
    amount_minor: int
    found_at: datetime
    position: int


@dataclass(frozen=True, slots=True)
class AlertRow:
    guard_id: UUID
    alert_key: str
    kind: str
    # A position alert's position, and the market guard's reasons ("gap,spread").
    position_id: str | None
    reasons: str | None
    # A drawdown alert's inputs, and the positions it would close.
    equity_minor: int | None
    peak_equity_minor: int | None
    drawdown: str | None
    positions: list[str]
    due_at: datetime | None
    raised_at: datetime
    position: int

    def row(self) -> tuple[Any, ...]:
        values = [getattr(self, column) for column in _ALERT_COLUMNS]
        values[_ALERT_COLUMNS.index("positions")] = Jsonb(self.positions)
        return tuple(values)


@dataclass(frozen=True, slots=True)
class CloseRow:
    guard_id: UUID
    position_id: str
    reason: str
    actor: str
    price_minor: int | None
    realized_pnl_minor: int | None
    closed_at: datetime
    position: int


def _time(data: dict[str, Any], key: str = "at") -> datetime:
    at = parse_time(data[key])
    assert at is not None
    return at


def _event_name(event: LoggedEvent) -> str:
    return event.topic.rsplit(".", 1)[-1]


def _started(event: LoggedEvent) -> GuardRow:
    data = event.data()
    at = _time(data)
    return GuardRow(
        guard_id=event.originator_id,
        funded_account_id=UUID(data["funded_account_id"]),
        started_log_position=event.position,
        peak_equity_minor=data["peak_equity_minor"],
        level=DrawdownLevel.OK.value,
        liquidation_due_at=None,
        last_decision=None,
        last_decision_at=None,
        last_drawdown=None,
        started_at=at,
        updated_at=at,
        position=event.position,
    )


def _apply(row: GuardRow, event: LoggedEvent) -> None:
    data = event.data()
    name = _event_name(event)
    at = _time(data)
    if name == "PeakEquityRaised":
        row.peak_equity_minor = data["equity_minor"]
    elif name == "DrawdownWarned":
        row.level = DrawdownLevel.WARN.value
        row.liquidation_due_at = None
    elif name == "LiquidationScheduled":
        row.level = DrawdownLevel.LIQUIDATE.value
        row.liquidation_due_at = _time(data, "due_at")
    elif name == "DrawdownRecovered":
        row.level = DrawdownLevel.OK.value
        row.liquidation_due_at = None
    elif name == "Liquidated":
        if not data["failed"]:
            row.level = DrawdownLevel.OK.value
            row.liquidation_due_at = None
            row.peak_equity_minor = data["equity_minor"]
    elif name not in (
        "PositionMarkedForClosing",
        "CloseRecorded",
        "DivergenceFound",
        "DivergenceCleared",
    ):
        raise ValueError(f"the guards view has no handler for {event.topic}")
    decision = DECISIONS.get(name)
    if decision is not None:
        row.last_decision = decision
        row.last_decision_at = at
        if "drawdown" in data:
            row.last_drawdown = data["drawdown"]
    row.updated_at = at
    row.position = event.position


# The keyed tables -----------------------------------------------------------------


@dataclass(slots=True)
class _Keyed:
    """A keyed table's changes in one page: each key's last state, a row or
    None (cleared)."""

    table: str
    key_column: str
    last: dict[tuple[UUID, str], tuple[Any, ...] | None] = field(default_factory=dict)

    def write(self, cursor: Cursor, columns: Sequence[str]) -> None:
        if not self.last:
            return
        guard_ids = [guard_id for guard_id, _ in self.last]
        keys = [key for _, key in self.last]
        cursor.execute(
            f"DELETE FROM {self.table} WHERE (guard_id, {self.key_column}) IN"  # noqa: S608
            " (SELECT * FROM unnest(%s::uuid[], %s::text[]))",
            (guard_ids, keys),
        )
        copy_rows(cursor, self.table, columns, [row for row in self.last.values() if row])


@dataclass(frozen=True, slots=True)
class GuardsPage:
    guards: RowsPage
    divergences: _Keyed
    alerts: _Keyed
    # Closes to keep: a position closed before keeps its first close.
    closes: list[tuple[Any, ...]]

    def write(self, cursor: Cursor) -> None:
        self.guards.write(cursor)
        self.divergences.write(cursor, _DIVERGENCE_COLUMNS)
        self.alerts.write(cursor, _ALERT_COLUMNS)
        if self.closes:
            cursor.executemany(
                f"INSERT INTO view_guard_closes ({', '.join(_CLOSE_COLUMNS)})"  # noqa: S608
                f" VALUES ({', '.join(['%s'] * len(_CLOSE_COLUMNS))})"
                " ON CONFLICT (guard_id, position_id) DO NOTHING",
                self.closes,
            )


class GuardsView:
    name = NAME
    version = 1
    tables: tuple[str, ...] = (
        "view_account_guards",
        "view_guard_divergences",
        "view_guard_alerts",
        "view_guard_closes",
    )

    def __init__(self) -> None:
        self._guards = AggregateRows(
            table="view_account_guards",
            columns=_GUARD_COLUMNS,
            first_topic=GUARD_STARTED,
            later_topics=GUARD_LATER_TOPICS,
            created=_started,
            apply=_apply,
            from_columns=GuardRow,
            remembered_max=REMEMBERED_GUARDS_MAX,
        )

    def create_tables(self, cursor: Cursor) -> None:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS view_account_guards ("
            " guard_id uuid PRIMARY KEY, funded_account_id uuid NOT NULL,"
            " started_log_position bigint NOT NULL, peak_equity_minor bigint NOT NULL,"
            " level text NOT NULL, liquidation_due_at timestamptz,"
            " last_decision text, last_decision_at timestamptz, last_drawdown text,"
            " started_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,"
            " position bigint NOT NULL)"
        )
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS view_guard_divergences ("
            " guard_id uuid NOT NULL, fingerprint text NOT NULL, kind text NOT NULL,"
            " position_id text NOT NULL, symbol text NOT NULL, ledger_quantity bigint,"
            " broker_quantity bigint, ledger_entry_minor bigint, broker_entry_minor bigint,"
            " amount_minor bigint NOT NULL, found_at timestamptz NOT NULL,"
            " position bigint NOT NULL, PRIMARY KEY (guard_id, fingerprint))"
        )
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS view_guard_alerts ("
            " guard_id uuid NOT NULL, alert_key text NOT NULL, kind text NOT NULL,"
            " position_id text, reasons text, equity_minor bigint, peak_equity_minor bigint,"
            " drawdown text, positions jsonb NOT NULL, due_at timestamptz,"
            " raised_at timestamptz NOT NULL, position bigint NOT NULL,"
            " PRIMARY KEY (guard_id, alert_key))"
        )
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS view_guard_closes ("
            " guard_id uuid NOT NULL, position_id text NOT NULL, reason text NOT NULL,"
            " actor text NOT NULL, price_minor bigint, realized_pnl_minor bigint,"
            " closed_at timestamptz NOT NULL, position bigint NOT NULL,"
            " PRIMARY KEY (guard_id, position_id))"
        )

    def create_indexes(self, cursor: Cursor) -> None:
        cursor.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS view_account_guards_account_idx"
            " ON view_account_guards (funded_account_id)"
        )
        cursor.execute(
            "CREATE INDEX IF NOT EXISTS view_guard_alerts_position_idx"
            " ON view_guard_alerts (position)"
        )
        cursor.execute(
            "CREATE INDEX IF NOT EXISTS view_guard_closes_position_id_idx"
            " ON view_guard_closes (position_id)"
        )

    def forget(self, *, starts_empty: bool) -> None:
        self._guards.forget(starts_empty=starts_empty)

    def digest_order(self, table: str) -> str:
        return {
            "view_account_guards": "guard_id",
            "view_guard_divergences": "guard_id, fingerprint",
            "view_guard_alerts": "guard_id, alert_key",
            "view_guard_closes": "guard_id, position_id",
        }[table]

    def prepare(self, cursor: Cursor | None, events: Sequence[LoggedEvent]) -> GuardsPage:
        guards = self._guards.prepare(cursor, events)
        divergences = _Keyed("view_guard_divergences", "fingerprint")
        alerts = _Keyed("view_guard_alerts", "alert_key")
        closes: dict[tuple[UUID, str], tuple[Any, ...]] = {}
        for event in events:
            if event.topic not in GUARD_LATER_TOPICS:
                continue
            name = _event_name(event)
            data = event.data()
            guard_id = event.originator_id
            if name == "DivergenceFound":
                divergences.last[(guard_id, data["fingerprint"])] = _divergence(event, data)
            elif name == "DivergenceCleared":
                divergences.last[(guard_id, data["fingerprint"])] = None
            elif name in ("DrawdownWarned", "LiquidationScheduled"):
                alerts.last[(guard_id, DRAWDOWN_ALERT_KEY)] = _drawdown_alert(
                    event, name, data
                ).row()
            elif name == "DrawdownRecovered" or (name == "Liquidated" and not data["failed"]):
                alerts.last[(guard_id, DRAWDOWN_ALERT_KEY)] = None
            elif name == "PositionMarkedForClosing":
                alerts.last[(guard_id, POSITION_ALERT_PREFIX + data["position_id"])] = (
                    _position_alert(event, data).row()
                )
            elif name == "CloseRecorded" and data["error"] is None:
                alerts.last[(guard_id, POSITION_ALERT_PREFIX + data["position_id"])] = None
                closes.setdefault((guard_id, data["position_id"]), _close(event, data))
        return GuardsPage(guards, divergences, alerts, list(closes.values()))


def _divergence(event: LoggedEvent, data: dict[str, Any]) -> tuple[Any, ...]:
    return (
        event.originator_id,
        data["fingerprint"],
        data["kind"],
        data["position_id"],
        data["symbol"],
        data["ledger_quantity"],
        data["broker_quantity"],
        data["ledger_entry_minor"],
        data["broker_entry_minor"],
        data["amount_minor"],
        _time(data),
        event.position,
    )


def _drawdown_alert(event: LoggedEvent, name: str, data: dict[str, Any]) -> AlertRow:
    scheduled = name == "LiquidationScheduled"
    return AlertRow(
        guard_id=event.originator_id,
        alert_key=DRAWDOWN_ALERT_KEY,
        kind=(AlertKind.LIQUIDATION_SCHEDULED if scheduled else AlertKind.DRAWDOWN_WARNED).value,
        position_id=None,
        reasons=None,
        equity_minor=data["equity_minor"],
        peak_equity_minor=data["peak_equity_minor"],
        drawdown=data["drawdown"],
        positions=list(data["positions"]),
        due_at=_time(data, "due_at") if scheduled else None,
        raised_at=_time(data),
        position=event.position,
    )


def _position_alert(event: LoggedEvent, data: dict[str, Any]) -> AlertRow:
    return AlertRow(
        guard_id=event.originator_id,
        alert_key=POSITION_ALERT_PREFIX + data["position_id"],
        kind=AlertKind.POSITION_MARKED_FOR_CLOSING.value,
        position_id=data["position_id"],
        # Joined as the aggregate keeps them.
        reasons=",".join(data["reasons"]),
        equity_minor=None,
        peak_equity_minor=None,
        drawdown=None,
        positions=[data["position_id"]],
        due_at=None,
        raised_at=_time(data),
        position=event.position,
    )


def _close(event: LoggedEvent, data: dict[str, Any]) -> tuple[Any, ...]:
    return (
        event.originator_id,
        data["position_id"],
        data["reason"],
        data["actor"],
        data["price_minor"],
        data["realized_pnl_minor"],
        _time(data),
        event.position,
    )


# Queries ---------------------------------------------------------------------

_SELECT_GUARD: Final[str] = f"SELECT {', '.join(_GUARD_COLUMNS)} FROM view_account_guards"  # noqa: S608
_SELECT_DIVERGENCES: Final[str] = (
    f"SELECT {', '.join(_DIVERGENCE_COLUMNS)} FROM view_guard_divergences"  # noqa: S608
)
_SELECT_ALERTS: Final[str] = (
    f"SELECT {', '.join(f'a.{column}' for column in _ALERT_COLUMNS)}, g.funded_account_id"  # noqa: S608
    " FROM view_guard_alerts AS a JOIN view_account_guards AS g ON g.guard_id = a.guard_id"
)


@dataclass(frozen=True, slots=True)
class PendingAlert:
    funded_account_id: UUID
    alert: AlertRow


def guard_of(cursor: Cursor, funded_account_id: UUID) -> GuardRow | None:
    cursor.execute(f"{_SELECT_GUARD} WHERE guard_id = %s", (guard_id_for(funded_account_id),))
    found = cursor.fetchone()
    return None if found is None else GuardRow(*found)


def open_divergences(cursor: Cursor, funded_account_id: UUID, limit: int) -> list[DivergenceRow]:
    """The account's open divergences, oldest first, at most `limit`."""
    cursor.execute(
        f"{_SELECT_DIVERGENCES} WHERE guard_id = %s ORDER BY position, fingerprint LIMIT %s",
        (guard_id_for(funded_account_id), limit),
    )
    return [DivergenceRow(*found) for found in cursor.fetchall()]


def open_divergence_count(cursor: Cursor, funded_account_id: UUID) -> int:
    cursor.execute(
        "SELECT count(*) FROM view_guard_divergences WHERE guard_id = %s",
        (guard_id_for(funded_account_id),),
    )
    found = cursor.fetchone()
    return int(found[0]) if found else 0


def marked_for_closing(cursor: Cursor, funded_account_id: UUID, limit: int) -> list[AlertRow]:
    """The account's positions marked for closing and not closed yet, oldest first."""
    cursor.execute(
        f"{_SELECT_ALERTS} WHERE a.guard_id = %s AND a.kind = %s"
        " ORDER BY a.position, a.alert_key LIMIT %s",
        (guard_id_for(funded_account_id), AlertKind.POSITION_MARKED_FOR_CLOSING.value, limit),
    )
    return [_alert_of(found).alert for found in cursor.fetchall()]


def pending_alerts(cursor: Cursor, limit: int) -> list[PendingAlert]:
    """Every account's pending alerts, newest first, at most `limit`."""
    cursor.execute(
        f"{_SELECT_ALERTS} ORDER BY a.position DESC, a.guard_id, a.alert_key LIMIT %s", (limit,)
    )
    return [_alert_of(found) for found in cursor.fetchall()]


def last_decision_time(cursor: Cursor) -> datetime | None:
    """The latest decision of any guard (None: no guard has decided yet)."""
    cursor.execute("SELECT max(last_decision_at) FROM view_account_guards")
    found = cursor.fetchone()
    return None if found is None else found[0]


def pending_alert_count(cursor: Cursor) -> int:
    cursor.execute("SELECT count(*) FROM view_guard_alerts")
    found = cursor.fetchone()
    return int(found[0]) if found else 0


def close_of(cursor: Cursor, position_id: str) -> tuple[UUID, CloseRow] | None:
    """A position closed through a guard: its funded account and its close."""
    cursor.execute(
        f"SELECT {', '.join(f'c.{column}' for column in _CLOSE_COLUMNS)},"  # noqa: S608
        " g.funded_account_id FROM view_guard_closes AS c"
        " JOIN view_account_guards AS g ON g.guard_id = c.guard_id"
        " WHERE c.position_id = %s ORDER BY c.position LIMIT 1",
        (position_id,),
    )
    found = cursor.fetchone()
    if found is None:
        return None
    return found[-1], CloseRow(*found[:-1])


def _alert_of(found: Sequence[Any]) -> PendingAlert:
    return PendingAlert(funded_account_id=found[-1], alert=AlertRow(*found[:-1]))
