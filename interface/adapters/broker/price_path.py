"""Scripted prices for the simulated broker: steps in time, read against a Clock.

A path is a list of quotes, each holding from its time until the next: a
test or the demo moves a `SettableClock` and the market moves with it.
Ready-made scripts: a steady ramp (a crash when it falls), a widening
spread, and a gap between one close and the next open.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from application.ports.broker import Quote

PRICE_PATH_STEPS_MAX: Final[int] = 10_000
# With the broker's QUANTITY_MAX, every price x quantity fits a signed 64-bit int.
PRICE_MINOR_MAX: Final[int] = 10**9
# Plenty, so a market guard's volume check stays quiet unless a script says otherwise.
VOLUME_DEFAULT: Final[int] = 1_000_000


@dataclass(frozen=True, slots=True)
class PriceStep:
    """A symbol's prices from `at` until the next step. Unset: last is the mid
    (rounded down), open and last close are the last."""

    at: datetime
    bid_minor: int
    ask_minor: int
    last_minor: int | None = None
    open_minor: int | None = None
    last_close_minor: int | None = None
    volume: int = VOLUME_DEFAULT

    def quote(self, symbol: str) -> Quote:
        last = self.last_minor if self.last_minor is not None else self._mid()
        quote = Quote(
            symbol=symbol,
            bid_minor=self.bid_minor,
            ask_minor=self.ask_minor,
            last_minor=last,
            open_minor=self.open_minor if self.open_minor is not None else last,
            last_close_minor=self.last_close_minor if self.last_close_minor is not None else last,
            volume=self.volume,
            at=self.at,
        )
        if max(quote.ask_minor, quote.last_minor, quote.open_minor) > PRICE_MINOR_MAX:
            raise ValueError(f"prices must be at most {PRICE_MINOR_MAX} minor units")
        return quote

    def _mid(self) -> int:
        return (self.bid_minor + self.ask_minor) // 2


@dataclass(frozen=True, slots=True)
class PricePath:
    """Steps in strictly increasing time; the step in force is the last one at
    or before the clock's time."""

    steps: tuple[PriceStep, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.steps) <= PRICE_PATH_STEPS_MAX:
            raise ValueError(f"a price path has 1 to {PRICE_PATH_STEPS_MAX} steps")
        for step in self.steps:
            if step.at.tzinfo is None:
                raise ValueError("a price step's time must carry a time zone")
            step.quote("CHECK")
        for earlier, later in zip(self.steps, self.steps[1:], strict=False):
            if not earlier.at < later.at:
                raise ValueError(f"price steps must be in increasing time: {later.at}")

    def step_at(self, moment: datetime) -> PriceStep | None:
        index = bisect.bisect_right(self.steps, moment, key=lambda step: step.at)
        return self.steps[index - 1] if index else None

    @classmethod
    def ramp(
        cls,
        start: datetime,
        interval: timedelta,
        from_mid_minor: int,
        to_mid_minor: int,
        steps: int,
        spread_minor: int,
    ) -> PricePath:
        """`steps` quotes moving evenly from one mid to another, one per
        interval (a crash when falling). The bid is the mid less half the
        spread (rounded down), the ask the bid plus the spread."""
        if steps < 2:
            raise ValueError("a ramp has at least 2 steps")
        mids = [
            from_mid_minor + (to_mid_minor - from_mid_minor) * index // (steps - 1)
            for index in range(steps)
        ]
        return cls(
            tuple(
                _step_around(start + interval * index, mid, spread_minor)
                for index, mid in enumerate(mids)
            )
        )

    @classmethod
    def widening_spread(
        cls, start: datetime, interval: timedelta, mid_minor: int, spreads_minor: Sequence[int]
    ) -> PricePath:
        """One step per spread, the mid held still."""
        return cls(
            tuple(
                _step_around(start + interval * index, mid_minor, spread)
                for index, spread in enumerate(spreads_minor)
            )
        )

    @classmethod
    def gap(
        cls,
        start: datetime,
        opens_at: datetime,
        last_close_minor: int,
        open_minor: int,
        spread_minor: int,
    ) -> PricePath:
        """Trading around yesterday's close, then a session opening at another price."""
        before = _step_around(start, last_close_minor, spread_minor)
        after = _step_around(opens_at, open_minor, spread_minor)
        return cls(
            (
                PriceStep(
                    before.at,
                    before.bid_minor,
                    before.ask_minor,
                    last_minor=last_close_minor,
                    last_close_minor=last_close_minor,
                ),
                PriceStep(
                    after.at,
                    after.bid_minor,
                    after.ask_minor,
                    last_minor=open_minor,
                    open_minor=open_minor,
                    last_close_minor=last_close_minor,
                ),
            )
        )


def _step_around(at: datetime, mid_minor: int, spread_minor: int) -> PriceStep:
    bid = mid_minor - spread_minor // 2
    return PriceStep(at, bid, bid + spread_minor, last_minor=mid_minor)
