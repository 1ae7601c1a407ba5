"""`ledger forks scan`: a dry run lists what it would do and does nothing; a
scan proposes (and so executes) the forks due, executes the approved ones
that waited for a slot, and keeps the 24-hour cooldown as of its `--now`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from application.forks import ForksService
from domain.fork import FORK_COOLDOWN, FORKS_EXECUTING_MAX, ForkStatus
from domain.funded_account_states import FundedAccountState
from domain.tiers import TierName
from interface.bootstrap import Ledger, build_ledger
from interface.settings import Settings
from tests.support.withdrawals import profitable_funded_account

REPOSITORY = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT_S = 120
GEN_START_MINOR = 10_000_00


class FullLoad:
    """Five forks executing elsewhere: an approved fork waits for the scan."""

    def forks_executing(self) -> int:
        return FORKS_EXECUTING_MAX


@pytest.fixture
def environment(settings: Settings) -> dict[str, str]:
    return {
        "LEDGER_DATABASE_URL": settings.database_url or "",
        "LEDGER_DATA_DIR": str(settings.data_dir),
        "LEDGER_LOG_LEVEL": "WARNING",
    }


@pytest.fixture
def service(settings: Settings) -> Iterator[Ledger]:
    """The service on the same database, on the system clock (as the command)."""
    running = build_ledger(settings)
    try:
        yield running
    finally:
        running.close()


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


def _scan(environment: dict[str, str], *options: str) -> list[dict[str, Any]]:
    """A scan that must succeed; its JSON lines."""
    code, output = _run(environment, "forks", "scan", "--json", *options)
    assert code == 0, output
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def _account(ledger: Ledger, balance_minor: int) -> UUID:
    return profitable_funded_account(ledger, "trader-1", balance_minor - GEN_START_MINOR)


def test_a_dry_run_lists_the_candidate_and_proposes_nothing(
    service: Ledger, environment: dict[str, str]
) -> None:
    ready = _account(service, 120_000_00)
    _account(service, 50_000_00)

    assert _scan(environment, "--dry-run") == [
        {"funded_account_id": str(ready), "action": "propose"}
    ]

    # Nothing was attempted: no fork, no cooldown, the money where it was.
    account = service.funded_accounts.require_funded_account(ready)
    assert account.state is FundedAccountState.ACTIVE
    assert account.last_fork_attempt_at is None
    assert account.current_balance_minor == 120_000_00
    assert service.forks.forks_executing() == 0
    # And again: the same list.
    assert _scan(environment, "--dry-run") == [
        {"funded_account_id": str(ready), "action": "propose"}
    ]


def test_a_scan_proposes_and_completes_the_fork(
    service: Ledger, environment: dict[str, str]
) -> None:
    ready = _account(service, 120_000_00)

    [line] = _scan(environment)
    assert (line["funded_account_id"], line["action"]) == (str(ready), "propose")
    assert line["status"] == ForkStatus.COMPLETED.value

    fork = service.forks.require_fork(UUID(line["fork_id"]))
    assert fork.status is ForkStatus.COMPLETED and fork.approved_automatically
    assert fork.proposed_by == "forks-scan" and fork.child_id is not None
    child = service.funded_accounts.require_funded_account(UUID(fork.child_id))
    assert (child.tier.name, child.parent_id) == (TierName.REV, ready)
    assert child.starting_balance_minor == child.current_balance_minor == 100_000_00
    parent = service.funded_accounts.require_funded_account(ready)
    assert (parent.state, parent.current_balance_minor) == (FundedAccountState.ACTIVE, 20_000_00)

    # Under the threshold now: the next scan has nothing to do.
    assert _scan(environment) == []
    assert _scan(environment, "--dry-run") == []


def test_a_scan_executes_an_approved_fork_that_waited_for_a_slot(
    service: Ledger, environment: dict[str, str]
) -> None:
    ready = _account(service, 120_000_00)
    busy = ForksService(service.app, service.writer, service.clock, FullLoad())
    waiting = busy.propose(ready, "service:platform").fork
    assert waiting.status is ForkStatus.APPROVED

    # A dry run names it, and not the account: past the threshold, but its
    # 24-hour cooldown forbids another proposal.
    assert _scan(environment, "--dry-run") == [
        {"fork_id": str(waiting.id), "action": "execute"},
    ]
    assert service.forks.require_fork(waiting.id).status is ForkStatus.APPROVED

    executed, proposed = _scan(environment)
    assert executed == {
        "fork_id": str(waiting.id),
        "action": "execute",
        "status": ForkStatus.COMPLETED.value,
    }
    # Read before the execution, the account is then under the threshold.
    assert proposed == {
        "funded_account_id": str(ready),
        "action": "propose",
        "refused": "fork_not_allowed",
    }
    assert service.forks.require_fork(waiting.id).status is ForkStatus.COMPLETED
    parent = service.funded_accounts.require_funded_account(ready)
    assert parent.current_balance_minor == 20_000_00


def test_scans_keep_the_cooldown_as_of_their_time(
    service: Ledger, environment: dict[str, str]
) -> None:
    # Past the threshold, short of the Gen minimum a fork must leave: each
    # attempt rolls back, and counts.
    short = _account(service, 105_000_00)
    start = datetime.now(UTC) + timedelta(minutes=1)

    [first] = _scan(environment, "--now", start.isoformat())
    assert first["status"] == ForkStatus.ROLLED_BACK.value
    rolled_back = service.forks.require_fork(UUID(first["fork_id"]))
    assert rolled_back.proposed_at == start
    assert rolled_back.rollback_reason and "minimum" in rolled_back.rollback_reason

    [cooling] = _scan(environment, "--now", (start + timedelta(hours=1)).isoformat())
    assert cooling == {
        "funded_account_id": str(short),
        "action": "propose",
        "refused": "fork_cooldown",
    }

    [second] = _scan(environment, "--now", (start + FORK_COOLDOWN).isoformat())
    assert second["status"] == ForkStatus.ROLLED_BACK.value
    assert second["fork_id"] != first["fork_id"]
    account = service.funded_accounts.require_funded_account(short)
    assert (account.state, account.current_balance_minor) == (
        FundedAccountState.ACTIVE,
        105_000_00,
    )


def test_a_time_that_is_not_iso_8601_is_a_usage_error(environment: dict[str, str]) -> None:
    code, output = _run(environment, "forks", "scan", "--now", "yesterday")
    assert code == 2 and output == ""


def test_forks_scan_dry_run_never_proposes_a_fork_the_cooldown_forbids(
    service: Ledger, environment: dict[str, str]
) -> None:
    # Past the $100,000 threshold, short of the $110,000 a fork executes from:
    # the attempt rolls back, and the 24-hour cooldown starts.
    cooling = _account(service, 105_000_00)
    attempt = service.forks.propose(cooling, "service:platform").fork
    assert attempt.status is ForkStatus.ROLLED_BACK

    assert _scan(environment, "--dry-run") == []
    later = (attempt.proposed_at + FORK_COOLDOWN).isoformat()
    assert _scan(environment, "--dry-run", "--now", later) == [
        {"funded_account_id": str(cooling), "action": "propose"}
    ]
