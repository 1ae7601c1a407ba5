"""Bodies of the events API and of webhook endpoint management (docs/events.md).
Requests forbid unknown fields; event types are names from the catalogue."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final
from uuid import UUID

from pydantic import AfterValidator, BaseModel, Field, Strict

from interface.adapters.webhooks.endpoint_store import Delivery, WebhookEndpoint
from interface.adapters.webhooks.url_safety import URL_LENGTH_MAX
from interface.api.pagination import HasMore, NextCursor
from interface.api.schemas.common import PLAIN_TEXT_PATTERN, RequestModel
from projections.integration_catalogue import EVENT_TYPE_NAMES, EVENT_TYPES
from projections.integration_event_reads import IntegrationEvent

DESCRIPTION_LENGTH_MAX: Final[int] = 500


def _known_type(name: str) -> str:
    if name not in EVENT_TYPES:
        raise ValueError(f"unknown event type; known: {', '.join(EVENT_TYPE_NAMES)}")
    return name


EventTypeName = Annotated[str, AfterValidator(_known_type)]
WebhookUrl = Annotated[str, Strict(), Field(min_length=1, max_length=URL_LENGTH_MAX)]
EndpointDescription = Annotated[
    str,
    Strict(),
    Field(min_length=1, max_length=DESCRIPTION_LENGTH_MAX, pattern=PLAIN_TEXT_PATTERN),
]


class IntegrationEventResponse(BaseModel):
    id: UUID = Field(description="Stable: the same event always has this id (deduplicate on it).")
    type: str
    version: int = Field(description="The version of the type's payload (docs/events.md).")
    time: datetime = Field(description="When the ledger recorded what it derives from.")
    position: int = Field(description="The ledger log position it derives from.")
    sequence: int = Field(description="Its place among the events of that position.")
    account_ids: list[UUID] = Field(description="The accounts it concerns.")
    data: dict[str, Any] = Field(description="The payload; amounts are decimal strings.")

    @classmethod
    def of(cls, event: IntegrationEvent) -> IntegrationEventResponse:
        return cls.model_validate(event.document())


class EventPageResponse(BaseModel):
    items: list[IntegrationEventResponse]
    has_more: bool = Field(description="More events follow now: ask again with next_cursor.")
    next_cursor: str = Field(
        description="Where to go on from; without has_more, ask with it later (or with wait_s) "
        "to tail the events."
    )


class WebhookEndpointResponse(BaseModel):
    id: UUID
    url: str
    event_types: list[str] = Field(description="The types it receives; empty for every type.")
    description: str
    enabled: bool
    disabled_reason: str | None = Field(
        description="Why the service disabled it (its deliveries failed for the retry window)."
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> WebhookEndpointResponse:
        return cls(
            id=endpoint.endpoint_id,
            url=endpoint.url,
            event_types=endpoint.event_types,
            description=endpoint.description,
            enabled=endpoint.enabled,
            disabled_reason=endpoint.disabled_reason,
            created_at=endpoint.created_at,
            updated_at=endpoint.updated_at,
        )


class CreatedWebhookEndpointResponse(WebhookEndpointResponse):
    secret: str = Field(
        description="Signs every delivery (Ledger-Signature). Shown this once: keep it."
    )


class WebhookEndpointListResponse(BaseModel):
    items: list[WebhookEndpointResponse]
    has_more: HasMore
    next_cursor: NextCursor


class CreateWebhookEndpointRequest(RequestModel):
    url: WebhookUrl = Field(description="http(s) URL; it must resolve to public addresses.")
    event_types: list[EventTypeName] = Field(
        default_factory=list, description="The types to receive; empty or omitted: every type."
    )
    description: EndpointDescription = "webhook endpoint"


class UpdateWebhookEndpointRequest(RequestModel):
    url: WebhookUrl | None = None
    event_types: list[EventTypeName] | None = None
    description: EndpointDescription | None = None
    enabled: bool | None = Field(
        default=None,
        description="false pauses deliveries (they are kept); true resumes them, also after "
        "the service disabled it.",
    )


class DeliveryAttemptResponse(BaseModel):
    attempt: int
    attempted_at: datetime
    status_code: int | None = Field(description="The receiver's answer; null when none came.")
    error: str | None
    duration_ms: int


class DeliveryResponse(BaseModel):
    id: UUID
    event_id: UUID
    event_type: str
    status: str = Field(description="pending (owed), delivered, or failed (window closed).")
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    attempt_log: list[DeliveryAttemptResponse] = Field(description="The latest attempts.")

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryResponse:
        return cls(
            id=delivery.delivery_id,
            event_id=delivery.event_id,
            event_type=delivery.event_type,
            status=delivery.status,
            attempts=delivery.attempts,
            created_at=delivery.created_at,
            next_attempt_at=delivery.next_attempt_at,
            delivered_at=delivery.delivered_at,
            last_status_code=delivery.last_status_code,
            last_error=delivery.last_error,
            attempt_log=[
                DeliveryAttemptResponse(
                    attempt=attempt.attempt,
                    attempted_at=attempt.attempted_at,
                    status_code=attempt.status_code,
                    error=attempt.error,
                    duration_ms=attempt.duration_ms,
                )
                for attempt in delivery.attempt_log
            ],
        )


class DeliveryListResponse(BaseModel):
    items: list[DeliveryResponse]
    has_more: HasMore
    next_cursor: NextCursor
