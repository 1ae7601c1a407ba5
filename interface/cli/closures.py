"""`ledger closures`: find stuck closures, inspect one, resume one, run due work.

`tick --now ISO` runs the closure worker's pass as of the given time, on a
clock set to it (and a payout pass first, so tranches in flight are paid):
tests walk days of a closure in a few commands, and an operator catches up
after an outage. Every command reads and writes through the same service as
the worker, under the same lease.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import typer

from interface.cli import exit_codes
from interface.cli.context import command_settings
from interface.cli.output import JsonOption, print_mapping, print_rows
from interface.cli.stored_text import stored_text

if TYPE_CHECKING:
    from domain.closure import Closure
    from interface.bootstrap import Ledger

closures_app = typer.Typer(help="Account closures (multi-day processes).", no_args_is_help=True)

# Overdue by this much, a closure counts as stuck (no worker ran it).
OVERDUE_AFTER_HOURS = 1
LIST_LIMIT = 1_000


@contextmanager
def _ledger(now: datetime | None = None) -> Iterator[Ledger]:
    from application.clock import SettableClock
    from interface.bootstrap import build_ledger

    clock = SettableClock(now) if now is not None else None
    ledger = build_ledger(command_settings(), clock=clock, start_projections=False)
    try:
        yield ledger
    finally:
        ledger.close()


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 time") from error
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _describe(closure: Closure) -> dict[str, Any]:
    return {
        "id": str(closure.id),
        "funded_account_id": str(closure.funded_account_id),
        "confirmation_number": closure.confirmation_number,
        "phase": closure.phase.value,
        "stuck": closure.stuck,
        "stuck_reason": closure.stuck_reason,
        "next_action_at": closure.next_action_at.isoformat() if closure.next_action_at else None,
        "deadline_at": closure.deadline_at.isoformat() if closure.deadline_at else None,
        "failed_attempts": closure.failed_attempts,
        "last_error": closure.last_error,
        "phases_entered": closure.phase_history,
        "tranches": closure.tranches,
        "total_paid_minor": closure.total_paid_minor,
        "emails_sent": sorted(closure.emails_sent),
    }


def _catch_up_views(ledger: Ledger) -> None:
    """The worker finds due work in the closures view: bring it up to date."""
    from projections.registry import view_named
    from projections.runner import ProjectionRunner

    runner = ProjectionRunner(
        ledger.database_url, [view_named("closures"), view_named("withdrawals")]
    )
    try:
        runner.catch_up()
    finally:
        runner.stop()


def _closure_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError as error:
        raise typer.BadParameter(f"{text!r} is not a closure id") from error


@closures_app.command("find-stuck")
def find_stuck(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Also say what resuming each would do")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Closures that need a person: marked stuck, or overdue by an hour. Exit 1
    when there are any."""
    from datetime import timedelta

    from projections.closures import stuck_closures

    with _ledger() as ledger:
        _catch_up_views(ledger)
        now = ledger.clock.now()
        with ledger.pool.connection() as connection, connection.cursor() as cursor:
            rows = stuck_closures(cursor, now, timedelta(hours=OVERDUE_AFTER_HOURS), 0, LIST_LIMIT)
        described: list[dict[str, Any]] = []
        for row in rows:
            line: dict[str, Any] = {
                "id": str(row.closure_id),
                "confirmation_number": row.confirmation_number,
                "phase": row.phase,
                "stuck": row.stuck,
                "reason": row.stuck_reason or "overdue: no worker has run it",
                "next_action_at": row.next_action_at.isoformat() if row.next_action_at else None,
            }
            if dry_run and row.stuck:
                plan = ledger.closures.resume_plan(row.closure_id)
                line["resume_would"] = {
                    "retry_phase": plan.phase.value,
                    "deadline_at": plan.deadline_at.isoformat() if plan.deadline_at else None,
                }
            described.append(line)
    columns = ["id", "confirmation_number", "phase", "stuck", "reason", "next_action_at"]
    print_rows(described, columns + (["resume_would"] if dry_run else []), as_json=as_json)
    typer.echo(f"closures: {len(rows)} stuck", err=True)
    raise typer.Exit(exit_codes.FOUND_PROBLEMS if rows else exit_codes.OK)


@closures_app.command("show")
def show(
    closure_id: Annotated[str, typer.Argument(help="The closure's id")],
    as_json: JsonOption = False,
) -> None:
    """One closure, whole: phase, timers, tranches, emails."""
    identifier = _closure_id(closure_id)
    with _ledger() as ledger:
        closure = ledger.closures.closure(identifier)
        if closure is None:
            typer.echo(f"closures: no closure {identifier}", err=True)
            raise typer.Exit(exit_codes.USAGE)
        print_mapping(_describe(closure), as_json=as_json)


@closures_app.command("resume")
def resume(
    closure_id: Annotated[str, typer.Argument(help="The closure's id")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what it would do")] = False,
    actor: Annotated[
        str, typer.Option(help="Who resumes it (recorded)", callback=stored_text)
    ] = "operator:cli",
    as_json: JsonOption = False,
) -> None:
    """Resume a stuck closure: its phase is tried again now, with a new deadline."""
    from domain.result_codes import LedgerRefusal

    with _ledger() as ledger:
        try:
            plan = ledger.closures.resume_plan(_closure_id(closure_id))
        except LedgerRefusal as refusal:
            typer.echo(f"closures: {refusal.message}", err=True)
            raise typer.Exit(exit_codes.USAGE) from refusal
        deadline = plan.deadline_at.isoformat() if plan.deadline_at else "none"
        typer.echo(f"would retry {plan.phase.value} now, new deadline {deadline}", err=as_json)
        if dry_run:
            return
        closure = ledger.closures.resume(plan.closure.id, actor)
        print_mapping(_describe(closure), as_json=as_json)


@closures_app.command("tick")
def tick(
    now: Annotated[
        str | None, typer.Option(help="Run as of this ISO 8601 time (default: now)")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run the due work of every closure (and every due payout) once, as of `--now`."""
    moment = _parse_time(now) if now else None
    with _ledger(moment) as ledger:
        _catch_up_views(ledger)
        payouts = ledger.payout_worker.run_once()
        done = ledger.closure_worker.run_once()
        if not done.leased:
            typer.echo("closures: another worker holds the lease; nothing run", err=True)
            raise typer.Exit(exit_codes.LEASE_HELD)
        print_mapping(
            {
                "as_of": ledger.clock.now().isoformat(),
                "payouts_attempted": payouts.attempted,
                "closures_advanced": done.attempted,
                "outcomes": dict(done.outcomes),
                "errors": {str(key): value for key, value in done.errors.items()},
            },
            as_json=as_json,
        )
