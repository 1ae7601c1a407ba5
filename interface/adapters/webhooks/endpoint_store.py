"""Webhook endpoints as admins manage them, and their delivery logs.

An endpoint is configuration, like an API key: a row, not an aggregate. Its
signing secret is made here, returned once by `create`, and never read back
by anything but the delivery worker. A new endpoint is owed the events
recorded after it was made, not the history before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final
from uuid import UUID, uuid4

from psycopg_pool import ConnectionPool

from interface.adapters.webhooks.signing import new_secret
from projections.runner import log_head

# The highest ordinal of an event within its log position: a cursor at
# (position, ORDINAL_MAX) has passed every event of that position.
ORDINAL_MAX: Final[int] = 32_767
# Attempts shown with each delivery in its log, the newest.
ATTEMPTS_SHOWN_MAX: Final[int] = 20

_ENDPOINT_COLUMNS: Final = (
    "endpoint_id, url, event_types, description, enabled, disabled_reason, times_disabled,"
    " created_at, updated_at"
)
_DELIVERY_COLUMNS: Final = (
    "delivery_id, endpoint_id, event_id, event_type, status, attempts, created_at, owed_since,"
    " next_attempt_at, delivered_at, last_status_code, last_error, position, ordinal"
)


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    endpoint_id: UUID
    url: str
    # Empty: every type.
    event_types: list[str]
    description: str
    enabled: bool
    disabled_reason: str | None
    times_disabled: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    attempt: int
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


@dataclass(frozen=True, slots=True)
class Delivery:
    delivery_id: UUID
    endpoint_id: UUID
    event_id: UUID
    event_type: str
    status: str
    attempts: int
    created_at: datetime
    owed_since: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    # The event's place in the log: the delivery log's order, newest first.
    position: int
    ordinal: int
    attempt_log: tuple[DeliveryAttempt, ...] = ()


@dataclass(frozen=True, slots=True)
class EndpointChange:
    """What a PATCH changes; None leaves a field as it is."""

    url: str | None = None
    event_types: Sequence[str] | None = None
    description: str | None = None
    enabled: bool | None = None


class WebhookEndpointStore:
    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def create(
        self, url: str, event_types: Sequence[str], description: str, now: datetime
    ) -> tuple[WebhookEndpoint, str]:
        """The new endpoint and its signing secret (shown to the admin once)."""
        secret = new_secret()
        with self._pool.connection() as connection, connection.cursor() as cursor:
            head = log_head(cursor)
            cursor.execute(
                f"INSERT INTO webhook_endpoints ({_ENDPOINT_COLUMNS}, secret, cursor_position,"  # noqa: S608
                " cursor_ordinal) VALUES (%s, %s, %s, %s, true, NULL, 0, %s, %s, %s, %s, %s)"
                f" RETURNING {_ENDPOINT_COLUMNS}",
                (
                    uuid4(),
                    url,
                    list(event_types),
                    description,
                    now,
                    now,
                    secret,
                    head,
                    ORDINAL_MAX,
                ),
            )
            row = cursor.fetchone()
        assert row is not None
        return WebhookEndpoint(*row), secret

    def endpoint(self, endpoint_id: UUID) -> WebhookEndpoint | None:
        with self._pool.connection() as connection:
            row = connection.execute(
                f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints"  # noqa: S608
                " WHERE endpoint_id = %s",
                (endpoint_id,),
            ).fetchone()
        return None if row is None else WebhookEndpoint(*row)

    def endpoint_page(
        self, *, after: tuple[datetime, UUID] | None, limit: int
    ) -> list[WebhookEndpoint]:
        """Endpoints in the order they were made, after (created_at, id)."""
        condition, parameters = "TRUE", []
        if after is not None:
            condition, parameters = "(created_at, endpoint_id) > (%s, %s)", list(after)
        with self._pool.connection() as connection:
            rows = connection.execute(
                f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints"  # noqa: S608
                f" WHERE {condition} ORDER BY created_at, endpoint_id LIMIT %s",
                [*parameters, limit],
            ).fetchall()
        return [WebhookEndpoint(*row) for row in rows]

    def endpoints(self) -> list[WebhookEndpoint]:
        with self._pool.connection() as connection:
            rows = connection.execute(
                f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints"  # noqa: S608
                " ORDER BY created_at, endpoint_id"
            ).fetchall()
        return [WebhookEndpoint(*row) for row in rows]

    def change(
        self, endpoint_id: UUID, change: EndpointChange, now: datetime
    ) -> WebhookEndpoint | None:
        """Apply the change; enabling clears why it was disabled (its owed
        deliveries, kept meanwhile, go out again)."""
        assignments = ["updated_at = %s"]
        parameters: list[Any] = [now]
        if change.url is not None:
            assignments.append("url = %s")
            parameters.append(change.url)
        if change.event_types is not None:
            assignments.append("event_types = %s")
            parameters.append(list(change.event_types))
        if change.description is not None:
            assignments.append("description = %s")
            parameters.append(change.description)
        if change.enabled is not None:
            assignments.append("enabled = %s")
            parameters.append(change.enabled)
            if change.enabled:
                assignments.append("disabled_reason = NULL")
        with self._pool.connection() as connection:
            row = connection.execute(
                f"UPDATE webhook_endpoints SET {', '.join(assignments)}"  # noqa: S608
                f" WHERE endpoint_id = %s RETURNING {_ENDPOINT_COLUMNS}",
                [*parameters, endpoint_id],
            ).fetchone()
        return None if row is None else WebhookEndpoint(*row)

    def delete(self, endpoint_id: UUID) -> bool:
        """Remove the endpoint with its outbox and log."""
        with self._pool.connection() as connection:
            deleted = connection.execute(
                "DELETE FROM webhook_endpoints WHERE endpoint_id = %s", (endpoint_id,)
            )
            return deleted.rowcount == 1

    # The delivery log ------------------------------------------------------------

    def deliveries(
        self,
        endpoint_id: UUID,
        *,
        status: str | None,
        before: datetime | None,
        limit: int,
        below: tuple[int, int] | None = None,
    ) -> list[Delivery]:
        """The endpoint's deliveries, newest event first (by log position),
        made before `before` and of events before `below` (a position and
        ordinal) when given, each with its latest attempts."""
        conditions = ["endpoint_id = %s"]
        parameters: list[Any] = [endpoint_id]
        if status is not None:
            conditions.append("status = %s")
            parameters.append(status)
        if before is not None:
            conditions.append("created_at < %s")
            parameters.append(before)
        if below is not None:
            conditions.append("(position, ordinal) < (%s, %s)")
            parameters += list(below)
        with self._pool.connection() as connection, connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries"  # noqa: S608
                f" WHERE {' AND '.join(conditions)}"
                " ORDER BY position DESC, ordinal DESC LIMIT %s",
                [*parameters, limit],
            )
            found = [Delivery(*row) for row in cursor.fetchall()]
            attempts = self._attempts(cursor, [delivery.delivery_id for delivery in found])
        return [
            replace(delivery, attempt_log=attempts.get(delivery.delivery_id, ()))
            for delivery in found
        ]

    def _attempts(
        self, cursor: Any, delivery_ids: list[UUID]
    ) -> dict[UUID, tuple[DeliveryAttempt, ...]]:
        if not delivery_ids:
            return {}
        cursor.execute(
            "SELECT delivery_id, attempt, attempted_at, status_code, error, duration_ms"
            " FROM (SELECT *, row_number() OVER"
            " (PARTITION BY delivery_id ORDER BY attempt DESC) AS newest"
            " FROM webhook_delivery_attempts WHERE delivery_id = ANY(%s)) AS numbered"
            " WHERE newest <= %s ORDER BY delivery_id, attempt",
            (delivery_ids, ATTEMPTS_SHOWN_MAX),
        )
        attempts: dict[UUID, list[DeliveryAttempt]] = {}
        for delivery_id, *fields in cursor.fetchall():
            attempts.setdefault(delivery_id, []).append(DeliveryAttempt(*fields))
        return {key: tuple(value) for key, value in attempts.items()}

    def redeliver(self, endpoint_id: UUID, delivery_id: UUID, now: datetime) -> Delivery | None:
        """Owe the delivery again, now, with a fresh retry window."""
        with self._pool.connection() as connection:
            row = connection.execute(
                "UPDATE webhook_deliveries SET status = 'pending', owed_since = %s,"  # noqa: S608
                " next_attempt_at = %s WHERE endpoint_id = %s AND delivery_id = %s"
                f" RETURNING {_DELIVERY_COLUMNS}",
                (now, now, endpoint_id, delivery_id),
            ).fetchone()
        return None if row is None else Delivery(*row)
