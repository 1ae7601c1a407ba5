"""What an HTTP benchmark run found, beside its targets: a plain-text table, or JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from benchmarks.http_load import BATCH_ITEMS
from benchmarks.report import json_default
from benchmarks.server_profile import ProfileSummary

TRANSFERS_TITLE: Final[str] = "POST /v1/transfers, spread over every account"
HOT_TITLE: Final[str] = "POST /v1/transfers, all on one pair of accounts"
READS_TITLE: Final[str] = "GET /v1/accounts/{id}"
HEALTH_TITLE: Final[str] = "GET /healthz"
BATCH_TITLE: Final[str] = f"POST /v1/transfers/batch, {BATCH_ITEMS} transfers per request"
FLOOR_TITLE: Final[str] = "the floor: a bare FastAPI app's async GET / returning a constant"
TITLES: Final[tuple[tuple[str, str], ...]] = (
    ("floor", FLOOR_TITLE),
    ("health", HEALTH_TITLE),
    ("transfers", TRANSFERS_TITLE),
    ("hot", HOT_TITLE),
    ("reads", READS_TITLE),
    ("batch", BATCH_TITLE),
)
SHARE_LABELS: Final[dict[str, str]] = {
    "floor": "floor: bare FastAPI async GET /",
    "health": "GET /healthz",
    "transfers": "POST /v1/transfers, spread",
    "hot": "POST /v1/transfers, one hot pair",
    "reads": "GET /v1/accounts/{id}",
    "batch": "POST /v1/transfers/batch (transfers)",
}
# The batch route's figures per transfer, the rest per request.
PER_REQUEST: Final[dict[str, int]] = {"batch": BATCH_ITEMS}


@dataclass(frozen=True, slots=True)
class Target:
    # The least share of the baseline: the floor's requests/s in the same
    # run and process count, or (batch) the in-process writer's transfers/s.
    share_min: float
    latency_p99_ms: float | None
    errors: int | None
    baseline: str = "floor"


# Issue 22's targets, as ratios measured in one run on the same machine.
TARGETS: Final[dict[str, Target]] = {
    "health": Target(share_min=0.70, latency_p99_ms=None, errors=None),
    "transfers": Target(share_min=0.30, latency_p99_ms=50.0, errors=0),
    "hot": Target(share_min=0.30, latency_p99_ms=50.0, errors=0),
    "reads": Target(share_min=0.40, latency_p99_ms=50.0, errors=None),
    "batch": Target(share_min=0.80, latency_p99_ms=None, errors=None, baseline="writer"),
}


@dataclass(frozen=True, slots=True)
class HttpPhaseResult:
    kind: str
    clients: int
    requests: int
    seconds: float
    requests_per_s: float
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    latency_mean_ms: float
    errors: int
    # Measured requests by outcome: {"201": n} when all went well.
    outcomes: dict[str, int]
    warmup_requests: int
    # Mean cores busy in the window (1.0 = one core throughout), per process
    # tree: "load generator", "server", "postgresql", and "machine" (all CPUs).
    cpu_cores: dict[str, float]
    # From the server's /metrics, if it has them (one worker's, if several).
    writer: dict[str, float]
    profile: ProfileSummary | str | None = None

    @property
    def operations_per_s(self) -> float:
        """Requests/s; transfers/s for the batch route."""
        return self.requests_per_s * PER_REQUEST.get(self.kind, 1)

    def misses(self, baseline_per_s: float | None) -> list[str]:
        """How this phase falls short of its target; empty if it meets it (or
        has none). Without its baseline, the share is not judged."""
        target = TARGETS.get(self.kind)
        if target is None:
            return []
        missed = []
        if baseline_per_s and self.operations_per_s < target.share_min * baseline_per_s:
            missed.append(
                f"{self.operations_per_s / baseline_per_s:.0%} of the {target.baseline} "
                f"< {target.share_min:.0%}"
            )
        if target.latency_p99_ms is not None and self.latency_p99_ms >= target.latency_p99_ms:
            missed.append(f"p99 {self.latency_p99_ms:,.1f} ms >= {target.latency_p99_ms:g} ms")
        if target.errors is not None and self.errors > target.errors:
            missed.append(f"{self.errors:,} errors")
        return missed


@dataclass(frozen=True, slots=True)
class HttpServerRun:
    """One server configuration: its phases, in the order they ran."""

    workers: int
    command: str
    accounts: int
    phases: list[HttpPhaseResult]
    checks: list[str]
    failures: list[str]
    # The ASGI server of the service and of its floor (LEDGER_HTTP_SERVER).
    http_server: str = "uvicorn"
    # The transfers and reads phases twice more (--http-worker-busy): quiet,
    # then with the worker side busy; and what ran beside them.
    busy_quiet_phases: list[HttpPhaseResult] = field(default_factory=list)
    busy_phases: list[HttpPhaseResult] = field(default_factory=list)
    busy_work: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def title(self) -> str:
        plural = "es" if self.workers > 1 else ""
        return f"{self.workers} HTTP process{plural}, {self.http_server}"

    def phase(self, kind: str) -> HttpPhaseResult | None:
        return next((phase for phase in self.phases if phase.kind == kind), None)

    def busy_phase(self, kind: str) -> HttpPhaseResult | None:
        return next((phase for phase in self.busy_phases if phase.kind == kind), None)

    def busy_quiet_phase(self, kind: str) -> HttpPhaseResult | None:
        """The quiet pass the busy one is compared with."""
        return next((phase for phase in self.busy_quiet_phases if phase.kind == kind), None)

    def busy_ratio(self, kind: str) -> float | None:
        """The busy rate over the quiet one (1.0: no drop)."""
        quiet, busy = self.busy_quiet_phase(kind), self.busy_phase(kind)
        if quiet is None or busy is None or not quiet.requests_per_s:
            return None
        return busy.requests_per_s / quiet.requests_per_s


@dataclass(frozen=True, slots=True)
class HttpBenchmarkReport:
    config: dict[str, Any]
    environment: dict[str, str]
    runs: list[HttpServerRun]
    timed: str
    notes: list[str] = field(default_factory=list)
    # The batch route's baseline: the in-process writer's transfers/s.
    writer_baseline_transfers_per_s: float | None = None

    @property
    def ok(self) -> bool:
        """The harness did its work and the books balance (targets aside)."""
        return all(run.ok for run in self.runs)

    def baseline_per_s(self, run: HttpServerRun, kind: str) -> float | None:
        """What a phase of this run is a share of: the floor of the same run,
        or the in-process writer."""
        target = TARGETS.get(kind)
        if target is None:
            return None
        if target.baseline == "writer":
            return self.writer_baseline_transfers_per_s
        floor = run.phase("floor")
        return floor.requests_per_s if floor is not None else None

    def misses(self, run: HttpServerRun, phase: HttpPhaseResult) -> list[str]:
        missed = phase.misses(self.baseline_per_s(run, phase.kind))
        if phase.kind == "hot":
            spread = run.phase("transfers")
            if spread is not None and phase.requests_per_s < spread.requests_per_s:
                missed.append("lower than spread over every account")
        return missed


def to_document(report: HttpBenchmarkReport) -> dict[str, Any]:
    document = asdict(report)
    document["ok"] = report.ok
    document["targets"] = {kind: asdict(target) for kind, target in TARGETS.items()}
    for run_document, run in zip(document["runs"], report.runs, strict=True):
        for phase_document, phase in zip(run_document["phases"], run.phases, strict=True):
            baseline = report.baseline_per_s(run, phase.kind)
            misses = report.misses(run, phase)
            phase_document["operations_per_s"] = phase.operations_per_s
            phase_document["share_of_baseline"] = (
                phase.operations_per_s / baseline if baseline else None
            )
            phase_document["target_misses"] = misses
            phase_document["meets_target"] = not misses
        run_document["busy_over_quiet"] = {
            phase.kind: run.busy_ratio(phase.kind) for phase in run.busy_phases
        }
    return document


def to_json(report: HttpBenchmarkReport, indent: int | None = 2) -> str:
    return json.dumps(to_document(report), indent=indent, default=json_default)


def _number(value: float, decimals: int = 0) -> str:
    return f"{value:,.{decimals}f}"


def _cores(phase: HttpPhaseResult, name: str) -> str:
    value = phase.cpu_cores.get(name)
    if value is None:
        return "n/a"
    system = phase.cpu_cores.get(f"{name} system")
    return f"{value:,.2f}" if system is None else f"{value:,.2f} ({system:,.2f} sys)"


def _per_request_ms(phase: HttpPhaseResult, name: str) -> str:
    value = phase.cpu_cores.get(name)
    if value is None or not phase.requests_per_s:
        return "n/a"
    return f"{1000 * value / phase.requests_per_s:,.2f}"


def _outcomes(phase: HttpPhaseResult) -> str:
    expected = "201" if phase.kind in ("transfers", "hot") else "200"
    others = {code: count for code, count in phase.outcomes.items() if code != expected}
    if not others:
        return "-"
    return ", ".join(f"{code}: {count:,}" for code, count in sorted(others.items()))


_ROWS: Final[tuple[str, ...]] = (
    "requests/s",
    "latency p50 (ms)",
    "latency p90 (ms)",
    "latency p99 (ms)",
    "latency max (ms)",
    "errors",
    "requests measured",
    "measured window (s)",
    "server CPU (cores)",
    "server CPU per request (ms)",
    "PostgreSQL CPU (cores)",
    "load generator CPU (cores)",
    "machine busy (of {cpus} cores)",
    "writer batches",
    "mean transfers per batch",
    "mean commit (ms)",
    "batches retried on conflict",
    "meets target",
)


def _target_column(kind: str) -> list[str]:
    target = TARGETS.get(kind)
    column = [""] * len(_ROWS)
    if target is None:
        column[0] = "(none)"
        return column
    column[0] = f">= {target.share_min:.0%} of {target.baseline}"
    if target.latency_p99_ms is not None:
        column[3] = f"< {target.latency_p99_ms:g}"
    if target.errors is not None:
        column[5] = f"{target.errors}"
    return column


def _phase_column(phase: HttpPhaseResult, misses: list[str]) -> list[str]:
    writer = phase.writer
    return [
        _number(phase.requests_per_s),
        _number(phase.latency_p50_ms, 1),
        _number(phase.latency_p90_ms, 1),
        _number(phase.latency_p99_ms, 1),
        _number(phase.latency_max_ms, 1),
        _number(phase.errors),
        _number(phase.requests),
        _number(phase.seconds, 2),
        _cores(phase, "server"),
        _per_request_ms(phase, "server"),
        _cores(phase, "postgresql"),
        _cores(phase, "load generator"),
        _cores(phase, "machine"),
        _number(writer["batches"]) if "batches" in writer else "n/a",
        _number(writer["mean_batch_commands"], 1) if "mean_batch_commands" in writer else "n/a",
        _number(writer["mean_commit_ms"], 2) if "mean_commit_ms" in writer else "n/a",
        _number(writer["conflicts_retried"]) if "conflicts_retried" in writer else "n/a",
        ("yes" if not misses else "NO") if phase.kind in TARGETS else "-",
    ]


def _table(report: HttpBenchmarkReport, kind: str, cpus: str) -> list[str]:
    columns: list[tuple[str, list[str]]] = [("target", _target_column(kind))]
    for run in report.runs:
        for phase in run.phases:
            if phase.kind == kind:
                columns.append((run.title, _phase_column(phase, report.misses(run, phase))))
    if len(columns) == 1:
        return []
    rows = [label.format(cpus=cpus) for label in _ROWS]
    label_width = max(len(label) for label in rows)
    width = max(12, *(len(value) for _, values in columns for value in values))
    lines = [" " * label_width + "".join(f"  {title:>{width}}" for title, _ in columns)]
    for index, label in enumerate(rows):
        if kind not in ("transfers", "hot") and (
            _ROWS.index("writer batches") <= index < len(_ROWS) - 1
        ):
            continue
        cells = "".join(f"  {values[index]:>{width}}" for _, values in columns)
        lines.append(f"{label:<{label_width}}{cells}")
    return lines


def _profile_lines(run: HttpServerRun, phase: HttpPhaseResult) -> list[str]:
    profile = phase.profile
    if profile is None:
        return []
    title = f"profile: {phase.kind}, {run.title}"
    if isinstance(profile, str):
        return ["", f"{title}: {profile}"]
    lines = [
        "",
        f"{title} (py-spy --gil, {profile.rate_hz} Hz, {profile.seconds:.0f} s, "
        f"{profile.samples:,} samples in {profile.processes} process(es)): "
        f"the interpreter lock was held {100 * profile.gil_busy_share:.0f} % of the time",
        "  by area of code (leaf frame):",
    ]
    lines += [f"    {100 * share:5.1f} %  {name}" for name, share in profile.areas]
    lines.append("  self (leaf function):")
    lines += [f"    {100 * share:5.1f} %  {name}" for name, share in profile.self_top]
    lines.append("  inclusive (anywhere on the stack):")
    lines += [f"    {100 * share:5.1f} %  {name}" for name, share in profile.inclusive_top]
    lines.append(f"  raw stacks: {profile.raw_path}")
    return lines


def _shares(report: HttpBenchmarkReport) -> list[str]:
    """Each route's rate as a share of its baseline, one column per process count."""
    if not any(run.phase("floor") for run in report.runs) and (
        report.writer_baseline_transfers_per_s is None
    ):
        return []
    rows: list[tuple[str, list[str]]] = []
    for kind in SHARE_LABELS:
        cells = []
        for run in report.runs:
            phase = run.phase(kind)
            if phase is None:
                cells.append("-")
                continue
            baseline = report.baseline_per_s(run, kind)
            share = f" ({phase.operations_per_s / baseline:.0%})" if baseline else ""
            cells.append(f"{phase.operations_per_s:,.0f}{share}")
        if any(cell != "-" for cell in cells):
            rows.append((SHARE_LABELS[kind], cells))
    writer = report.writer_baseline_transfers_per_s
    if writer is not None:
        rows.append(("in-process writer (transfers)", [f"{writer:,.0f}"] * len(report.runs)))
    headers = [run.title for run in report.runs]
    label_width = max(len(label) for label, _ in rows)
    width = max(14, *(len(cell) for _, cells in rows for cell in cells), *map(len, headers))
    lines = [
        "",
        "per second, and as a share of the floor (same server, same process count); "
        "the batch route in transfers/s, as a share of the in-process writer",
        " " * label_width + "".join(f"  {header:>{width}}" for header in headers),
    ]
    for label, cells in rows:
        lines.append(f"{label:<{label_width}}" + "".join(f"  {cell:>{width}}" for cell in cells))
    return lines


BUSY_LABELS: Final[dict[str, str]] = {
    "transfers": "POST /v1/transfers, spread",
    "reads": "GET /v1/accounts/{id}",
}


def _busy(report: HttpBenchmarkReport) -> list[str]:
    """Each route quiet and with the worker busy: requests/s, p99, busy/quiet."""
    runs = [run for run in report.runs if run.busy_phases]
    if not runs:
        return []
    lines = [
        "",
        "with the worker busy (a projection rebuild and a reconciliation run beside the "
        "load): requests/s quiet -> busy (busy/quiet), p99 ms quiet -> busy",
    ]
    for run in runs:
        lines.append(f"  {run.title}:")
        for kind, label in BUSY_LABELS.items():
            quiet, busy = run.busy_quiet_phase(kind), run.busy_phase(kind)
            ratio = run.busy_ratio(kind)
            if quiet is None or busy is None:
                continue
            shown_ratio = f"{ratio:.0%}" if ratio is not None else "n/a"
            lines.append(
                f"    {label:<28} {quiet.requests_per_s:>9,.0f} -> {busy.requests_per_s:>9,.0f}"
                f" ({shown_ratio}); p99 {quiet.latency_p99_ms:,.1f} -> "
                f"{busy.latency_p99_ms:,.1f}; errors {busy.errors:,}; "
                f"machine busy {_cores(busy, 'machine')}"
            )
        lines += [f"    {line}" for line in run.busy_work]
    return lines


def render(report: HttpBenchmarkReport) -> str:
    config = report.config
    cpus = report.environment.get("cpus", "?")
    lines = [
        f"Ledger HTTP benchmark: {config['clients']} concurrent clients, "
        f"{config['accounts']:,} funded user accounts, {config['duration_s']:g} s measured "
        f"per phase after {config['warmup_s']:g} s of warm-up",
    ]
    lines += _shares(report)
    lines += _busy(report)
    for kind, title in TITLES:
        table = _table(report, kind, cpus)
        if table:
            per = " (requests/s: requests; transfers/s = x" + str(BATCH_ITEMS) + ")"
            lines += ["", f"{title} ({kind}){per if kind == 'batch' else ''}", *table]
    for run in report.runs:
        for phase in run.phases:
            misses = report.misses(run, phase)
            verdict = "meets its target" if not misses else "misses: " + "; ".join(misses)
            if phase.kind not in TARGETS:
                verdict = "no target"
            lines.append(
                f"{phase.kind}, {run.title}: {verdict}; "
                f"mean latency {phase.latency_mean_ms:,.1f} ms; "
                f"{phase.warmup_requests:,} warm-up requests; other outcomes: {_outcomes(phase)}"
            )
    lines += ["", f"timed: {report.timed}", ""]
    for run in report.runs:
        lines.append(
            f"server ({run.title}): {run.command}; verification: {'OK' if run.ok else 'FAILED'}"
        )
        lines += [f"  - {check}" for check in run.checks]
        lines += [f"  ! {failure}" for failure in run.failures]
    lines += ["", "environment: " + ", ".join(f"{k}={v}" for k, v in report.environment.items())]
    lines += [f"note: {note}" for note in report.notes]
    for run in report.runs:
        for phase in run.phases:
            lines += _profile_lines(run, phase)
    return "\n".join(lines)
