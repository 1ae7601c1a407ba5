"""`ledger webhooks`: webhook endpoints from the command line, as admins
manage them through /v1/webhook-endpoints (docs/events.md).

Each command prints JSON lines. Imports happen inside the commands, as in
the other command modules, so `ledger --help` stays quick.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import typer

from interface.cli.context import command_settings, migrated_database_url
from interface.cli.stored_text import stored_text

webhooks_app = typer.Typer(help="Webhook endpoints.", no_args_is_help=True)


def _store() -> Any:
    from psycopg_pool import ConnectionPool

    from interface.adapters.webhooks.endpoint_store import WebhookEndpointStore

    pool = ConnectionPool(
        migrated_database_url(), min_size=1, max_size=1, kwargs={"autocommit": True}, open=True
    )
    return WebhookEndpointStore(pool)


def _line(endpoint: Any, **extra: str) -> str:
    return json.dumps(
        {
            "id": str(endpoint.endpoint_id),
            "url": endpoint.url,
            "event_types": endpoint.event_types,
            "description": endpoint.description,
            "enabled": endpoint.enabled,
            "disabled_reason": endpoint.disabled_reason,
        }
        | extra
    )


@webhooks_app.command("add")
def add(
    url: Annotated[str, typer.Argument(callback=stored_text)],
    event_type: Annotated[
        list[str] | None, typer.Option("--type", help="An event type (repeat); none: every type")
    ] = None,
    description: Annotated[
        str, typer.Option(help="What it is for", callback=stored_text)
    ] = "webhook endpoint",
) -> None:
    """Subscribe URL; prints the endpoint with its signing secret (shown once)."""
    from interface.adapters.webhooks.url_safety import UrlRefused, require_callable_url
    from projections.integration_catalogue import EVENT_TYPES

    settings = command_settings()
    unknown = [name for name in event_type or [] if name not in EVENT_TYPES]
    if unknown:
        raise typer.BadParameter(f"unknown event types: {', '.join(unknown)}")
    try:
        require_callable_url(url, allow_private=settings.webhooks_allow_private_urls)
    except UrlRefused as refused:
        raise typer.BadParameter(str(refused)) from None
    endpoint, secret = _store().create(url, event_type or [], description, datetime.now(UTC))
    typer.echo(_line(endpoint, secret=secret))


@webhooks_app.command("list")
def list_endpoints() -> None:
    """Every endpoint, one JSON line each (never the secrets)."""
    for endpoint in _store().endpoints():
        typer.echo(_line(endpoint))


def _switch(endpoint_id: UUID, enabled: bool) -> None:
    from interface.adapters.webhooks.endpoint_store import EndpointChange

    endpoint = _store().change(endpoint_id, EndpointChange(enabled=enabled), datetime.now(UTC))
    if endpoint is None:
        raise typer.BadParameter(f"no webhook endpoint {endpoint_id}")
    typer.echo(_line(endpoint))


@webhooks_app.command("enable")
def enable(endpoint_id: UUID) -> None:
    """Resume deliveries (also after the service disabled the endpoint)."""
    _switch(endpoint_id, enabled=True)


@webhooks_app.command("disable")
def disable(endpoint_id: UUID) -> None:
    """Pause deliveries; those owed meanwhile are kept."""
    _switch(endpoint_id, enabled=False)


@webhooks_app.command("remove")
def remove(endpoint_id: UUID) -> None:
    """Delete the endpoint with its outbox and delivery log."""
    if not _store().delete(endpoint_id):
        raise typer.BadParameter(f"no webhook endpoint {endpoint_id}")


@webhooks_app.command("deliveries")
def deliveries(
    endpoint_id: UUID,
    limit: Annotated[int, typer.Option(min=1, max=1_000)] = 50,
) -> None:
    """The endpoint's latest deliveries, newest first."""
    for delivery in _store().deliveries(endpoint_id, status=None, before=None, limit=limit):
        typer.echo(
            json.dumps(
                {
                    "id": str(delivery.delivery_id),
                    "event_id": str(delivery.event_id),
                    "event_type": delivery.event_type,
                    "status": delivery.status,
                    "attempts": delivery.attempts,
                    "last_status_code": delivery.last_status_code,
                    "last_error": delivery.last_error,
                }
            )
        )
