"""What a projections benchmark run found, as a plain-text table or as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from benchmarks.report import Verification, json_default

# What the issue asks of a 2-core machine, in events of the log per second.
REBUILD_TARGET_EVENTS_PER_S: Final[int] = 100_000
VERIFY_TARGET_EVENTS_PER_S: Final[int] = 100_000
VERIFY_VIEWS_TARGET_EVENTS_PER_S: Final[int] = 60_000
# A full reconciliation of 1,000,000 events in 25 s at most.
RECONCILE_FULL_TARGET_EVENTS_PER_S: Final[int] = 1_000_000 // 25
# An incremental run after 10,000 new events in 2 s at most, at any size.
RECONCILE_INCREMENTAL_TARGET_EVENTS_PER_S: Final[int] = 10_000 // 2
# Peak RSS of a phase at the largest size, over its figure at the smaller one.
RSS_GROWTH_TARGET: Final[float] = 0.10


@dataclass(frozen=True, slots=True)
class MemoryTrace:
    """Resident memory of the child process that ran one phase, in KiB.

    `quarter_max_rss_kib`: the largest RSS sampled in each quarter of the
    phase's wall time; flat when the phase streams the log, rising when it
    holds on to what it read. `peak_rss_kib`: the child's peak RSS (VmHWM on
    Linux: imports, connections and all)."""

    rss_at_start_kib: int
    quarter_max_rss_kib: list[int]
    peak_rss_kib: int
    samples: int

    @property
    def growth_kib(self) -> int:
        """Last quarter's peak minus the first quarter's: what the history's
        second three quarters added."""
        quarters = self.quarter_max_rss_kib
        return quarters[-1] - quarters[0] if quarters else 0


@dataclass(frozen=True, slots=True)
class PhaseResult:
    """One timed pass over the log, in a child process of its own."""

    name: str
    kind: str  # "rebuild", "verify" or "baseline"
    # Events of the log the pass covered (positions 1..events).
    events: int
    seconds: float
    events_per_s: float
    # CPU seconds of the child (user + system): the Python side's share;
    # the rest of the wall time is spent waiting on PostgreSQL.
    client_cpu_s: float
    memory: MemoryTrace
    target_events_per_s: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    profile: str | None = None

    @property
    def meets_target(self) -> bool | None:
        if self.target_events_per_s is None:
            return None
        return self.events_per_s >= self.target_events_per_s


@dataclass(frozen=True, slots=True)
class HistoryResult:
    """The log the passes read, written through the ledger's own writer."""

    events: int
    accounts: int
    commands: dict[str, int]
    seconds: float
    events_per_s: float
    results: dict[str, int]


@dataclass(frozen=True, slots=True)
class ProjectionBenchmarkReport:
    config: dict[str, Any]
    environment: dict[str, str]
    history: HistoryResult
    phases: list[PhaseResult]
    # None when the run left it out (`scale_only`).
    baseline: PhaseResult | None
    verification: Verification
    timed: str
    notes: list[str] = field(default_factory=list)

    def phase(self, name: str) -> PhaseResult:
        for phase in self.phases:
            if phase.name == name:
                return phase
        raise KeyError(name)

    def ratio(self, phase: PhaseResult) -> float:
        """The phase's events/s over the baseline's (0 without one)."""
        baseline = self.baseline.events_per_s if self.baseline is not None else 0.0
        return phase.events_per_s / baseline if baseline else 0.0

    @property
    def all_phases(self) -> list[PhaseResult]:
        return [*self.phases, *([self.baseline] if self.baseline is not None else [])]


def to_json(report: ProjectionBenchmarkReport, indent: int | None = 2) -> str:
    document = asdict(report)
    entries = [*document["phases"], *([document["baseline"]] if report.baseline else [])]
    for phase, entry in zip(report.all_phases, entries, strict=True):
        entry["ratio_to_baseline"] = report.ratio(phase)
        entry["meets_target"] = phase.meets_target
        entry["memory"]["growth_kib"] = phase.memory.growth_kib
    document["verification"]["ok"] = report.verification.ok
    return json.dumps(document, indent=indent, default=json_default)


def _mib(kib: int) -> str:
    return f"{kib / 1024:,.0f}"


def _target(phase: PhaseResult) -> str:
    met = phase.meets_target
    if met is None:
        return "-"
    return f"{phase.target_events_per_s:,} {'met' if met else 'MISSED'}"


HEADERS: Final[tuple[str, ...]] = (
    "phase",
    "events",
    "wall s",
    "events/s",
    "x baseline",
    "target events/s",
    "client CPU s",
    "peak RSS MiB",
    "RSS MiB by quarter",
)


def _row(report: ProjectionBenchmarkReport, phase: PhaseResult) -> list[str]:
    memory = phase.memory
    return [
        phase.name,
        f"{phase.events:,}",
        f"{phase.seconds:,.2f}",
        f"{phase.events_per_s:,.0f}",
        f"{report.ratio(phase):,.1f}",
        _target(phase),
        f"{phase.client_cpu_s:,.1f}",
        _mib(memory.peak_rss_kib),
        " / ".join(_mib(value) for value in memory.quarter_max_rss_kib),
    ]


def _table(report: ProjectionBenchmarkReport) -> list[str]:
    rows = [list(HEADERS)] + [_row(report, phase) for phase in report.all_phases]
    widths = [max(len(row[column]) for row in rows) for column in range(len(HEADERS))]
    lines = []
    for number, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
        if number == 0:
            lines.append("-" * len(lines[0]))
    return lines


def render(report: ProjectionBenchmarkReport) -> str:
    history = report.history
    commands = ", ".join(f"{count:,} {kind}" for kind, count in history.commands.items())
    lines = [
        f"Projections benchmark: {history.events:,} events in the log, "
        f"{history.accounts:,} accounts, seed {report.config['seed']}",
        "",
        *_table(report),
        "",
        f"history (written through the ledger's writer, not timed above): "
        f"{history.seconds:,.1f} s, {history.events_per_s:,.0f} events/s; {commands}",
        "RSS by quarter: the largest RSS sampled in each quarter of the phase's wall time "
        "(flat = the phase streams the log); peak RSS: the child process's high-water mark "
        "(VmHWM), interpreter and imports included",
    ]
    for phase in report.all_phases:
        growth = phase.memory.growth_kib
        lines.append(
            f"  {phase.name}: RSS {_mib(phase.memory.rss_at_start_kib)} MiB at start, "
            f"{'+' if growth >= 0 else ''}{growth / 1024:,.1f} MiB from the first quarter to "
            f"the last ({phase.memory.samples} samples)"
            + (
                "; " + ", ".join(f"{key}={value}" for key, value in phase.detail.items())
                if phase.detail
                else ""
            )
        )
    lines += [
        "",
        f"timed: {report.timed}",
        "",
        "verification: " + ("OK" if report.verification.ok else "FAILED"),
    ]
    lines += [f"  - {check}" for check in report.verification.checks]
    lines += [f"  ! {failure}" for failure in report.verification.failures]
    lines += ["", "environment: " + ", ".join(f"{k}={v}" for k, v in report.environment.items())]
    lines += [f"note: {note}" for note in report.notes]
    for phase in report.phases:
        if phase.profile:
            lines += ["", f"profile of {phase.name} (cProfile, child process):", phase.profile]
    return "\n".join(lines)
