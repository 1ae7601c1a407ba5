"""The simulators' durable state in a test database: a pool on it, and emptying it.

The contract tests run the simulated broker and the sandbox gateway against
their PostgreSQL stores too; each broker or world a contract makes starts
from empty tables, as a fresh in-memory one starts from nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from psycopg_pool import ConnectionPool

SIMULATOR_TABLES: Final = (
    "simulated_broker_orders",
    "simulated_broker_positions",
    "simulated_broker_accounts",
    "simulated_broker_markets",
    "sandbox_payouts",
)


@contextmanager
def simulator_pool(database_url: str) -> Iterator[ConnectionPool]:
    with ConnectionPool(
        database_url, min_size=1, max_size=2, kwargs={"autocommit": True}, open=True
    ) as pool:
        yield pool


def empty_simulator_tables(pool: ConnectionPool) -> None:
    with pool.connection() as connection:
        connection.execute(f"TRUNCATE {', '.join(SIMULATOR_TABLES)}")
