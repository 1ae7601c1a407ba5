"""`ledger forks scan`: propose a fork for every account past its tier's
threshold, and execute the forks that wait (approved while five executed, or
executing when a process stopped), as of a given time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import psycopg
import typer

from interface.cli.context import command_settings
from interface.cli.output import JsonOption, print_rows

forks_app = typer.Typer(help="Forks of accounts that outgrew their tier.", no_args_is_help=True)


@forks_app.command("scan")
def scan(
    now: Annotated[
        str | None, typer.Option(help="Run as of this ISO 8601 time (default: now)")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List; propose nothing")] = False,
    as_json: JsonOption = False,
) -> None:
    """Propose and execute due forks; a row (a JSON line with --json) per
    account or fork touched."""
    from application.clock import SettableClock
    from interface.bootstrap import build_ledger
    from interface.workers.fork_scanner import scan_forks

    moment = None
    if now:
        try:
            moment = datetime.fromisoformat(now)
        except ValueError as error:
            raise typer.BadParameter(f"{now!r} is not an ISO 8601 time") from error
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    ledger = build_ledger(
        command_settings(),
        clock=SettableClock(moment) if moment else None,
        start_projections=False,
    )
    try:
        assert ledger.projections is not None
        ledger.projections.catch_up()
        with psycopg.connect(ledger.database_url, autocommit=True) as connection:
            done = scan_forks(connection, ledger.forks, dry_run=dry_run)
        rows: list[dict[str, Any]] = []
        for done_action in done.actions:
            key = "fork_id" if done_action.action == "execute" else "funded_account_id"
            line = {key: str(done_action.item_id), "action": done_action.action}
            if dry_run:
                pass
            elif done_action.refused:
                line["refused"] = done_action.outcome
            else:
                line["status"] = done_action.outcome
                if done_action.action == "propose" and done_action.fork_id is not None:
                    line["fork_id"] = str(done_action.fork_id)
            rows.append(line)
    finally:
        ledger.close()
    columns = ["action", "funded_account_id", "fork_id", "status", "refused"]
    print_rows(rows, columns, as_json=as_json)
