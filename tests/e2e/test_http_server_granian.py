"""`ledger http` under granian (LEDGER_HTTP_SERVER=granian): alone on a port of
its own, and as `ledger serve`'s HTTP processes on the socket the supervisor
passes them, it answers /healthz and a transfer, and stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Final

import httpx
import psutil  # type: ignore[import-untyped]
import pytest

from interface.adapters.persistence.api_keys import Role
from tests.support.api_keys import bearer, create_api_key
from tests.support.http_api import open_account, post_transfer, transfer_body
from tests.support.service_process import LEDGER_SCRIPT, free_port, start_service

# Bounds on waits, not on speed: a loaded machine is slow, a broken one never gets there.
READY_WAIT_S: Final[float] = 120.0
STOP_WAIT_S: Final[float] = 60.0
POLL_INTERVAL_S: Final[float] = 0.1
GRANIAN: Final[dict[str, str]] = {"LEDGER_HTTP_SERVER": "granian"}

pytestmark = pytest.mark.slow


def _health_and_a_transfer(client: httpx.Client) -> None:
    health = client.get("/healthz")
    assert health.status_code == 200, health.text
    # Granian names itself; uvicorn would say "uvicorn".
    assert health.headers["server"] == "granian"
    cash = open_account(client, kind="cash", owner_id="platform")["id"]
    user = open_account(client)["id"]
    transfer = post_transfer(client, transfer_body(cash, user, "12.50"))
    assert {posting["account_id"] for posting in transfer["postings"]} == {cash, user}


def _wait_ready(base_url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    with httpx.Client(base_url=base_url, timeout=2.0) as client:
        deadline = time.monotonic() + READY_WAIT_S
        while time.monotonic() < deadline:
            assert process.poll() is None, log_path.read_text(errors="replace")
            try:
                if client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(POLL_INTERVAL_S)
    raise AssertionError(f"not ready:\n{log_path.read_text(errors='replace')}")


@pytest.mark.timeout(300)
def test_ledger_http_alone_under_granian_serves_and_stops_on_sigterm(
    database_url: str, tmp_path: Path
) -> None:
    api_key = create_api_key(database_url, Role.ADMIN)
    port = free_port()
    log_path = tmp_path / "http.log"
    environment = {
        **os.environ,
        **GRANIAN,
        "LEDGER_DATABASE_URL": database_url,
        "LEDGER_DATA_DIR": str(tmp_path / "data"),
        "LEDGER_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    environment.pop("LEDGER_WRITER_ENDPOINT", None)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(LEDGER_SCRIPT), "http", "--host", "127.0.0.1", "--port", str(port)],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        _wait_ready(base_url, process, log_path)
        with httpx.Client(base_url=base_url, headers=bearer(api_key), timeout=30.0) as client:
            _health_and_a_transfer(client)
            # SIGTERM with the client's keep-alive connection still open.
            process.send_signal(signal.SIGTERM)
            assert process.wait(STOP_WAIT_S) == 0, log_path.read_text(errors="replace")
        assert "Traceback" not in log_path.read_text(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.timeout(300)
def test_ledger_serve_http_processes_under_granian_serve_the_passed_socket(
    database_url: str, tmp_path: Path
) -> None:
    log_path = tmp_path / "service.log"
    service = start_service(database_url, tmp_path / "data", log_path, GRANIAN)
    try:
        service.wait_ready(READY_WAIT_S)
        children = psutil.Process(service.pid).children(recursive=True)
        http_children = [child for child in children if " http --fd " in " ".join(child.cmdline())]
        assert http_children, [child.cmdline() for child in children]
        with httpx.Client(
            base_url=service.base_url, headers=service.headers, timeout=30.0
        ) as client:
            _health_and_a_transfer(client)
            # To the supervisor alone: it stops its children in order.
            os.kill(service.pid, signal.SIGTERM)
            assert service.process.wait(STOP_WAIT_S) == 0, service.log_tail()
        _, alive = psutil.wait_procs(children, timeout=STOP_WAIT_S)
        assert alive == []
        assert "Traceback" not in log_path.read_text(errors="replace")
    finally:
        service.stop()
