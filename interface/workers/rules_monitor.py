"""The rules monitor: marks funded accounts' open positions to market and
enforces a violation, every few seconds, in one process at a time.

Every command on a funded account already records its band (the band is read
after every command: docs/rules.md#funded-accounts-and-withdrawals); what moves
without a command is the market. So the monitor walks the accounts the
`funded_accounts` view says hold open positions (or sit in the violation band,
not yet closed), and asks the service to mark each one: a band change is
recorded, a violation closes the positions and the account.

One monitor runs at a time, under a lease (interface/workers/leased_worker.py). Each
account's failure (the broker down for it, say)
is logged and counted and the pass goes on to the next account.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Final
from uuid import UUID

import structlog

from application.funded_accounts import FundedAccountsService
from domain.result_codes import LedgerRefusal
from interface.adapters.persistence.advisory_locks import RULES_MONITOR_LOCK_KEY
from interface.workers.leased_worker import Connection, LeasedLoop, OnLeasedLoop, id_pages
from projections.funded_accounts import accounts_to_watch

log = structlog.get_logger(__name__)

# Accounts read from the view per query while walking them.
ACCOUNTS_PER_QUERY: Final[int] = 500


@dataclass
class MonitorPass:
    # False: another process holds the lease; this pass marked nothing.
    leased: bool = True
    accounts_marked: int = 0
    violations_enforced: int = 0
    failures: dict[UUID, str] = field(default_factory=dict)


class RulesMonitor(OnLeasedLoop[MonitorPass]):
    def __init__(
        self, database_url: str, service: FundedAccountsService, interval_s: float
    ) -> None:
        self._service = service
        self._loop = LeasedLoop(
            name="rules-monitor",
            database_url=database_url,
            lock_key=RULES_MONITOR_LOCK_KEY,
            interval_s=interval_s,
            work=self._mark_all,
            report=_report,
        )

    def run_once(self) -> MonitorPass:
        """One pass over every watched account, if this process gets the lease."""
        done = self._loop.run_once()
        return MonitorPass(leased=False) if done is None else done

    def _mark_all(self, connection: Connection, stopping: threading.Event) -> MonitorPass:
        done = MonitorPass()
        for batch in id_pages(connection, accounts_to_watch, ACCOUNTS_PER_QUERY, stopping):
            for funded_account_id in batch:
                try:
                    check = self._service.mark_to_market(funded_account_id)
                except LedgerRefusal as refusal:
                    done.failures[funded_account_id] = refusal.code.value
                    log.warning(
                        "rules_monitor_mark_failed",
                        funded_account_id=str(funded_account_id),
                        code=refusal.code.value,
                        message=refusal.message,
                    )
                    continue
                except Exception as error:
                    # One account's fault never stops the others' marks.
                    done.failures[funded_account_id] = type(error).__name__
                    log.exception(
                        "rules_monitor_mark_failed", funded_account_id=str(funded_account_id)
                    )
                    continue
                done.accounts_marked += 1
                done.violations_enforced += check.enforced
        return done


def _report(done: MonitorPass) -> None:
    if done.violations_enforced or done.failures:
        log.info(
            "rules_monitor_pass",
            accounts_marked=done.accounts_marked,
            violations_enforced=done.violations_enforced,
            failures=len(done.failures),
        )
