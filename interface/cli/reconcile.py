"""`ledger reconcile`: run the cross-checks by hand, resolve what they raised.

`ledger reconcile run [--type manual]` runs every check once in this
process and prints the report. Its status is `passed` only when every check
ran and passed; `failed` when a check found a discrepancy; `incomplete`
when none failed but one could not run (skipped or errored), with the
reasons. It exits 1 when a high or critical exception is open afterwards
(raised by this run or left open by an earlier one), else 4 when the run
was incomplete, else 0: a cron job or a deploy step can stop on either
(interface/cli/exit_codes.py).

The simulated broker and the sandbox payout gateway keep their state in
the database, so this process checks them as the serving one does; one
built without that state (in memory only) has nothing to compare, and its
check is skipped with the reason, which makes the run incomplete.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Final

import typer

from domain.reconciliation import CheckStatus, RunType, Severity
from interface.cli import exit_codes
from interface.cli.context import command_settings
from interface.cli.output import JsonOption, print_json, print_mapping, print_rows
from interface.cli.progress import progress_bars
from interface.cli.stored_text import stored_text

if TYPE_CHECKING:
    from interface.bootstrap import Ledger

reconcile_app = typer.Typer(
    help="Reconciliation: cross-checks of the ledger against its other records.",
    no_args_is_help=True,
)

# Exit status when a high or critical exception is open after the run.
EXIT_EXCEPTIONS_OPEN: Final[int] = exit_codes.FOUND_PROBLEMS
# Exit status when nothing failed but a check did not run.
EXIT_INCOMPLETE: Final[int] = exit_codes.INCOMPLETE
CLI_ACTOR: Final[str] = "ledger-cli"
SIMULATION_IN_MEMORY: Final[str] = (
    "the {what} is a simulation kept in memory only, which this process cannot see; "
    "the service's scheduled runs and POST /v1/reconciliation/runs check it"
)
PASSED: Final[str] = "passed"
FAILED: Final[str] = "failed"
INCOMPLETE: Final[str] = "incomplete"
# `reconcile status` shows at most this many runs.
RUNS_SHOWN_MAX: Final[int] = 100


@reconcile_app.command("run")
def run(
    run_type: Annotated[
        RunType, typer.Option("--type", help="The run's type, as its report records it")
    ] = RunType.MANUAL,
    as_json: JsonOption = False,
    incremental: Annotated[
        bool,
        typer.Option(
            "--incremental",
            help="Check only what changed since each check's last clean run "
            "(docs/operations.md#reconciliation); in full where there was none",
        ),
    ] = False,
) -> None:
    """Run every check once; exit 1 if a high or critical exception is open,
    4 if a check did not run."""
    from interface.bootstrap import build_ledger
    from interface.reconciliation.scope import incremental_runs
    from projections import reconciliation

    ledger = build_ledger(command_settings(), start_projections=False)
    try:
        with (
            progress_bars("checks", as_json=as_json) as bars,
            incremental_runs(incremental),
        ):
            advance = bars.phase("reconciliation", len(ledger.reconciliation.check_names))
            completed = ledger.reconciliation.run(
                run_type,
                CLI_ACTOR,
                skipped=_unavailable_checks(ledger),
                progress=lambda _name, done, total: advance(done, total),
            )
            bars.finish("reconciliation")
        assert ledger.projections is not None
        ledger.projections.catch_up()
        with ledger.pool.connection() as connection, connection.cursor() as cursor:
            checks = reconciliation.checks_of(cursor, completed.id)
            raised = reconciliation.exceptions_of(cursor, completed.id)
            unresolved = reconciliation.unresolved_by_severity(cursor)
        not_run = {
            check.name: check.reason or check.status
            for check in checks
            if check.status in (CheckStatus.SKIPPED.value, CheckStatus.ERRORED.value)
        }
        if any(check.status == CheckStatus.FAILED.value for check in checks):
            outcome = FAILED
        elif not_run:
            outcome = INCOMPLETE
        else:
            outcome = PASSED
        report: dict[str, Any] = {
            "run_id": str(completed.id),
            "type": completed.run_type.value,
            # passed only when every check ran and passed (the recorded
            # run_status counts a skipped check as passed).
            "status": outcome,
            "run_status": completed.status.value,
            "not_run": not_run,
            "checks": [
                {
                    "name": check.name,
                    "status": check.status,
                    "measure": check.measure,
                    "expected": check.expected,
                    "actual": check.actual,
                    "difference": check.difference,
                    "discrepancies_found": check.discrepancies_found,
                    "already_open": check.already_open,
                    "reason": check.reason,
                    "elapsed_ms": check.elapsed_ms,
                }
                for check in checks
            ],
            "exceptions": [
                {
                    "id": str(exception.exception_id),
                    "check": exception.check_name,
                    "kind": exception.kind,
                    "severity": exception.severity,
                    "status": exception.status,
                    "subject": exception.subject,
                    "amount_minor": exception.amount_minor,
                    "message": exception.message,
                    "closing_note": exception.closing_note,
                }
                for exception in raised
            ],
            "unresolved_by_severity": unresolved,
        }
        if as_json:
            print_json(report)
        else:
            _print_report(report)
        blocking = unresolved[Severity.HIGH.value] + unresolved[Severity.CRITICAL.value]
    finally:
        ledger.close()
    if blocking:
        typer.echo(
            f"{blocking} high or critical exception(s) open: "
            "GET /v1/reconciliation/exceptions?resolved=false",
            err=True,
        )
        raise typer.Exit(EXIT_EXCEPTIONS_OPEN)
    if outcome == INCOMPLETE:
        typer.echo(
            "reconciliation incomplete: "
            + "; ".join(f"{name} did not run ({reason})" for name, reason in not_run.items()),
            err=True,
        )
        raise typer.Exit(EXIT_INCOMPLETE)


def _unavailable_checks(ledger: Ledger) -> dict[str, str]:
    """Checks whose source this process cannot see -> why: a simulator kept in
    memory only (the ones `build_ledger` makes keep their state in the database)."""
    from interface.adapters.broker.simulated_broker import SimulatedBroker
    from interface.adapters.payouts.sandbox_gateway import SandboxPayoutGateway
    from interface.reconciliation.checks import BROKER_CHECK, PAYOUTS_CHECK

    unavailable: dict[str, str] = {}
    if isinstance(ledger.broker, SimulatedBroker) and not ledger.broker.keeps_state:
        unavailable[BROKER_CHECK] = SIMULATION_IN_MEMORY.format(what="broker")
    gateway = ledger.payout_gateway
    if isinstance(gateway, SandboxPayoutGateway) and not gateway.keeps_state:
        unavailable[PAYOUTS_CHECK] = SIMULATION_IN_MEMORY.format(what="payout gateway")
    return unavailable


@reconcile_app.command("resolve")
def resolve(
    exception_id: Annotated[str, typer.Argument(help="The exception's id")],
    resolved_by: Annotated[str, typer.Option("--by", help="Your name", callback=stored_text)],
    note: Annotated[
        str, typer.Option("--note", help="What you found and did", callback=stored_text)
    ],
    as_json: JsonOption = False,
) -> None:
    """Close an open exception with your name and a note."""
    from uuid import UUID

    from domain.result_codes import LedgerRefusal
    from interface.bootstrap import build_ledger

    try:
        parsed = UUID(exception_id)
    except ValueError as error:
        raise typer.BadParameter(f"{exception_id!r} is not an exception id") from error
    ledger = build_ledger(command_settings(), start_projections=False)
    try:
        try:
            ledger.reconciliation.resolve(parsed, resolved_by.strip(), note.strip())
        except (LedgerRefusal, ValueError) as refusal:
            typer.echo(f"not resolved: {refusal}", err=True)
            raise typer.Exit(exit_codes.USAGE) from refusal
        print_mapping({"id": exception_id, "status": "resolved"}, as_json=as_json)
    finally:
        ledger.close()


@reconcile_app.command("status")
def status(
    limit: Annotated[int, typer.Option(min=1, max=RUNS_SHOWN_MAX, help="Runs shown")] = 10,
    as_json: JsonOption = False,
) -> None:
    """The latest runs and the open exceptions by severity, as the reports
    view has them; exit 1 while a high or critical exception is open."""
    import psycopg

    from interface.cli.context import migrated_database_url
    from projections import reconciliation

    with psycopg.connect(migrated_database_url()) as connection, connection.cursor() as cursor:
        runs = reconciliation.run_page(cursor, before_position=None, limit=limit)
        unresolved = reconciliation.unresolved_by_severity(cursor)
    rows: list[dict[str, Any]] = [
        {
            "run_id": str(run.run_id),
            "type": run.run_type,
            "status": run.status,
            "started_at": run.started_at.isoformat(),
            "started_by": run.started_by,
            "completed_at": run.completed_at.isoformat() if run.completed_at else None,
            "checks_passed": run.checks_passed,
            "checks_failed": run.checks_failed,
            "exceptions_raised": run.exceptions_raised,
        }
        for run in runs
    ]
    if as_json:
        print_json({"runs": rows, "unresolved_by_severity": unresolved})
    else:
        columns = ["run_id", "type", "status", "started_at", "checks_passed", "checks_failed"]
        print_rows(rows, columns, as_json=False)
        typer.echo(f"open exceptions by severity: {unresolved}")
    if unresolved[Severity.HIGH.value] + unresolved[Severity.CRITICAL.value]:
        raise typer.Exit(EXIT_EXCEPTIONS_OPEN)


def _print_report(report: dict[str, Any]) -> None:
    typer.echo(f"run {report['run_id']} ({report['type']}): {report['status']}")
    for name, reason in report["not_run"].items():
        typer.echo(f"  not run: {name}: {reason}")
    for check in report["checks"]:
        line = (
            f"  {check['name']:<12} {check['status']:<8} expected {check['expected']} "
            f"actual {check['actual']} ({check['measure']}); "
            f"{check['discrepancies_found']} discrepancies, {check['elapsed_ms']} ms"
        )
        if check["reason"]:
            line += f"; {check['reason']}"
        typer.echo(line)
    for exception in report["exceptions"]:
        typer.echo(
            f"  [{exception['severity']}] {exception['id']} {exception['kind']} "
            f"{exception['subject']} ({exception['status']}): {exception['message']}"
        )
    typer.echo(f"open exceptions by severity: {report['unresolved_by_severity']}")
