"""A webhook endpoint switched off after its deliveries kept failing.

Webhook endpoints are configuration kept in their own table (like API keys),
not aggregates. Their automatic disabling is different: receivers and
operators must learn of it, so it is a fact in the log, from which the
integration event `webhook_endpoint.disabled` is derived like every other
(docs/events.md). One aggregate per disabling: its id is derived from the
endpoint and how many times it was disabled before, so a worker that
crashes after recording it and records it again finds it already there.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

# uuid5 namespace of disablings; never change it, or every id changes.
ENDPOINT_DISABLING_NAMESPACE: Final = UUID("3f8e2c1a-7b4d-4a9e-8c5f-2d1e6b7a9c03")


def endpoint_disabling_id(endpoint_id: UUID, times_disabled_before: int) -> UUID:
    return uuid5(ENDPOINT_DISABLING_NAMESPACE, f"{endpoint_id}/{times_disabled_before}")


class EndpointDisabling(Aggregate):
    @event("Recorded")
    def __init__(
        self,
        id: UUID,  # noqa: A002 - the library takes the aggregate id by this name
        endpoint_id: str,
        reason: str,
        failed_attempts: int,
        at: datetime,
    ) -> None:
        self.endpoint_id = endpoint_id
        self.reason = reason
        self.failed_attempts = failed_attempts
        self.at = at
