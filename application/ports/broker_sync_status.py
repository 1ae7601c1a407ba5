"""The broker sync status port: the last look at each account's broker, and
each failure's backoff (interface: the `broker_sync_status` table).

What a sync saw is operational state, not history: it is kept here, and only
what matters (a divergence, a new peak) is recorded on the account's guard.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from application.ports.broker import AccountEquity, BrokerPosition
from domain.account_guard import Divergence


@dataclass(frozen=True, slots=True)
class SyncSnapshot:
    """What one sync of one account saw."""

    funded_account_id: UUID
    equity: AccountEquity
    positions: tuple[BrokerPosition, ...]
    divergences: tuple[Divergence, ...]
    at: datetime


@dataclass(frozen=True, slots=True)
class SyncFailure:
    funded_account_id: UUID
    error: str
    failed_attempts: int
    next_attempt_at: datetime


class SyncStatusStore(Protocol):
    """Where the last look at each account is kept (interface: the
    `broker_sync_status` table)."""

    def record_success(self, snapshot: SyncSnapshot) -> None: ...

    def record_failure(self, funded_account_id: UUID, error: str, at: datetime) -> SyncFailure: ...

    def due(self, funded_account_ids: list[UUID], now: datetime) -> list[UUID]:
        """The accounts among these not waiting out a failure's backoff."""
        ...
