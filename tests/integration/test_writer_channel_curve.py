"""CURVE on the writer channel: with LEDGER_WRITER_CURVE_SECRET_KEY the writer
admits only processes holding the same key; a tcp endpoint other hosts may
reach is refused without one (docs/configuration.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from application.writer import WriterStopped
from domain.result_codes import ResultCode
from interface.bootstrap import Ledger, build_ledger, writer_limits
from interface.settings import Settings
from interface.writer_process.client import RemoteWriter
from interface.writer_process.curve import CurveKeys, needs_curve, new_secret_key
from tests.support.ledgers import platform_account, transfer, user_account
from tests.support.writer_service import WriterProcess, start_writer, writer_endpoint

DEPLOYMENT_KEY = new_secret_key()


@pytest.mark.parametrize(
    ("endpoint", "reachable_from_elsewhere"),
    [
        ("tcp://127.0.0.1:7701", False),
        ("tcp://localhost:7701", False),
        ("tcp://[::1]:7701", False),
        ("ipc:///run/ledger/writer.sock", False),
        ("tcp://10.0.0.5:7701", True),
        ("tcp://*:7701", True),
        ("tcp://writer.internal:7701", True),
    ],
)
def test_only_endpoints_beyond_loopback_need_curve(
    endpoint: str, reachable_from_elsewhere: bool
) -> None:
    assert needs_curve(endpoint) is reachable_from_elsewhere


def test_a_reachable_endpoint_without_a_key_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="LEDGER_WRITER_CURVE_SECRET_KEY"):
        Settings(data_dir=tmp_path, writer_endpoint="tcp://10.0.0.5:7701")
    with_key = Settings(
        data_dir=tmp_path,
        writer_endpoint="tcp://10.0.0.5:7701",
        writer_curve_secret_key=SecretStr(DEPLOYMENT_KEY),
    )
    assert with_key.writer_curve_secret_key is not None


@pytest.mark.parametrize("bad_key", ["", "short", "é" * 40, "a" * 39 + " "])
def test_a_key_that_is_not_a_curve_secret_is_refused(tmp_path: Path, bad_key: str) -> None:
    with pytest.raises(ValidationError, match="ledger writer --new-key"):
        Settings(
            data_dir=tmp_path,
            writer_endpoint="tcp://127.0.0.1:7701",
            writer_curve_secret_key=SecretStr(bad_key),
        )


def test_the_public_key_follows_from_the_secret() -> None:
    keys = CurveKeys.from_secret(DEPLOYMENT_KEY)
    assert keys.secret == DEPLOYMENT_KEY.encode()
    assert len(keys.public) == 40 and keys.public != keys.secret


@pytest.fixture
def endpoint() -> str:
    return writer_endpoint()


@pytest.fixture
def curve_writer(database_url: str, tmp_path: Path, endpoint: str) -> Iterator[WriterProcess]:
    process = start_writer(
        database_url,
        tmp_path,
        tmp_path / "writer.log",
        endpoint,
        {"LEDGER_WRITER_CURVE_SECRET_KEY": DEPLOYMENT_KEY},
    )
    try:
        process.wait_serving()
        yield process
    finally:
        process.stop()


def _client_ledger(database_url: str, data_dir: Path, endpoint: str, key: str | None) -> Ledger:
    return build_ledger(
        Settings(
            database_url=database_url,
            data_dir=data_dir,
            writer_endpoint=endpoint,
            writer_curve_secret_key=SecretStr(key) if key is not None else None,
        )
    )


def test_a_process_holding_the_key_writes_through_the_curve_channel(
    database_url: str, tmp_path: Path, endpoint: str, curve_writer: WriterProcess
) -> None:
    ledger = _client_ledger(database_url, tmp_path, endpoint, DEPLOYMENT_KEY)
    try:
        assert isinstance(ledger.writer, RemoteWriter)
        cash, user = platform_account(), user_account()
        opened = ledger.service.execute([cash, user])
        assert [result.code for result in opened.results] == [ResultCode.OK, ResultCode.OK]
        receipt = ledger.service.execute([transfer(cash.account_id, user.account_id, 700)])
        assert receipt.results[0].code is ResultCode.OK
        assert ledger.writer.incarnation is not None
    finally:
        ledger.close()


@pytest.mark.parametrize("client_key", [new_secret_key(), None], ids=["another key", "no key"])
def test_a_process_without_the_key_is_never_heard(
    tmp_path: Path, endpoint: str, curve_writer: WriterProcess, client_key: str | None
) -> None:
    settings = Settings(data_dir=tmp_path, writer_endpoint=endpoint)
    keys = CurveKeys.from_secret(client_key) if client_key is not None else None
    outsider = RemoteWriter(endpoint, writer_limits(settings), curve=keys)
    outsider.start()
    try:
        # start() waited for a first answer; none came, and none will.
        assert outsider.incarnation is None
        with pytest.raises(WriterStopped):
            outsider.submit([platform_account()])
    finally:
        outsider.stop()
    assert curve_writer.process.poll() is None
