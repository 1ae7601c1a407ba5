"""Marks: the price an open position is valued at, and the time it was quoted.

A rule or guard decision is taken on the newest mark of every open position,
never on an entry price or on a mark older than a bound
(docs/rules.md#funded-accounts-and-withdrawals). The decision records which
marks it used, with their times, so an auditor sees what it was based on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

# The oldest mark a decision is taken on, unless a setting says otherwise
# (LEDGER_MARK_AGE_MAX_S).
MARK_AGE_MAX_DEFAULT: Final[timedelta] = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Mark:
    """A symbol's mark (a long's bid, a short's ask) as quoted at `quoted_at`."""

    symbol: str
    price_minor: int
    quoted_at: datetime

    def __post_init__(self) -> None:
        if type(self.price_minor) is not int or self.price_minor <= 0:
            raise ValueError(f"a mark's price must be a positive int, not {self.price_minor!r}")
        if self.quoted_at.tzinfo is None:
            raise ValueError("a mark's time must carry a time zone")

    def as_record(self) -> dict[str, Any]:
        """As a decision's event keeps it: plain JSON values."""
        return {"price_minor": self.price_minor, "quoted_at": self.quoted_at.isoformat()}


def marks_missing_or_stale(
    symbols: Iterable[str], marks: Mapping[str, Mark], at: datetime, age_max: timedelta
) -> dict[str, str]:
    """Symbol -> why no decision can be taken on it now: no mark, or one quoted
    more than `age_max` before `at`. Empty: every symbol has a fresh mark."""
    problems: dict[str, str] = {}
    for symbol in sorted(set(symbols)):
        mark = marks.get(symbol)
        if mark is None:
            problems[symbol] = "no mark"
        elif mark.quoted_at < at - age_max:
            problems[symbol] = (
                f"mark quoted at {mark.quoted_at.isoformat()}, older than "
                f"{age_max.total_seconds():g} s"
            )
    return problems
