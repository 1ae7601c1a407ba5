"""Open reconciliation exceptions, from the reconciliation view caught up first.

A run names an exception an earlier run raised and nobody has closed yet
instead of raising it again, and a person resolves an exception by its id;
both read the view after it has reached this process's last write, so the
run that just finished (or the exception just corrected) is in it. Runs
are written by the process that runs them, so that is enough: another
process's runs are at most a few milliseconds behind, and its exceptions
are then raised once more rather than lost.
"""

from __future__ import annotations

from typing import Final
from uuid import UUID

from psycopg_pool import ConnectionPool

from application.ports.writer import Writer
from interface.adapters.persistence.view_catch_up import catch_up_to_own_writes
from projections import reconciliation
from projections.runner import ProjectionRunner

# How long a read waits for the view to reach this process's last write.
VIEW_WAIT_S: Final[float] = 5.0


class ViewedOpenExceptions:
    def __init__(
        self, pool: ConnectionPool, writer: Writer, runner: ProjectionRunner | None
    ) -> None:
        self._pool = pool
        self._writer = writer
        self._runner = runner

    def open_by_fingerprint(self) -> dict[str, UUID]:
        self._catch_up()
        with self._pool.connection() as connection, connection.cursor() as cursor:
            return reconciliation.open_by_fingerprint(cursor)

    def run_of(self, exception_id: UUID) -> UUID | None:
        self._catch_up()
        with self._pool.connection() as connection, connection.cursor() as cursor:
            return reconciliation.run_of_exception(cursor, exception_id)

    def _catch_up(self) -> None:
        catch_up_to_own_writes(self._runner, self._writer, [reconciliation.NAME], VIEW_WAIT_S)
