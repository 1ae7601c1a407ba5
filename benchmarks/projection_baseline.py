"""The peer baseline: the balances view, kept the way the eventsourcing docs show.

A `Projection` whose `process_event` gets each domain event from the
library's `ProjectionRunner` (its application subscription reconstructs the
event objects through the application's mapper) and, in one transaction per
event, writes the library's tracking record and updates the account's row,
adding one history row: the same two tables as our balances view
(`view_balances`, `view_balance_history`), named `baseline_*` here, in the
same database. The subscription asks only for the two account topics the
view needs, so the baseline never even reads the transfers' events
(favouring it); its rate is still counted in positions of the log covered
per second, as ours is.

It runs on the first `sample_events` positions of the log only: one
transaction per event takes minutes for a million.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Final
from uuid import UUID

import psycopg
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import InfrastructureFactory, Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresFactory, PostgresTrackingRecorder
from eventsourcing.projection import Projection, ProjectionRunner
from psycopg.sql import SQL, Composed

from application.event_log import LedgerApplication, RecorderFactory
from domain.account import Account
from interface.adapters.persistence import database
from interface.adapters.persistence.postgres_recorder import HashChainedPostgresRecorder
from projections.events import ACCOUNT_OPENED, ACCOUNT_POSTINGS_APPLIED

PROJECTION_NAME: Final[str] = "baseline_balances"
BALANCES_TABLE: Final[str] = "baseline_balances"
HISTORY_TABLE: Final[str] = "baseline_balance_history"
# The library's tracking table for this projection: its name plus "_tracking".
TRACKING_TABLE: Final[str] = f"{PROJECTION_NAME}_tracking"
POOL_SIZE: Final[int] = 2
WAIT_TIMEOUT_S: Final[float] = 3_600.0

_OPENED: Final[type] = Account.Opened  # type: ignore[attr-defined]
_POSTINGS_APPLIED: Final[type] = Account.PostingsApplied  # type: ignore[attr-defined]


def hash_chained_recorder(factory: InfrastructureFactory[Any]) -> HashChainedPostgresRecorder:
    assert isinstance(factory, PostgresFactory), type(factory)
    return HashChainedPostgresRecorder(factory.datastore)


_RECORDER_FACTORY: Final[RecorderFactory] = hash_chained_recorder


class BaselineLedgerApplication(LedgerApplication):
    """The ledger's application as the library's runner constructs it (from
    an environment alone), reading the ledger's own log."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        super().__init__(env, recorder_factory=_RECORDER_FACTORY)


class BaselineBalancesRecorder(PostgresTrackingRecorder):
    """The materialised view: the library's tracking recorder plus two tables."""

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        for statement in (
            f"CREATE TABLE IF NOT EXISTS {BALANCES_TABLE} ("
            " account_id uuid PRIMARY KEY, currency text NOT NULL,"
            " debits_pending bigint NOT NULL, debits_posted bigint NOT NULL,"
            " credits_pending bigint NOT NULL, credits_posted bigint NOT NULL,"
            " position bigint NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} ("
            " account_id uuid NOT NULL, position bigint NOT NULL,"
            " recorded_at timestamptz NOT NULL,"
            " debits_pending bigint NOT NULL, debits_posted bigint NOT NULL,"
            " credits_pending bigint NOT NULL, credits_posted bigint NOT NULL,"
            " PRIMARY KEY (account_id, position))",
        ):
            # The library keeps its statements as Composed.
            self.sql_create_statements.append(Composed([SQL(statement)]))

    def open_account(self, account_id: UUID, currency: str, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            self._insert_tracking(cursor, tracking)
            cursor.execute(
                SQL(
                    f"INSERT INTO {BALANCES_TABLE} VALUES (%s, %s, 0, 0, 0, 0, %s)"  # noqa: S608
                ),
                (account_id, currency, tracking.notification_id),
                prepare=True,
            )

    def apply_postings(
        self, account_id: UUID, change: tuple[int, int, int, int], at: Any, tracking: Tracking
    ) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            self._insert_tracking(cursor, tracking)
            cursor.execute(
                SQL(
                    f"UPDATE {BALANCES_TABLE} SET debits_pending = debits_pending + %s,"  # noqa: S608
                    " debits_posted = debits_posted + %s,"
                    " credits_pending = credits_pending + %s,"
                    " credits_posted = credits_posted + %s, position = %s"
                    " WHERE account_id = %s RETURNING debits_pending, debits_posted,"
                    " credits_pending, credits_posted"
                ),
                (*change, tracking.notification_id, account_id),
                prepare=True,
            )
            row = cursor.fetchone()
            if row is None:
                raise LookupError(f"account {account_id} changed before it was opened")
            cursor.execute(
                SQL(
                    f"INSERT INTO {HISTORY_TABLE} VALUES (%s, %s, %s, %s, %s, %s, %s)"  # noqa: S608
                ),
                (
                    account_id,
                    tracking.notification_id,
                    at,
                    row["debits_pending"],
                    row["debits_posted"],
                    row["credits_pending"],
                    row["credits_posted"],
                ),
                prepare=True,
            )


class BaselineBalancesProjection(Projection[BaselineBalancesRecorder]):
    name = PROJECTION_NAME
    topics = (ACCOUNT_OPENED, ACCOUNT_POSTINGS_APPLIED)
    # Set by the benchmark before the runner starts: when the event at or
    # after this position is processed, the time is noted (the runner's own
    # `wait` polls with a backoff of up to 0.8 s, too coarse to time with).
    stop_position: int = 0
    reached_at: float | None = None
    # Events processed until then.
    processed: int = 0

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.insert_tracking(tracking)
        self._count(tracking)

    @process_event.register(_OPENED)
    def _opened(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.open_account(domain_event.originator_id, domain_event.currency, tracking)
        self._count(tracking)

    @process_event.register(_POSTINGS_APPLIED)
    def _postings_applied(self, domain_event: Any, tracking: Tracking) -> None:
        change = (
            domain_event.debits_pending,
            domain_event.debits_posted,
            domain_event.credits_pending,
            domain_event.credits_posted,
        )
        self.view.apply_postings(
            domain_event.originator_id, change, domain_event.timestamp, tracking
        )
        self._count(tracking)

    def _count(self, tracking: Tracking) -> None:
        cls = type(self)
        if cls.reached_at is None:
            cls.processed += 1
            if tracking.notification_id >= cls.stop_position:
                cls.reached_at = time.perf_counter()


def stop_position_for(database_url: str, sample_events: int) -> int:
    """The first event at or after position `sample_events` that the baseline
    processes (else the last one before it): where its sample ends."""
    topics = list(BaselineBalancesProjection.topics)
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            "SELECT coalesce((SELECT notification_id FROM ledger_events"
            "  WHERE notification_id >= %s AND topic = ANY(%s)"
            "  ORDER BY notification_id LIMIT 1),"
            " (SELECT max(notification_id) FROM ledger_events"
            "  WHERE notification_id < %s AND topic = ANY(%s)), 0)",
            (sample_events, topics, sample_events, topics),
        ).fetchone()
    return int(row[0]) if row else 0


def run_baseline(database_url: str, sample_events: int) -> tuple[float, int, int]:
    """Run the library's runner from the start of the log until it has
    processed the sample; (seconds, events processed, positions covered)."""
    stop_position = stop_position_for(database_url, sample_events)
    if stop_position == 0:
        raise ValueError("the sample holds no account events")
    projection = BaselineBalancesProjection
    projection.stop_position, projection.reached_at, projection.processed = stop_position, None, 0
    env = {
        **database.eventsourcing_environment(database_url, POOL_SIZE),
        # The application reads the ledger's tables; the view makes its own.
        f"{PROJECTION_NAME.upper()}_CREATE_TABLE": "y",
    }
    started = time.perf_counter()
    with ProjectionRunner(
        application_class=BaselineLedgerApplication,
        projection_class=BaselineBalancesProjection,
        view_class=BaselineBalancesRecorder,
        env=env,
    ) as runner:
        runner.wait(stop_position, timeout=WAIT_TIMEOUT_S)
        reached_at = projection.reached_at or time.perf_counter()
        processed = projection.processed
    return reached_at - started, processed, stop_position


def compare_with_view(database_url: str, through_position: int) -> tuple[int, int]:
    """Rows (account, position, totals) in the baseline's history but not in
    our balances view's up to the same position, and the other way round."""
    columns = "account_id, position, debits_pending, debits_posted, credits_pending, credits_posted"
    ours = f"SELECT {columns} FROM view_balance_history WHERE position <= %s"  # noqa: S608
    theirs = f"SELECT {columns} FROM {HISTORY_TABLE} WHERE position <= %s"  # noqa: S608
    counts: list[int] = []
    with psycopg.connect(database_url) as connection:
        for first, second in ((theirs, ours), (ours, theirs)):
            row = connection.execute(
                f"SELECT count(*) FROM ({first} EXCEPT ALL {second}) AS d",  # noqa: S608
                (through_position, through_position),
            ).fetchone()
            counts.append(int(row[0]) if row else -1)
    return counts[0], counts[1]
