"""The whole demo data set, as `ledger serve --demo` and `ledger demo` load
it: ledger accounts and transfers, then (with the simulated broker, whose
market the demo sets) funded accounts trading, withdrawals in every status,
a closure under way, a fork, and an account under each guard (a crash, a
gap, a widening spread): every list of the API shows something. Loading it
again finds what the first load made and changes nothing. Reconciliation
passes every check on it (tested)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.bootstrap import Ledger
from interface.demo.closures import load_closure_demo
from interface.demo.forks import load_fork_demo
from interface.demo.funded_accounts import load_funded_demo
from interface.demo.guards import load_guards_demo
from interface.demo.ledger_transfers import TRANSFERS, DemoSummary, LoadProgress, load_demo
from interface.demo.withdrawals import load_withdrawals_demo


@dataclass(frozen=True, slots=True)
class DemoDataSet:
    summary: DemoSummary
    # What was loaded, a line each, for the operator.
    lines: list[str] = field(default_factory=list)

    def described(self) -> dict[str, Any]:
        """The summary as plain values (`ledger demo --json`)."""
        summary = self.summary
        return {
            "accounts": summary.accounts,
            "platform_account_ids": {
                kind: str(identifier) for kind, identifier in summary.platform_account_ids.items()
            },
            "user_account_ids": [str(identifier) for identifier in summary.user_account_ids],
            "transfers_by_kind": dict(summary.kinds),
            "results": dict(summary.results),
            "elapsed_s": round(summary.elapsed_s, 3),
            "lines": self.lines,
        }


def load_demo_data_set(
    ledger: Ledger, *, transfers: int | None = None, progress: LoadProgress | None = None
) -> DemoDataSet:
    """`progress` hears (commands done, commands in all) as the transfers load."""
    summary = load_demo(
        ledger.service,
        transfers=TRANSFERS if transfers is None else transfers,
        progress=progress,
    )
    lines = list(summary.lines())
    if isinstance(ledger.broker, SimulatedBroker):
        lines += load_funded_demo(ledger.funded_accounts, ledger.broker).lines()
        lines += load_withdrawals_demo(
            ledger.funded_accounts, ledger.withdrawals, ledger.broker, ledger.payout_gateway
        ).lines()
        lines += load_closure_demo(ledger.funded_accounts, ledger.closures, ledger.broker).lines()
        lines += load_fork_demo(ledger.funded_accounts, ledger.forks).lines()
        lines += load_guards_demo(
            ledger.funded_accounts, ledger.guards, ledger.broker, ledger.clock
        ).lines()
    return DemoDataSet(summary, lines)
