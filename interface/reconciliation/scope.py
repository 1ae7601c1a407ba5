"""Whether the reconciliation run under way is incremental or full.

See docs/operations.md#reconciliation.

A full run checks everything from the start of the log; it is the daily
default and what `ledger reconcile run` does. An incremental run (`ledger
reconcile run --incremental`, the hourly schedule) lets a check that keeps
a verified position (`reconciliation_positions`) check only what changed
after it; a check without one, or with one it cannot go on from, checks in
full. The run's caller says which for the checks it runs, in this thread
(a context variable: the service runs its checks in the caller's thread),
so the service and the check port stay the same for both.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_incremental: ContextVar[bool] = ContextVar("reconciliation_incremental", default=False)


@contextmanager
def incremental_runs(enabled: bool = True) -> Iterator[None]:
    """Checks run inside this block are incremental (if `enabled`)."""
    token = _incremental.set(enabled)
    try:
        yield
    finally:
        _incremental.reset(token)


def is_incremental() -> bool:
    return _incremental.get()
