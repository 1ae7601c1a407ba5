"""`ledger writer`: the one writer (group commit, cached aggregates, the hash
chain, the expiry sweep) in a process of its own, serving every other
process's submissions at LEDGER_WRITER_ENDPOINT (docs/architecture.md#the-write-path)."""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Annotated

import typer

from interface.cli.context import command_settings

if TYPE_CHECKING:
    from interface.settings import Settings
    from interface.writer_process.metrics import WriterProcessMetrics


def writer(
    new_key: Annotated[
        bool,
        typer.Option(
            "--new-key",
            help="Print a new CURVE secret key for LEDGER_WRITER_CURVE_SECRET_KEY and exit",
        ),
    ] = False,
) -> None:
    """Run the writer alone at LEDGER_WRITER_ENDPOINT until SIGTERM or Ctrl-C.

    Waits for the writer lease first: one writer per database. With
    LEDGER_WRITER_METRICS_PORT, serves its /metrics from the start (a writer
    standing by shows its lease as waiting)."""
    if new_key:
        from interface.writer_process.curve import new_secret_key

        # Every process of the deployment gets this same secret.
        typer.echo(new_secret_key())
        return
    from interface.observability.metrics_server import serve_metrics
    from interface.writer_process.metrics import WriterProcessMetrics

    settings = command_settings()
    endpoint = settings.writer_endpoint
    if not endpoint:
        typer.echo(
            "set LEDGER_WRITER_ENDPOINT (tcp://127.0.0.1:7701, say) to run the writer", err=True
        )
        raise typer.Exit(2)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    metrics = WriterProcessMetrics()
    metrics_server = (
        serve_metrics(settings.host, settings.writer_metrics_port, metrics.registry)
        if settings.writer_metrics_port
        else None
    )
    try:
        _serve(settings, endpoint, stop, metrics)
    finally:
        if metrics_server is not None:
            metrics_server.close()


def _serve(
    settings: Settings, endpoint: str, stop: threading.Event, metrics: WriterProcessMetrics
) -> None:
    from interface.adapters.persistence import database
    from interface.bootstrap import build_ledger, resolve_database_url
    from interface.writer_process.curve import keys_of
    from interface.writer_process.lease import WriterLease
    from interface.writer_process.server import WriterServer

    database_url = resolve_database_url(settings)
    database.upgrade(database_url)
    lease = WriterLease(database_url, on_state=metrics.lease_state)
    if not lease.acquire(stop):
        return
    lost = threading.Event()
    try:
        # This process is the writer: it runs a LedgerWriter of its own, not a client.
        ledger = build_ledger(
            settings.model_copy(update={"writer_endpoint": None, "database_url": database_url}),
            start_projections=False,
        )
        try:
            threading.Thread(
                target=lease.watch, args=(stop, lost), name="ledger-writer-lease", daemon=True
            ).start()
            server = WriterServer(
                ledger.writer,
                endpoint,
                metrics=metrics,
                curve=keys_of(settings.writer_curve_secret_key),
            )
            metrics.track(
                ledger.writer, ledger.writer_metrics.registry, lambda: server.answers_waiting
            )
            typer.echo(f"writer serving at {endpoint}")
            server.serve(stop)
        finally:
            ledger.close()
    finally:
        lease.release()
    if lost.is_set():
        raise typer.Exit(1)
