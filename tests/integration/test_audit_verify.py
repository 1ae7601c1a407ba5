"""`verify_ledger` and `ledger audit verify` on a real log: sound after the
demo data set, and each kind of tampering found, the first bad event named.

Tampering bypasses the log's refuse-update triggers the way an attacker with
the database's superuser would: `SET session_replication_role = replica`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.audit.report import FindingKind, ViewStatus
from interface.audit.verify import verify_ledger
from interface.bootstrap import Ledger
from interface.demo.funded_accounts import load_funded_demo
from interface.demo.ledger_transfers import load_demo
from projections.events import (
    ACCOUNT_POSTINGS_APPLIED,
    FUNDED_ACTIVATED,
    FUNDED_BAND_CHANGED,
    TRANSFER_RECORDED,
    TRANSFER_REVERSED,
)
from projections.registry import view_names
from tests.support.forged_events import append_with_chain

SMALL_DEMO_TRANSFERS = 400
WAIT_S = 60.0
CLI_TIMEOUT_S = 60.0


def _ledger_cli(database_url: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    """`ledger ...` as its own process (its logging set up as in production)."""
    return subprocess.run(
        [sys.executable, "-c", "from interface.cli.main import main; main()", *arguments],
        env=os.environ | {"LEDGER_DATABASE_URL": database_url, "LEDGER_LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def _load(ledger: Ledger, transfers: int) -> None:
    load_demo(ledger.service, transfers=transfers)
    assert isinstance(ledger.broker, SimulatedBroker)
    load_funded_demo(ledger.funded_accounts, ledger.broker)
    assert ledger.projections is not None
    assert ledger.projections.wait_for(ledger.writer.last_position, view_names(), WAIT_S)
    # Nothing moves from here on: the test tampers with a still log.
    ledger.projections.stop()


@contextmanager
def _tampering(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url) as connection:
        connection.execute("SET session_replication_role = replica")
        yield connection


def _position_of(database_url: str, topic: str, nth: int = 0) -> int:
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            "SELECT notification_id FROM ledger_events WHERE topic = %s "
            "ORDER BY notification_id OFFSET %s LIMIT 1",
            (topic, nth),
        ).fetchone()
    assert row is not None
    return int(row[0])


def _hash_chain_positions(database_url: str) -> list[int]:
    report = verify_ledger(database_url, check_views=False)
    return [
        finding.position or 0
        for finding in report.findings
        if finding.kind is FindingKind.HASH_CHAIN
    ]


def test_the_demo_data_set_verifies_with_every_view_equal_to_a_replay(
    ledger: Ledger, database_url: str
) -> None:
    _load(ledger, transfers=10_000)
    report = verify_ledger(database_url)
    assert report.ok, report.findings[:5]
    assert report.first_bad_event is None
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            "SELECT count(*), max(notification_id) FROM ledger_events"
        ).fetchone()
    assert row is not None
    assert report.events_checked == row[0] > 10_000
    assert report.head_position == row[1]
    assert {check.name: check.status for check in report.views} == dict.fromkeys(
        view_names(), ViewStatus.EQUAL
    )
    for check in report.views:
        assert check.live_digests == check.replayed_digests
        assert check.position == row[1]


def test_one_changed_byte_is_found_at_its_position(ledger: Ledger, database_url: str) -> None:
    _load(ledger, SMALL_DEMO_TRANSFERS)
    position = _position_of(database_url, TRANSFER_RECORDED, nth=100)
    with _tampering(database_url) as connection:
        row = connection.execute(
            "SELECT state FROM ledger_events WHERE notification_id = %s", (position,)
        ).fetchone()
        assert row is not None
        state = bytearray(row[0])
        # A byte of the fingerprint: still valid JSON, no money moved.
        at = state.index(b'"fingerprint":"') + len(b'"fingerprint":"')
        state[at] = ord("0") if state[at] != ord("0") else ord("1")
        connection.execute(
            "UPDATE ledger_events SET state = %s WHERE notification_id = %s",
            (bytes(state), position),
        )
    report = verify_ledger(database_url, check_views=False)
    assert [(finding.kind, finding.position) for finding in report.findings] == [
        (FindingKind.HASH_CHAIN, position)
    ]
    assert report.first_bad_event is not None
    assert report.first_bad_event.position == position


def test_a_deleted_event_is_found_at_the_event_after_it(ledger: Ledger, database_url: str) -> None:
    _load(ledger, SMALL_DEMO_TRANSFERS)
    deleted = _position_of(database_url, TRANSFER_REVERSED, nth=3)
    with _tampering(database_url) as connection:
        connection.execute("DELETE FROM ledger_events WHERE notification_id = %s", (deleted,))
    report = verify_ledger(database_url, check_views=False)
    assert report.first_bad_event is not None
    assert report.first_bad_event.kind is FindingKind.HASH_CHAIN
    assert report.first_bad_event.position == deleted + 1
    assert _hash_chain_positions(database_url) == [deleted + 1]


def test_two_swapped_events_are_found_at_the_first(ledger: Ledger, database_url: str) -> None:
    _load(ledger, SMALL_DEMO_TRANSFERS)
    first = _position_of(database_url, TRANSFER_RECORDED, nth=40)
    second = _position_of(database_url, TRANSFER_RECORDED, nth=60)
    columns = "originator_id, originator_version, topic, state"
    with _tampering(database_url) as connection:
        rows = {
            position: connection.execute(
                f"SELECT {columns} FROM ledger_events WHERE notification_id = %s", (position,)
            ).fetchone()
            for position in (first, second)
        }
        update = (
            "UPDATE ledger_events SET originator_id = %s, originator_version = %s, topic = %s,"
            " state = %s WHERE notification_id = %s"
        )
        # Through a free identity: (originator_id, originator_version) is unique.
        connection.execute(
            "UPDATE ledger_events SET originator_version = -1 WHERE notification_id = %s",
            (first,),
        )
        connection.execute(update, (*rows[first], second))  # type: ignore[misc]
        connection.execute(update, (*rows[second], first))  # type: ignore[misc]
    report = verify_ledger(database_url, check_views=False)
    assert report.first_bad_event is not None
    assert report.first_bad_event.kind is FindingKind.HASH_CHAIN
    assert report.first_bad_event.position == first
    assert _hash_chain_positions(database_url) == [first, second]


def test_a_tampered_view_row_is_found_with_the_rows_that_differ(
    ledger: Ledger, database_url: str
) -> None:
    _load(ledger, SMALL_DEMO_TRANSFERS)
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            "SELECT account_id, credits_posted FROM view_balances ORDER BY account_id LIMIT 1"
        ).fetchone()
        assert row is not None
        account_id, credits_posted = row
        connection.execute(
            "UPDATE view_balances SET credits_posted = credits_posted + 1 WHERE account_id = %s",
            (account_id,),
        )
    report = verify_ledger(database_url)
    assert [finding.kind for finding in report.findings] == [FindingKind.VIEW_MISMATCH]
    finding = report.findings[0]
    assert "view_balances" in finding.message
    live_only = [line for line in finding.details if line.startswith("live only")]
    replay_only = [line for line in finding.details if line.startswith("replay only")]
    assert len(live_only) == len(replay_only) == 1
    assert str(account_id) in live_only[0] and str(credits_posted + 1) in live_only[0]
    assert str(account_id) in replay_only[0] and str(credits_posted) in replay_only[0]
    statuses = {check.name: check.status for check in report.views}
    assert statuses["balances"] is ViewStatus.DIFFERENT
    assert statuses["accounts_directory"] is ViewStatus.EQUAL


def test_an_unbalanced_transfer_with_a_valid_chain_is_found_by_the_money_check(
    ledger: Ledger, database_url: str
) -> None:
    _load(ledger, SMALL_DEMO_TRANSFERS)
    with psycopg.connect(database_url) as connection:
        accounts = [
            str(row[0])
            for row in connection.execute(
                "SELECT account_id FROM view_balances ORDER BY account_id LIMIT 2"
            ).fetchall()
        ]
    time = {"_type_": "datetime_iso", "_data_": "2026-01-01T00:00:00+00:00"}
    position = append_with_chain(
        database_url,
        uuid.uuid4(),
        1,
        TRANSFER_RECORDED,
        {
            "timestamp": time,
            "originator_topic": "domain.transfer:Transfer",
            "postings": [
                {
                    "account_id": accounts[0],
                    "side": "debit",
                    "amount_minor": 100,
                    "currency": "USD",
                },
                {
                    "account_id": accounts[1],
                    "side": "credit",
                    "amount_minor": 99,
                    "currency": "USD",
                },
            ],
            "pending": False,
            "expires_at": None,
            "reverses_transfer_id": None,
            "metadata": {},
            "fingerprint": "forged",
            "recorded_at": time,
        },
    )
    report = verify_ledger(database_url, check_views=False)
    kinds = {finding.kind for finding in report.findings}
    assert FindingKind.HASH_CHAIN not in kinds
    unbalanced = [f for f in report.findings if f.kind is FindingKind.UNBALANCED_TRANSFER]
    assert [finding.position for finding in unbalanced] == [position]
    assert "+100 more than they credit in USD" not in unbalanced[0].message
    assert "+1 more than they credit in USD" in unbalanced[0].message
    # The accounts' own events never moved that money, so their totals disagree too.
    assert FindingKind.ACCOUNT_TOTALS in kinds
    assert report.first_bad_event is not None
    assert report.first_bad_event.position == position


def test_a_skipped_version_with_a_valid_chain_is_found(ledger: Ledger, database_url: str) -> None:
    _load(ledger, SMALL_DEMO_TRANSFERS)
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            "SELECT originator_id, max(originator_version) FROM ledger_events "
            "WHERE topic = %s GROUP BY originator_id ORDER BY originator_id LIMIT 1",
            (ACCOUNT_POSTINGS_APPLIED,),
        ).fetchone()
    assert row is not None
    account_id, version = row
    time = {"_type_": "datetime_iso", "_data_": "2026-01-01T00:00:00+00:00"}
    position = append_with_chain(
        database_url,
        account_id,
        version + 2,
        ACCOUNT_POSTINGS_APPLIED,
        {
            "timestamp": time,
            "debits_pending": 0,
            "debits_posted": 0,
            "credits_pending": 0,
            "credits_posted": 0,
            "transfer_ids": [],
        },
    )
    report = verify_ledger(database_url, check_views=False)
    assert [(finding.kind, finding.position) for finding in report.findings] == [
        (FindingKind.VERSION_SEQUENCE, position)
    ]


def test_a_funded_account_event_out_of_sequence_is_found(ledger: Ledger, database_url: str) -> None:
    assert isinstance(ledger.broker, SimulatedBroker)
    load_funded_demo(ledger.funded_accounts, ledger.broker)
    assert verify_ledger(database_url, check_views=False).ok
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            "SELECT originator_id, max(originator_version) FROM ledger_events "
            "WHERE originator_id = (SELECT originator_id FROM ledger_events WHERE topic = %s "
            "ORDER BY notification_id LIMIT 1) GROUP BY originator_id",
            (FUNDED_ACTIVATED,),
        ).fetchone()
    assert row is not None
    funded_account_id, version = row
    time = {"_type_": "datetime_iso", "_data_": "2026-01-01T00:00:00+00:00"}
    position = append_with_chain(
        database_url,
        funded_account_id,
        version + 2,
        FUNDED_BAND_CHANGED,
        {
            "timestamp": time,
            "from_band": "safe",
            "to_band": "warning",
            "drawdown": "0",
            "risk_per_trade": None,
            "at": time,
        },
    )
    report = verify_ledger(database_url, check_views=False)
    assert [(finding.kind, finding.position) for finding in report.findings] == [
        (FindingKind.VERSION_SEQUENCE, position)
    ]


@pytest.mark.timeout(120)
def test_the_cli_exits_zero_on_a_sound_ledger_and_one_naming_the_first_bad_event(
    ledger: Ledger, database_url: str
) -> None:
    _load(ledger, SMALL_DEMO_TRANSFERS)
    sound = _ledger_cli(database_url, "audit", "verify")
    assert sound.returncode == 0, sound.stdout + sound.stderr
    assert "OK" in sound.stdout
    position = _position_of(database_url, TRANSFER_RECORDED, nth=7)
    with _tampering(database_url) as connection:
        connection.execute(
            "UPDATE ledger_events SET originator_version = 9 WHERE notification_id = %s",
            (position,),
        )
    broken = _ledger_cli(database_url, "audit", "verify", "--skip-views")
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert f"first bad event: position {position}" in broken.stdout
    assert "hash_chain" in broken.stdout
