"""The fork load port: how many forks are executing now, across every process
(interface/adapters/persistence/fork_load.py reads it from the forks view)."""

from __future__ import annotations

from typing import Protocol


class ForkLoad(Protocol):
    """How many forks are executing now, across every process."""

    def forks_executing(self) -> int: ...
