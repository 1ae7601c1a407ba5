"""Progress bars for long commands (demo load, audit export and verify,
projection rebuilds, reconciliation): done of total, rate, time left.

They go to stderr, and only when stderr is a terminal and the command was
not asked for `--json`: a script, a pipe or a log file gets no bar and no
escape codes, and stdout carries only the result.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

# Advance(done, total): `done` units of `total` are finished.
Advance = Callable[[int, int], None]


class RateColumn(ProgressColumn):
    """Units per second, as Rich measures them over the last moments."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self._unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text(f"- {self._unit}/s", style="progress.data.speed")
        return Text(f"{speed:,.0f} {self._unit}/s", style="progress.data.speed")


def progress_shown(*, as_json: bool = False) -> bool:
    return not as_json and sys.stderr.isatty()


class Bars:
    """Phases of one command, a bar each; `phase` gives the bar's advance."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress
        self._tasks: dict[str, TaskID] = {}

    def phase(self, description: str, total: int | None = None) -> Advance:
        """A bar (`total` unknown until the first advance, if not given)."""
        progress = self._progress
        if progress is None:
            return _ignore
        task = self._tasks.get(description)
        if task is None:
            task = progress.add_task(description, total=total)
            self._tasks[description] = task

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return advance

    def finish(self, description: str) -> None:
        """Mark a phase done (its total reached), whatever was counted."""
        if self._progress is None or description not in self._tasks:
            return
        task = self._tasks[description]
        total = self._progress.tasks[task].total
        self._progress.update(task, completed=total if total is not None else 0, total=total)


def _ignore(done: int, total: int) -> None:
    return None


@contextmanager
def progress_bars(unit: str, *, as_json: bool = False) -> Iterator[Bars]:
    """Bars counting `unit`s (events, transfers, checks), on stderr when shown."""
    if not progress_shown(as_json=as_json):
        yield Bars(None)
        return
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    with progress:
        yield Bars(progress)
