"""What a reconciliation benchmark run found, as a plain-text table or as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from benchmarks.report import Verification, json_default

# The issue names no peer to compare a reconciliation run with.
NO_BASELINE: Final[str] = "no peer baseline: the issue names none"


@dataclass(frozen=True, slots=True)
class CheckTiming:
    """One check of the run, as the run recorded it (its row in the view)."""

    name: str
    status: str
    elapsed_s: float
    discrepancies_found: int
    measure: str
    expected: int
    actual: int
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class RunMemory:
    """Resident memory of the benchmark process, where the checks run, in KiB.

    `rss_before_kib`: just before the run; `peak_rss_kib`: the largest seen
    while it ran (the kernel's high-water mark, reset just before the run,
    where it could be; else the largest sample)."""

    rss_before_kib: int
    peak_rss_kib: int
    rss_after_kib: int
    samples: int
    peak_from: str

    @property
    def growth_kib(self) -> int:
        return self.peak_rss_kib - self.rss_before_kib


@dataclass(frozen=True, slots=True)
class LoadResult:
    """The data set the run reconciles, written before any timing."""

    events: int
    demo_lines: list[str]
    history_commands: dict[str, int]
    results: dict[str, int]
    seconds: float
    events_per_s: float
    rebuild_seconds: float


@dataclass(frozen=True, slots=True)
class AuditReference:
    """`verify_ledger(check_views=True)` on the same data, in a child process:
    the audit checks 1 and 2 build on, for reference only."""

    seconds: float
    events_checked: int
    events_per_s: float
    peak_rss_kib: int
    ok: bool


@dataclass(frozen=True, slots=True)
class ReconciliationBenchmarkReport:
    config: dict[str, Any]
    environment: dict[str, str]
    load: LoadResult
    # Events in the log when the run started: what it reconciles.
    events: int
    run_status: str
    run_seconds: float
    checks: list[CheckTiming]
    memory: RunMemory
    audit_reference: AuditReference | None
    # Each exception the run raised: "check: kind subject: message".
    exceptions: list[str]
    verification: Verification
    timed: str
    notes: list[str] = field(default_factory=list)

    @property
    def events_per_s(self) -> float:
        return self.events / self.run_seconds if self.run_seconds else 0.0

    def share(self, check: CheckTiming) -> float:
        """The check's part of the run's wall time."""
        return check.elapsed_s / self.run_seconds if self.run_seconds else 0.0


def to_json(report: ReconciliationBenchmarkReport, indent: int | None = 2) -> str:
    document = asdict(report)
    document["events_per_s"] = report.events_per_s
    document["memory"]["growth_kib"] = report.memory.growth_kib
    for check, entry in zip(report.checks, document["checks"], strict=True):
        entry["share_of_run"] = report.share(check)
    document["verification"]["ok"] = report.verification.ok
    return json.dumps(document, indent=indent, default=json_default)


def _mib(kib: int) -> str:
    return f"{kib / 1024:,.0f} MiB"


HEADERS: Final[tuple[str, ...]] = (
    "check",
    "status",
    "elapsed s",
    "share of run",
    "events/s",
    "discrepancies",
)


def _check_row(report: ReconciliationBenchmarkReport, check: CheckTiming) -> list[str]:
    return [
        check.name,
        check.status,
        f"{check.elapsed_s:,.2f}",
        f"{report.share(check):.1%}",
        f"{report.events / check.elapsed_s:,.0f}" if check.elapsed_s else "-",
        f"{check.discrepancies_found:,}",
    ]


def _table(report: ReconciliationBenchmarkReport) -> list[str]:
    checked = sum(check.elapsed_s for check in report.checks)
    rows = [list(HEADERS)]
    rows += [_check_row(report, check) for check in report.checks]
    rows.append(
        [
            "recording (run, results, exceptions)",
            "",
            f"{max(report.run_seconds - checked, 0.0):,.2f}",
            f"{max(report.run_seconds - checked, 0.0) / report.run_seconds:.1%}"
            if report.run_seconds
            else "-",
            "",
            "",
        ]
    )
    rows.append(
        [
            "total: the run",
            report.run_status.upper(),
            f"{report.run_seconds:,.2f}",
            "100.0%",
            f"{report.events_per_s:,.0f}",
            f"{sum(check.discrepancies_found for check in report.checks):,}",
        ]
    )
    reference = report.audit_reference
    if reference is not None:
        rows.append(
            [
                "reference: verify_ledger(check_views=True)",
                "ok" if reference.ok else "FAILED",
                f"{reference.seconds:,.2f}",
                "-",
                f"{reference.events_per_s:,.0f}",
                "",
            ]
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(HEADERS))]
    lines = []
    for number, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
        if number in (0, len(report.checks) + 1):
            lines.append("-" * len(lines[0]))
    return lines


def render(report: ReconciliationBenchmarkReport) -> str:
    load, memory = report.load, report.memory
    environment = report.environment
    history = ", ".join(f"{count:,} {kind}" for kind, count in load.history_commands.items())
    lines = [
        f"Reconciliation benchmark: one full run (RunType.MANUAL) over {report.events:,} "
        f"events in the log, seed {report.config['seed']}; {NO_BASELINE}",
        "",
        *_table(report),
        "",
        f"events:       {report.events:,} in the log when the run started",
        f"events/s:     {report.events_per_s:,.0f} (events / the run's wall time)",
        f"peak RSS:     {_mib(memory.peak_rss_kib)} ({memory.peak_from}); "
        f"{_mib(memory.rss_before_kib)} before the run, "
        f"{'+' if memory.growth_kib >= 0 else ''}{memory.growth_kib / 1024:,.1f} MiB growth, "
        f"{_mib(memory.rss_after_kib)} after ({memory.samples} samples)",
        f"machine:      {environment.get('cpus', '?')} CPUs, "
        f"{environment.get('cpu_model', 'unknown')}; PostgreSQL "
        f"{environment.get('postgresql', 'unknown')}",
    ]
    reference = report.audit_reference
    if reference is not None:
        lines.append(
            f"reference:    verify_ledger(check_views=True), child process: "
            f"{reference.seconds:,.2f} s, {reference.events_checked:,} events checked, "
            f"peak RSS {_mib(reference.peak_rss_kib)}"
        )
    lines += [
        "",
        f"data set (written before any timing): {load.events:,} events in "
        f"{load.seconds:,.1f} s ({load.events_per_s:,.0f} events/s); views rebuilt in "
        f"{load.rebuild_seconds:,.1f} s",
        *[f"  demo: {line}" for line in load.demo_lines],
        f"  history: {history}",
        f"  results: {', '.join(f'{code} {count:,}' for code, count in load.results.items())}",
        "",
        f"timed: {report.timed}",
        "",
        "verification: " + ("OK" if report.verification.ok else "FAILED"),
    ]
    lines += [f"  - {check}" for check in report.verification.checks]
    lines += [f"  ! {failure}" for failure in report.verification.failures]
    lines += [f"  ! exception {exception}" for exception in report.exceptions]
    lines += ["", "environment: " + ", ".join(f"{k}={v}" for k, v in environment.items())]
    lines += [f"note: {note}" for note in report.notes]
    return "\n".join(lines)
