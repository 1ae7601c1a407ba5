"""Background work beside the HTTP load: the commands that keep the worker
side of the service busy, each run again as soon as it ends, until stopped.

`ledger projections rebuild` replays every view from the log into shadow
tables and swaps them in (the live views keep serving); `ledger reconcile
run` runs every reconciliation check once. Both read the whole log, on the
same database and the same cores as the HTTP processes, as the worker process
does when it rebuilds a view or runs a scheduled reconciliation.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

# The commands, after `ledger`.
BUSY_COMMANDS: Final[tuple[tuple[str, ...], ...]] = (
    ("projections", "rebuild"),
    ("reconcile", "run"),
)
# How long a command may take to stop after SIGTERM before it is killed.
STOP_WAIT_S: Final[float] = 30.0
# Given to the commands to start (imports, first connections) before the
# load begins, so that the load meets them at work, not at their imports.
START_S: Final[float] = 5.0


@dataclass
class _Loop:
    argv: Sequence[str]
    # Exit statuses of the runs that ended while the load ran (not the one
    # stopped at the end).
    statuses: list[int] = field(default_factory=list)
    current: subprocess.Popen[bytes] | None = None


@dataclass(frozen=True, slots=True)
class BusyWork:
    """What ran beside the load: per command, the runs it finished and their
    exit statuses (a run still going when the load ended is not counted)."""

    runs: dict[str, list[int]]

    def lines(self) -> list[str]:
        lines = []
        for name, statuses in self.runs.items():
            line = f"`ledger {name}`: started again whenever it ended, {len(statuses)} run(s) "
            line += "finished during the load"
            if statuses:
                line += f" (exit statuses {sorted(set(statuses))})"
            lines.append(line)
        return lines


class BusyBackground:
    """Each command in a loop of its own, started again when it ends."""

    def __init__(self, environment: Mapping[str, str], log_path: Path) -> None:
        ledger = Path(sys.executable).with_name("ledger")
        self._loops = [_Loop([str(ledger), *command]) for command in BUSY_COMMANDS]
        self._environment = dict(environment)
        self._log: IO[bytes] = log_path.open("ab")
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._stopped: BusyWork | None = None
        self._threads = [
            threading.Thread(target=self._run, args=(loop,), daemon=True) for loop in self._loops
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()
        self._stopping.wait(START_S)

    def stop(self) -> BusyWork:
        """Stop the runs under way (once; again, the same figures)."""
        if self._stopped is not None:
            return self._stopped
        self._stopping.set()
        with self._lock:
            running = [loop.current for loop in self._loops if loop.current is not None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for thread in self._threads:
            thread.join(STOP_WAIT_S)
        for process in running:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(STOP_WAIT_S)
        self._log.close()
        self._stopped = BusyWork({" ".join(loop.argv[1:]): loop.statuses for loop in self._loops})
        return self._stopped

    def _run(self, loop: _Loop) -> None:
        while not self._stopping.is_set():
            with self._lock:
                if self._stopping.is_set():
                    return
                loop.current = subprocess.Popen(  # noqa: S603 - our own fixed commands
                    loop.argv,
                    env=self._environment,
                    stdin=subprocess.DEVNULL,
                    stdout=self._log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            status = loop.current.wait()
            if not self._stopping.is_set():
                loop.statuses.append(status)


@contextlib.contextmanager
def busy_background(environment: Mapping[str, str], log_path: Path) -> Iterator[BusyBackground]:
    background = BusyBackground(environment, log_path)
    background.start()
    try:
        yield background
    finally:
        background.stop()
