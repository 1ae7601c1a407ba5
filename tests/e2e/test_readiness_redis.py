"""`/readyz` follows a configured Redis: ready while it answers, 503 naming
`redis` once it dies, ready again when it is back. The Redis is this test's
own `redis-server` (the one CI shares through REDIS_URL is never stopped);
without the binary the test is skipped, saying so."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
import redis
from fastapi.testclient import TestClient

from application.clock import SettableClock
from interface.adapters.persistence.api_keys import Role
from interface.api.app import create_app
from interface.bootstrap import build_ledger
from interface.settings import Settings
from tests.support.api_keys import bearer
from tests.support.service_process import free_port

START_TIMEOUT_S: Final[float] = 30.0
STOP_TIMEOUT_S: Final[float] = 30.0


class OwnRedis:
    """A redis-server on a free loopback port, no persistence, started and stopped at will."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._folder = folder
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._folder),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        client = redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    assert self._process.poll() is None, "redis-server exited at start"
                    assert time.monotonic() < deadline, "redis-server did not answer"
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(STOP_TIMEOUT_S)
        self._process = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed: a Redis that dies cannot be staged here")
    server = OwnRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _readiness(client: TestClient) -> tuple[int, dict[str, Any]]:
    answer = client.get("/readyz")
    body: dict[str, Any] = answer.json()
    return answer.status_code, body


def test_readiness_follows_a_configured_redis(
    own_redis: OwnRedis, database_url: str, tmp_path: Path, clock: SettableClock
) -> None:
    settings = Settings(database_url=database_url, data_dir=tmp_path, redis_url=own_redis.url)
    ledger = build_ledger(settings, clock=clock)
    try:
        _, key = ledger.api_keys.create(Role.SERVICE, label="readiness-redis")
        with TestClient(create_app(ledger=ledger), headers=bearer(key)) as client:
            status, body = _readiness(client)
            assert status == 200, body
            assert body["checks"]["redis"] == "ok"

            own_redis.stop()
            status, body = _readiness(client)
            assert status == 503, body
            assert body["status"] == "not_ready"
            assert body["failing"] == ["redis"]
            assert body["checks"]["redis"].startswith("unreachable: ")
            # Liveness is not readiness: the process still answers.
            assert client.get("/healthz").status_code == 200

            own_redis.start()
            status, body = _readiness(client)
            assert status == 200, body
            assert body["checks"]["redis"] == "ok"
    finally:
        ledger.close()
