"""The `ledger` command as an operator runs it, in a process of its own on the
test's database: `--json` on the commands that print data parses, and
`reconcile run` says "incomplete", with exit status 4, when a check could
not run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

from interface.cli import exit_codes
from interface.settings import Settings

REPOSITORY: Final = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT_S: Final[float] = 300.0
RUN_LEDGER: Final[str] = "from interface.cli.main import main; main()"
# The same command, with a simulated broker and payout gateway kept in memory
# only (no state in the database), as a process given such simulators would be.
RUN_LEDGER_WITH_SIMULATORS_IN_MEMORY: Final[str] = """
import functools
import interface.bootstrap as bootstrap
from application.clock import SystemClock
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.adapters.payouts.sandbox_gateway import SandboxPayoutGateway
bootstrap.build_ledger = functools.partial(
    bootstrap.build_ledger,
    broker=SimulatedBroker(SystemClock()),
    payout_gateway=SandboxPayoutGateway(SystemClock()),
)
from interface.cli.main import main
main()
"""


def _ledger(
    settings: Settings, *arguments: str, program: str = RUN_LEDGER
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", program, *arguments],
        cwd=REPOSITORY,
        env={
            **os.environ,
            "LEDGER_DATABASE_URL": settings.database_url or "",
            "LEDGER_DATA_DIR": str(settings.data_dir),
            "LEDGER_LOG_LEVEL": "WARNING",
        },
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


def _json(settings: Settings, *arguments: str, status: int = exit_codes.OK) -> Any:
    """The command's one JSON document on stdout."""
    completed = _ledger(settings, *arguments, "--json")
    assert completed.returncode == status, completed.stdout + completed.stderr[-3000:]
    return json.loads(completed.stdout)


def _json_lines(settings: Settings, *arguments: str) -> list[dict[str, Any]]:
    completed = _ledger(settings, *arguments, "--json")
    assert completed.returncode == exit_codes.OK, completed.stdout + completed.stderr[-3000:]
    return [json.loads(line) for line in completed.stdout.splitlines()]


def test_reconcile_run_is_incomplete_when_a_check_cannot_run(settings: Settings) -> None:
    completed = _ledger(
        settings, "reconcile", "run", "--json", program=RUN_LEDGER_WITH_SIMULATORS_IN_MEMORY
    )

    assert completed.returncode == exit_codes.INCOMPLETE, completed.stderr[-3000:]
    report = json.loads(completed.stdout)
    assert report["status"] == "incomplete"
    # The run as recorded counts a skipped check as passed; the command does not.
    assert report["run_status"] == "passed"
    assert set(report["not_run"]) == {"broker", "payouts"}
    assert "kept in memory only" in report["not_run"]["broker"]
    assert "reconciliation incomplete: payouts did not run" in completed.stderr


def test_reconcile_run_passes_when_every_check_ran(settings: Settings) -> None:
    report = _json(settings, "reconcile", "run")

    assert (report["status"], report["not_run"]) == ("passed", {})
    assert {check["status"] for check in report["checks"]} == {"passed"}
    status = _json(settings, "reconcile", "status")
    assert [run["run_id"] for run in status["runs"]] == [report["run_id"]]
    assert status["unresolved_by_severity"]["critical"] == 0


def test_every_data_command_prints_json_that_parses(settings: Settings) -> None:
    assert _json(settings, "db", "upgrade") == {"applied": []}
    created = _json(settings, "keys", "create", "--role", "admin", "--label", "ops")
    assert created["key"].startswith("ldg_")
    [listed] = _json_lines(settings, "keys", "list")
    assert (listed["id"], listed["role"], listed["state"]) == (created["id"], "admin", "active")
    assert "key" not in listed

    status = _json(settings, "projections", "status")
    assert status["failed"] == [] and "balances" in status["views"]
    rebuilt = _json(settings, "projections", "rebuild", "balances")
    assert set(rebuilt["rebuilt"]) == {"balances"}

    verified = _json(settings, "audit", "verify", "--skip-views")
    assert verified["ok"] is True and verified["findings_total"] == 0
    assert verified["events_checked"] == verified["head_position"]

    export = settings.data_dir / "export.jsonl"
    exported = _json(settings, "audit", "export", "--output", str(export))
    assert exported["output"] == str(export) and export.exists()

    assert _json_lines(settings, "closures", "find-stuck") == []
    assert _json_lines(settings, "forks", "scan", "--dry-run") == []
    assert _json_lines(settings, "webhooks", "list") == []


def test_the_demo_summarises_itself_as_json_and_loads_again_unchanged(
    settings: Settings,
) -> None:
    first = _json(settings, "demo", "--transfers", "100")
    assert first["accounts"] == len(first["platform_account_ids"]) + len(first["user_account_ids"])
    assert any(line.startswith("withdrawals") for line in first["lines"])

    again = _json(settings, "demo", "--transfers", "100")
    # No command of the second load did anything new: each found what the
    # first made (a hold posted or voided already says so).
    assert "ok" in first["results"] and "ok" not in again["results"]
    assert again["platform_account_ids"] == first["platform_account_ids"]
