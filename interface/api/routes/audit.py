"""The event history for auditors, as JSON Lines: `GET /v1/audit/events`.

For the roles auditor and admin. Not for service keys: the platform's back
end moves money on its users' behalf and has no need for every owner's full
history, so it does not get it (least privilege); nor for users, whose own
history is their accounts' statements.

The body streams one event per line (see interface/audit/export.py for the
line and the filters). A response holds at most `limit` events; to page,
ask again with `after` set to the last line's position. Fewer lines than
`limit` means the log was exhausted as of the request.

The first page is read before the response starts, so a bad database
answers with an error status, not a cut stream. Each page takes a pooled
connection only while it is read and gives it back before its lines are
sent, so a slow reader holds no connection.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from interface.api.deps import Auditor, LedgerDep
from interface.api.query_types import POSITION_MAX, IsoTime
from interface.api.responses import ERROR_RESPONSES
from interface.audit.export import (
    EXPORT_LIMIT_DEFAULT,
    EXPORT_LIMIT_MAX,
    MEDIA_TYPE,
    ExportFilter,
    first_page_and_rest,
)

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "JSON Lines: one event per line, in log order",
            "content": {MEDIA_TYPE: {"schema": {"type": "string"}}},
        },
        **{status: ERROR_RESPONSES[status] for status in (401, 403, 422, 429, 503)},
    },
)
def audit_events_route(
    ledger: LedgerDep,
    _: Auditor,
    account: Annotated[
        UUID | None,
        Query(description="Only this account's events and those of transfers posting to it."),
    ] = None,
    since: Annotated[
        IsoTime | None,
        Query(alias="from", description="Recorded at or after this time (ISO 8601 with offset)."),
    ] = None,
    until: Annotated[
        IsoTime | None,
        Query(alias="to", description="Recorded before this time (ISO 8601 with offset)."),
    ] = None,
    after: Annotated[
        int, Query(ge=0, le=POSITION_MAX, description="Only events after this log position.")
    ] = 0,
    limit: Annotated[
        int, Query(ge=1, le=EXPORT_LIMIT_MAX, description="At most this many events.")
    ] = EXPORT_LIMIT_DEFAULT,
) -> StreamingResponse:
    """Stream the event history as JSON Lines (`application/x-ndjson`): position,
    originator id and version, type, record time, body, chain hash and the
    previous event's hash. For the roles auditor and admin."""
    export_filter = ExportFilter(account_id=account, since=since, until=until, after=after)
    lines = first_page_and_rest(ledger.pool.connection, export_filter, limit=limit)
    return StreamingResponse(lines, media_type=MEDIA_TYPE)
