"""Where the CPU went during a benchmark phase: per process tree, and in the server's code.

`CpuMeter` reads /proc (Linux) before and after a phase: CPU seconds of the
server's process tree, the PostgreSQL server's process tree, and the whole
machine. Elsewhere it reports nothing rather than guessing.

`SamplingProfiler` runs py-spy (an optional tool: `pip install py-spy`) on the
server's process tree for the phase, keeping only samples of the thread that
holds the interpreter lock (`--gil`), and summarises them: the share of the
phase the lock was held at all, and where: by leaf function (self), by any
function on the stack (inclusive), and by area of code.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Final

PROC: Final[Path] = Path("/proc")
CLOCK_TICKS_PER_S: Final[int] = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PROFILE_RATE_HZ: Final[int] = 200
PROFILE_TOP: Final[int] = 20


# CPU time per process tree ----------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (which may hold spaces)."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def process_tree(root_pid: int) -> set[int]:
    """The process and all its descendants, as now."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [root_pid]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


def parent_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def cpu_ticks(pids: set[int]) -> dict[int, tuple[int, int]]:
    """(user, system) clock ticks of each process still running."""
    ticks: dict[int, tuple[int, int]] = {}
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            # utime and stime are fields 14 and 15 of stat; 12 and 13 here.
            ticks[pid] = int(fields[11]), int(fields[12])
    return ticks


def machine_busy_ticks() -> tuple[int, int] | None:
    """(busy, total) clock ticks of all CPUs since boot."""
    try:
        first = (PROC / "stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    values = [int(value) for value in first[1:9]]
    idle = values[3] + values[4]
    total = sum(values)
    return total - idle, total


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    trees: dict[str, dict[int, tuple[int, int]]]
    machine: tuple[int, int] | None


class CpuMeter:
    """CPU used by named process trees (rooted at given pids) between two snapshots."""

    def __init__(self, roots: dict[str, int | None]) -> None:
        self._roots = {name: pid for name, pid in roots.items() if pid is not None}
        self.available = PROC.is_dir() and machine_busy_ticks() is not None

    def snapshot(self) -> CpuSnapshot:
        if not self.available:
            return CpuSnapshot({}, None)
        trees = {name: cpu_ticks(process_tree(pid)) for name, pid in self._roots.items()}
        return CpuSnapshot(trees, machine_busy_ticks())

    def cores_used(
        self, before: CpuSnapshot, after: CpuSnapshot, seconds: float
    ) -> dict[str, float]:
        """Mean cores busy per tree (1.0 = one core all the time), and the
        machine's; "<tree> system" is the part spent in the kernel."""
        if not self.available or seconds <= 0:
            return {}
        used: dict[str, float] = {}
        for name, ticks_after in after.trees.items():
            ticks_before = before.trees.get(name, {})
            user = system = 0
            for pid, (user_after, system_after) in ticks_after.items():
                # A process that started inside the window counts from zero.
                user_before, system_before = ticks_before.get(pid, (0, 0))
                user += user_after - user_before
                system += system_after - system_before
            used[name] = (user + system) / CLOCK_TICKS_PER_S / seconds
            used[f"{name} system"] = system / CLOCK_TICKS_PER_S / seconds
        if before.machine and after.machine:
            busy = after.machine[0] - before.machine[0]
            total = after.machine[1] - before.machine[1]
            cpus = os.cpu_count() or 1
            used["machine"] = cpus * busy / total if total else 0.0
        return used


# Sampling the server with py-spy -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProfileSummary:
    samples: int
    seconds: float
    rate_hz: int
    processes: int
    # Of the samples py-spy could have taken per process, the share in which
    # a thread held the interpreter lock.
    gil_busy_share: float
    # (function, share of GIL-holding samples), biggest first.
    self_top: list[tuple[str, float]]
    inclusive_top: list[tuple[str, float]]
    areas: list[tuple[str, float]]
    raw_path: str


# Leaf frames by where their file lives: the first matching prefix wins.
_AREAS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("writer (application/writer.py, ledger_batch, domain)", ("application/", "domain/")),
    ("API routes and middleware (interface/)", ("interface/",)),
    ("eventsourcing library", ("eventsourcing/",)),
    ("psycopg and its pool", ("psycopg/", "psycopg_pool/", "psycopg_binary/")),
    ("pydantic (validation, serialisation)", ("pydantic/", "pydantic_core/")),
    ("FastAPI, Starlette (routing, dependencies, responses)", ("fastapi/", "starlette/")),
    ("uvicorn, httptools (HTTP protocol)", ("uvicorn/", "httptools/", "h11/")),
    (
        "anyio, asyncio, threads (scheduling, thread hand-offs)",
        (
            "anyio/",
            "asyncio/",
            "threading.py",
            "concurrent/",
            "queue.py",
            "selectors.py",
            "uvloop/",
        ),
    ),
    ("structlog, logging", ("structlog/", "logging/")),
    ("prometheus_client", ("prometheus_client/",)),
    ("json, orjson", ("json/", "orjson")),
    (
        "uuid, datetime, dataclasses, typing, enum, re",
        (
            "uuid.py",
            "datetime.py",
            "dataclasses.py",
            "typing.py",
            "enum.py",
            "re/",
            "_strptime.py",
        ),
    ),
)


# Frames on (nearly) every stack, which say nothing about where the time goes.
_SCAFFOLDING: Final[tuple[str, ...]] = (
    "(typer/",
    "(click/",
    "(ledger)",
    "(interface/cli/main.py)",
    "(uvicorn/main.py)",
    "(uvicorn/_compat.py)",
    "(uvicorn/server.py)",
    "(asyncio/runners.py)",
    "(asyncio/base_events.py)",
    "(asyncio/events.py)",
    "(multiprocessing/",
    "(uvicorn/_subprocess.py)",
    "(<string>)",
    "Thread._bootstrap",
)


def _file_of(frame: str) -> str:
    # py-spy frames read "function (path/of/file.py)" or "function (path:line)".
    start = frame.rfind(" (")
    return frame[start + 2 : -1] if start >= 0 and frame.endswith(")") else ""


def _area_of(frame: str) -> str:
    path = _file_of(frame)
    for area, prefixes in _AREAS:
        if any(prefix in path for prefix in prefixes):
            return area
    return f"other ({path.split('/')[0] or '?'})"


def summarise_raw_profile(path: Path, seconds: float, rate_hz: int) -> ProfileSummary:
    """py-spy's raw (collapsed stacks) output: `frame;frame;... count` per line."""
    self_counts: Counter[str] = Counter()
    inclusive_counts: Counter[str] = Counter()
    area_counts: Counter[str] = Counter()
    processes: set[str] = set()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if frames and frames[0].startswith("process "):
            processes.add(frames[0])
            frames = frames[1:]
        frames = [frame for frame in frames if not frame.startswith("thread ")]
        if not frames:
            continue
        samples += count
        self_counts[frames[-1]] += count
        area_counts[_area_of(frames[-1])] += count
        for frame in set(frames):
            if not any(marker in frame for marker in _SCAFFOLDING):
                inclusive_counts[frame] += count
    process_count = max(1, len(processes))
    possible = seconds * rate_hz * process_count

    def shares(counter: Counter[str], top: int) -> list[tuple[str, float]]:
        return [(name, count / samples) for name, count in counter.most_common(top)]

    return ProfileSummary(
        samples=samples,
        seconds=seconds,
        rate_hz=rate_hz,
        processes=process_count,
        gil_busy_share=samples / possible if possible else 0.0,
        self_top=shares(self_counts, PROFILE_TOP) if samples else [],
        inclusive_top=shares(inclusive_counts, 2 * PROFILE_TOP) if samples else [],
        areas=shares(area_counts, len(_AREAS) + 5) if samples else [],
        raw_path=str(path),
    )


def py_spy_path() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


class SamplingProfiler:
    """`py-spy record` on a process tree for a fixed time, in the background."""

    def __init__(self, pid: int, seconds: float, output: Path) -> None:
        executable = py_spy_path()
        if executable is None:
            raise FileNotFoundError("py-spy is not installed: pip install py-spy")
        self.seconds = seconds
        self.output = output
        self._log = output.with_suffix(".log")
        # --gil: only the thread holding the interpreter lock, i.e. Python's CPU;
        # --subprocesses: every uvicorn worker; --nonblocking: never pause the server.
        command = [
            executable,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            str(PROFILE_RATE_HZ),
            "--format",
            "raw",
            "--gil",
            "--subprocesses",
            "--nonblocking",
            "--nolineno",
            "--output",
            str(output),
        ]
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(  # noqa: S603 - py-spy on our own server
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )

    def finish(self, timeout_s: float = 60.0) -> ProfileSummary | str:
        """The summary, or why there is none."""
        try:
            self._process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if not self.output.exists():
            with contextlib.suppress(OSError):
                return "py-spy wrote nothing: " + self._log.read_text(errors="replace")[-500:]
            return "py-spy wrote nothing"
        return summarise_raw_profile(self.output, self.seconds, PROFILE_RATE_HZ)
