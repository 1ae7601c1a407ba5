"""Database faults answer 503 and lose nothing.

Under load, the served service's PostgreSQL backends are killed
(`pg_terminate_backend`) while clients post transfers: every answer is 201
(the transfer is stored, once) or 503 with `Retry-After`, never a 500 nor a
dropped HTTP connection, with one log line per failed request (its request
id, no traceback). Once the faults stop the service answers again by itself,
and a retry of every unanswered key, on the same connection, lands exactly
once. In process: a read-only database and a pool with no connection to
give answer 503 `database_unavailable` too, and the service recovers.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from domain.money import format_amount
from interface.adapters.persistence import database
from interface.bootstrap import Ledger
from tests.support.audit import audit, first_broken_link
from tests.support.http_api import assert_error, open_account, post_transfer, transfer_body
from tests.support.restartable_postgres import restartable_postgres
from tests.support.service_process import ServiceProcess, start_service

CLIENT_THREADS = 4
USERS = 3
# Kills go on until some request has met one, and a few rounds more; bounded.
KILL_ROUNDS_MAX = 400
KILL_ROUNDS_AFTER_FIRST_FAULT = 10
KILL_PAUSE_S = 0.05
NEW_TRANSFERS_AFTER_FAULT = 3
CLIENT_TIMEOUT_S = 60.0
# Bounds on waiting for what must happen (not measures of speed), and how
# often to look.
WAIT_S = 180.0
POLL_S = 0.05
# How long a request waits for a pooled connection while the test holds them
# all: short, so the test does not wait; the answer is the same for any value.
SHORT_POOL_WAIT_S = 0.2
# `unavailable`: under `ledger serve` the writer is a process of its own, and
# when its lease connection is killed it stops (it cannot know the lease is
# still its own) and the supervisor starts it again; meanwhile writes answer
# 503 `unavailable` with Retry-After (docs/architecture.md#the-write-path).
FAULT_CODES = {"database_unavailable", "writer_timeout", "unavailable"}
# The writer's own lines about a failed batch or sweep.
QUIET_EVENT_PREFIXES = ("writer_", "expiry_sweep")


@dataclass
class Answer:
    key: str
    body: dict[str, Any]
    status: int | None
    code: str | None = None
    retry_after: str | None = None
    request_id: str | None = None
    transfer_id: str | None = None


@dataclass
class Traffic:
    answers: list[Answer] = field(default_factory=list)
    # After the fault: retries of unanswered keys and new transfers.
    later: list[Answer] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    first_fault: threading.Event = field(default_factory=threading.Event)

    def answered(self, status: int, since: int = 0) -> bool:
        """Whether an answer during the fault, from the `since`-th on, had this status."""
        with self.lock:
            return any(answer.status == status for answer in self.answers[since:])

    def record(self, answer: Answer, *, later: bool = False) -> None:
        with self.lock:
            (self.later if later else self.answers).append(answer)
        if answer.status != 201 and not later:
            self.first_fault.set()


# The workers off: no background loop competes for the log or writes lines of
# its own; the writer and the views run.
QUIET_ENVIRONMENT = {
    "LEDGER_RULES_MONITOR_IN_PROCESS": "false",
    "LEDGER_PAYOUT_WORKER_IN_PROCESS": "false",
    "LEDGER_CLOSURE_WORKER_IN_PROCESS": "false",
    "LEDGER_FORK_SCANNER_IN_PROCESS": "false",
    "LEDGER_RECONCILIATION_SCHEDULE_IN_PROCESS": "false",
    "LEDGER_GUARDS_IN_PROCESS": "false",
}


@contextmanager
def quiet_service(database_url: str, tmp_path: Path) -> Iterator[ServiceProcess]:
    """`ledger serve` on the database, ready to answer."""
    running = start_service(
        database_url, tmp_path / "data", tmp_path / "service.log", QUIET_ENVIRONMENT
    )
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def _post(client: httpx.Client, key: str, body: dict[str, Any]) -> Answer:
    response = client.post("/v1/transfers", json=body)
    answer = Answer(
        key,
        body,
        response.status_code,
        retry_after=response.headers.get("Retry-After"),
        request_id=response.headers.get("X-Request-ID"),
    )
    if response.status_code >= 400:
        answer.code = response.json()["error"]["code"]
    else:
        answer.transfer_id = response.json()["id"]
    return answer


def _client_loop(
    service: ServiceProcess,
    name: str,
    accounts: dict[str, Any],
    traffic: Traffic,
    stop: threading.Event,
) -> None:
    cash, users = accounts["cash"], accounts["users"]
    unanswered: list[Answer] = []
    with httpx.Client(
        base_url=service.base_url, headers=service.headers, timeout=CLIENT_TIMEOUT_S
    ) as client:
        sequence = 0
        while not stop.is_set():
            sequence += 1
            key = f"{name}-{sequence}"
            body = transfer_body(
                cash, users[sequence % len(users)], f"1.{sequence % 100:02d}", key=key
            )
            try:
                answer = _post(client, key, body)
            except httpx.TransportError:
                answer = Answer(key, body, None)
            traffic.record(answer)
            if answer.status != 201:
                unanswered.append(answer)
        # The faults are over: the same connection, the same keys.
        for earlier in unanswered:
            traffic.record(_post(client, earlier.key, earlier.body), later=True)
        for index in range(NEW_TRANSFERS_AFTER_FAULT):
            key = f"{name}-after-{index}"
            body = transfer_body(cash, users[index % len(users)], "2.00", key=key)
            traffic.record(_post(client, key, body), later=True)


def _kill_backends(database_url: str, traffic: Traffic) -> None:
    """Terminate every other backend of the service's database, over and over."""
    rounds = 0
    with psycopg.connect(database_url, autocommit=True) as killer:
        after_fault = 0
        while rounds < KILL_ROUNDS_MAX and after_fault < KILL_ROUNDS_AFTER_FIRST_FAULT:
            rounds += 1
            killer.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            if traffic.first_fault.is_set():
                after_fault += 1
            time.sleep(KILL_PAUSE_S)


def _set_up_accounts(service: ServiceProcess) -> dict[str, Any]:
    with httpx.Client(base_url=service.base_url, headers=service.headers, timeout=30.0) as client:
        cash = open_account(client, key="faults-cash", kind="cash", owner_id="platform")["id"]
        users = [open_account(client, key=f"faults-user-{index}")["id"] for index in range(USERS)]
        post_transfer(client, transfer_body(cash, users[0], "1.00", key="faults-warm-up"))
    return {"cash": cash, "users": users}


def _traffic_through(
    service: ServiceProcess, accounts: dict[str, Any], fault: Callable[[Traffic], None]
) -> Traffic:
    """Clients post transfers while `fault` runs; then each retries, on the
    same connection, the keys it got no 201 for, and posts a few new ones."""
    traffic = Traffic()
    stop = threading.Event()
    clients = [
        threading.Thread(target=_client_loop, args=(service, f"c{index}", accounts, traffic, stop))
        for index in range(CLIENT_THREADS)
    ]
    for client in clients:
        client.start()
    try:
        fault(traffic)
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=CLIENT_TIMEOUT_S * 4)
    assert not any(client.is_alive() for client in clients)
    return traffic


def _assert_503_meanwhile_and_nothing_lost(
    service: ServiceProcess, database_url: str, traffic: Traffic
) -> None:
    during = traffic.answers
    faults = [answer for answer in during if answer.status != 201]
    assert faults, "no request met the fault"
    assert not [answer for answer in during if answer.status is None], "a connection was dropped"
    assert {answer.status for answer in faults} == {503}
    # A request that waited out the writer's timeout during the fault says so.
    assert {answer.code for answer in faults} <= FAULT_CODES
    assert all(answer.retry_after for answer in faults)
    # After the fault, every retry and every new transfer succeeds.
    assert [answer.status for answer in traffic.later if answer.status not in (200, 201)] == []
    _assert_each_key_stored_once(database_url, during + traffic.later)
    _assert_one_quiet_line_per_fault(service, faults)


@pytest.mark.timeout(300)
def test_killed_backends_answer_503_lose_nothing_and_the_service_recovers(
    database_url: str, tmp_path: Path
) -> None:
    with quiet_service(database_url, tmp_path) as service:
        accounts = _set_up_accounts(service)
        traffic = _traffic_through(
            service, accounts, lambda traffic: _kill_backends(database_url, traffic)
        )
        _assert_503_meanwhile_and_nothing_lost(service, database_url, traffic)


@pytest.mark.timeout(400)
def test_a_stopped_and_restarted_database_answers_503_meanwhile_and_loses_nothing(
    tmp_path: Path,
) -> None:
    with restartable_postgres() as postgres:
        database.upgrade(postgres.url)
        with quiet_service(postgres.url, tmp_path) as service:
            accounts = _set_up_accounts(service)

            def stop_and_restart(traffic: Traffic) -> None:
                _wait_for(lambda: traffic.answered(201), "a transfer before the stop")
                postgres.stop()
                _wait_for(traffic.first_fault.is_set, "a request to meet the stopped database")
                postgres.start()
                since = len(traffic.answers)
                # The pools reconnect by themselves: a transfer lands again.
                _wait_for(lambda: traffic.answered(201, since), "a transfer after the restart")

            traffic = _traffic_through(service, accounts, stop_and_restart)
            _assert_503_meanwhile_and_nothing_lost(service, postgres.url, traffic)


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(POLL_S)


def _assert_each_key_stored_once(database_url: str, answers: list[Answer]) -> None:
    rows, replayed = audit(database_url)
    assert replayed.problems() == []
    assert first_broken_link(rows) is None
    bodies = {answer.key: answer.body for answer in answers}
    # Each key's transfer, with the postings asked for; ids derive from keys,
    # so a key stored twice would have failed the store's unique key instead.
    acknowledged = {
        answer.key: UUID(answer.transfer_id)
        for answer in answers
        if answer.status in (200, 201) and answer.transfer_id is not None
    }
    assert set(acknowledged) == set(bodies)
    for key, transfer_id in acknowledged.items():
        stored = replayed.transfers[transfer_id]
        body = bodies[key]
        assert [
            (str(p.account_id), p.side.value, format_amount(p.amount_minor, p.currency))
            for p in stored.postings
        ] == [
            (body["debit_account_id"], "debit", body["amount"]),
            (body["credit_account_id"], "credit", body["amount"]),
        ]
    # Each account's totals are the sum of its transfers (the audit's check),
    # and the transfers are exactly the keys sent plus the warm-up.
    assert len(replayed.transfers) == len(acknowledged) + 1


def _assert_one_quiet_line_per_fault(service: ServiceProcess, faults: list[Answer]) -> None:
    """One line per failed request, with its id; no traceback on the request's
    path or the writer's (background loops that reconnect log their own)."""
    lines = [
        json.loads(line)
        for line in service.log_path.read_text(errors="replace").splitlines()
        if line.startswith("{")
    ]
    assert not [line for line in lines if line["event"] == "unhandled_error"]
    quiet = [
        line
        for line in lines
        if "request_id" in line or line["event"].startswith(QUIET_EVENT_PREFIXES)
    ]
    assert not [line for line in quiet if "exception" in line]
    for answer in faults:
        mentioning = [line for line in quiet if line.get("request_id") == answer.request_id]
        assert [line["event"] for line in mentioning] == [answer.code]


# A read-only database, and a pool with no connection to give (in process) ------------


def _set_read_only(database_url: str, read_only: bool) -> None:
    """Make the database take no writes (or take them again), for new sessions:
    the running ones are terminated, as a failover to a standby would."""
    dbname = conninfo_to_dict(database_url)["dbname"]
    setting = "SET default_transaction_read_only = on" if read_only else "RESET ALL"
    with psycopg.connect(database_url, autocommit=True) as admin:
        # This session may have started read-only itself.
        admin.execute("SET default_transaction_read_only = off")
        admin.execute(
            sql.SQL("ALTER DATABASE {} {}").format(sql.Identifier(str(dbname)), sql.SQL(setting))
        )
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def test_a_read_only_database_refuses_writes_with_503_and_reads_go_on(
    client: TestClient, database_url: str
) -> None:
    cash = open_account(client, kind="cash", owner_id="platform")["id"]
    user = open_account(client)["id"]
    made = post_transfer(client, transfer_body(cash, user, "1.00"))
    body = transfer_body(cash, user, "2.00")
    _set_read_only(database_url, True)
    try:
        refused = client.post("/v1/transfers", json=body)
        lost = assert_error(refused, 503, "database_unavailable")["error"]
        if lost["details"] == {"reason": "connection_lost"}:
            # The writer's kept connection was one of the sessions the
            # failover ended, and it learnt so on this write: the next one
            # runs on a new session, which is read-only.
            refused = client.post("/v1/transfers", json=body)
        read = client.get(f"/v1/transfers/{made['id']}")
    finally:
        _set_read_only(database_url, False)
    error = assert_error(refused, 503, "database_unavailable")["error"]
    assert error["details"] == {"reason": "read_only"}
    assert refused.headers["Retry-After"] == "5"
    assert read.status_code == 200, read.text
    # Nothing of the refused write was stored: its retry makes it (201), once.
    retried = client.post("/v1/transfers", json=body)
    assert retried.status_code == 201, retried.text
    assert client.post("/v1/transfers", json=body).status_code == 200


def test_a_pool_with_no_connection_to_give_answers_503_and_recovers(
    client: TestClient, ledger: Ledger
) -> None:
    pool = ledger.pool
    held = [pool.getconn() for _ in range(pool.max_size)]
    wait_s = pool.timeout
    pool.timeout = SHORT_POOL_WAIT_S
    try:
        refused = client.get("/v1/accounts")
    finally:
        pool.timeout = wait_s
        for connection in held:
            pool.putconn(connection)
    error = assert_error(refused, 503, "database_unavailable")["error"]
    assert error["details"] == {"reason": "pool_exhausted"}
    assert refused.headers["Retry-After"] == "1"
    assert client.get("/v1/accounts").status_code == 200
