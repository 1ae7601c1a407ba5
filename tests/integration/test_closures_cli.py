"""`ledger closures`: tick through three days of a closure as of given times,
show it, find it stuck, resume it (dry run first)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest

from application.closures import ClosureRequest
from domain.closure import ClosurePhase
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.bootstrap import build_ledger
from interface.settings import Settings
from tests.support.ledgers import EPOCH
from tests.support.withdrawals import profitable_funded_account

REPOSITORY = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT_S = 120


@pytest.fixture
def environment(settings: Settings) -> dict[str, str]:
    return {
        "LEDGER_DATABASE_URL": settings.database_url or "",
        "LEDGER_DATA_DIR": str(settings.data_dir),
        "LEDGER_LOG_LEVEL": "WARNING",
    }


def _run(environment: dict[str, str], *arguments: str) -> tuple[int, str]:
    """The real command, in a process of its own (as an operator runs it)."""
    completed = subprocess.run(
        [sys.executable, "-c", "from interface.cli.main import main; main()", *arguments],
        cwd=REPOSITORY,
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    if completed.returncode not in (0, 1, 2):
        raise AssertionError(completed.stderr[-3000:])
    return completed.returncode, completed.stdout


def _initiated(settings: Settings, profit_minor: int) -> tuple[UUID, SimulatedBroker]:
    ledger = build_ledger(settings)
    try:
        funded_id = profitable_funded_account(ledger, "trader-1", profit_minor)
        closure = ledger.closures.initiate(
            ClosureRequest(funded_id, "Ada Lovelace", "ada@example.com", "done", "user:1")
        ).closure
        assert isinstance(ledger.broker, SimulatedBroker)
        return closure.id, ledger.broker
    finally:
        ledger.close()


def _show(environment: dict[str, str], closure_id: UUID) -> dict[str, object]:
    code, output = _run(environment, "closures", "show", str(closure_id), "--json")
    assert code == 0, output
    shown: dict[str, object] = json.loads(output)
    return shown


def test_ticks_walk_a_closure_through_its_days(
    settings: Settings, environment: dict[str, str]
) -> None:
    # $75,000 profit at 4/5: $60,000 in two tranches.
    closure_id, _ = _initiated(settings, 75_000_00)
    start = datetime.now(EPOCH.tzinfo)
    # The closure was initiated now (the system clock): tick as of now, then
    # the next business day, then a day later.
    code, output = _run(environment, "closures", "tick", "--now", start.isoformat())
    assert code == 0, output
    assert _show(environment, closure_id)["phase"] == ClosurePhase.SETTLING.value
    for days in (4, 5, 6):
        code, output = _run(
            environment, "closures", "tick", "--now", (start + timedelta(days=days)).isoformat()
        )
        assert code == 0, output
    shown = _show(environment, closure_id)
    assert shown["phase"] == ClosurePhase.COMPLETED.value
    assert [tranche["amount_minor"] for tranche in shown["tranches"]] == [50_000_00, 10_000_00]  # type: ignore[attr-defined]
    assert shown["total_paid_minor"] == 60_000_00
    code, _ = _run(environment, "closures", "find-stuck")
    assert code == 0


def test_a_bad_time_or_id_is_refused_with_a_usage_error(environment: dict[str, str]) -> None:
    assert _run(environment, "closures", "tick", "--now", "yesterday")[0] == 2
    assert _run(environment, "closures", "show", "not-an-id")[0] == 2
    unknown = "00000000-0000-0000-0000-000000000001"
    assert _run(environment, "closures", "show", unknown)[0] == 2
    assert _run(environment, "closures", "resume", unknown, "--dry-run")[0] == 2
