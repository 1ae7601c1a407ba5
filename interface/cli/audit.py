"""`ledger audit export` and `ledger audit verify`: for an auditor with
database access, without starting the service (no writer, no projections).

`export` with no filter writes everything an offline audit needs (the stored
bodies, the signed checkpoints, the public keys; `verify --export` checks it
with no database). `verify` checks the log against the signed checkpoints
with the public keys alone (docs/operations.md#audit); it exits 1 when it
finds anything, 0 when the ledger is sound, so a scheduled job or CI can run
it; its report names the first bad event.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Annotated, Any, cast
from uuid import UUID

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from interface.adapters.audit_keys import AuditKeyError, PublicKeys
from interface.audit.checkpoints import CheckpointReport
from interface.audit.export import ExportFilter, export_lines
from interface.audit.report import Finding, VerifyReport
from interface.audit.verify import verify_ledger
from interface.audit_setup import audit_public_keys, checkpoint_dir
from interface.cli.audit_checkpoints import (
    export_offline_to,
    print_tamper_report,
    verify_export,
)
from interface.cli.context import command_settings, migrated_database_url
from interface.cli.output import JsonOption, print_json
from interface.cli.progress import Bars, progress_bars
from interface.settings import Settings

audit_app = typer.Typer(help="Audit: export the event history, verify the ledger.")

# Findings printed in full; the rest are counted (all are in the report).
FINDINGS_SHOWN_MAX = 50


def _time(text: str | None, option: str) -> datetime | None:
    """ISO 8601; a time without an offset is taken as UTC."""
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{option} must be an ISO 8601 time: {text!r}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@audit_app.command("export")
def export(
    account: Annotated[
        UUID | None,
        typer.Option(help="Only this account's events and those of transfers posting to it"),
    ] = None,
    since: Annotated[
        str | None, typer.Option("--from", help="Recorded at or after (ISO 8601; UTC if no offset)")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--to", help="Recorded before (ISO 8601; UTC if no offset)")
    ] = None,
    after: Annotated[int, typer.Option(min=0, help="Only events after this log position")] = 0,
    output: Annotated[Path | None, typer.Option(help="Write here instead of stdout")] = None,
    with_state: Annotated[
        bool,
        typer.Option(
            help="The events only, each with its stored body verbatim, to recheck its hash"
        ),
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="With --output: the summary as JSON on stdout"),
    ] = False,
) -> None:
    """Stream the event history as JSON Lines, one event per line, in log order.

    With no filter (and no --with-state): the offline export, every event's
    stored body with the signed checkpoints and public keys, for
    `ledger audit verify --export` with no database. With --output, a
    summary (lines written) is printed when done; a progress bar counts the
    log's positions meanwhile."""
    url = migrated_database_url()
    head = _log_head(url)
    with progress_bars("lines", as_json=as_json) as bars:
        advance = bars.phase("export", head)
        if (account, since, until, after, with_state) == (None, None, None, 0, False):
            with _opened(output) as sink:
                counted = _CountingSink(sink, advance, head)
                # The export only writes to its sink.
                events = export_offline_to(url, cast(IO[bytes], counted))
        else:
            export_filter = ExportFilter(
                account_id=account,
                since=_time(since, "--from"),
                until=_time(until, "--to"),
                after=after,
            )
            with psycopg.connect(url, autocommit=True) as connection, _opened(output) as sink:
                counted = _CountingSink(sink, advance, head)

                def connections() -> contextlib.nullcontext[psycopg.Connection[Any]]:
                    return contextlib.nullcontext(connection)

                for chunk in export_lines(connections, export_filter, with_state=with_state):
                    counted.write(chunk)
                events = counted.lines
        bars.finish("export")
    if output is None:
        return
    summary = {"output": str(output), "events": events, "log_position": head}
    if as_json:
        print_json(summary)
    else:
        typer.echo(f"exported {events:,} events (log position {head:,}) to {output}")


def _log_head(database_url: str) -> int:
    from projections.runner import log_head

    with psycopg.connect(database_url) as connection, connection.cursor() as cursor:
        return log_head(cursor)


class _CountingSink:
    """Writes through to `sink`, counting lines (an event each) for the bar:
    the export's own loops need no progress hook."""

    def __init__(self, sink: IO[bytes], advance: Callable[[int, int], None], total: int) -> None:
        self._sink = sink
        self._advance = advance
        self._total = total
        self.lines = 0

    def write(self, chunk: bytes) -> int:
        self.lines += chunk.count(b"\n")
        self._advance(min(self.lines, self._total), self._total)
        return self._sink.write(chunk)


@contextlib.contextmanager
def _opened(output: Path | None) -> Iterator[IO[bytes]]:
    if output is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    with output.open("wb") as file:
        yield file


@audit_app.command("verify")
def verify(
    skip_views: Annotated[
        bool, typer.Option("--skip-views", help="Check the log only, not the views")
    ] = False,
    export: Annotated[
        Path | None,
        typer.Option(help="Verify this offline export (`ledger audit export`), no database"),
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(help="Trusted public key(s), PEM (default: the configured file)"),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Check the hash chain and the signed checkpoints, versions, balances and
    every account's totals from the events alone, then each view against a
    fresh replay. Exit 1 on any finding."""
    if export is not None:
        tamper_report = verify_export(export, public_key)
        if as_json:
            print_json(_tamper_json(tamper_report))
        else:
            print_tamper_report(Console(), tamper_report)
            if tamper_report.ok:
                Console().print("[green]OK[/green]: no findings")
        raise typer.Exit(0 if tamper_report.ok else 1)
    console = Console(stderr=True)
    settings = command_settings()
    keys = _trusted_keys(console, settings, public_key)
    url = migrated_database_url()
    with progress_bars("events", as_json=as_json) as bars:
        report = verify_ledger(
            url,
            check_views=not skip_views,
            progress=_phases(bars),
            public_keys=keys,
            checkpoint_directory=checkpoint_dir(settings) if keys is not None else None,
        )
    if as_json:
        print_json(_report_json(report))
    else:
        print_report(Console(), report)
    raise typer.Exit(0 if report.ok else 1)


def _phases(bars: Bars) -> Callable[[str, int, int], None]:
    """verify_ledger's progress (phase, done, total): a bar per phase."""

    def progress(phase: str, done: int, total: int) -> None:
        bars.phase(phase)(done, total)

    return progress


def _finding_json(finding: Finding) -> dict[str, Any]:
    return {
        "kind": finding.kind.value,
        "position": finding.position,
        "message": finding.message,
        "details": list(finding.details),
    }


def _tamper_json(report: CheckpointReport) -> dict[str, Any]:
    first = report.first
    return {
        "ok": report.ok,
        "checkpoints_verified": report.checkpoints_verified,
        "key_ids": report.key_ids,
        "events_covered": report.events_covered,
        "covered_through": report.covered_through,
        "events_after_newest_checkpoint": report.window_events,
        "first_affected_event": None
        if first is None
        else {"event": str(first.event), "damage": first.damage.value, "message": first.message},
        "findings_total": len(report.findings) + report.findings_dropped,
        "findings": [
            {"event": str(item.event), "damage": item.damage.value, "message": item.message}
            for item in report.findings[:FINDINGS_SHOWN_MAX]
        ],
    }


def _report_json(report: VerifyReport) -> dict[str, Any]:
    """The report as one JSON object: the figures, the first bad event, the
    first FINDINGS_SHOWN_MAX findings and their total, each view's status."""
    first = report.first_bad_event
    return {
        "ok": report.ok,
        "events_checked": report.events_checked,
        "head_position": report.head_position,
        "log_elapsed_s": round(report.log_elapsed_s, 3),
        "elapsed_s": round(report.elapsed_s, 3),
        "events_per_s": round(report.events_per_s),
        "first_bad_event": None if first is None else _finding_json(first),
        "findings_total": len(report.findings) + report.findings_dropped,
        "findings": [_finding_json(item) for item in report.findings[:FINDINGS_SHOWN_MAX]],
        "checkpoints": _tamper_json(report.checkpoints) if report.checkpoints.key_ids else None,
        "views": [
            {"name": check.name, "status": check.status.value, "position": check.position}
            for check in report.views
        ],
    }


def _trusted_keys(console: Console, settings: Settings, given: Path | None) -> PublicKeys | None:
    """The keys given, else the configured ones; None (the chain alone) when
    none are configured yet: no checkpoint was ever signed here."""
    try:
        return audit_public_keys(settings, given)
    except AuditKeyError as error:
        if given is not None:
            raise typer.BadParameter(str(error)) from None
        console.print(f"[yellow]{error}: checking the chain alone, not the checkpoints[/yellow]")
        return None


def print_report(console: Console, report: VerifyReport) -> None:
    console.print(
        f"checked {report.events_checked:,} events (log head {report.head_position:,}) in "
        f"{report.log_elapsed_s:.2f} s ({report.events_per_s:,.0f} events/s); "
        f"total {report.elapsed_s:.2f} s"
    )
    if report.checkpoints.key_ids:
        print_tamper_report(console, report.checkpoints, findings=False)
    if report.views:
        views = Table("view", "status", "position", "digest (live)", "digest (replayed)")
        for check in report.views:
            views.add_row(
                check.name,
                check.status.value,
                f"{check.position:,}",
                _digests(check.live_digests),
                _digests(check.replayed_digests),
            )
        console.print(views)
    if report.ok:
        console.print("[green]OK[/green]: no findings")
        return
    first = report.first_bad_event
    if first is not None:
        console.print(f"[red]first bad event: position {first.position}[/red]: {first.message}")
    total = len(report.findings) + report.findings_dropped
    console.print(f"[red]{total} finding(s)[/red]")
    for finding in report.findings[:FINDINGS_SHOWN_MAX]:
        _print_finding(console, finding)
    if total > FINDINGS_SHOWN_MAX:
        console.print(f"... and {total - FINDINGS_SHOWN_MAX} more")


def _print_finding(console: Console, finding: Finding) -> None:
    where = f"position {finding.position}" if finding.position is not None else "-"
    console.print(f"[bold]{finding.kind.value}[/bold] ({where}): {finding.message}", markup=True)
    for line in finding.details:
        console.print(f"    {line}", markup=False, highlight=False)


def _digests(digests: dict[str, str]) -> str:
    return "\n".join(f"{table}: {digest[:16]}" for table, digest in digests.items())
