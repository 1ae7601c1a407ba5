"""`ledger reconcile`: run the cross-checks by hand, resolve what they raised.

`ledger reconcile run [--type manual]` runs every check once in this
process and prints the report; it exits 1 when a high or critical exception
is open afterwards (raised by this run or left open by an earlier one), so
a cron job or a deploy step can stop on it, and 0 otherwise.

The simulated broker and the sandbox payout gateway live inside the process
that serves the API: another process has its own, empty, simulation. So
here the checks against them are skipped, with that reason in the report;
the service's scheduled runs (and POST /v1/reconciliation/runs) make them.
With a real broker or Stripe configured every check runs here.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final

import typer

from domain.reconciliation import RunType, Severity
from interface.cli.context import command_settings
from interface.cli.stored_text import stored_text

reconcile_app = typer.Typer(
    help="Reconciliation: cross-checks of the ledger against its other records.",
    no_args_is_help=True,
)

# Exit status when a high or critical exception is open after the run.
EXIT_EXCEPTIONS_OPEN: Final[int] = 1
CLI_ACTOR: Final[str] = "ledger-cli"
SIMULATION_ELSEWHERE: Final[str] = (
    "the {what} is a simulation inside the serving process, which this process cannot "
    "see; the service's scheduled runs and POST /v1/reconciliation/runs check it"
)


@reconcile_app.command("run")
def run(
    run_type: Annotated[
        RunType, typer.Option("--type", help="The run's type, as its report records it")
    ] = RunType.MANUAL,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Run every check once; exit 1 if a high or critical exception is open."""
    from interface.adapters.broker.simulated_broker import SimulatedBroker
    from interface.adapters.payouts.sandbox_gateway import SandboxPayoutGateway
    from interface.bootstrap import build_ledger
    from interface.reconciliation.checks import BROKER_CHECK, PAYOUTS_CHECK
    from projections import reconciliation

    ledger = build_ledger(command_settings(), start_projections=False)
    try:
        skipped: dict[str, str] = {}
        if isinstance(ledger.broker, SimulatedBroker):
            skipped[BROKER_CHECK] = SIMULATION_ELSEWHERE.format(what="broker")
        if isinstance(ledger.payout_gateway, SandboxPayoutGateway):
            skipped[PAYOUTS_CHECK] = SIMULATION_ELSEWHERE.format(what="payout gateway")
        completed = ledger.reconciliation.run(run_type, CLI_ACTOR, skipped=skipped)
        assert ledger.projections is not None
        ledger.projections.catch_up()
        with ledger.pool.connection() as connection, connection.cursor() as cursor:
            checks = reconciliation.checks_of(cursor, completed.id)
            raised = reconciliation.exceptions_of(cursor, completed.id)
            unresolved = reconciliation.unresolved_by_severity(cursor)
        report: dict[str, Any] = {
            "run_id": str(completed.id),
            "type": completed.run_type.value,
            "status": completed.status.value,
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
            typer.echo(json.dumps(report, indent=2))
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


@reconcile_app.command("resolve")
def resolve(
    exception_id: Annotated[str, typer.Argument(help="The exception's id")],
    resolved_by: Annotated[str, typer.Option("--by", help="Your name", callback=stored_text)],
    note: Annotated[
        str, typer.Option("--note", help="What you found and did", callback=stored_text)
    ],
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
            raise typer.Exit(2) from refusal
        typer.echo(json.dumps({"id": exception_id, "status": "resolved"}))
    finally:
        ledger.close()


def _print_report(report: dict[str, Any]) -> None:
    typer.echo(f"run {report['run_id']} ({report['type']}): {report['status']}")
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
