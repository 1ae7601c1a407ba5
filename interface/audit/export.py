"""The event history as JSON Lines, for auditors: `ledger audit export` and
`GET /v1/audit/events`.

One event per line, in log order:

    {"position": 42, "originator_id": "...", "originator_version": 3,
     "type": "domain.account:Account.PostingsApplied",
     "recorded_at": "2026-01-02T03:04:05.678901+00:00", "data": {...},
     "hash": "<hex>", "previous_hash": "<hex>"}

`data` is the stored body decoded, custom values (times) as their plain JSON
values. `hash` is the event's stored link in the chain and `previous_hash`
the stored link of the event just before it in the log (zeros for the
first), whatever the filters left out. From the position where chain
version 2 begins (migration 0012, table `ledger_chain_schemes`) the link is
sha256 of `previous_hash` followed by each stored field after its length
(4 bytes, big endian): position, originator id, version, type, body and
`recorded_at` (PostgreSQL's binary timestamptz); events before it keep
their version 1 hash, sha256 of `previous_hash`, originator id, version,
type, a zero byte and the body (both in domain/event_chain.py). The chain
alone is recomputable by whoever can write the table; the signed
checkpoints (`ledger audit verify`) are what prove the links were not
rewritten. With `with_state` each line also carries the stored body
verbatim (`state`, a string), so a line's link can be recomputed on its
own: `recorded_at` is given to the microsecond, all the link covers of it.

Filters: `account` keeps the account's own events and every event of the
transfers that post to it (found by their `Recorded` postings, in the log
itself rather than in a view, which is derived and could disagree); `since`
(inclusive) and `until` (exclusive) bound the time each event was recorded.

The log is read in pages by keyset on `notification_id`, each page one
bounded query over a bounded window of positions, so memory is one page and
no query runs long whatever the filters skip. An export covers the log as
it was when it started (up to the position then last written); as positions
are written in commit order, a later export with `after` continues exactly.
Each page takes a connection only while it is read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

import orjson
import psycopg
from psycopg import sql

from domain.event_chain import GENESIS_HASH
from projections.events import (
    TRANSFER_PENDING_EXPIRED,
    TRANSFER_PENDING_POSTED,
    TRANSFER_PENDING_VOIDED,
    TRANSFER_RECORDED,
    TRANSFER_REVERSED,
)

# Events one query returns at most.
PAGE_ROWS: Final[int] = 5_000
# Positions one query scans at most, so a filter that matches rarely still
# makes short queries.
SCAN_WINDOW_POSITIONS: Final[int] = 100_000
# The largest `limit` one export may ask for (the HTTP route's bound).
EXPORT_LIMIT_MAX: Final[int] = 10_000
EXPORT_LIMIT_DEFAULT: Final[int] = 1_000

MEDIA_TYPE: Final[str] = "application/x-ndjson"

_TRANSFER_TOPICS: Final[list[str]] = [
    TRANSFER_RECORDED,
    TRANSFER_PENDING_POSTED,
    TRANSFER_PENDING_VOIDED,
    TRANSFER_PENDING_EXPIRED,
    TRANSFER_REVERSED,
]

Connections = Callable[[], AbstractContextManager[psycopg.Connection[Any]]]


@dataclass(frozen=True, slots=True)
class ExportFilter:
    account_id: UUID | None = None
    # Recorded at or after `since`, and before `until`.
    since: datetime | None = None
    until: datetime | None = None
    # Only events after this log position (to continue an earlier export).
    after: int = 0


def export_lines(
    connections: Connections,
    export_filter: ExportFilter,
    *,
    limit: int | None = None,
    with_state: bool = False,
) -> Iterator[bytes]:
    """JSON Lines, one page (several lines) per item; at most `limit` events."""
    for page in _pages(connections, export_filter, limit):
        yield b"".join(event_line(row, with_state=with_state) for row in page)


def first_page_and_rest(
    connections: Connections, export_filter: ExportFilter, *, limit: int | None
) -> Iterator[bytes]:
    """Like `export_lines`, but reads the first page before returning, so a
    database error becomes the caller's error, not a broken stream."""
    lines = export_lines(connections, export_filter, limit=limit)
    first = next(lines, b"")

    def rest() -> Iterator[bytes]:
        if first:
            yield first
        yield from lines

    return rest()


def event_line(row: tuple[Any, ...], *, with_state: bool = False) -> bytes:
    position, originator_id, version, topic, state, recorded_at, event_hash, previous = row
    state = bytes(state)
    line: dict[str, Any] = {
        "position": position,
        "originator_id": str(originator_id),
        "originator_version": version,
        "type": topic,
        "recorded_at": recorded_at.astimezone(UTC).isoformat(),
        "data": plain_data(orjson.loads(state)),
        "hash": bytes(event_hash).hex(),
        "previous_hash": (bytes(previous) if previous is not None else GENESIS_HASH).hex(),
    }
    if with_state:
        line["state"] = state.decode()
    return orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE)


def plain_data(value: Any) -> Any:
    """A stored body with every custom value (`{"_type_", "_data_"}`) as its
    plain data: a time as its ISO text."""
    if type(value) is dict:
        if "_type_" in value and "_data_" in value:
            return plain_data(value["_data_"])
        return {key: plain_data(item) for key, item in value.items()}
    if type(value) is list:
        return [plain_data(item) for item in value]
    return value


def _pages(
    connections: Connections, export_filter: ExportFilter, limit: int | None
) -> Iterator[list[tuple[Any, ...]]]:
    query, parameters = _page_query(export_filter)
    remaining = limit
    after = export_filter.after
    head: int | None = None
    while remaining is None or remaining > 0:
        rows_wanted = PAGE_ROWS if remaining is None else min(PAGE_ROWS, remaining)
        with connections() as connection:
            if head is None:
                row = connection.execute(
                    "SELECT coalesce(max(notification_id), 0) FROM ledger_events"
                ).fetchone()
                head = int(row[0]) if row else 0
            window_end = min(after + SCAN_WINDOW_POSITIONS, head)
            if after >= window_end:
                return
            page = connection.execute(
                query, {**parameters, "after": after, "end": window_end, "rows": rows_wanted}
            ).fetchall()
        if page:
            yield page
            if remaining is not None:
                remaining -= len(page)
        # A full page may stop inside the window; otherwise the window is done.
        after = page[-1][0] if len(page) == rows_wanted else window_end


def _page_query(export_filter: ExportFilter) -> tuple[sql.Composed, dict[str, Any]]:
    conditions = [sql.SQL("e.notification_id > %(after)s AND e.notification_id <= %(end)s")]
    parameters: dict[str, Any] = {}
    if export_filter.since is not None:
        conditions.append(sql.SQL("e.recorded_at >= %(since)s"))
        parameters["since"] = export_filter.since
    if export_filter.until is not None:
        conditions.append(sql.SQL("e.recorded_at < %(until)s"))
        parameters["until"] = export_filter.until
    if export_filter.account_id is not None:
        # A transfer's events are those of an id whose Recorded event (its
        # version 1, by the primary key) has a posting to the account: a
        # cheap text match first, then the exact JSON containment.
        conditions.append(
            sql.SQL(
                "(e.originator_id = %(account)s OR (e.topic = ANY(%(transfer_topics)s)"
                " AND EXISTS (SELECT 1 FROM ledger_events AS r"
                " WHERE r.originator_id = e.originator_id AND r.originator_version = 1"
                " AND r.topic = %(recorded)s AND position(%(needle)s IN r.state) > 0"
                " AND convert_from(r.state, 'UTF8')::jsonb -> 'postings' @> %(posting)s::jsonb)))"
            )
        )
        account = str(export_filter.account_id)
        parameters |= {
            "account": export_filter.account_id,
            "transfer_topics": _TRANSFER_TOPICS,
            "recorded": TRANSFER_RECORDED,
            "needle": f'"{account}"'.encode(),
            "posting": orjson.dumps([{"account_id": account}]).decode(),
        }
    query = sql.SQL(
        "SELECT e.notification_id, e.originator_id, e.originator_version, e.topic, e.state,"
        " e.recorded_at, e.event_hash,"
        " (SELECT p.event_hash FROM ledger_events AS p"
        "  WHERE p.notification_id < e.notification_id"
        "  ORDER BY p.notification_id DESC LIMIT 1)"
        " FROM ledger_events AS e WHERE {} ORDER BY e.notification_id LIMIT %(rows)s"
    ).format(sql.SQL(" AND ").join(conditions))
    return query, parameters
