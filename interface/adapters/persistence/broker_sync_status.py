"""The broker sync's last look at each funded account, in `broker_sync_status`
(migrations/0009): the `SyncStatusStore` of application/broker_sync.py, and
the reader the API shows an account's last sync with.

Operational state, overwritten by every sync: the facts (divergences, new
peaks) are events of the account's guard. A failed sync keeps the last good
figures, counts its failures and sets when to try again: 10 s after the
first, doubling with each, never more than 5 minutes apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from application.ports.broker import BrokerPosition
from application.ports.broker_sync_status import SyncFailure, SyncSnapshot
from domain.field_checks import exponential_backoff

Cursor = psycopg.Cursor[Any]

# The broker answers within seconds or is down: the first retry comes at the
# next pass or so, and an outage is asked about at most every 5 minutes.
RETRY_BACKOFF_BASE: Final[timedelta] = timedelta(seconds=10)
RETRY_BACKOFF_CAP: Final[timedelta] = timedelta(minutes=5)
# Stored errors are cut to this many characters.
ERROR_LENGTH_MAX: Final[int] = 500

# A sync older than the stored one (a slow pass overtaken) never overwrites it.
_RECORD_SUCCESS: Final = """
INSERT INTO broker_sync_status (
    funded_account_id, synced_at, equity_minor, cash_minor, unrealized_pnl_minor,
    positions, attempted_at, last_error, failed_attempts, next_attempt_at)
VALUES (%(id)s, %(at)s, %(equity)s, %(cash)s, %(unrealized)s, %(positions)s, %(at)s,
    NULL, 0, NULL)
ON CONFLICT (funded_account_id) DO UPDATE SET
    synced_at = EXCLUDED.synced_at,
    equity_minor = EXCLUDED.equity_minor,
    cash_minor = EXCLUDED.cash_minor,
    unrealized_pnl_minor = EXCLUDED.unrealized_pnl_minor,
    positions = EXCLUDED.positions,
    attempted_at = EXCLUDED.attempted_at,
    last_error = NULL,
    failed_attempts = 0,
    next_attempt_at = NULL
WHERE broker_sync_status.attempted_at <= EXCLUDED.attempted_at
"""

_COUNT_FAILURE: Final = """
INSERT INTO broker_sync_status (funded_account_id, attempted_at, last_error, failed_attempts)
VALUES (%(id)s, %(at)s, %(error)s, 1)
ON CONFLICT (funded_account_id) DO UPDATE SET
    attempted_at = EXCLUDED.attempted_at,
    last_error = EXCLUDED.last_error,
    failed_attempts = broker_sync_status.failed_attempts + 1
RETURNING failed_attempts
"""

_COLUMNS: Final = (
    "funded_account_id, synced_at, equity_minor, cash_minor, unrealized_pnl_minor,"
    " positions, attempted_at, last_error, failed_attempts, next_attempt_at"
)


def retry_delay(failed_attempts: int) -> timedelta:
    return exponential_backoff(failed_attempts, RETRY_BACKOFF_BASE, RETRY_BACKOFF_CAP)


class PostgresSyncStatusStore:
    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def record_success(self, snapshot: SyncSnapshot) -> None:
        equity = snapshot.equity
        with self._pool.connection() as connection:
            connection.execute(
                _RECORD_SUCCESS,
                {
                    "id": snapshot.funded_account_id,
                    "at": snapshot.at,
                    "equity": equity.equity_minor,
                    "cash": equity.cash_minor,
                    "unrealized": equity.unrealized_pnl_minor,
                    "positions": Jsonb([_position_json(held) for held in snapshot.positions]),
                },
            )

    def record_failure(self, funded_account_id: UUID, error: str, at: datetime) -> SyncFailure:
        error = error[:ERROR_LENGTH_MAX]
        with self._pool.connection() as connection, connection.transaction():
            # The count and the retry time it sets, in one transaction: the
            # upsert's row lock keeps another failure from counting in between.
            row = connection.execute(
                _COUNT_FAILURE, {"id": funded_account_id, "at": at, "error": error}
            ).fetchone()
            assert row is not None
            failed_attempts: int = row[0]
            next_attempt_at = at + retry_delay(failed_attempts)
            connection.execute(
                "UPDATE broker_sync_status SET next_attempt_at = %s WHERE funded_account_id = %s",
                (next_attempt_at, funded_account_id),
            )
        return SyncFailure(
            funded_account_id=funded_account_id,
            error=error,
            failed_attempts=failed_attempts,
            next_attempt_at=next_attempt_at,
        )

    def due(self, funded_account_ids: list[UUID], now: datetime) -> list[UUID]:
        if not funded_account_ids:
            return []
        with self._pool.connection() as connection:
            waiting = {
                row[0]
                for row in connection.execute(
                    "SELECT funded_account_id FROM broker_sync_status"
                    " WHERE funded_account_id = ANY(%s) AND next_attempt_at > %s",
                    (funded_account_ids, now),
                ).fetchall()
            }
        return [account_id for account_id in funded_account_ids if account_id not in waiting]


def _position_json(held: BrokerPosition) -> dict[str, Any]:
    return {
        "position_id": held.position_id,
        "symbol": held.symbol,
        "side": held.side.value,
        "quantity": held.quantity,
        "entry_price_minor": held.entry_price_minor,
        "current_price_minor": held.current_price_minor,
        "market_value_minor": held.market_value_minor,
        "unrealized_pnl_minor": held.unrealized_pnl_minor,
    }


# Reading -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SyncedPosition:
    """A position as the broker showed it at the last sync."""

    position_id: str
    symbol: str
    side: str
    quantity: int
    entry_price_minor: int
    current_price_minor: int
    market_value_minor: int
    unrealized_pnl_minor: int


@dataclass(frozen=True, slots=True)
class SyncStatus:
    """An account's last sync (None figures: none has answered yet) and its
    last attempt (with its error while failing)."""

    funded_account_id: UUID
    synced_at: datetime | None
    equity_minor: int | None
    cash_minor: int | None
    unrealized_pnl_minor: int | None
    positions: tuple[SyncedPosition, ...]
    attempted_at: datetime
    last_error: str | None
    failed_attempts: int
    next_attempt_at: datetime | None

    @property
    def failing(self) -> bool:
        return self.failed_attempts > 0


def read_sync_status(cursor: Cursor, funded_account_id: UUID) -> SyncStatus | None:
    """The account's sync status; None if it was never synced."""
    cursor.execute(
        f"SELECT {_COLUMNS} FROM broker_sync_status WHERE funded_account_id = %s",  # noqa: S608
        (funded_account_id,),
    )
    row = cursor.fetchone()
    if row is None:
        return None
    (
        account_id,
        synced_at,
        equity_minor,
        cash_minor,
        unrealized_pnl_minor,
        positions,
        attempted_at,
        last_error,
        failed_attempts,
        next_attempt_at,
    ) = row
    return SyncStatus(
        funded_account_id=account_id,
        synced_at=synced_at,
        equity_minor=equity_minor,
        cash_minor=cash_minor,
        unrealized_pnl_minor=unrealized_pnl_minor,
        positions=tuple(SyncedPosition(**held) for held in positions),
        attempted_at=attempted_at,
        last_error=last_error,
        failed_attempts=failed_attempts,
        next_attempt_at=next_attempt_at,
    )
