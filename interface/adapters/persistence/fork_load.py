"""How many forks are executing now: the forks view, caught up first.

The limit of 5 forks at once (docs/rules.md#tiers-forks-and-merges) is checked
against the forks view. Before counting, the view is brought up to this
process's last write (a fork this process just started is counted); forks
started by another process a moment ago may be missed until the view has them,
which the executing step tolerates (the limit is a load bound, not a money
rule).
"""

from __future__ import annotations

from typing import Final

from psycopg_pool import ConnectionPool

from application.ports.writer import Writer
from interface.adapters.persistence.view_catch_up import catch_up_to_own_writes
from projections import forks
from projections.runner import ProjectionRunner

# How long a count waits for the view to reach this process's last write.
VIEW_WAIT_S: Final[float] = 2.0


class ViewedForkLoad:
    def __init__(
        self, pool: ConnectionPool, writer: Writer, runner: ProjectionRunner | None
    ) -> None:
        self._pool = pool
        self._writer = writer
        self._runner = runner

    def forks_executing(self) -> int:
        catch_up_to_own_writes(self._runner, self._writer, [forks.NAME], VIEW_WAIT_S)
        with self._pool.connection() as connection, connection.cursor() as cursor:
            return forks.forks_executing(cursor)
