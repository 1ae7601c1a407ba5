"""Who else uses the live views on a database: what refuses a rebuild in place.

A rebuild in place empties the live views and fills them again; anyone
reading them meanwhile sees accounts missing and lists cut short. So it runs
only when nothing else uses them, told apart by the `application_name` of
their sessions in `pg_stat_activity`: a service's connection pool (which
always holds a connection open while it runs), a projection runner's
(`ledger serve` or `ledger projections run`: its listening connection stays
open), another rebuild's. Sessions end with their process, even one killed
with -9, so a crashed service never blocks a rebuild for long; the check
waits `ENDING_SESSIONS_WAIT_S` for the sessions of a process that has just
ended to go.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

import psycopg

from projections.rebuild import REBUILD_APPLICATION_NAME
from projections.runner import RUNNER_APPLICATION_NAME

# What a service's connections that read the views are named
# (interface/bootstrap.py sets it on its pool).
SERVICE_APPLICATION_NAME: Final[str] = "ledger service"
VIEW_USER_APPLICATION_NAMES: Final[tuple[str, ...]] = (
    SERVICE_APPLICATION_NAME,
    RUNNER_APPLICATION_NAME,
    REBUILD_APPLICATION_NAME,
)
# A backend notices its client is gone and ends within moments.
ENDING_SESSIONS_WAIT_S: Final[float] = 3.0
ENDING_SESSIONS_POLL_S: Final[float] = 0.1


@dataclass(frozen=True)
class ViewSession:
    application_name: str
    pid: int
    # The client's address; "local" over a Unix socket.
    client: str

    def __str__(self) -> str:
        return f"{self.application_name} (server pid {self.pid}, from {self.client})"


def other_view_sessions(database_url: str) -> list[ViewSession]:
    """Sessions on this database (but the check's own) that read or keep
    the live views; waits a moment for those that are ending."""
    deadline = time.monotonic() + ENDING_SESSIONS_WAIT_S
    with psycopg.connect(database_url, autocommit=True) as connection:
        while True:
            rows = connection.execute(
                "SELECT application_name, pid, coalesce(host(client_addr), 'local')"
                " FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = ANY(%s)"
                " AND pid <> pg_backend_pid() ORDER BY application_name, pid",
                (list(VIEW_USER_APPLICATION_NAMES),),
            ).fetchall()
            if not rows or time.monotonic() >= deadline:
                return [ViewSession(str(name), int(pid), str(client)) for name, pid, client in rows]
            time.sleep(ENDING_SESSIONS_POLL_S)
