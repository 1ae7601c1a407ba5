"""The embedded PostgreSQL as `ledger serve` owns it: started once, stopped at the end.

The embedded server stops itself at the exit of the last process that
joined it, but only when that exit runs Python's exit handlers: a process
ended by a signal (uvicorn re-raises SIGTERM after its graceful shutdown)
never does, and a stale entry in the server's list of joined processes keeps
it running too. So the supervisor, which alone starts it (its children get
its URL in LEDGER_DATABASE_URL), stops it itself: a fast shutdown (SIGINT to
the postmaster: open sessions are ended, then a clean checkpoint), waited
for, then a kill if it did not stop in time.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Final

# psutil comes with the embedded server's package, which needs it too.
import psutil  # type: ignore[import-untyped]
import structlog

from interface.adapters.persistence import database

log = structlog.get_logger(__name__)

# How long a fast shutdown may take before the postmaster is killed.
STOP_WAIT_S: Final[float] = 30.0
POSTMASTER_PID_FILE: Final[str] = "postmaster.pid"


@dataclass(frozen=True, slots=True)
class EmbeddedDatabase:
    url: str
    data_dir: Path

    def stop(self) -> None:
        postmaster = _postmaster(self.data_dir)
        if postmaster is None:
            return
        postmaster.send_signal(signal.SIGINT)
        try:
            postmaster.wait(STOP_WAIT_S)
        except psutil.TimeoutExpired:
            log.warning("embedded_postgres_killed", waited_s=STOP_WAIT_S)
            postmaster.kill()
            postmaster.wait(STOP_WAIT_S)


def start_embedded_database(data_dir: Path) -> EmbeddedDatabase:
    """Start (or join) the embedded server of `data_dir`."""
    url = database.start_embedded_postgres(data_dir)
    return EmbeddedDatabase(url, _postgres_dir(data_dir))


def _postgres_dir(data_dir: Path) -> Path:
    # Where interface.adapters.persistence.database puts the server's files.
    return data_dir.resolve() / "postgres"


def _postmaster(postgres_dir: Path) -> psutil.Process | None:
    """The running postmaster of this data directory, if any: the pid on
    the first line of its pid file, still a postgres of this directory."""
    try:
        pid = int((postgres_dir / POSTMASTER_PID_FILE).read_text().splitlines()[0])
        process = psutil.Process(pid)
        if str(postgres_dir) not in " ".join(process.cmdline()):
            return None
    except (OSError, ValueError, IndexError, psutil.Error):
        return None
    return process
