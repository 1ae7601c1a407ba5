"""The whole demo data set, as `ledger serve --demo` loads it: ledger accounts
and transfers, then (with the simulated broker, whose market the demo sets)
funded accounts trading, withdrawals, a closure, and an account under each
guard (a crash, a gap, a widening spread). Loading it again finds
what the first load made. Reconciliation passes every check on it (tested)."""

from __future__ import annotations

from dataclasses import dataclass, field

from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.bootstrap import Ledger
from interface.demo.closures import load_closure_demo
from interface.demo.funded_accounts import load_funded_demo
from interface.demo.guards import load_guards_demo
from interface.demo.ledger_transfers import TRANSFERS, DemoSummary, load_demo
from interface.demo.withdrawals import load_withdrawals_demo


@dataclass(frozen=True, slots=True)
class DemoDataSet:
    summary: DemoSummary
    # What was loaded, a line each, for the operator.
    lines: list[str] = field(default_factory=list)


def load_demo_data_set(ledger: Ledger, *, transfers: int | None = None) -> DemoDataSet:
    summary = load_demo(ledger.service, transfers=TRANSFERS if transfers is None else transfers)
    lines = list(summary.lines())
    if isinstance(ledger.broker, SimulatedBroker):
        lines += load_funded_demo(ledger.funded_accounts, ledger.broker).lines()
        lines += load_withdrawals_demo(
            ledger.funded_accounts, ledger.withdrawals, ledger.broker
        ).lines()
        lines += load_closure_demo(ledger.funded_accounts, ledger.closures, ledger.broker).lines()
        lines += load_guards_demo(
            ledger.funded_accounts, ledger.guards, ledger.broker, ledger.clock
        ).lines()
    return DemoDataSet(summary, lines)
