"""The tests' child-process helper (tests/support/service_process.py): a wait
ends as soon as the child exits, stop asks first and gives the exit status,
kill_hard reaches the child's whole session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support.service_process import ChildProcess, spawn

# Long enough that only a signal ends it within a test.
SLEEP_S = 600
WAIT_S = 30.0
POLL_S = 0.01


def _child(tmp_path: Path, code: str) -> ChildProcess:
    spawned = spawn([sys.executable, "-c", code], {}, tmp_path / "child.log")
    return ChildProcess(process=spawned.process, log_path=spawned.log_path, _log=spawned.log)


def test_a_wait_ends_with_the_log_when_the_child_exits_early(tmp_path: Path) -> None:
    child = _child(tmp_path, "print('gave up', flush=True); raise SystemExit(3)")

    with pytest.raises(RuntimeError, match="exited early:\ngave up"):
        child.wait_until(lambda: False, "nothing", WAIT_S, POLL_S)
    assert child.stop() == 3


def test_stop_asks_with_sigterm_and_answers_the_exit_status(tmp_path: Path) -> None:
    child = _child(
        tmp_path,
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
        "print('ready', flush=True)\n"
        f"time.sleep({SLEEP_S})",
    )
    child.wait_until(lambda: b"ready" in child.log_path.read_bytes(), "no ready", WAIT_S, POLL_S)

    assert child.stop() == 0
    assert child.log_tail() == "ready"


def test_kill_hard_ends_a_child_that_ignores_sigterm(tmp_path: Path) -> None:
    child = _child(
        tmp_path,
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        f"time.sleep({SLEEP_S})",
    )
    child.wait_until(lambda: b"ready" in child.log_path.read_bytes(), "no ready", WAIT_S, POLL_S)

    # SIGTERM ignored: stop kills it once its grace is over.
    assert child.stop(timeout_s=0.5) == -9
