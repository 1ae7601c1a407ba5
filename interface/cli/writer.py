"""`ledger writer`: the one writer (group commit, cached aggregates, the hash
chain, the expiry sweep) in a process of its own, serving every other
process's submissions at LEDGER_WRITER_ENDPOINT (docs/architecture.md#the-write-path)."""

from __future__ import annotations

import signal
import threading

import typer

from interface.cli.context import command_settings


def writer() -> None:
    """Run the writer alone at LEDGER_WRITER_ENDPOINT until SIGTERM or Ctrl-C.

    Waits for the writer lease first: one writer per database."""
    from interface.adapters.persistence import database
    from interface.bootstrap import build_ledger, resolve_database_url
    from interface.writer_process.lease import WriterLease
    from interface.writer_process.server import WriterServer

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
    database_url = resolve_database_url(settings)
    database.upgrade(database_url)
    lease = WriterLease(database_url)
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
            typer.echo(f"writer serving at {endpoint}")
            WriterServer(ledger.writer, endpoint).serve(stop)
        finally:
            ledger.close()
    finally:
        lease.release()
    if lost.is_set():
        raise typer.Exit(1)
