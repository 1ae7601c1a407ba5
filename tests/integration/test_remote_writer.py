"""The writer in a process of its own (`ledger writer`): commands and process
aggregates' changes cross to it and receipts come back; the writer lease keeps
a second writer waiting until the first stops, the client finds the new one by
itself, and with no writer left a submission fails at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from application.withdrawals import WithdrawalRequest
from application.writer import WriterStopped
from domain.result_codes import ResultCode
from domain.withdrawal import WithdrawalStatus
from interface.bootstrap import Ledger, build_ledger
from interface.settings import Settings
from interface.writer_process.client import RemoteWriter
from tests.support.ledgers import platform_account, transfer, user_account
from tests.support.withdrawals import profitable_funded_account
from tests.support.writer_service import (
    SERVING_LINE,
    WriterProcess,
    start_writer,
    writer_endpoint,
)

PROFIT_MINOR = 2_000_00
RECONNECT_WAIT_S = 30.0


@pytest.fixture
def endpoint() -> str:
    return writer_endpoint()


@pytest.fixture
def writer_process(database_url: str, tmp_path: Path, endpoint: str) -> Iterator[WriterProcess]:
    process = start_writer(database_url, tmp_path, tmp_path / "writer.log", endpoint)
    try:
        process.wait_serving()
        yield process
    finally:
        process.stop()


@pytest.fixture
def client_ledger(
    database_url: str, tmp_path: Path, endpoint: str, writer_process: WriterProcess
) -> Iterator[Ledger]:
    """A process's ledger whose writer is the writer process."""
    ledger = build_ledger(
        Settings(database_url=database_url, data_dir=tmp_path, writer_endpoint=endpoint)
    )
    try:
        yield ledger
    finally:
        ledger.close()


def test_transfers_cross_to_the_writer_process_and_receipts_come_back(
    client_ledger: Ledger,
) -> None:
    writer = client_ledger.writer
    assert isinstance(writer, RemoteWriter) and writer.is_running
    cash, user = platform_account(), user_account()
    opened = client_ledger.service.execute([cash, user])
    assert [result.code for result in opened.results] == [ResultCode.OK, ResultCode.OK]

    made = transfer(cash.account_id, user.account_id, 500)
    receipt = client_ledger.service.execute([made])
    assert receipt.results[0].code is ResultCode.OK
    recorded = receipt.transfer(made.transfer_id)
    assert recorded is not None and recorded.postings[0].amount_minor == 500
    assert receipt.position is not None and writer.last_position >= receipt.position

    # Awaited on an event loop, the same key finds the same transfer.
    again = asyncio.run(client_ledger.service.execute_async([made]))
    assert again.results[0].code is ResultCode.EXISTS
    assert again.results[0].id == made.transfer_id

    # Refused by the writer's rules, answered as a result, not an error.
    too_much = transfer(user.account_id, cash.account_id, 10_000)
    refused = client_ledger.service.execute([too_much])
    assert refused.results[0].code is ResultCode.INSUFFICIENT_FUNDS

    # A submission the writer cannot take raises the writer's own error here.
    with pytest.raises(ValueError, match="nothing to submit"):
        writer.submit([])

    account = client_ledger.service.account(user.account_id)
    assert account is not None and account.totals.credits_posted == 500


def test_a_withdrawal_records_its_aggregate_through_the_writer_process(
    client_ledger: Ledger,
) -> None:
    funded_id = profitable_funded_account(client_ledger, "trader-remote", PROFIT_MINOR)
    outcome = client_ledger.withdrawals.request(
        WithdrawalRequest(funded_id, 100_00, "remote-w-1", actor="user:test")
    )
    assert outcome.created
    stored = client_ledger.withdrawals.require_withdrawal(outcome.withdrawal.id)
    assert stored.status is WithdrawalStatus.APPROVED
    hold = client_ledger.service.transfer(stored.hold_transfer_id)
    assert hold is not None and hold.postings[0].amount_minor == 100_00
    funded = client_ledger.funded_accounts.require_funded_account(funded_id)
    assert funded.reserved_withdrawals_minor == 100_00

    # The same request again finds it: nothing is recorded twice.
    again = client_ledger.withdrawals.request(
        WithdrawalRequest(funded_id, 100_00, "remote-w-1", actor="user:test")
    )
    assert not again.created and again.withdrawal.id == stored.id
    funded = client_ledger.funded_accounts.require_funded_account(funded_id)
    assert funded.reserved_withdrawals_minor == 100_00


def test_a_second_writer_waits_for_the_lease_and_the_client_follows_it(
    database_url: str,
    tmp_path: Path,
    endpoint: str,
    writer_process: WriterProcess,
    client_ledger: Ledger,
) -> None:
    writer = client_ledger.writer
    assert isinstance(writer, RemoteWriter)
    cash, user = platform_account(), user_account()
    client_ledger.service.execute([cash, user])

    standby = start_writer(database_url, tmp_path, tmp_path / "standby.log", endpoint)
    try:
        standby.wait_for_line(b"writer_lease_waiting")
        assert SERVING_LINE not in standby.log_path.read_bytes()

        first = writer.incarnation
        assert first is not None
        assert writer_process.stop() == 0
        # The client follows the standby by itself once it serves.
        standby.wait_serving()
        deadline = time.monotonic() + RECONNECT_WAIT_S
        while writer.incarnation == first or not writer.is_running:
            assert time.monotonic() < deadline, "the client did not find the standby"
            time.sleep(0.05)
        made = transfer(cash.account_id, user.account_id, 700)
        receipt = client_ledger.service.execute([made])
        assert receipt.results[0].code is ResultCode.OK
        assert standby.stop() == 0
        # With no writer left, submissions fail at once: not acknowledged.
        deadline = time.monotonic() + RECONNECT_WAIT_S
        while writer.is_running:
            assert time.monotonic() < deadline, "the client did not notice the writer left"
            time.sleep(0.01)
        with pytest.raises(WriterStopped):
            client_ledger.service.execute([transfer(cash.account_id, user.account_id, 1)])
    finally:
        standby.stop()
