"""The `ledger` command line: serve, db upgrade, demo, bench."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from interface.settings import Settings

app = typer.Typer(help="Event-sourced double-entry ledger.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _settings() -> Settings:
    from interface.logging import configure_logging

    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return settings


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on")] = None,
    demo: Annotated[bool, typer.Option(help="Load the demo data set first")] = False,
) -> None:
    """Run the HTTP API with its writer (and the embedded PostgreSQL if no URL is set)."""
    import uvicorn

    from interface.api.app import create_app
    from interface.bootstrap import build_ledger
    from interface.demo import load_demo

    settings = _settings()
    ledger = build_ledger(settings)
    if demo:
        summary = load_demo(ledger.service)
        for line in summary.lines():
            typer.echo(f"demo: {line}")
    listen_host, listen_port = host or settings.host, port or settings.port
    typer.echo(f"API docs: http://{listen_host}:{listen_port}/docs")
    # The app's lifespan closes the ledger on shutdown, SIGTERM included.
    uvicorn.run(
        create_app(settings, ledger=ledger, owns_ledger=True),
        host=listen_host,
        port=listen_port,
        log_config=None,
        access_log=False,
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration not yet applied."""
    from interface import database
    from interface.bootstrap import resolve_database_url

    settings = _settings()
    applied = database.upgrade(resolve_database_url(settings))
    typer.echo("applied: " + ", ".join(applied) if applied else "schema is current")


@app.command()
def demo(
    transfers: Annotated[int, typer.Option(min=100, max=1_000_000)] = 10_000,
) -> None:
    """Load the demo data set (idempotent: a second run changes nothing) and summarise it."""
    from interface.bootstrap import build_ledger
    from interface.demo import EXPIRING_HOLD_TIMEOUT_S, load_demo

    settings = _settings()
    ledger = build_ledger(settings)
    try:
        summary = load_demo(ledger.service, transfers=transfers)
        # Let the expiry sweep release the short holds before summarising.
        time.sleep(EXPIRING_HOLD_TIMEOUT_S + 2 * ledger.writer.limits.expiry_sweep_interval_s)
        for line in summary.lines():
            typer.echo(line)
        typer.echo(
            f"holds expired by the sweep: {ledger.writer.statistics.pending_transfers_expired}"
        )
    finally:
        ledger.close()


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def bench(context: typer.Context) -> None:
    """Measure the writer against the naive eventsourcing baseline, side by side.

    Options pass through: --quick, --json, --accounts N, --history-transfers N,
    --measured-transfers N, --baseline-transfers N, --prebuilt-transfers N,
    --client-threads N, --chunk-size N, --seed N, --data-dir DIR,
    --database-url URL, --profile-writer."""
    from benchmarks.writer_benchmark import main as benchmark_main

    _settings()
    raise typer.Exit(benchmark_main(list(context.args)))


def main() -> None:
    app()
