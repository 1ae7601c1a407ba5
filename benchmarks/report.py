"""What a writer benchmark run found, as a plain-text table or as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.naive_baseline import NaiveBaselineResult
from benchmarks.writer_floors import CopyLimit, RoundTripFloor


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
class WriterFloors:
    """The writer beside the database's own limits, measured in the same run
    on the same server (benchmarks/writer_floors.py), with the clients that
    wait on each transfer."""

    copy_limit: CopyLimit
    round_trip_floor: RoundTripFloor
    # One client submitting one transfer at a time and waiting for its result.
    single_client: PhaseResult
    # `waiting_clients` such clients at once.
    waiting_clients: int
    many_clients: PhaseResult
    # The round trips and the waiting clients ran in `rounds` rounds; each
    # figure above is its median round's. Every round's phases, to verify.
    rounds: int = 1
    round_phases: list[PhaseResult] = field(default_factory=list)


# The targets of docs/performance.md ("Writer"), as ratios in one run.
PREBUILT_COPY_FRACTION_TARGET = 0.25
THREADS_TO_PREBUILT_TARGET = 0.80
SINGLE_CLIENT_TO_ROUND_TRIP_TARGET = 0.80
MANY_TO_SINGLE_CLIENT_TARGET = 2.0


def floors_document(
    floors: WriterFloors, measured: PhaseResult, prebuilt: PhaseResult | None
) -> dict[str, Any]:
    """The floors under their stable keys, and the ratios between them. A
    transfer costs as many COPY rows as the events it writes (the prebuilt
    phase's events per transfer, stated under `events_per_transfer`)."""
    prebuilt_per_s = prebuilt.transfers_per_s if prebuilt is not None else None
    events_per_transfer = (
        prebuilt.events_written / prebuilt.transfers
        if prebuilt is not None and prebuilt.transfers
        else measured.events_written / measured.transfers
    )
    copy_rows_per_s = floors.copy_limit.rows_per_s
    single = floors.single_client.transfers_per_s
    ratios: dict[str, float | None] = {
        "prebuilt_copy_rows_to_copy_limit": (
            prebuilt_per_s * events_per_transfer / copy_rows_per_s
            if prebuilt_per_s is not None and copy_rows_per_s
            else None
        ),
        "threads_to_prebuilt": (
            measured.transfers_per_s / prebuilt_per_s if prebuilt_per_s else None
        ),
        "single_client_to_round_trip_floor": (
            single / floors.round_trip_floor.per_s if floors.round_trip_floor.per_s else None
        ),
        "eight_clients_to_single_client": (
            floors.many_clients.transfers_per_s / single if single else None
        ),
    }
    return {
        "copy_limit_rows_per_s": copy_rows_per_s,
        "round_trip_floor_per_s": floors.round_trip_floor.per_s,
        "writer_prebuilt_transfers_per_s": prebuilt_per_s,
        "writer_threads_transfers_per_s": measured.transfers_per_s,
        "single_client_transfers_per_s": single,
        "single_client_latency_p50_ms": floors.single_client.submission_latency_p50_ms,
        "single_client_latency_p99_ms": floors.single_client.submission_latency_p99_ms,
        "eight_clients_transfers_per_s": floors.many_clients.transfers_per_s,
        "eight_clients_latency_p50_ms": floors.many_clients.submission_latency_p50_ms,
        "eight_clients_latency_p99_ms": floors.many_clients.submission_latency_p99_ms,
        "events_per_transfer": events_per_transfer,
        "ratios": ratios,
        "targets": {
            "prebuilt_copy_rows_to_copy_limit": PREBUILT_COPY_FRACTION_TARGET,
            "threads_to_prebuilt": THREADS_TO_PREBUILT_TARGET,
            "single_client_to_round_trip_floor": SINGLE_CLIENT_TO_ROUND_TRIP_TARGET,
            "eight_clients_to_single_client": MANY_TO_SINGLE_CLIENT_TARGET,
        },
    }


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
    floors: WriterFloors | None = None
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
    if report.floors is not None:
        document.update(floors_document(report.floors, report.measured, report.prebuilt))
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


def _ratio(value: float | None, target: float) -> str:
    if value is None:
        return "not measured"
    return f"{value:.2f} (target {target:g}: {'met' if value >= target else 'NOT met'})"


def _floor_lines(report: WriterBenchmarkReport) -> list[str]:
    if report.floors is None:
        return []
    floors = report.floors
    document = floors_document(floors, report.measured, report.prebuilt)
    ratios, targets = document["ratios"], document["targets"]
    prebuilt = document["writer_prebuilt_transfers_per_s"]
    single, many = floors.single_client, floors.many_clients
    lines = [
        "",
        f"floors (same run, same server; round trips and waiting clients: the median of "
        f"{floors.rounds} interleaved rounds):",
        f"  COPY limit: {floors.copy_limit.rows_per_s:,.0f} rows/s "
        f"({floors.copy_limit.rows:,} event-sized rows, mean body "
        f"{floors.copy_limit.mean_state_bytes:,.0f} B, "
        f"{floors.copy_limit.rows_per_transaction:,} per transaction)",
        f"  round-trip floor: {floors.round_trip_floor.per_s:,.0f} INSERT+COMMIT/s (one client)",
        "  writer, prebuilt commands: "
        + (f"{prebuilt:,.0f} transfers/s" if prebuilt is not None else "not measured")
        + f" ({document['events_per_transfer']:.2f} events = COPY rows per transfer)",
        f"  writer, {report.config['client_threads']} client threads building commands: "
        f"{report.measured.transfers_per_s:,.0f} transfers/s",
        f"  one waiting client: {single.transfers_per_s:,.0f} transfers/s, "
        f"p50 {single.submission_latency_p50_ms:.2f} ms, "
        f"p99 {single.submission_latency_p99_ms:.2f} ms",
        f"  {floors.waiting_clients} waiting clients: {many.transfers_per_s:,.0f} transfers/s, "
        f"p50 {many.submission_latency_p50_ms:.2f} ms, "
        f"p99 {many.submission_latency_p99_ms:.2f} ms",
        "ratios:",
    ]
    lines += [f"  {name}: {_ratio(value, targets[name])}" for name, value in ratios.items()]
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
        *_floor_lines(report),
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
