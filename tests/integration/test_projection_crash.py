"""kill -9 the projections while they work: a runner, a rebuild in place, a
shadow rebuild (the default). Whatever was killed, the next run ends with every view equal
to a fresh replay, and a killed shadow rebuild never touched the live views."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg

from interface.audit.verify import verify_ledger
from interface.bootstrap import build_ledger
from interface.demo.ledger_transfers import load_demo
from interface.settings import Settings
from projections.digest import view_digest
from projections.rebuild import LIVE_SCHEMA
from projections.registry import all_views, view_names

KILLS = 3
# Transfers in the history: enough that a replay takes a few seconds.
HISTORY_TRANSFERS = 30_000
# A process is killed once it has moved a view (mid-work), or after this.
RUN_BEFORE_KILL_S_MAX = 20.0
POLL_S = 0.02
# A shadow rebuild moves no live position until it swaps: killed after this.
SHADOW_RUN_BEFORE_KILL_S = (0.5, 3.0)
FINISH_TIMEOUT_S = 120.0


def _ledger_command(database_url: str, data_dir: Path, *arguments: str) -> subprocess.Popen[bytes]:
    environment = os.environ | {
        "LEDGER_DATABASE_URL": database_url,
        "LEDGER_DATA_DIR": str(data_dir),
        "LEDGER_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "-c", "from interface.cli.main import main; main()", *arguments],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _kill_while_running(
    database_url: str,
    data_dir: Path,
    arguments: Sequence[str],
    rng: random.Random,
    head: int,
    *,
    moves_positions: bool = True,
) -> list[dict[str, int]]:
    """Start and kill -9 the command a few times; the views' positions after each.
    A command that moves the live positions is killed as soon as it has moved
    one to somewhere between the start and the end of the log (mid-work)."""
    seen = []
    for _ in range(KILLS):
        before = _positions(database_url)
        process = _ledger_command(database_url, data_dir, *arguments)
        if moves_positions:
            deadline = time.monotonic() + RUN_BEFORE_KILL_S_MAX
            while time.monotonic() < deadline and not _moved_mid_way(
                before, _positions(database_url), head
            ):
                time.sleep(POLL_S)
            time.sleep(rng.uniform(0, POLL_S))
        else:
            time.sleep(rng.uniform(*SHADOW_RUN_BEFORE_KILL_S))
        process.send_signal(signal.SIGKILL)
        process.wait()
        seen.append(_positions(database_url))
    return seen


def _moved_mid_way(before: dict[str, int], now: dict[str, int], head: int) -> bool:
    return any(
        0 < position < head and position != before.get(name) for name, position in now.items()
    )


def _some_kill_landed_mid_way(seen: list[dict[str, int]], head: int) -> bool:
    return any(0 < position < head for positions in seen for position in positions.values())


def _history(database_url: str, data_dir: Path) -> int:
    ledger = build_ledger(
        Settings(database_url=database_url, data_dir=data_dir), start_projections=False
    )
    try:
        load_demo(ledger.service, transfers=HISTORY_TRANSFERS)
        return ledger.writer.last_position
    finally:
        ledger.close()


def _positions(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as connection:
        rows = connection.execute("SELECT name, position FROM projection_tracking").fetchall()
    return {str(row[0]): int(row[1]) for row in rows}


def _run_until_caught_up(database_url: str, data_dir: Path, head: int) -> None:
    runner = _ledger_command(database_url, data_dir, "projections", "run")
    try:
        deadline = time.monotonic() + FINISH_TIMEOUT_S
        while not all(_positions(database_url).get(name, 0) >= head for name in view_names()):
            assert time.monotonic() < deadline, _positions(database_url)
            time.sleep(0.1)
    finally:
        runner.terminate()
        runner.wait(timeout=30)


def test_views_survive_kill_9_of_runners_and_rebuilds(database_url: str, tmp_path: Path) -> None:
    rng = random.Random(4)
    head = _history(database_url, tmp_path)

    seen = _kill_while_running(database_url, tmp_path, ["projections", "run"], rng, head)
    assert _some_kill_landed_mid_way(seen, head), seen
    _run_until_caught_up(database_url, tmp_path, head)
    report = verify_ledger(database_url, check_views=True)
    assert report.ok, report.findings

    seen = _kill_while_running(
        database_url, tmp_path, ["projections", "rebuild", "--in-place"], rng, head
    )
    assert _some_kill_landed_mid_way(seen, head), seen
    _run_until_caught_up(database_url, tmp_path, head)
    report = verify_ledger(database_url, check_views=True)
    assert report.ok, report.findings

    with psycopg.connect(database_url) as connection:
        live = {view.name: view_digest(connection, view, LIVE_SCHEMA) for view in all_views()}
    _kill_while_running(
        database_url,
        tmp_path,
        ["projections", "rebuild", "--shadow"],
        rng,
        head,
        moves_positions=False,
    )
    with psycopg.connect(database_url) as connection:
        after = {view.name: view_digest(connection, view, LIVE_SCHEMA) for view in all_views()}
    # A shadow rebuild swaps in a finished copy or nothing: equal either way.
    assert after == live
    report = verify_ledger(database_url, check_views=True)
    assert report.ok, report.findings
