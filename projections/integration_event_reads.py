"""Reading integration events: pages by position, and the public document.

Every consumer (the events API, webhooks, the stream publisher) reads events
in the order of their key, (position, ordinal), and sends the same document,
built here once, so an event looks the same whichever way it arrives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, NamedTuple
from uuid import UUID

from projections.integration_events import EVENTS_TABLE, OWNED_KINDS, SUBJECTS_TABLE
from projections.view import Cursor

_COLUMNS: Final = "event_id, position, ordinal, type, version, occurred_at, account_ids, payload"


class EventKey(NamedTuple):
    """Where an event sits in the order every consumer reads them in."""

    position: int
    ordinal: int


START: Final[EventKey] = EventKey(0, 0)


@dataclass(frozen=True, slots=True)
class IntegrationEvent:
    event_id: UUID
    position: int
    ordinal: int
    type: str
    version: int
    occurred_at: datetime
    account_ids: list[UUID]
    payload: dict[str, Any]

    @property
    def key(self) -> EventKey:
        return EventKey(self.position, self.ordinal)

    def document(self) -> dict[str, Any]:
        """The event as every consumer receives it (docs/events.md)."""
        return {
            "id": str(self.event_id),
            "type": self.type,
            "version": self.version,
            "time": self.occurred_at.isoformat(),
            "position": self.position,
            "sequence": self.ordinal,
            "account_ids": [str(account_id) for account_id in self.account_ids],
            "data": self.payload,
        }


@dataclass(frozen=True, slots=True)
class EventFilter:
    types: Sequence[str] = ()
    account_id: UUID | None = None
    # Only events concerning this owner's accounts (a user's reads).
    owner_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def integration_event_page(
    cursor: Cursor, event_filter: EventFilter, after: EventKey, limit: int
) -> list[IntegrationEvent]:
    """Events after `after` in order, as filtered."""
    conditions = ["(position, ordinal) > (%s, %s)"]
    parameters: list[Any] = [after.position, after.ordinal]
    if event_filter.types:
        conditions.append("type = ANY(%s)")
        parameters.append(list(event_filter.types))
    if event_filter.account_id is not None:
        conditions.append("account_ids @> ARRAY[%s]::uuid[]")
        parameters.append(event_filter.account_id)
    if event_filter.owner_id is not None:
        conditions.append(
            f"account_ids && ARRAY(SELECT subject_id FROM {SUBJECTS_TABLE}"  # noqa: S608
            " WHERE owner_ids @> ARRAY[%s]::text[] AND attributes->>'kind' = ANY(%s))"
        )
        parameters += [event_filter.owner_id, list(OWNED_KINDS)]
    if event_filter.since is not None:
        conditions.append("occurred_at >= %s")
        parameters.append(event_filter.since)
    if event_filter.until is not None:
        conditions.append("occurred_at < %s")
        parameters.append(event_filter.until)
    parameters.append(limit)
    cursor.execute(
        f"SELECT {_COLUMNS} FROM {EVENTS_TABLE} WHERE {' AND '.join(conditions)}"  # noqa: S608
        " ORDER BY position, ordinal LIMIT %s",
        parameters,
    )
    return [IntegrationEvent(*row) for row in cursor.fetchall()]


def integration_event(cursor: Cursor, event_id: UUID) -> IntegrationEvent | None:
    cursor.execute(
        f"SELECT {_COLUMNS} FROM {EVENTS_TABLE} WHERE event_id = %s",  # noqa: S608
        (event_id,),
    )
    row = cursor.fetchone()
    return None if row is None else IntegrationEvent(*row)
