"""`ledger http`: the HTTP API alone, one process.

No projection runner and no background worker runs here (`ledger worker`
runs them): a read waits for the views' positions in the database
(interface/api/consistency.py). With LEDGER_WRITER_ENDPOINT set, commands go
to the writer process; without it this process runs its own writer. The ASGI
server is uvicorn or granian, as LEDGER_HTTP_SERVER says
(interface/processes/http_server.py).
"""

from __future__ import annotations

from typing import Annotated

import typer

from interface.cli.context import command_settings


def http(
    host: Annotated[str | None, typer.Option(help="Interface to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on")] = None,
    fd: Annotated[
        int | None,
        typer.Option(
            help="Serve on this already-listening socket instead (as `ledger serve` passes one)",
            min=0,
        ),
    ] = None,
    all_in_one: Annotated[
        bool,
        typer.Option(
            help="Run the projections and every worker in this process too "
            "(`ledger serve` with LEDGER_CLOCK_SETTABLE: one process, one clock)",
        ),
    ] = False,
) -> None:
    """Serve the HTTP API without projections or workers, until SIGTERM or Ctrl-C."""
    from interface.api.app import create_app
    from interface.bootstrap import build_ledger, build_ledger_with_workers
    from interface.processes.http_server import serve_app
    from interface.processes.readiness import wait_for_go

    if all_in_one:
        settings = command_settings()
        ledger = build_ledger_with_workers(settings)
    else:
        # Readiness then reports the views as followed elsewhere, not stopped.
        settings = command_settings().model_copy(update={"projections_in_process": False})
        ledger = build_ledger(settings, start_projections=False)
    # The app's lifespan closes the ledger on shutdown, SIGTERM included.
    app = create_app(settings, ledger=ledger, owns_ledger=True)
    # Under `ledger serve`, at the first start: until the worker runs.
    wait_for_go()
    serve_app(
        app,
        settings.http_server,
        host=host or settings.host,
        port=port or settings.port,
        fd=fd,
        log_level=settings.log_level,
    )
