"""The supervisor alone, on children that are one line of Python: a crashed
child is started again, a crash loop makes it give up, a stop stops all."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from interface.processes import supervisor
from interface.processes.supervisor import ChildSpec, CrashLoop, Supervisor

WAIT_S = 60.0


@pytest.fixture(autouse=True)
def _quick_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor, "RESTART_DELAY_FIRST_S", 0.01)
    monkeypatch.setattr(supervisor, "RESTART_DELAY_MAX_S", 0.01)
    monkeypatch.setattr(supervisor, "POLL_INTERVAL_S", 0.01)


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_child_that_keeps_crashing_makes_the_supervisor_give_up(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    crashing = ChildSpec(
        "crashing", _python(f"open({str(starts)!r}, 'a').write('x'); raise SystemExit(3)")
    )
    steady = ChildSpec("steady", _python("import time; time.sleep(600)"))
    watched = Supervisor([crashing, steady])
    with pytest.raises(CrashLoop, match="crashing exited 6 times"):
        watched.run(threading.Event())
    # Started once, then again after each crash but the last.
    assert starts.read_text() == "x" * (supervisor.CRASHES_IN_WINDOW_MAX + 1)
    # The steady one was stopped on the way out.
    assert watched.pids() == {}


def test_a_stop_ends_every_child(tmp_path: Path) -> None:
    stop = threading.Event()
    watched = Supervisor(
        [
            ChildSpec("first", _python("import time; time.sleep(600)"), stop_rank=0),
            ChildSpec("second", _python("import time; time.sleep(600)"), stop_rank=1),
        ]
    )
    runner = threading.Thread(target=watched.run, args=(stop,))
    runner.start()
    try:
        deadline = time.monotonic() + WAIT_S
        while set(watched.pids()) != {"first", "second"}:
            assert time.monotonic() < deadline, "the children did not start"
            time.sleep(0.01)
    finally:
        stop.set()
        runner.join(WAIT_S)
    assert not runner.is_alive()
    assert watched.pids() == {}
