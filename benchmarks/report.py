"""What a writer benchmark run found, as a plain-text table or as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.naive_baseline import NaiveBaselineResult


@dataclass(frozen=True, slots=True)
class PhaseResult:
    """Transfers pushed through the writer by the client threads, and what it did."""

    name: str
    transfers: int
    seconds: float
    transfers_per_s: float
    batches_committed: int
    mean_batch_size: float
    events_written: int
    events_per_s: float
    conflicts_retried: int
    submissions: int
    submission_latency_p50_ms: float
    submission_latency_p99_ms: float
    submission_latency_max_ms: float
    # Whether the clients built the commands inside the timed section, and
    # the CPU time spent drawing transfers and building commands (summed over
    # the client threads; or, when built beforehand, outside the timing).
    commands_built_in_timing: bool
    client_build_cpu_s: float
    results: dict[str, int]


@dataclass(frozen=True, slots=True)
class MemoryUsage:
    """Peak resident set size (ru_maxrss) of this process, in KiB."""

    peak_rss_at_start_kib: int
    peak_rss_before_measured_kib: int
    peak_rss_after_measured_kib: int
    peak_rss_at_end_kib: int

    @property
    def measured_peak_growth_kib(self) -> int:
        return self.peak_rss_after_measured_kib - self.peak_rss_before_measured_kib


@dataclass(frozen=True, slots=True)
class Verification:
    checks: list[str]
    failures: list[str]

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass(frozen=True, slots=True)
class WriterBenchmarkReport:
    config: dict[str, Any]
    environment: dict[str, str]
    setup_seconds: float
    history: PhaseResult
    measured: PhaseResult
    prebuilt: PhaseResult | None
    baseline: NaiveBaselineResult
    verification: Verification
    memory: MemoryUsage
    timed: str
    writer_profile: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def speedup(self) -> float:
        baseline = self.baseline.transfers_per_s
        return self.measured.transfers_per_s / baseline if baseline else 0.0


def to_json(report: WriterBenchmarkReport, indent: int | None = 2) -> str:
    document = asdict(report)
    document["speedup"] = report.speedup
    document["verification"]["ok"] = report.verification.ok
    document["memory"]["measured_peak_growth_kib"] = report.memory.measured_peak_growth_kib
    return json.dumps(document, indent=indent, default=json_default)


def json_default(value: object) -> str:
    """What json.dumps cannot write itself in the benchmarks' reports (paths)."""
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _number(value: float, decimals: int = 0) -> str:
    return f"{value:,.{decimals}f}"


def _kib(value: int) -> str:
    return f"{value / 1024:,.1f} MiB"


def _phase_column(phase: PhaseResult) -> list[str]:
    return [
        _number(phase.transfers),
        _number(phase.seconds, 2),
        _number(phase.transfers_per_s),
        _number(phase.events_written),
        _number(phase.events_per_s),
        _number(phase.batches_committed),
        _number(phase.mean_batch_size, 1),
        _number(phase.submission_latency_p50_ms, 1),
        _number(phase.submission_latency_p99_ms, 1),
        _number(phase.transfers - phase.results.get("ok", 0)),
    ]


def _baseline_column(baseline: NaiveBaselineResult) -> list[str]:
    return [
        _number(baseline.transfers),
        _number(baseline.seconds, 2),
        _number(baseline.transfers_per_s),
        _number(baseline.events_written),
        _number(baseline.events_per_s),
        _number(baseline.saves),
        "1.0",
        _number(baseline.transfer_latency_p50_ms, 2),
        _number(baseline.transfer_latency_p99_ms, 2),
        _number(baseline.failed_transfers),
    ]


ROW_LABELS = (
    "transfers",
    "wall time (s)",
    "transfers/s",
    "events written",
    "events/s",
    "commits (batches | saves)",
    "mean transfers per commit",
    "latency p50 (ms)",
    "latency p99 (ms)",
    "failed transfers",
)


def _table(report: WriterBenchmarkReport) -> list[str]:
    columns: list[tuple[str, list[str]]] = [("ledger writer", _phase_column(report.measured))]
    if report.prebuilt is not None:
        columns.append(("writer, prebuilt", _phase_column(report.prebuilt)))
    columns.append(("naive baseline", _baseline_column(report.baseline)))
    label_width = max(len(label) for label in ROW_LABELS)
    width = max(16, *(len(value) for _, values in columns for value in values))
    lines = [" " * label_width + "".join(f"  {title:>{width}}" for title, _ in columns)]
    for row, label in enumerate(ROW_LABELS):
        cells = "".join(f"  {values[row]:>{width}}" for _, values in columns)
        lines.append(f"{label:<{label_width}}{cells}")
    return lines


def render(report: WriterBenchmarkReport) -> str:
    measured, history, baseline = report.measured, report.history, report.baseline
    config = report.config
    memory = report.memory
    lines = [
        f"Ledger writer benchmark: {config['accounts']:,} accounts, "
        f"{history.transfers:,} transfers of history, seed {config['seed']}",
        "",
        *_table(report),
        "",
        f"speedup: {report.speedup:,.1f}x the naive baseline's transfers/s",
    ]
    if report.prebuilt is not None and baseline.transfers_per_s:
        lines.append(
            f"writer only (commands built before timing): "
            f"{report.prebuilt.transfers_per_s / baseline.transfers_per_s:,.1f}x the baseline"
        )
    lines += [
        f"history load (same writer, {history.transfers:,} transfers): "
        f"{history.seconds:,.2f} s, {history.transfers_per_s:,.0f} transfers/s, "
        f"{history.batches_committed:,} batches; account setup {report.setup_seconds:,.2f} s",
        f"ledger latency is per submission of one chunk of up to {config['chunk_size']:,} "
        f"transfers ({measured.submissions:,} submissions, max "
        f"{measured.submission_latency_max_ms:,.1f} ms); the baseline's is per transfer",
        f"client threads: {config['client_threads']}, spending "
        f"{measured.client_build_cpu_s:,.2f} s of CPU building commands (inside the timing)",
        f"version conflicts retried: {measured.conflicts_retried}",
        f"peak RSS (ru_maxrss): {_kib(memory.peak_rss_at_end_kib)} at the end; "
        f"{_kib(memory.peak_rss_before_measured_kib)} before the measured phase, "
        f"{_kib(memory.peak_rss_after_measured_kib)} after it "
        f"(+{_kib(memory.measured_peak_growth_kib)})",
        "",
        f"timed: {report.timed}",
        "",
        "verification: " + ("OK" if report.verification.ok else "FAILED"),
    ]
    lines += [f"  - {check}" for check in report.verification.checks]
    lines += [f"  ! {failure}" for failure in report.verification.failures]
    lines += ["", "environment: " + ", ".join(f"{k}={v}" for k, v in report.environment.items())]
    lines += [f"note: {note}" for note in report.notes]
    if report.writer_profile:
        lines += ["", "writer thread profile (measured phase, cProfile):", report.writer_profile]
    return "\n".join(lines)
