"""Signed checkpoints over a real log: a sound log verifies with the public
key alone; a database superuser's changes are found, the first event named."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import orjson
import psycopg
import pytest

from interface.adapters.audit_keys import CheckpointSigner, PublicKeys
from interface.audit.checkpoints import Damage
from interface.audit.offline_export import verify_offline_export, write_offline_export
from interface.audit.proofs import check_proof, prove
from interface.audit_setup import build_checkpointer
from interface.settings import Settings
from tests.support.checkpointed_log import CheckpointedLog, checkpointed_log, tampering
from tests.support.forged_events import append_with_chain
from tests.support.tampering import forge

TRANSFERS = 60
EVENTS_PER_CHECKPOINT = 50


@pytest.fixture
def log(database_url: str, tmp_path: Path) -> CheckpointedLog:
    return checkpointed_log(
        database_url, tmp_path, transfers=TRANSFERS, events_per_checkpoint=EVENTS_PER_CHECKPOINT
    )


def test_a_sound_log_verifies_against_its_checkpoints(log: CheckpointedLog) -> None:
    report = log.verify()
    assert report.ok, report.findings
    assert report.checkpoints_verified >= 2
    assert report.window_events == 0
    assert report.events_checked == report.events_covered


def test_a_body_changed_and_the_chain_recomputed_is_named(log: CheckpointedLog) -> None:
    with tampering(log.database_url) as connection:
        connection.execute(
            "UPDATE ledger_events SET state = state || ' '::bytea WHERE notification_id = 30"
        )
    report = log.verify()
    assert report.first is not None
    assert report.first.position == 30
    assert report.first.damage is Damage.CHANGED


def test_a_rewritten_tail_with_its_database_checkpoints_removed_is_proven_by_the_directory(
    log: CheckpointedLog,
) -> None:
    """The superuser deletes the last checkpoint's row and rewrites the events
    it covered: the directory's copy names the first rewritten event."""
    with tampering(log.database_url) as connection:
        last = connection.execute(
            "SELECT sequence, last_position FROM ledger_checkpoints ORDER BY sequence DESC LIMIT 1"
        ).fetchone()
        assert last is not None
        sequence, last_position = int(last[0]), int(last[1])
        connection.execute("DELETE FROM ledger_checkpoints WHERE sequence = %s", (sequence,))
        forge(connection, last_position - 1, 1)
    report = log.verify()
    damages = {finding.damage for finding in report.findings}
    assert Damage.CHECKPOINT_MISSING in damages
    forged = [finding for finding in report.findings if finding.damage is Damage.FORGED]
    assert [(finding.position, finding.checkpoint) for finding in forged] == [
        (last_position - 1, sequence)
    ]
    # Without the directory, the rewritten tail is in the window: the database
    # alone cannot prove it (docs/operations.md#audit).
    assert log.verify(with_directory=False).ok


def test_a_history_verified_with_the_public_key_cannot_be_extended_without_the_private_key(
    log: CheckpointedLog,
) -> None:
    before = log.verify()
    assert before.ok
    covered = before.covered_through
    # Events appended around the writer, their chain correct...
    with tampering(log.database_url) as connection:
        row = connection.execute(
            "SELECT originator_id, originator_version, topic, state FROM ledger_events"
            " ORDER BY notification_id DESC LIMIT 1"
        ).fetchone()
        assert row is not None
    append_with_chain(log.database_url, uuid.uuid4(), 1, str(row[2]), orjson.loads(row[3]))
    # ...and a checkpoint over them signed with a key of the forger's own.
    forger = Settings(
        database_url=log.database_url,
        data_dir=log.settings.data_dir / "forger",
        audit_checkpoint_dir=log.directory,
    )
    assert build_checkpointer(forger, log.database_url).run_once() == 1
    after = log.verify()
    assert after.covered_through == covered
    assert after.window_events == 1
    assert [finding.damage for finding in after.findings] == [Damage.CHECKPOINT_INVALID]
    # The forger's public key is not one the auditor trusts.
    assert after.key_ids == before.key_ids


def test_an_inclusion_proof_round_trips_and_fails_when_changed(log: CheckpointedLog) -> None:
    with psycopg.connect(log.database_url) as connection:
        proof = prove(connection, "17")
        stream, version = proof["event"]["stream"], proof["event"]["version"]
        assert prove(connection, f"{stream}/{version}") == proof
    text = orjson.dumps(proof)
    assert check_proof(orjson.loads(text), log.keys).ok
    changed = orjson.loads(text)
    changed["event"]["recorded_at"] = "2020-01-01T00:00:00+00:00"
    assert not check_proof(changed, log.keys).ok
    other_key = PublicKeys([CheckpointSigner.generate().public_key])
    assert not check_proof(orjson.loads(text), other_key).ok


def test_the_offline_export_verifies_with_no_database(log: CheckpointedLog, tmp_path: Path) -> None:
    export = tmp_path / "audit.jsonl"
    with export.open("wb") as sink:
        events = write_offline_export(log.database_url, sink, log.directory, log.keys.pem())
    assert events > 0
    report = verify_offline_export(export, log.keys)
    assert report.ok, report.findings
    assert report.events_checked == events
    # One byte of one body changed in the file: found, that event named.
    lines = export.read_bytes().splitlines()
    index, line = next(
        (index, orjson.loads(line))
        for index, line in enumerate(lines)
        if b'"kind":"event"' in line and b'"position":9,' in line
    )
    state = bytearray(base64.b64decode(line["state_base64"]))
    state[2] ^= 1
    line["state_base64"] = base64.b64encode(bytes(state)).decode()
    lines[index] = orjson.dumps(line)
    export.write_bytes(b"\n".join(lines) + b"\n")
    damaged = verify_offline_export(export, log.keys)
    assert damaged.first is not None
    assert (damaged.first.position, damaged.first.damage) == (9, Damage.CHANGED)
