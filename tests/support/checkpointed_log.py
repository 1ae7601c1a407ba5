"""A real log with signed checkpoints over it, and tampering done the way a
database superuser would (`SET session_replication_role = replica` switches
the log's refuse-update triggers off)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from interface.adapters.audit_keys import PublicKeys
from interface.audit.checkpoint_sources import verify_database_checkpoints
from interface.audit.checkpoints import CheckpointReport
from interface.audit_setup import audit_public_keys, build_checkpointer, checkpoint_dir
from interface.bootstrap import build_ledger
from interface.demo.ledger_transfers import load_demo
from interface.settings import Settings


@dataclass(frozen=True)
class CheckpointedLog:
    database_url: str
    settings: Settings
    keys: PublicKeys
    directory: Path

    def verify(self, *, with_directory: bool = True) -> CheckpointReport:
        report, _ = verify_database_checkpoints(
            self.database_url, self.keys, self.directory if with_directory else None
        )
        return report

    def checkpoint(self) -> int:
        return build_checkpointer(self.settings, self.database_url).run_once()


def checkpointed_log(
    database_url: str, data_dir: Path, *, transfers: int, events_per_checkpoint: int
) -> CheckpointedLog:
    """A demo log of `transfers`, checkpointed every `events_per_checkpoint`."""
    settings = Settings(
        database_url=database_url,
        data_dir=data_dir,
        audit_checkpoint_events=events_per_checkpoint,
    )
    ledger = build_ledger(settings, start_projections=False)
    try:
        load_demo(ledger.service, transfers=transfers)
    finally:
        ledger.close()
    log = CheckpointedLog(database_url, settings, PublicKeys(), checkpoint_dir(settings))
    log.checkpoint()
    return CheckpointedLog(database_url, settings, audit_public_keys(settings), log.directory)


@contextmanager
def tampering(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url) as connection:
        connection.execute("SET session_replication_role = replica")
        yield connection
