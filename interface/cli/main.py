"""The `ledger` command line: serve, db upgrade, demo, bench."""

from __future__ import annotations

import time
from importlib.metadata import entry_points, version
from typing import Annotated, Final

import typer

from interface.cli.audit import audit_app
from interface.cli.audit_checkpoints import register as register_checkpoint_commands
from interface.cli.closures import closures_app
from interface.cli.context import command_settings
from interface.cli.errors import LedgerGroup
from interface.cli.forks import forks_app
from interface.cli.http import http as http_command
from interface.cli.output import JsonOption, print_json, print_rows
from interface.cli.progress import progress_bars
from interface.cli.projections import projections_app
from interface.cli.reconcile import reconcile_app
from interface.cli.stored_text import stored_text
from interface.cli.webhooks import webhooks_app
from interface.cli.worker import worker as worker_command
from interface.cli.writer import writer

app = typer.Typer(help="Event-sourced double-entry ledger.", no_args_is_help=True, cls=LedgerGroup)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
register_checkpoint_commands(audit_app)
app.add_typer(audit_app, name="audit")
app.add_typer(projections_app, name="projections")
app.add_typer(closures_app, name="closures")
app.add_typer(forks_app, name="forks")
app.add_typer(reconcile_app, name="reconcile")
app.add_typer(webhooks_app, name="webhooks")
app.command()(writer)


def _print_version(shown: bool) -> None:
    if shown:
        typer.echo(f"ledger {version('ledger')}")
        raise typer.Exit()


@app.callback()
def global_options(
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit"
        ),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            envvar="LEDGER_DEBUG",
            help="Show the traceback of a configuration problem instead of one line",
        ),
    ] = False,
) -> None:
    """Event-sourced double-entry ledger. Exit statuses: docs/operations.md#the-command-line."""


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on")] = None,
    demo: Annotated[bool, typer.Option(help="Load the demo data set first")] = False,
    http_processes: Annotated[
        int | None,
        typer.Option(help="HTTP processes sharing the port (default: one per core)", min=1, max=64),
    ] = None,
) -> None:
    """Run the whole service: the writer, the HTTP processes and the worker as
    supervised child processes (and the embedded PostgreSQL if no URL is set)."""
    from interface.processes.serve import ServeOptions, default_http_processes
    from interface.processes.serve import serve as serve_supervised

    settings = command_settings()
    options = ServeOptions(
        host=host or settings.host,
        port=port or settings.port,
        demo=demo,
        http_processes=http_processes or default_http_processes(),
    )
    raise typer.Exit(serve_supervised(settings, options))


# The parts `ledger serve` starts, each also run alone in production
# (docs/architecture.md#processes).
app.command("http")(http_command)
app.command("worker")(worker_command)


@db_app.command("upgrade")
def db_upgrade(as_json: JsonOption = False) -> None:
    """Apply every migration not yet applied."""
    from interface.adapters.persistence import database
    from interface.bootstrap import resolve_database_url

    settings = command_settings()
    applied = database.upgrade(resolve_database_url(settings))
    if as_json:
        print_json({"applied": applied})
        return
    typer.echo("applied: " + ", ".join(applied) if applied else "schema is current")


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="user, admin, auditor or service")],
    owner: Annotated[
        str | None, typer.Option(help="The owner a user key acts for", callback=stored_text)
    ] = None,
    label: Annotated[
        str, typer.Option(help="A note to recognise the key by", callback=stored_text)
    ] = "",
    as_json: JsonOption = False,
) -> None:
    """Make a key and print it once; only its digest is stored."""
    from interface.adapters.persistence.api_keys import Role
    from interface.bootstrap import build_ledger

    try:
        chosen = Role(role)
    except ValueError:
        raise typer.BadParameter("role must be user, admin, auditor or service") from None
    ledger = build_ledger(command_settings(), start_writer=False, start_projections=False)
    try:
        key_id, raw_key = ledger.api_keys.create(chosen, owner_id=owner, label=label)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    finally:
        ledger.close()
    if as_json:
        print_json({"id": str(key_id), "key": raw_key, "role": chosen.value, "owner_id": owner})
        return
    typer.echo(f"key id: {key_id}")
    typer.echo(f"key:    {raw_key}")
    typer.echo("Store the key now: it cannot be shown again.")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id")]) -> None:
    """Revoke a key: requests with it get 401 from now on."""
    import uuid

    from interface.bootstrap import build_ledger

    ledger = build_ledger(command_settings(), start_writer=False, start_projections=False)
    try:
        revoked = ledger.api_keys.revoke(uuid.UUID(key_id))
    finally:
        ledger.close()
    typer.echo("revoked" if revoked else "no such active key")
    raise typer.Exit(0 if revoked else 1)


@keys_app.command("list")
def keys_list(as_json: JsonOption = False) -> None:
    """Every key with its role, owner and state (never the key itself)."""
    from interface.bootstrap import build_ledger

    ledger = build_ledger(command_settings(), start_writer=False, start_projections=False)
    try:
        records = ledger.api_keys.list()
    finally:
        ledger.close()
    rows = [
        {
            "id": str(record.key_id),
            "prefix": f"{record.key_prefix}...",
            "role": record.role.value,
            "owner_id": record.owner_id,
            "state": "revoked" if record.revoked_at else "active",
            "created_at": record.created_at.isoformat(),
            "revoked_at": record.revoked_at.isoformat() if record.revoked_at else None,
            "label": record.label,
        }
        for record in records
    ]
    print_rows(rows, ["id", "prefix", "role", "owner_id", "state", "label"], as_json=as_json)


@app.command()
def demo(
    transfers: Annotated[int, typer.Option(min=100, max=1_000_000)] = 10_000,
    as_json: JsonOption = False,
) -> None:
    """Load the demo data set (idempotent: a second run changes nothing) and summarise it."""
    from interface.bootstrap import build_ledger
    from interface.demo.data_set import load_demo_data_set
    from interface.demo.ledger_transfers import EXPIRING_HOLD_TIMEOUT_S

    settings = command_settings()
    ledger = build_ledger(settings)
    try:
        with progress_bars("commands", as_json=as_json) as bars:
            loaded = load_demo_data_set(
                ledger, transfers=transfers, progress=bars.phase("demo transfers", None)
            )
        # Let the expiry sweep release the short holds before summarising.
        time.sleep(EXPIRING_HOLD_TIMEOUT_S + 2 * ledger.writer.limits.expiry_sweep_interval_s)
        expired = ledger.writer.statistics.pending_transfers_expired
    finally:
        ledger.close()
    if as_json:
        print_json(loaded.described() | {"holds_expired_by_the_sweep": expired})
        return
    for line in loaded.lines:
        typer.echo(line)
    typer.echo(f"holds expired by the sweep: {expired}")


# Commands shipped beside the product rather than in it (`ledger bench`, from
# the benchmarks package) register through this entry point group, so nothing
# in the product imports them (an import-linter contract holds it).
PLUGIN_COMMANDS_GROUP: Final[str] = "ledger.commands"


def _add_plugin_commands() -> None:
    for entry_point in entry_points(group=PLUGIN_COMMANDS_GROUP):
        entry_point.load()(app)


def main() -> None:
    _add_plugin_commands()
    app()
