"""Prometheus metrics: for operators' scrapers, with a key like any other caller.

Prometheus scrapes with `authorization: {type: Bearer, credentials_file: ...}`
holding an auditor (read-only) key.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from interface.api.deps import LedgerDep, Operator
from interface.api.responses import ERROR_RESPONSES
from interface.observability.metrics import HttpMetrics, render

router = APIRouter(tags=["operations"])

HTTP_METRICS_STATE_KEY = "http_metrics"


class PrometheusResponse(Response):
    media_type = CONTENT_TYPE_LATEST


@router.get(
    "/metrics",
    # Not PrometheusResponse: errors are still the JSON envelope, and FastAPI
    # would document them in the route's media type.
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text format",
            "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
        },
        **{status: ERROR_RESPONSES[status] for status in (401, 403, 429)},
    },
)
def metrics(request: Request, ledger: LedgerDep, _: Operator) -> PrometheusResponse:
    """Requests by route and status, the writer's batches, commits and queue,
    transfers by result code. For the roles admin, auditor and service."""
    http_metrics: HttpMetrics = getattr(request.app.state, HTTP_METRICS_STATE_KEY)
    return PrometheusResponse(render(http_metrics.registry, ledger.writer_metrics.registry))
