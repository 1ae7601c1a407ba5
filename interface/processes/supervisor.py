"""Child processes kept running: started in order, restarted when they
crash, stopped in order (docs/architecture.md#processes).

On SIGTERM or SIGINT the children stop in order: the HTTP processes first
(they finish their requests), then the worker, the writer last (it commits
what was submitted to it). For that order to hold, each child runs in a
session of its own, so a signal to the supervisor's process group (Ctrl-C
at a terminal, a `kill` of the group) reaches the supervisor alone; and on
Linux each child asks the kernel to kill it when the supervisor dies
(interface/processes/parent_death.py), so a supervisor killed hard leaves
nothing behind. A child that exits while no
stop was asked for is started again after a delay that doubles with each
crash within a window; past a number of crashes within it the supervisor
gives up, stops the others and reports failure, as a crash loop needs an
operator.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import structlog

from interface.processes.parent_death import SUPERVISOR_PID_VARIABLE
from interface.processes.readiness import GO_FD_VARIABLE, GO_MESSAGE, READY_FD_VARIABLE

log = structlog.get_logger(__name__)

# The first restart's delay, doubled for each further crash within the
# window, up to the longest.
RESTART_DELAY_FIRST_S: Final[float] = 0.5
RESTART_DELAY_MAX_S: Final[float] = 30.0
# A child crashing this many times within the window makes the supervisor give up.
CRASHES_IN_WINDOW_MAX: Final[int] = 5
CRASH_WINDOW_S: Final[float] = 300.0
# How long a child may take to stop after SIGTERM before it is killed.
CHILD_STOP_WAIT_S: Final[float] = 30.0
# How often the supervisor looks at its children.
POLL_INTERVAL_S: Final[float] = 0.2
# How long the children that wait for the one that tells when it has
# started wait for it (interface/processes/readiness.py); past it they serve.
READY_WAIT_S: Final[float] = 300.0


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """One child: its name in the logs, its command, what it adds to the
    supervisor's environment, the descriptors it inherits, its stop rank
    (lower ranks are stopped first); whether it tells when it has started
    (one child at most), and whether, at the first start, it waits for that
    before it serves (it starts at once: its imports and set-up overlap)."""

    name: str
    argv: Sequence[str]
    environment: Mapping[str, str] = field(default_factory=dict)
    pass_fds: Sequence[int] = ()
    stop_rank: int = 0
    tells_ready: bool = False
    waits_for_ready: bool = False


@dataclass
class _Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes] | None = None
    # Monotonic times of its recent crashes (within the window).
    crashes: deque[float] = field(default_factory=deque)
    # When to start it again after a crash.
    restart_at: float | None = None

    def start(self, told_fds: Mapping[str, int] | None = None) -> None:
        """`told_fds`: pipe ends the child inherits, by the variable naming them."""
        told = dict(told_fds or {})
        environment = {
            **os.environ,
            **self.spec.environment,
            SUPERVISOR_PID_VARIABLE: str(os.getpid()),
            **{variable: str(fd) for variable, fd in told.items()},
        }
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            list(self.spec.argv),
            env=environment,
            pass_fds=(*self.spec.pass_fds, *told.values()),
            start_new_session=True,
        )
        self.restart_at = None
        log.info("child_started", child=self.spec.name, pid=self.process.pid)

    def wait_told(self, read_end: int, stop: threading.Event) -> None:
        """Until it tells it has started, exits, the wait runs out or a stop
        is asked for."""
        assert self.process is not None
        deadline = time.monotonic() + READY_WAIT_S
        with os.fdopen(read_end, "rb") as told:
            while not stop.is_set() and self.process.poll() is None:
                readable, _, _ = select.select([told], [], [], POLL_INTERVAL_S)
                if readable:
                    # The line, or nothing when the child closed it unsaid.
                    told.readline()
                    return
                if time.monotonic() >= deadline:
                    log.warning("child_not_ready", child=self.spec.name, waited_s=READY_WAIT_S)
                    return


class CrashLoop(Exception):
    """A child crashed too often within the window: the supervisor gave up."""


class Supervisor:
    def __init__(self, specs: Sequence[ChildSpec]) -> None:
        self._children = [_Child(spec) for spec in specs]

    def pids(self) -> dict[str, int]:
        """The running children's process ids, by name."""
        return {
            child.spec.name: child.process.pid
            for child in self._children
            if child.process is not None and child.process.poll() is None
        }

    def run(self, stop: threading.Event, *, stopping: Callable[[], None] | None = None) -> None:
        """Start every child in order, keep them running until `stop` is
        set, then call `stopping` (the supervisor lets go of the listening
        socket there) and stop them all. Raises CrashLoop when a child
        crashes too often (the others stopped first)."""
        try:
            self._start_all(stop)
            while not stop.wait(POLL_INTERVAL_S):
                for child in self._children:
                    self._look_after(child)
        finally:
            if stopping is not None:
                stopping()
            self.stop_all()

    def _start_all(self, stop: threading.Event) -> None:
        """Every child at once; those that wait for the one that tells get
        the reading end of a pipe, written to once it has told."""
        telling = next((child for child in self._children if child.spec.tells_ready), None)
        told_read_end: int | None = None
        gates: list[int] = []
        for child in self._children:
            if child is telling:
                told_read_end, write_end = os.pipe()
                child.start({READY_FD_VARIABLE: write_end})
                os.close(write_end)
            elif telling is not None and child.spec.waits_for_ready:
                read_end, gate = os.pipe()
                child.start({GO_FD_VARIABLE: read_end})
                os.close(read_end)
                gates.append(gate)
            else:
                child.start()
        if telling is not None and told_read_end is not None:
            telling.wait_told(told_read_end, stop)
        for gate in gates:
            # A child gone meanwhile closed its end: it is restarted as any other.
            with contextlib.suppress(OSError):
                os.write(gate, GO_MESSAGE)
            os.close(gate)

    def _look_after(self, child: _Child) -> None:
        now = time.monotonic()
        if child.restart_at is not None:
            if now >= child.restart_at:
                child.start()
            return
        assert child.process is not None
        exit_code = child.process.poll()
        if exit_code is None:
            return
        while child.crashes and now - child.crashes[0] > CRASH_WINDOW_S:
            child.crashes.popleft()
        child.crashes.append(now)
        if len(child.crashes) > CRASHES_IN_WINDOW_MAX:
            log.error(
                "child_crash_loop",
                child=child.spec.name,
                crashes=len(child.crashes),
                window_s=CRASH_WINDOW_S,
            )
            raise CrashLoop(
                f"{child.spec.name} exited {len(child.crashes)} times within "
                f"{CRASH_WINDOW_S:.0f} s (last exit code {exit_code})"
            )
        delay_s = min(RESTART_DELAY_FIRST_S * 2 ** (len(child.crashes) - 1), RESTART_DELAY_MAX_S)
        child.restart_at = now + delay_s
        log.warning(
            "child_exited", child=child.spec.name, exit_code=exit_code, restart_in_s=delay_s
        )

    def stop_all(self) -> None:
        """SIGTERM to each rank in turn, waited for; a kill past the wait."""
        for rank in sorted({child.spec.stop_rank for child in self._children}):
            running = [
                child.process
                for child in self._children
                if child.spec.stop_rank == rank
                and child.process is not None
                and child.process.poll() is None
            ]
            for process in running:
                _signal(process, signal.SIGTERM)
            deadline = time.monotonic() + CHILD_STOP_WAIT_S
            for process in running:
                try:
                    process.wait(max(deadline - time.monotonic(), 0))
                except subprocess.TimeoutExpired:
                    log.warning("child_killed", pid=process.pid, waited_s=CHILD_STOP_WAIT_S)
                    _signal(process, signal.SIGKILL)
                    process.wait()
        for child in self._children:
            child.restart_at = None


def _signal(process: subprocess.Popen[bytes], signal_number: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal_number)
