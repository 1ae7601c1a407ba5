"""Waiting for SIGTERM or Ctrl-C (SIGINT), the two ways a process is asked to stop."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Final

STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)


def stop_requested() -> threading.Event:
    """An event set by the first SIGTERM or SIGINT from now on (main thread
    only: Python runs signal handlers there). A second signal changes
    nothing: the stop already under way finishes."""
    requested = threading.Event()

    def handle(_signal_number: int, _frame: FrameType | None) -> None:
        requested.set()

    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, handle)
    return requested
