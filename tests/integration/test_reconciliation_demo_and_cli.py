"""Reconciliation on the demo data set, in the service and from the CLI.

The whole demo (`ledger serve --demo`'s: transfers, funded accounts trading,
withdrawals paid out, a closure under way) passes every check. `ledger
reconcile run` exits 0 on it with every check run, those against the
simulated broker and sandbox payouts included (their state is in the
database); a forged unbalanced transfer makes it exit 1 naming the critical
exception, which `ledger reconcile resolve` closes with a name and a note.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Final

import psycopg

from domain.reconciliation import CheckStatus, RunStatus, RunType
from interface.bootstrap import Ledger
from interface.demo.data_set import load_demo_data_set
from interface.settings import Settings
from projections import reconciliation
from tests.support.forged_events import forge_unbalanced_transfer

REPOSITORY: Final = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT_S: Final[float] = 300.0
DEMO_TRANSFERS: Final[int] = 300
CHECKS: Final = [
    "ledger",
    "projections",
    "payouts",
    "broker",
    "deposits",
    "withdrawals",
    "broker_sync",
]


def _reconcile(settings: Settings, *arguments: str) -> tuple[int, str, str]:
    """The real command, in a process of its own (as an operator runs it)."""
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from interface.cli.main import main; main()",
            "reconcile",
            *arguments,
        ],
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
    if completed.returncode not in (0, 1, 2):
        raise AssertionError(completed.stderr[-3000:])
    return completed.returncode, completed.stdout, completed.stderr


def _caught_up(ledger: Ledger) -> None:
    assert ledger.projections is not None
    assert ledger.projections.wait_for(ledger.writer.last_position, [reconciliation.NAME], 60)


def test_the_whole_demo_passes_every_check(ledger: Ledger) -> None:
    load_demo_data_set(ledger, transfers=DEMO_TRANSFERS)
    run = ledger.reconciliation.run(RunType.MANUAL, "tester")
    _caught_up(ledger)
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        checks = reconciliation.checks_of(cursor, run.id)
        raised = reconciliation.exceptions_of(cursor, run.id)
    assert raised == []
    assert [(check.name, check.status) for check in checks] == [
        (name, CheckStatus.PASSED.value) for name in CHECKS
    ]
    # The demo paid withdrawals out and funded accounts: the money checks compared money.
    by_name = {check.name: check for check in checks}
    for name in ("payouts", "deposits", "withdrawals"):
        assert by_name[name].expected > 0, by_name[name]
    assert run.status is RunStatus.PASSED


def test_the_command_exits_one_while_a_critical_exception_is_open(
    ledger: Ledger, settings: Settings
) -> None:
    load_demo_data_set(ledger, transfers=DEMO_TRANSFERS)
    code, output, _ = _reconcile(settings, "run", "--json")
    assert code == 0, output
    report: dict[str, Any] = json.loads(output)
    assert (report["status"], report["not_run"]) == ("passed", {})
    statuses = {check["name"]: check["status"] for check in report["checks"]}
    assert statuses == dict.fromkeys(CHECKS, "passed")

    with psycopg.connect(ledger.database_url) as connection:
        debit, credit = (
            str(row[0])
            for row in connection.execute(
                "SELECT account_id FROM view_balances ORDER BY account_id LIMIT 2"
            ).fetchall()
        )
    forge_unbalanced_transfer(ledger.database_url, uuid.uuid4(), debit, credit, 700, 500)
    code, output, errors = _reconcile(settings, "run", "--type", "manual", "--json")
    assert code == 1, output
    assert "high or critical exception(s) open" in errors
    report = json.loads(output)
    assert report["status"] == "failed"
    unbalanced = [
        exception
        for exception in report["exceptions"]
        if exception["kind"] == "unbalanced_transfer"
    ]
    assert [(item["severity"], item["amount_minor"]) for item in unbalanced] == [("critical", 200)]

    for exception in report["exceptions"]:
        code, output, errors = _reconcile(
            settings,
            "resolve",
            exception["id"],
            "--by",
            "Ada Admin",
            "--note",
            "a forged event: restored from the backup",
        )
        assert code == 0, errors
    code, _, errors = _reconcile(
        settings, "resolve", unbalanced[0]["id"], "--by", "Ada Admin", "--note", "twice"
    )
    assert code == 2
    assert "resolved already" in errors
    _caught_up(ledger)
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        assert reconciliation.unresolved_by_severity(cursor)["critical"] == 0
