"""The audit export on a real log: every event once, in order, with hashes
that are the chain's, and filters that keep exactly what they say."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
import psycopg
import pytest

from domain.event_chain import chained_link_of
from interface.audit.export import ExportFilter, export_lines
from interface.bootstrap import Ledger
from interface.demo.ledger_transfers import load_demo
from projections.events import TRANSFER_RECORDED

DEMO_TRANSFERS = 600
CLI_TIMEOUT_S = 60.0


@pytest.fixture
def connection(ledger: Ledger, database_url: str) -> Iterator[psycopg.Connection[Any]]:
    summary = load_demo(ledger.service, transfers=DEMO_TRANSFERS)
    assert summary.user_account_ids
    with psycopg.connect(database_url, autocommit=True) as opened:
        yield opened


def _export(
    connection: psycopg.Connection[Any],
    export_filter: ExportFilter | None = None,
    *,
    limit: int | None = None,
    with_state: bool = False,
) -> list[dict[str, Any]]:
    chunks = export_lines(
        lambda: contextlib.nullcontext(connection),
        export_filter or ExportFilter(),
        limit=limit,
        with_state=with_state,
    )
    text = b"".join(chunks)
    assert text.endswith(b"\n")
    return [orjson.loads(line) for line in text.splitlines()]


def _stored(connection: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return connection.execute(
        "SELECT notification_id, originator_id, originator_version, topic, state, recorded_at,"
        " event_hash FROM ledger_events ORDER BY notification_id"
    ).fetchall()


def test_every_event_once_in_log_order_with_the_chain_hashes(
    connection: psycopg.Connection[Any],
) -> None:
    stored = _stored(connection)
    lines = _export(connection, with_state=True)
    assert [line["position"] for line in lines] == [row[0] for row in stored]
    previous_hash = "00" * 32
    for line, row in zip(lines, stored, strict=True):
        _, originator_id, version, topic, state, recorded_at, event_hash = row
        assert line["originator_id"] == str(originator_id)
        assert line["originator_version"] == version
        assert line["type"] == topic
        assert datetime.fromisoformat(line["recorded_at"]) == recorded_at
        assert line["hash"] == bytes(event_hash).hex()
        assert line["previous_hash"] == previous_hash
        # Each line checks on its own: its hash follows from the previous one.
        recomputed = chained_link_of(
            bytes.fromhex(line["previous_hash"]),
            line["position"],
            UUID(line["originator_id"]),
            line["originator_version"],
            line["type"],
            line["state"].encode(),
            datetime.fromisoformat(line["recorded_at"]),
        )
        assert recomputed.hex() == line["hash"]
        assert line["state"].encode() == bytes(state)
        previous_hash = line["hash"]


def test_data_is_the_body_with_times_as_plain_text(connection: psycopg.Connection[Any]) -> None:
    recorded = next(line for line in _export(connection) if line["type"] == TRANSFER_RECORDED)
    data = recorded["data"]
    assert isinstance(data["recorded_at"], str)
    datetime.fromisoformat(data["recorded_at"])
    assert {"account_id", "side", "amount_minor", "currency"} <= set(data["postings"][0])
    assert "state" not in recorded


def test_the_account_filter_keeps_its_events_and_its_transfers_events(
    connection: psycopg.Connection[Any],
) -> None:
    account = connection.execute(
        "SELECT originator_id FROM ledger_events WHERE topic LIKE %s "
        "ORDER BY notification_id OFFSET 7 LIMIT 1",
        ("%Account.Opened",),
    ).fetchone()
    assert account is not None
    account_id: UUID = account[0]
    transfers = set()
    expected = []
    for position, originator_id, _, topic, state, _, _ in _stored(connection):
        if topic == TRANSFER_RECORDED and any(
            posting["account_id"] == str(account_id) for posting in orjson.loads(state)["postings"]
        ):
            transfers.add(originator_id)
        if originator_id == account_id or originator_id in transfers:
            expected.append(position)
    lines = _export(connection, ExportFilter(account_id=account_id))
    assert len(transfers) > 10
    assert [line["position"] for line in lines] == expected
    # Kinds beyond Recorded are there: the transfers' later events.
    assert len({line["type"] for line in lines}) > 3


def test_time_filters_bound_the_record_time(connection: psycopg.Connection[Any]) -> None:
    stored = _stored(connection)
    since, until = stored[len(stored) // 4][5], stored[len(stored) // 2][5]
    lines = _export(connection, ExportFilter(since=since, until=until))
    expected = [row[0] for row in stored if since <= row[5] < until]
    assert expected
    assert [line["position"] for line in lines] == expected
    # The previous hash is the log's, not the previous line's, under a filter too.
    first = next(index for index, row in enumerate(stored) if row[0] == expected[0])
    assert lines[0]["previous_hash"] == bytes(stored[first - 1][6]).hex()


def test_limit_and_after_page_through_the_whole_log(connection: psycopg.Connection[Any]) -> None:
    everything = _export(connection)
    pages: list[dict[str, Any]] = []
    after = 0
    while True:
        page = _export(connection, ExportFilter(after=after), limit=97)
        pages.extend(page)
        if len(page) < 97:
            break
        after = page[-1]["position"]
    assert pages == everything


def test_the_cli_writes_json_lines_to_a_file(
    connection: psycopg.Connection[Any], database_url: str, tmp_path: Any
) -> None:
    output = tmp_path / "events.jsonl"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from interface.cli.main import main; main()",
            *("audit", "export", "--output", str(output), "--from", "2000-01-01T00:00:00"),
        ],
        env=os.environ | {"LEDGER_DATABASE_URL": database_url, "LEDGER_LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [orjson.loads(line) for line in output.read_bytes().splitlines()]
    assert [line["position"] for line in lines] == [row[0] for row in _stored(connection)]
