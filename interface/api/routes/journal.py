"""The journal read from its view: transfers listed and filtered, and an
account's statement with the running balance after every entry.

Both read the journal view, not the event store: each first waits until the
view includes the caller's writes (`min_position`, or this server's last
write), so a client reads what it just wrote. Pages are keyset pages on log
positions behind opaque cursors: no skips or repeats while the log grows.
"""

from __future__ import annotations

from typing import Annotated, Final
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import Field

from domain.account import METADATA_KEY_LENGTH_MAX, METADATA_KEYS_MAX, METADATA_VALUE_LENGTH_MAX
from domain.transfer import POSTINGS_MAX, TransferStatus
from interface.api.consistency import MinPosition, views_caught_up
from interface.api.deps import LedgerDep, OwnedAccountSummary, Reader, visible_account_summary
from interface.api.errors import ApiError
from interface.api.pagination import (
    CurrencyFilter,
    PageCursor,
    PageLimit,
    decode_key_cursor,
    encode_key_cursor,
    page_of,
    position_after,
)
from interface.api.query_types import POSITION_MAX, IsoTime
from interface.api.responses import ERROR_RESPONSES
from interface.api.schemas.journal import (
    JournalTransferResponse,
    RunningFiguresResponse,
    StatementEntryResponse,
    StatementResponse,
    TransferPageResponse,
)
from projections import journal
from projections.account_listing import (
    PAGE_SIZE_DEFAULT,
    InvalidCursor,
    encode_cursor,
)

router = APIRouter(tags=["journal"])

VIEWS: Final[tuple[str, ...]] = (journal.NAME,)
_STATEMENT_CURSOR_VERSION: Final[str] = "s1"
# `key:value`, split at the first colon: a key has no colon in it.
METADATA_FILTER_PATTERN: Final[str] = (
    rf"^[^:]{{1,{METADATA_KEY_LENGTH_MAX}}}:[\s\S]{{0,{METADATA_VALUE_LENGTH_MAX}}}$"
)

LoggedFrom = Annotated[
    IsoTime | None,
    Query(alias="from", description="Logged at or after this time (ISO 8601 with offset)."),
]
LoggedTo = Annotated[
    IsoTime | None,
    Query(alias="to", description="Logged before this time (ISO 8601 with offset)."),
]
MetadataFilters = Annotated[
    list[Annotated[str, Field(pattern=METADATA_FILTER_PATTERN)]] | None,
    Query(
        max_length=METADATA_KEYS_MAX,
        description="`key:value`, repeated for several (all must match): "
        "`?metadata=order:42&metadata=kind:payment`. Split at the first colon.",
    ),
]


def _metadata_filter(filters: list[str] | None) -> dict[str, str]:
    wanted: dict[str, str] = {}
    for item in filters or ():
        key, _, value = item.partition(":")
        if key in wanted:
            raise ApiError(422, "invalid_request", f"metadata key {key!r} is given more than once")
        wanted[key] = value
    return wanted


def encode_statement_cursor(position: int, seq: int) -> str:
    return encode_key_cursor(_STATEMENT_CURSOR_VERSION, position, seq)


def decode_statement_cursor(cursor: str | None) -> tuple[int, int] | None:
    if cursor is None:
        return None
    after = decode_key_cursor(_STATEMENT_CURSOR_VERSION, cursor)
    if not (0 <= after[0] <= POSITION_MAX and 0 <= after[1] < POSTINGS_MAX):
        raise InvalidCursor
    return after


@router.get("/v1/transfers", response_model=TransferPageResponse, responses=ERROR_RESPONSES)
def list_transfers_route(
    ledger: LedgerDep,
    principal: Reader,
    min_position: MinPosition = None,
    account_id: UUID | None = None,
    logged_from: LoggedFrom = None,
    logged_to: LoggedTo = None,
    metadata: MetadataFilters = None,
    status: Annotated[
        TransferStatus | None,
        Query(description="Transfers in this status only: `pending` lists the open holds."),
    ] = None,
    currency: CurrencyFilter = None,
    cursor: PageCursor = None,
    limit: PageLimit = PAGE_SIZE_DEFAULT,
) -> TransferPageResponse:
    """Transfers in the order they were recorded, a page at a time: those with
    a posting on `account_id`, logged in [`from`, `to`), whose metadata has
    every `metadata=key:value` given (repeat the parameter for several), in
    `status` (`pending`: the open holds), with a posting in `currency`.

    A user key must name one of its own accounts in `account_id` (without
    one: 403; another owner's or an unknown account: 404). Platform and
    auditor keys list every transfer, or one account's."""
    views_caught_up(ledger, VIEWS, min_position)
    wanted = _metadata_filter(metadata)
    after = position_after(cursor)
    if account_id is not None:
        visible_account_summary(ledger, principal, account_id, min_position)
    elif principal.is_user:
        raise ApiError(
            403,
            "forbidden",
            "a user key lists transfers of one of its own accounts: give account_id",
        )
    with ledger.pool.connection() as connection, connection.cursor() as reading:
        rows = journal.transfers_page(
            reading,
            account_id=account_id,
            logged_from=logged_from,
            logged_to=logged_to,
            metadata=wanted,
            status=None if status is None else status.value,
            currency=currency,
            after_position=after,
            limit=limit + 1,
        )
    page = page_of(rows, limit, lambda row: encode_cursor(row.position))
    return TransferPageResponse(
        items=[JournalTransferResponse.of(row) for row in page.items],
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )


@router.get(
    "/v1/accounts/{account_id:uuid}/statement",
    response_model=StatementResponse,
    responses=ERROR_RESPONSES,
)
def statement_route(
    ledger: LedgerDep,
    principal: Reader,
    summary: OwnedAccountSummary,
    min_position: MinPosition = None,
    logged_from: LoggedFrom = None,
    logged_to: LoggedTo = None,
    cursor: PageCursor = None,
    limit: PageLimit = PAGE_SIZE_DEFAULT,
) -> StatementResponse:
    """The account's entries in log order, logged in [`from`, `to`), each with
    the account's posted balance and pending totals after it, and the figures
    before the page's first entry (`opening`). A user sees only their own
    accounts (others: 404)."""
    views_caught_up(ledger, VIEWS, min_position)
    after = decode_statement_cursor(cursor)
    account_id, currency = summary.entry.account_id, summary.entry.currency
    with ledger.pool.connection() as connection, connection.cursor() as reading:
        found = journal.statement_page(
            reading,
            account_id,
            logged_from=logged_from,
            logged_to=logged_to,
            after=after,
            limit=limit + 1,
        )
    page = page_of(
        found.entries, limit, lambda entry: encode_statement_cursor(entry.position, entry.seq)
    )
    return StatementResponse(
        account_id=account_id,
        currency=currency,
        opening=RunningFiguresResponse.of(found.opening, currency),
        entries=[StatementEntryResponse.of(entry) for entry in page.items],
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )
