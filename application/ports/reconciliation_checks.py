"""The reconciliation ports: the checks a run runs, and the exceptions already
open (the checks live in interface/reconciliation/: they read the event
store, the payment processor and the broker)."""

from __future__ import annotations

from typing import Protocol
from uuid import UUID

from domain.reconciliation import CheckResult, Discrepancy


class ReconciliationCheck(Protocol):
    """One cross-check of two independently kept records."""

    @property
    def name(self) -> str: ...

    def run(self) -> CheckResult:
        """Compare, and say what differs. May raise: the run records the
        error as the check's result and goes on with the next check."""
        ...

    def correct(self, discrepancy: Discrepancy) -> str:
        """Apply the safe fix `discrepancy.correction` names; what was done,
        in a sentence. Raises when the fix failed."""
        ...


class OpenExceptions(Protocol):
    def open_by_fingerprint(self) -> dict[str, UUID]:
        """Every open exception of every run, by its discrepancy's fingerprint."""
        ...

    def run_of(self, exception_id: UUID) -> UUID | None:
        """The run that raised the exception, None if no run did."""
        ...
