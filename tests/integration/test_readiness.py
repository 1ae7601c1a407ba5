"""`/readyz` tells the truth: each part it checks (database, migrations,
Redis when configured, the writer, the projection runner, the views' failures
and lag) fails it on its own, and the 503 names every part that failed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from application.clock import SettableClock
from interface.adapters.persistence.api_keys import Role
from interface.api.app import create_app
from interface.bootstrap import Ledger, build_ledger
from interface.settings import Settings
from projections.registry import view_names
from tests.support.api_keys import bearer
from tests.support.ledgers import user_account

# Nothing listens on port 1: a connection is refused at once.
UNREACHABLE_REDIS_URL = "redis://127.0.0.1:1/0"
NO_DATABASE_URL = "host=/nonexistent-folder dbname=nothing connect_timeout=1"


def _readiness(ledger: Ledger) -> tuple[int, dict[str, Any]]:
    _, key = ledger.api_keys.create(Role.SERVICE, label="readiness")
    with TestClient(create_app(ledger=ledger), headers=bearer(key)) as client:
        answer = client.get("/readyz")
    body: dict[str, Any] = answer.json()
    return answer.status_code, body


@pytest.fixture
def ledger_with(clock: SettableClock, database_url: str, tmp_path: Path) -> Iterator[Any]:
    """Build a ledger on the test's database with some settings changed."""
    built: list[Ledger] = []

    def build(**changes: Any) -> Ledger:
        settings = Settings(database_url=database_url, data_dir=tmp_path, **changes)
        built.append(build_ledger(settings, clock=clock))
        return built[-1]

    yield build
    for ledger in built:
        ledger.close()


def test_ready_when_every_part_answers(ledger: Ledger) -> None:
    status, body = _readiness(ledger)
    assert status == 200, body
    assert body == {
        "status": "ready",
        "checks": {
            "database": "ok",
            "migrations": "current",
            # CI exports REDIS_URL (a real Redis on the machine); a plain
            # run has none.
            "redis": "ok" if ledger.settings.redis_url else "not configured",
            "writer": "running",
            "projections": "running",
            "views": "ok",
        },
        "failing": [],
    }


def test_a_stopped_writer_and_runner_are_named(ledger: Ledger) -> None:
    assert ledger.projections is not None
    ledger.writer.stop()
    ledger.projections.stop()
    status, body = _readiness(ledger)
    assert status == 503, body
    assert body["failing"] == ["writer", "projections"]
    assert body["checks"]["writer"] == body["checks"]["projections"] == "stopped"


def test_an_unreachable_database_is_named(ledger: Ledger) -> None:
    ledger.database_url = NO_DATABASE_URL
    status, body = _readiness(ledger)
    assert status == 503, body
    assert body["failing"] == ["database"]
    assert body["checks"]["database"] == "unreachable"


def test_an_unreachable_redis_is_named_when_configured(ledger_with: Any) -> None:
    ledger = ledger_with(redis_url=UNREACHABLE_REDIS_URL)
    status, body = _readiness(ledger)
    assert status == 503, body
    assert body["failing"] == ["redis"]
    assert body["checks"]["redis"].startswith("unreachable")


def test_views_further_behind_than_the_bound_are_named(ledger_with: Any) -> None:
    # The runner runs elsewhere (here: nowhere), so the views fall behind.
    ledger = ledger_with(projections_in_process=False, readiness_view_lag_s_max=0.001)
    ledger.service.execute([user_account()])
    status, body = _readiness(ledger)
    assert status == 503, body
    assert body["failing"] == ["views"]
    assert body["checks"]["projections"] == "elsewhere"
    assert body["checks"]["views"].startswith("over 0.001 s behind: ")
    assert set(body["views"]) == set(view_names())
    assert all(view["lag_events"] > 0 and view["lag_s"] > 0 for view in body["views"].values())
