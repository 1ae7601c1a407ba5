"""Broker sync: each funded account's positions and equity, fetched from the
broker and matched to the ledger's (docs/rules.md#position-sync-and-guards).

A sync reads; what it finds that matters is recorded on the account's guard
(`domain.account_guard.AccountGuard`): a divergence when first seen, its
clearing when gone, a new peak of equity. An account whose broker answers as
it did last time writes nothing to the log, however often it is synced. The
figures the broker gave (equity, positions) and each failure's backoff are
operational state, kept by a `SyncStatusStore` (a table, not the log).

Failures: `sync_account` raises whatever the broker raised; the caller
isolates it per account. `sync_or_record_failure` is that caller's half: the
failure is counted and the account waits out an exponential backoff before
the next try (`SyncStatusStore.due`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final
from uuid import UUID

import structlog

from application.aggregate_writes import change_alone, require_funded_account
from application.event_log import LedgerApplication
from application.ports.broker import (
    AccountEquity,
    Broker,
    BrokerError,
    BrokerPosition,
    UnknownAccount,
)
from application.ports.broker_sync_status import SyncFailure, SyncSnapshot, SyncStatusStore
from application.ports.clock import Clock
from application.ports.writer import Writer
from domain.account_guard import (
    AccountGuard,
    Divergence,
    HeldPosition,
    guard_id_for,
    match_positions,
)
from domain.funded_account import FundedAccount, OpenPosition
from domain.result_codes import LedgerRefusal, ResultCode
from domain.tiers import TIER_CURRENCY

log = structlog.get_logger(__name__)

# The stored error of a failed sync is cut to this many characters.
SYNC_ERROR_LENGTH_MAX: Final[int] = 500


@dataclass
class SyncPass:
    synced: list[SyncSnapshot] = field(default_factory=list)
    failed: list[SyncFailure] = field(default_factory=list)


class BrokerSyncService:
    def __init__(
        self,
        app: LedgerApplication,
        writer: Writer,
        broker: Broker,
        clock: Clock,
        status: SyncStatusStore,
    ) -> None:
        self._app = app
        self._writer = writer
        self._broker = broker
        self._clock = clock
        self._status = status

    def sync_account(self, funded_account_id: UUID) -> SyncSnapshot:
        """Fetch, match, record divergences (and a new peak) on the account's
        guard; raises the broker's error (the caller isolates and retries)."""
        at = self._clock.now()
        account = require_funded_account(self._app, funded_account_id)
        in_ledger = [_held(held) for held in account.positions]
        try:
            positions = self._broker.open_positions(funded_account_id)
            equity = self._broker.equity(funded_account_id)
        except UnknownAccount:
            # The broker opens an account with its first trade: one it never
            # held has nothing to disagree about, unless the ledger holds positions.
            if in_ledger:
                raise
            positions, equity = (), _equity_in_ledger(account, at)
        divergences = match_positions(in_ledger, [_held(held) for held in positions])
        change_alone(
            self._writer,
            lambda: self._load_or_start_guard(account, at),
            lambda guard: _record_sync(guard, equity.equity_minor, divergences, at),
            lambda: _contended(funded_account_id),
        )
        snapshot = SyncSnapshot(
            funded_account_id=funded_account_id,
            equity=equity,
            positions=tuple(positions),
            divergences=tuple(divergences),
            at=at,
        )
        self._status.record_success(snapshot)
        return snapshot

    def sync_or_record_failure(self, funded_account_id: UUID) -> SyncSnapshot | SyncFailure:
        """`sync_account`, with its failure recorded (and logged) instead of
        raised, so one account's broker trouble never stops another's sync."""
        try:
            return self.sync_account(funded_account_id)
        except BrokerError as error:
            # Expected now and then (an outage, a time-out): the backoff retries it.
            description = f"{type(error).__name__}: {error}"
            log.warning(
                "broker_sync_failed", funded_account_id=str(funded_account_id), error=description
            )
        except LedgerRefusal as refusal:
            description = f"{refusal.code.value}: {refusal.message}"
            log.warning(
                "broker_sync_failed", funded_account_id=str(funded_account_id), error=description
            )
        except Exception as error:
            # A fault of our own (the database, a bug): logged in full, retried all the same.
            description = f"{type(error).__name__}: {error}"
            log.exception("broker_sync_failed", funded_account_id=str(funded_account_id))
        return self._status.record_failure(
            funded_account_id, description[:SYNC_ERROR_LENGTH_MAX], self._clock.now()
        )

    def due(self, funded_account_ids: list[UUID]) -> list[UUID]:
        """The accounts among these to sync now (not waiting out a backoff)."""
        return self._status.due(funded_account_ids, self._clock.now())

    def _load_or_start_guard(self, account: FundedAccount, at: datetime) -> AccountGuard:
        guard = self._app.load_account_guard(guard_id_for(account.id))
        if guard is not None:
            return guard
        # As `GuardsService` starts one: a guard started late still measures
        # from the account's real peak; the broker's equity raises it at once
        # if it is higher.
        return AccountGuard.start(
            funded_account_id=account.id,
            peak_equity_minor=max(account.peak_balance_minor, account.equity_minor),
            at=at,
        )


def _record_sync(
    guard: AccountGuard, equity_minor: int, divergences: list[Divergence], at: datetime
) -> None:
    guard.observe_equity(equity_minor, at)
    guard.record_sync(divergences, at)


def _held(held: OpenPosition | BrokerPosition) -> HeldPosition:
    """A position as the match compares it, held in the ledger or at the broker."""
    return HeldPosition(
        position_id=held.position_id,
        symbol=held.symbol,
        side=held.side.value,
        quantity=held.quantity,
        entry_price_minor=held.entry_price_minor,
    )


def _equity_in_ledger(account: FundedAccount, at: datetime) -> AccountEquity:
    """What the broker would answer for an account it has not opened yet: the
    ledger's balance as cash, nothing open."""
    return AccountEquity(
        account_id=account.id,
        currency=TIER_CURRENCY,
        cash_minor=account.current_balance_minor,
        realized_pnl_minor=account.realized_pnl_minor,
        unrealized_pnl_minor=0,
        equity_minor=account.current_balance_minor,
        open_positions=0,
        at=at,
    )


def _contended(funded_account_id: UUID) -> LedgerRefusal:
    return LedgerRefusal(
        ResultCode.CONCURRENT_CHANGE,
        f"the guard of funded account {funded_account_id} kept changing under this sync",
        funded_account_id=str(funded_account_id),
    )
