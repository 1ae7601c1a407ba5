"""The delivery outbox: what each endpoint is owed, and what became of it.

`fan_out` copies the events an endpoint subscribes to from the integration
events view into `webhook_deliveries`, in the transaction that moves the
endpoint's cursor past them: each event is owed to an endpoint exactly once,
whatever crashes. The worker then sends what is owed and records each
attempt here. All of it runs on the worker's lease connection (autocommit;
each step its own transaction).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID, uuid4

import orjson
import psycopg

from projections.integration_event_reads import EventFilter, EventKey, integration_event_page

Connection = psycopg.Connection[tuple[Any, ...]]

# Error text kept per attempt, at most (never a body or a secret).
ERROR_LENGTH_MAX: Final[int] = 300

PENDING: Final[str] = "pending"
DELIVERED: Final[str] = "delivered"
FAILED: Final[str] = "failed"


@dataclass(frozen=True, slots=True)
class ActiveEndpoint:
    endpoint_id: UUID
    url: str
    secret: str
    event_types: list[str]
    cursor: EventKey
    times_disabled: int


@dataclass(frozen=True, slots=True)
class OwedDelivery:
    delivery_id: UUID
    event_id: UUID
    event_type: str
    account_ids: list[UUID]
    body: str
    attempts: int
    owed_since: datetime
    next_attempt_at: datetime


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def enabled_endpoints(connection: Connection) -> list[ActiveEndpoint]:
    rows = connection.execute(
        "SELECT endpoint_id, url, secret, event_types, cursor_position, cursor_ordinal,"
        " times_disabled FROM webhook_endpoints WHERE enabled ORDER BY created_at, endpoint_id"
    ).fetchall()
    return [
        ActiveEndpoint(row[0], row[1], row[2], row[3], EventKey(row[4], row[5]), row[6])
        for row in rows
    ]


def fan_out(connection: Connection, endpoint: ActiveEndpoint, now: datetime, limit: int) -> int:
    """Owe the endpoint its next events (at most `limit`); how many were read."""
    with connection.transaction(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT cursor_position, cursor_ordinal FROM webhook_endpoints"
            " WHERE endpoint_id = %s AND enabled FOR UPDATE",
            (endpoint.endpoint_id,),
        )
        locked = cursor.fetchone()
        if locked is None:
            return 0
        events = integration_event_page(
            cursor, EventFilter(types=endpoint.event_types), EventKey(*locked), limit
        )
        if not events:
            return 0
        cursor.executemany(
            "INSERT INTO webhook_deliveries (delivery_id, endpoint_id, event_id, position,"
            " ordinal, event_type, account_ids, body, status, created_at, owed_since,"
            " next_attempt_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (endpoint_id, event_id) DO NOTHING",
            [
                (
                    uuid4(),
                    endpoint.endpoint_id,
                    event.event_id,
                    event.position,
                    event.ordinal,
                    event.type,
                    event.account_ids,
                    orjson.dumps(event.document()).decode(),
                    PENDING,
                    now,
                    now,
                    now,
                )
                for event in events
            ],
        )
        last = events[-1].key
        cursor.execute(
            "UPDATE webhook_endpoints SET cursor_position = %s, cursor_ordinal = %s"
            " WHERE endpoint_id = %s",
            (last.position, last.ordinal, endpoint.endpoint_id),
        )
    return len(events)


def owed_deliveries(connection: Connection, endpoint_id: UUID, limit: int) -> list[OwedDelivery]:
    """The endpoint's owed deliveries in event order, due or not."""
    rows = connection.execute(
        "SELECT delivery_id, event_id, event_type, account_ids, body, attempts, owed_since,"
        " next_attempt_at FROM webhook_deliveries WHERE endpoint_id = %s AND status = %s"
        " ORDER BY position, ordinal LIMIT %s",
        (endpoint_id, PENDING, limit),
    ).fetchall()
    return [OwedDelivery(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class Attempted:
    delivery: OwedDelivery
    outcome: AttemptOutcome
    # When to try again after a failure; None: the retry window has closed.
    next_attempt_at: datetime | None

    @property
    def status(self) -> str:
        if self.outcome.delivered:
            return DELIVERED
        return PENDING if self.next_attempt_at is not None else FAILED


def record_attempts(connection: Connection, attempts: list[Attempted]) -> None:
    """The attempts in the log and their results on the deliveries (delivered,
    pending again at `next_attempt_at`, or failed for good), in one transaction."""
    log_rows = []
    delivery_rows = []
    for attempted in attempts:
        delivery, outcome = attempted.delivery, attempted.outcome
        attempt = delivery.attempts + 1
        error = None if outcome.error is None else outcome.error[:ERROR_LENGTH_MAX]
        log_rows.append(
            (
                delivery.delivery_id,
                attempt,
                outcome.attempted_at,
                outcome.status_code,
                error,
                outcome.duration_ms,
            )
        )
        delivered_at = outcome.attempted_at if outcome.delivered else None
        delivery_rows.append(
            (
                attempted.status,
                attempt,
                outcome.status_code,
                error,
                delivered_at,
                attempted.next_attempt_at,
                delivery.delivery_id,
            )
        )
    with connection.transaction(), connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO webhook_delivery_attempts (delivery_id, attempt, attempted_at,"
            " status_code, error, duration_ms) VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (delivery_id, attempt) DO NOTHING",
            log_rows,
        )
        cursor.executemany(
            "UPDATE webhook_deliveries SET status = %s, attempts = %s, last_status_code = %s,"
            " last_error = %s, delivered_at = coalesce(%s, delivered_at),"
            " next_attempt_at = coalesce(%s, next_attempt_at) WHERE delivery_id = %s",
            delivery_rows,
        )


def disable_endpoint(connection: Connection, endpoint_id: UUID, reason: str, now: datetime) -> None:
    connection.execute(
        "UPDATE webhook_endpoints SET enabled = false, disabled_reason = %s,"
        " times_disabled = times_disabled + 1, updated_at = %s WHERE endpoint_id = %s",
        (reason, now, endpoint_id),
    )
