"""The events API: `GET /v1/events`, the public integration events in order.

Every role reads it; a user sees only the events that concern their own
accounts, the platform's roles every event. Filters: type (repeatable),
account, from/to. A page answers `has_more` and `next_cursor`; to tail the
events, ask again with `next_cursor` and `wait_s`: an empty page waits (up
to `wait_s`) for the next event before answering (long polling). The
catalogue of types and payloads: docs/events.md.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Final
from uuid import UUID

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from interface.adapters.persistence.api_keys import Principal
from interface.api.consistency import views_caught_up
from interface.api.deps import LedgerDep, Reader
from interface.api.pagination import PageCursor, PageLimit, decode_key_cursor, encode_key_cursor
from interface.api.query_types import IsoTime
from interface.api.responses import ERROR_RESPONSES
from interface.api.schemas.events import (
    EventPageResponse,
    EventTypeName,
    IntegrationEventResponse,
)
from interface.bootstrap import Ledger
from projections.account_listing import PAGE_SIZE_DEFAULT, InvalidCursor
from projections.integration_event_reads import (
    START,
    EventFilter,
    EventKey,
    IntegrationEvent,
    integration_event_page,
)
from projections.integration_events import NAME

router = APIRouter(tags=["events"])

# The longest a client may ask an empty page to wait for the next event.
WAIT_S_MAX: Final[float] = 30.0
# How often a waiting page looks for new events.
WAIT_POLL_INTERVAL_S: Final[float] = 0.25
_CURSOR_VERSION: Final[str] = "e1"


def encode_event_cursor(key: EventKey) -> str:
    return encode_key_cursor(_CURSOR_VERSION, key.position, key.ordinal)


def decode_event_cursor(cursor: str | None) -> EventKey:
    if cursor is None:
        return START
    key = EventKey(*decode_key_cursor(_CURSOR_VERSION, cursor))
    if key.position < 0 or key.ordinal < 0:
        raise InvalidCursor
    return key


def _page(
    ledger: Ledger, event_filter: EventFilter, after: EventKey, limit: int
) -> list[IntegrationEvent]:
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        return integration_event_page(cursor, event_filter, after, limit + 1)


def _filter_for(
    principal: Principal,
    types: list[str] | None,
    account: UUID | None,
    since: IsoTime | None,
    until: IsoTime | None,
) -> EventFilter:
    return EventFilter(
        types=types or (),
        account_id=account,
        # A user's reads: only what concerns their own accounts.
        owner_id=principal.owner_id if principal.is_user else None,
        since=since,
        until=until,
    )


@router.get("/v1/events", response_model=EventPageResponse, responses=ERROR_RESPONSES)
async def list_events_route(
    ledger: LedgerDep,
    principal: Reader,
    event_type: Annotated[
        list[EventTypeName] | None,
        Query(alias="type", description="Only events of these types (repeat the parameter)."),
    ] = None,
    account: Annotated[UUID | None, Query(description="Only events concerning this account.")] = (
        None
    ),
    since: Annotated[
        IsoTime | None, Query(alias="from", description="Recorded at or after this time.")
    ] = None,
    until: Annotated[
        IsoTime | None, Query(alias="to", description="Recorded before this time.")
    ] = (None),
    cursor: PageCursor = None,
    limit: PageLimit = PAGE_SIZE_DEFAULT,
    wait_s: Annotated[
        float,
        Query(ge=0, le=WAIT_S_MAX, description="An empty page waits this long for an event."),
    ] = 0.0,
) -> EventPageResponse:
    """Public integration events in ledger order, after `cursor`."""
    after = decode_event_cursor(cursor)
    event_filter = _filter_for(principal, event_type, account, since, until)
    await run_in_threadpool(views_caught_up, ledger, (NAME,), None)
    deadline = time.monotonic() + wait_s
    found = await run_in_threadpool(_page, ledger, event_filter, after, limit)
    while not found and time.monotonic() < deadline:
        await asyncio.sleep(min(WAIT_POLL_INTERVAL_S, max(deadline - time.monotonic(), 0)))
        found = await run_in_threadpool(_page, ledger, event_filter, after, limit)
    items = found[:limit]
    return EventPageResponse(
        items=[IntegrationEventResponse.of(event) for event in items],
        has_more=len(found) > limit,
        next_cursor=encode_event_cursor(items[-1].key if items else after),
    )
