from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from application.clock import SettableClock
from interface.bootstrap import Ledger, build_ledger
from interface.settings import Settings
from tests.support import databases
from tests.support.ledgers import EPOCH


@pytest.fixture(scope="session")
def postgres_server_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = databases.server_url(tmp_path_factory.mktemp("embedded-postgres"))
    databases.prepare_template(url)
    return url


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
