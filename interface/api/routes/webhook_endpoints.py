"""Webhook endpoints, for admins: subscribe a URL to event types, change,
pause or delete it, read its delivery log, and deliver one event again.

The signing secret is in the creation's answer only. A URL must resolve to
public addresses unless LEDGER_WEBHOOKS_ALLOW_PRIVATE_URLS allows others
(422 `webhook_url_refused`). How deliveries work: docs/events.md.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Response

from interface.adapters.webhooks.endpoint_store import (
    ORDINAL_MAX,
    EndpointChange,
    WebhookEndpoint,
)
from interface.adapters.webhooks.url_safety import UrlRefused, require_callable_url
from interface.api.deps import Admin, LedgerDep
from interface.api.errors import ApiError
from interface.api.pagination import (
    PageCursor,
    PageLimit,
    decode_key_cursor,
    encode_key_cursor,
    page_of,
)
from interface.api.query_types import POSITION_MAX
from interface.api.responses import ERROR_RESPONSES
from interface.api.schemas.events import (
    CreatedWebhookEndpointResponse,
    CreateWebhookEndpointRequest,
    DeliveryListResponse,
    DeliveryResponse,
    UpdateWebhookEndpointRequest,
    WebhookEndpointListResponse,
    WebhookEndpointResponse,
)
from interface.bootstrap import Ledger
from projections.account_listing import PAGE_SIZE_DEFAULT, InvalidCursor

router = APIRouter(prefix="/v1/webhook-endpoints", tags=["webhooks"])

DeliveryStatus = Literal["pending", "delivered", "failed"]
ENDPOINT_PATH: Final[str] = "/{endpoint_id}"
_ENDPOINT_CURSOR_VERSION: Final[bytes] = b"w1"
UUID_BYTES: Final[int] = 16
_DELIVERY_CURSOR_VERSION: Final[str] = "d1"
EPOCH: Final[datetime] = datetime(1970, 1, 1, tzinfo=UTC)


def _require_callable(ledger: Ledger, url: str) -> None:
    try:
        require_callable_url(url, allow_private=ledger.settings.webhooks_allow_private_urls)
    except UrlRefused as refused:
        raise ApiError(422, "webhook_url_refused", str(refused)) from None


def _found(endpoint: WebhookEndpoint | None, endpoint_id: UUID) -> WebhookEndpoint:
    if endpoint is None:
        raise ApiError(
            404,
            "webhook_endpoint_not_found",
            f"no webhook endpoint {endpoint_id}",
            {"endpoint_id": str(endpoint_id)},
        )
    return endpoint


@router.post(
    "", response_model=CreatedWebhookEndpointResponse, status_code=201, responses=ERROR_RESPONSES
)
def create_webhook_endpoint_route(
    body: CreateWebhookEndpointRequest, ledger: LedgerDep, _: Admin
) -> CreatedWebhookEndpointResponse:
    """Subscribe a URL; it is owed every event of its types recorded from now on."""
    _require_callable(ledger, body.url)
    endpoint, secret = ledger.integration.webhook_endpoints.create(
        body.url, body.event_types, body.description, ledger.clock.now()
    )
    return CreatedWebhookEndpointResponse(
        **WebhookEndpointResponse.of(endpoint).model_dump(), secret=secret
    )


@router.get("", response_model=WebhookEndpointListResponse, responses=ERROR_RESPONSES)
def list_webhook_endpoints_route(
    ledger: LedgerDep, _: Admin, cursor: PageCursor = None, limit: PageLimit = PAGE_SIZE_DEFAULT
) -> WebhookEndpointListResponse:
    """The endpoints in the order they were made, a page at a time."""
    after = _decode_endpoint_cursor(cursor)
    rows = ledger.integration.webhook_endpoints.endpoint_page(after=after, limit=limit + 1)
    page = page_of(rows, limit, _endpoint_cursor)
    return WebhookEndpointListResponse(
        items=[WebhookEndpointResponse.of(endpoint) for endpoint in page.items],
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )


def _endpoint_cursor(endpoint: WebhookEndpoint) -> str:
    """The endpoint's creation time and id as bytes: their numbers in text
    would pass the cursor's length limit."""
    made = round((endpoint.created_at - EPOCH) / timedelta(microseconds=1))
    raw = (
        _ENDPOINT_CURSOR_VERSION + made.to_bytes(8, "big", signed=True) + endpoint.endpoint_id.bytes
    )
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_endpoint_cursor(cursor: str | None) -> tuple[datetime, UUID] | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise InvalidCursor from None
    version, made, endpoint_id = raw[:2], raw[2:10], raw[10:]
    if version != _ENDPOINT_CURSOR_VERSION or len(endpoint_id) != UUID_BYTES:
        raise InvalidCursor
    try:
        return EPOCH + timedelta(microseconds=int.from_bytes(made, "big", signed=True)), UUID(
            bytes=endpoint_id
        )
    except OverflowError:
        raise InvalidCursor from None


@router.get(ENDPOINT_PATH, response_model=WebhookEndpointResponse, responses=ERROR_RESPONSES)
def get_webhook_endpoint_route(
    endpoint_id: UUID, ledger: LedgerDep, _: Admin
) -> WebhookEndpointResponse:
    endpoint = ledger.integration.webhook_endpoints.endpoint(endpoint_id)
    return WebhookEndpointResponse.of(_found(endpoint, endpoint_id))


@router.patch(ENDPOINT_PATH, response_model=WebhookEndpointResponse, responses=ERROR_RESPONSES)
def update_webhook_endpoint_route(
    endpoint_id: UUID, body: UpdateWebhookEndpointRequest, ledger: LedgerDep, _: Admin
) -> WebhookEndpointResponse:
    """Change the URL, the types or the description; pause (enabled false) or
    resume (true) deliveries, also of an endpoint the service disabled."""
    if body.url is not None:
        _require_callable(ledger, body.url)
    change = EndpointChange(
        url=body.url,
        event_types=body.event_types,
        description=body.description,
        enabled=body.enabled,
    )
    endpoint = ledger.integration.webhook_endpoints.change(endpoint_id, change, ledger.clock.now())
    if endpoint is not None and body.enabled:
        ledger.integration.webhook_worker.wake()
    return WebhookEndpointResponse.of(_found(endpoint, endpoint_id))


@router.delete(ENDPOINT_PATH, status_code=204, responses=ERROR_RESPONSES)
def delete_webhook_endpoint_route(endpoint_id: UUID, ledger: LedgerDep, _: Admin) -> Response:
    """Delete the endpoint with its outbox and delivery log."""
    if not ledger.integration.webhook_endpoints.delete(endpoint_id):
        _found(None, endpoint_id)
    return Response(status_code=204)


@router.get(
    ENDPOINT_PATH + "/deliveries", response_model=DeliveryListResponse, responses=ERROR_RESPONSES
)
def list_deliveries_route(
    endpoint_id: UUID,
    ledger: LedgerDep,
    _: Admin,
    status: Annotated[
        DeliveryStatus | None,
        Query(description="pending: owed; delivered; failed: the retry window closed."),
    ] = None,
    cursor: PageCursor = None,
    limit: PageLimit = PAGE_SIZE_DEFAULT,
) -> DeliveryListResponse:
    """The endpoint's delivery log, newest event first, each with its latest
    attempts, in one `status` when given."""
    below = None
    if cursor is not None:
        below = decode_key_cursor(_DELIVERY_CURSOR_VERSION, cursor)
        if not (0 <= below[0] <= POSITION_MAX and 0 <= below[1] <= ORDINAL_MAX):
            raise InvalidCursor
    store = ledger.integration.webhook_endpoints
    _found(store.endpoint(endpoint_id), endpoint_id)
    deliveries = store.deliveries(
        endpoint_id, status=status, before=None, below=below, limit=limit + 1
    )
    page = page_of(
        deliveries,
        limit,
        lambda delivery: encode_key_cursor(
            _DELIVERY_CURSOR_VERSION, delivery.position, delivery.ordinal
        ),
    )
    return DeliveryListResponse(
        items=[DeliveryResponse.of(item) for item in page.items],
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )


@router.post(
    ENDPOINT_PATH + "/deliveries/{delivery_id}/redeliver",
    response_model=DeliveryResponse,
    status_code=202,
    responses=ERROR_RESPONSES,
)
def redeliver_route(
    endpoint_id: UUID, delivery_id: UUID, ledger: LedgerDep, _: Admin
) -> DeliveryResponse:
    """Deliver the event again (same id and body), now, with a fresh retry window."""
    store = ledger.integration.webhook_endpoints
    delivery = store.redeliver(endpoint_id, delivery_id, ledger.clock.now())
    if delivery is None:
        raise ApiError(
            404,
            "webhook_delivery_not_found",
            f"no delivery {delivery_id} of webhook endpoint {endpoint_id}",
            {"endpoint_id": str(endpoint_id), "delivery_id": str(delivery_id)},
        )
    ledger.integration.webhook_worker.wake()
    return DeliveryResponse.of(delivery)
