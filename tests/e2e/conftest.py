from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from interface.adapters.persistence.api_keys import Role
from interface.api.app import create_app
from interface.bootstrap import Ledger
from tests.support.api_keys import bearer
from tests.support.service_process import ServiceProcess, start_service


@pytest.fixture
def client(ledger: Ledger) -> Iterator[TestClient]:
    """The HTTP API in-process, on the test's ledger (real PostgreSQL, settable clock)."""
    _, service_key = ledger.api_keys.create(Role.SERVICE, label="e2e")
    with TestClient(create_app(ledger=ledger), headers=bearer(service_key)) as test_client:
        yield test_client


@pytest.fixture
def service(database_url: str, tmp_path: Path) -> Iterator[ServiceProcess]:
    """`ledger serve` as a child process on the test's database, ready to answer."""
    running = start_service(database_url, tmp_path / "data", tmp_path / "service.log")
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()
