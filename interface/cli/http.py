"""`ledger http`: the HTTP API alone, one process.

No projection runner and no background worker runs here (`ledger worker`
runs them): a read waits for the views' positions in the database
(interface/api/consistency.py). With LEDGER_WRITER_ENDPOINT set, commands go
to the writer process; without it this process runs its own writer.
"""

from __future__ import annotations

import socket
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
    import uvicorn

    from interface.api.app import create_app
    from interface.bootstrap import build_ledger, build_ledger_with_workers
    from interface.processes.readiness import wait_for_go

    if all_in_one:
        settings = command_settings()
        ledger = build_ledger_with_workers(settings)
    else:
        # Readiness then reports the views as followed elsewhere, not stopped.
        settings = command_settings().model_copy(update={"projections_in_process": False})
        ledger = build_ledger(settings, start_projections=False)
    config = uvicorn.Config(
        # The app's lifespan closes the ledger on shutdown, SIGTERM included.
        create_app(settings, ledger=ledger, owns_ledger=True),
        host=host or settings.host,
        port=port or settings.port,
        log_config=None,
        access_log=False,
    )
    server = uvicorn.Server(config)
    # Under `ledger serve`, at the first start: until the worker runs.
    wait_for_go()
    if fd is None:
        server.run()
    else:
        # The socket's family (IPv4 or IPv6) is read from the descriptor.
        server.run(sockets=[socket.socket(fileno=fd)])
