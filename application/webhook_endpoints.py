"""Recording that a webhook endpoint was disabled, as a fact in the log.

The delivery worker disables an endpoint whose deliveries failed for the
whole retry window; receivers and operators learn of it through the
integration event derived from this (docs/events.md).
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from application.ports.writer import Writer
from application.writer import AggregateChanges, ChangesOutcome
from domain.webhook_endpoint import EndpointDisabling, endpoint_disabling_id


def record_endpoint_disabled(
    writer: Writer,
    endpoint_id: UUID,
    *,
    times_disabled_before: int,
    reason: str,
    failed_attempts: int,
    at: datetime,
) -> bool:
    """Record the disabling; False if this very disabling was recorded
    before (a worker that crashed after recording it records it again)."""
    disabling = EndpointDisabling(
        id=endpoint_disabling_id(endpoint_id, times_disabled_before),
        endpoint_id=str(endpoint_id),
        reason=reason,
        failed_attempts=failed_attempts,
        at=at,
    )
    receipt = writer.execute([], AggregateChanges.collect(disabling))
    return receipt.changes is ChangesOutcome.RECORDED
