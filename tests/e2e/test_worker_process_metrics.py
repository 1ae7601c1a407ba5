"""`ledger worker` with LEDGER_WORKER_METRICS_PORT serves its own /metrics:
the background loops run there, so their series (running, passes) and the
process's are read there (docs/operations.md#metrics)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Final

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.service_process import LEDGER_SCRIPT, free_port

# Bounds on waits, not on speed: a loaded machine is slow.
READY_WAIT_S: Final[float] = 120.0
STOP_WAIT_S: Final[float] = 30.0
POLL_INTERVAL_S: Final[float] = 0.2


def _scrape_when_the_payout_worker_has_passed(url: str, worker: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + READY_WAIT_S
    with httpx.Client(timeout=5.0) as client:
        while True:
            assert worker.poll() is None, "ledger worker exited"
            assert time.monotonic() < deadline, "no completed payout pass in the worker's /metrics"
            with contextlib.suppress(httpx.TransportError):
                answer = client.get(url)
                if (
                    answer.status_code == 200
                    and 'ledger_worker_passes_total{outcome="completed",worker="payout-worker"}'
                    in answer.text
                    and 'ledger_worker_passes_total{outcome="completed",worker="payout-worker"} 0.0'
                    not in answer.text
                ):
                    return answer.text
            time.sleep(POLL_INTERVAL_S)


def test_the_worker_process_serves_its_loops_series(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    environment = {
        **os.environ,
        "LEDGER_DATABASE_URL": database_url,
        "LEDGER_DATA_DIR": str(tmp_path / "data"),
        "LEDGER_HOST": "127.0.0.1",
        "LEDGER_WORKER_METRICS_PORT": str(port),
        "LEDGER_PAYOUT_WORKER_INTERVAL_S": "0.2",
        "LEDGER_LOG_LEVEL": "WARNING",
    }
    environment.pop("LEDGER_WRITER_ENDPOINT", None)
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [str(LEDGER_SCRIPT), "worker"],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            text = _scrape_when_the_payout_worker_has_passed(
                f"http://127.0.0.1:{port}/metrics", worker
            )
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(STOP_WAIT_S)
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("ledger_worker_running", frozenset({("worker", "payout-worker")}))] == 1
    assert ("process_cpu_seconds_total", frozenset()) in samples
    assert worker.returncode == 0, (tmp_path / "worker.log").read_text(errors="replace")[-2000:]
