"""`ledger webhooks`: webhook endpoints from the command line, as admins
manage them through /v1/webhook-endpoints (docs/events.md).

Each command prints a table, or JSON Lines with --json (the secret of a new
endpoint is in both, shown once). Imports happen inside the commands, as in
the other command modules, so `ledger --help` stays quick.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import typer

from interface.cli.context import command_settings, migrated_database_url
from interface.cli.output import JsonOption, print_rows
from interface.cli.stored_text import stored_text

webhooks_app = typer.Typer(help="Webhook endpoints.", no_args_is_help=True)


def _store() -> Any:
    from psycopg_pool import ConnectionPool

    from interface.adapters.webhooks.endpoint_store import WebhookEndpointStore

    pool = ConnectionPool(
        migrated_database_url(), min_size=1, max_size=1, kwargs={"autocommit": True}, open=True
    )
    return WebhookEndpointStore(pool)


ENDPOINT_COLUMNS = ["id", "url", "event_types", "enabled", "disabled_reason", "description"]


def _row(endpoint: Any, **extra: str) -> dict[str, Any]:
    return {
        "id": str(endpoint.endpoint_id),
        "url": endpoint.url,
        "event_types": endpoint.event_types,
        "description": endpoint.description,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
    } | extra


@webhooks_app.command("add")
def add(
    url: Annotated[str, typer.Argument(callback=stored_text)],
    event_type: Annotated[
        list[str] | None, typer.Option("--type", help="An event type (repeat); none: every type")
    ] = None,
    description: Annotated[
        str, typer.Option(help="What it is for", callback=stored_text)
    ] = "webhook endpoint",
    as_json: JsonOption = False,
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
    print_rows([_row(endpoint, secret=secret)], [*ENDPOINT_COLUMNS, "secret"], as_json=as_json)


@webhooks_app.command("list")
def list_endpoints(as_json: JsonOption = False) -> None:
    """Every endpoint (never the secrets)."""
    rows = [_row(endpoint) for endpoint in _store().endpoints()]
    print_rows(rows, ENDPOINT_COLUMNS, as_json=as_json)


def _switch(endpoint_id: UUID, enabled: bool, as_json: bool) -> None:
    from interface.adapters.webhooks.endpoint_store import EndpointChange

    endpoint = _store().change(endpoint_id, EndpointChange(enabled=enabled), datetime.now(UTC))
    if endpoint is None:
        raise typer.BadParameter(f"no webhook endpoint {endpoint_id}")
    print_rows([_row(endpoint)], ENDPOINT_COLUMNS, as_json=as_json)


@webhooks_app.command("enable")
def enable(endpoint_id: UUID, as_json: JsonOption = False) -> None:
    """Resume deliveries (also after the service disabled the endpoint)."""
    _switch(endpoint_id, enabled=True, as_json=as_json)


@webhooks_app.command("disable")
def disable(endpoint_id: UUID, as_json: JsonOption = False) -> None:
    """Pause deliveries; those owed meanwhile are kept."""
    _switch(endpoint_id, enabled=False, as_json=as_json)


@webhooks_app.command("remove")
def remove(endpoint_id: UUID) -> None:
    """Delete the endpoint with its outbox and delivery log."""
    if not _store().delete(endpoint_id):
        raise typer.BadParameter(f"no webhook endpoint {endpoint_id}")


@webhooks_app.command("deliveries")
def deliveries(
    endpoint_id: UUID,
    limit: Annotated[int, typer.Option(min=1, max=1_000)] = 50,
    as_json: JsonOption = False,
) -> None:
    """The endpoint's latest deliveries, newest first."""
    rows = [
        {
            "id": str(delivery.delivery_id),
            "event_id": str(delivery.event_id),
            "event_type": delivery.event_type,
            "status": delivery.status,
            "attempts": delivery.attempts,
            "last_status_code": delivery.last_status_code,
            "last_error": delivery.last_error,
        }
        for delivery in _store().deliveries(endpoint_id, status=None, before=None, limit=limit)
    ]
    columns = ["id", "event_type", "status", "attempts", "last_status_code", "last_error"]
    print_rows(rows, columns, as_json=as_json)
