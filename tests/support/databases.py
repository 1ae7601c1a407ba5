"""Real PostgreSQL for tests: LEDGER_TEST_DATABASE_URL, or an embedded server.

Migrations run once into a template database; every test that asks gets a
fresh database cloned from it, so tests never see each other's events.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from interface.adapters.persistence import database

TEMPLATE_NAME = "ledger_test_template"


def server_url(work_dir: Path) -> str:
    configured = os.environ.get("LEDGER_TEST_DATABASE_URL")
    if configured:
        return configured
    return database.start_embedded_postgres(work_dir)


def with_database(url: str, dbname: str) -> str:
    return make_conninfo(url, dbname=dbname)


def prepare_template(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_NAME}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{TEMPLATE_NAME}"')
    database.upgrade(with_database(url, TEMPLATE_NAME))


@contextmanager
def fresh_database(url: str) -> Iterator[str]:
    name = f"ledger_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_NAME}"')
    try:
        yield with_database(url, name)
    finally:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
