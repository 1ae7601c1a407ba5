"""Run as `python -m tests.support.die_while_migrating URL`.

Starts bringing the database's schema up to date exactly as the service does
at start (`interface.adapters.persistence.database.upgrade`) and is killed (SIGKILL) in the middle
of applying the migrations: what the OOM killer, a `kill -9` or a lost
machine does to a service that is starting.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from yoyo.backends.base import DatabaseBackend

from interface.adapters.persistence import database


def _die(*_args: Any, **_kwargs: Any) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    DatabaseBackend.apply_migrations = _die
    database.upgrade(sys.argv[1])
    raise SystemExit("the process should have died while migrating")


if __name__ == "__main__":
    main()
