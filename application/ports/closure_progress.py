"""The closure progress port: told of every recorded change of a closure, so
clients can follow it live (interface/adapters/notifications/closure_progress.py)."""

from __future__ import annotations

from typing import Protocol

from domain.closure import Closure


class ClosureProgress(Protocol):
    """Told after every recorded change of a closure (for live progress to
    clients). Must be quick and must not raise: the change is recorded."""

    def closure_changed(self, closure: Closure) -> None: ...


class NoClosureProgress:
    """The progress when nobody follows it."""

    def closure_changed(self, closure: Closure) -> None:
        return None
