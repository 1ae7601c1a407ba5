"""The clock port: what time it is now (application/clock.py has the system's
clock and one a test or an operator command can set)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...
