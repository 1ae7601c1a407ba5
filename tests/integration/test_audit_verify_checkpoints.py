"""`ledger audit verify` against the signed checkpoints: `verify_ledger` with
the public keys names a forged event with the checkpoint that proves it,
and the CLI's export and `verify --export` check a log with no database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Final

import psycopg
import pytest

from domain.reconciliation import CheckStatus, DiscrepancyKind
from interface.audit.checkpoints import Damage
from interface.audit.report import FindingKind
from interface.audit.verify import verify_ledger
from interface.reconciliation.ledger_check import LedgerConsistencyCheck
from tests.support.checkpointed_log import CheckpointedLog, checkpointed_log, tampering
from tests.support.tampering import forge, truncate_from

TRANSFERS: Final[int] = 60
EVENTS_PER_CHECKPOINT: Final[int] = 50
FORGED_POSITION: Final[int] = 30
CLI_TIMEOUT_S: Final[float] = 120.0


@pytest.fixture
def log(database_url: str, tmp_path: Path) -> CheckpointedLog:
    return checkpointed_log(
        database_url, tmp_path, transfers=TRANSFERS, events_per_checkpoint=EVENTS_PER_CHECKPOINT
    )


def _verify(log: CheckpointedLog) -> list[tuple[FindingKind, int | None, str | None]]:
    report = verify_ledger(
        log.database_url,
        check_views=False,
        public_keys=log.keys,
        checkpoint_directory=log.directory,
    )
    return [(finding.kind, finding.position, finding.damage) for finding in report.findings]


def _stream_and_version(database_url: str, position: int) -> tuple[object, int]:
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            "SELECT originator_id, originator_version FROM ledger_events"
            " WHERE notification_id = %s",
            (position,),
        ).fetchone()
    assert row is not None
    return row[0], int(row[1])


def test_a_sound_log_verifies_with_its_checkpoints(log: CheckpointedLog) -> None:
    report = verify_ledger(
        log.database_url,
        check_views=False,
        public_keys=log.keys,
        checkpoint_directory=log.directory,
    )
    assert report.ok, report.findings[:5]
    assert report.checkpoints.checkpoints_verified >= 2
    assert report.checkpoints.events_checked == report.events_checked


def test_a_forged_event_is_named_with_the_checkpoint_that_proves_it(log: CheckpointedLog) -> None:
    stream, version = _stream_and_version(log.database_url, FORGED_POSITION)
    with tampering(log.database_url) as connection:
        forge(connection, FORGED_POSITION, 1)
    report = verify_ledger(
        log.database_url,
        check_views=False,
        public_keys=log.keys,
        checkpoint_directory=log.directory,
    )
    checkpoint_findings = [
        finding for finding in report.findings if finding.kind is FindingKind.CHECKPOINT
    ]
    # One per checkpoint whose events the recomputed chain changed; the
    # first names the forged event.
    finding = min(checkpoint_findings, key=lambda found: found.position or 0)
    assert (finding.position, finding.stream, finding.version, finding.damage) == (
        FORGED_POSITION,
        stream,
        version,
        Damage.FORGED.value,
    )
    assert finding.checkpoint is not None
    assert f"checkpoint {finding.checkpoint} proves it" in finding.message
    assert report.first_bad_event is not None
    assert report.first_bad_event.position == FORGED_POSITION
    # The chain alone holds: without the public keys nothing names the event.
    alone = verify_ledger(log.database_url, check_views=False)
    assert FindingKind.HASH_CHAIN not in {finding.kind for finding in alone.findings}


def test_a_changed_byte_is_found_by_the_chain_and_proven_by_a_checkpoint(
    log: CheckpointedLog,
) -> None:
    with tampering(log.database_url) as connection:
        connection.execute(
            "UPDATE ledger_events SET recorded_at = recorded_at + interval '1 second'"
            " WHERE notification_id = %s",
            (FORGED_POSITION,),
        )
    assert _verify(log) == [(FindingKind.CHECKPOINT, FORGED_POSITION, Damage.TIME_MOVED.value)]
    # By the chain alone (version 2 covers recorded_at): still that event.
    alone = verify_ledger(log.database_url, check_views=False)
    assert [(finding.kind, finding.position) for finding in alone.findings] == [
        (FindingKind.HASH_CHAIN, FORGED_POSITION)
    ]


def _ledger_cli(log: CheckpointedLog, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from interface.cli.main import main; main()", *arguments],
        env=os.environ
        | {
            "LEDGER_DATABASE_URL": log.database_url,
            "LEDGER_DATA_DIR": str(log.settings.data_dir),
            "LEDGER_LOG_LEVEL": "WARNING",
        },
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def test_the_cli_exports_and_verifies_offline_and_names_a_forged_event(
    log: CheckpointedLog, tmp_path: Path
) -> None:
    export = tmp_path / "audit.jsonl"
    exported = _ledger_cli(log, "audit", "export", "--output", str(export))
    assert exported.returncode == 0, exported.stderr
    offline = _ledger_cli(log, "audit", "verify", "--export", str(export))
    assert offline.returncode == 0, offline.stdout + offline.stderr
    assert "OK" in offline.stdout

    with tampering(log.database_url) as connection:
        forge(connection, FORGED_POSITION, 1)
    verified = _ledger_cli(log, "audit", "verify", "--skip-views")
    assert verified.returncode == 1, verified.stdout + verified.stderr
    assert "checkpoints: " in verified.stdout
    assert f"first bad event: position {FORGED_POSITION}" in verified.stdout
    assert "damage: forged" in verified.stdout
    # The export made before the forgery still verifies: it holds the originals.
    assert _ledger_cli(log, "audit", "verify", "--export", str(export)).returncode == 0


def test_reconciliation_holds_the_log_against_the_signed_checkpoints(
    log: CheckpointedLog,
) -> None:
    # Events before the newest checkpoint deleted the way a database superuser
    # would: the chain left standing is sound, so only a signed checkpoint
    # that covers the missing events can tell.
    with psycopg.connect(log.database_url) as connection:
        row = connection.execute("SELECT max(notification_id) FROM ledger_events").fetchone()
    assert row is not None
    newest = int(row[0])
    with tampering(log.database_url) as connection:
        truncate_from(connection, newest - 5)

    without_keys = LedgerConsistencyCheck(log.database_url).run()
    with_keys = LedgerConsistencyCheck(
        log.database_url, trusted_keys=lambda: log.keys, checkpoint_directory=log.directory
    ).run()

    assert DiscrepancyKind.HASH_CHAIN not in {d.kind for d in without_keys.discrepancies}
    assert with_keys.status is CheckStatus.FAILED
    proven = [d for d in with_keys.discrepancies if d.kind is DiscrepancyKind.HASH_CHAIN]
    assert proven, with_keys.discrepancies
    assert any("checkpoint" in d.message for d in proven), proven
