"""The writer port: what use cases and the interface ask of the one writer.

Two things implement it: `application.writer.LedgerWriter`, the group-commit
writer running in this process, and the remote writer client
(`interface/writer_process/client.py`), which sends the same submissions to a
`ledger writer` process and answers with its receipts
(docs/architecture.md#the-write-path).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    # For the type checker only: the writer imports ports of its own
    # (application/ports/event_store.py), and ports import no use case.
    from application.writer import (
        AggregateChanges,
        WriteReceipt,
        WriterLimits,
        WriterStatistics,
        WriterTimeout,
    )
    from domain.commands import Command


class Writer(Protocol):
    """Decides and saves commands (and the aggregate changes that go with
    them) in batches, one decider for the whole database."""

    # Its limits; `submit_timeout_s` bounds how long a caller waits.
    limits: WriterLimits
    # Batches, commands and events it has committed (a remote writer's as
    # last reported).
    statistics: WriterStatistics

    @property
    def last_position(self) -> int:
        """The log position of the last batch this process knows was committed
        (read-your-writes: readers wait for the views to reach it)."""
        ...

    @property
    def is_running(self) -> bool:
        """True while submissions can be taken."""
        ...

    @property
    def queued_commands(self) -> int:
        """Commands waiting for a batch (a gauge, not a decision)."""
        ...

    def submit(
        self, commands: Sequence[Command], changes: AggregateChanges | None = None
    ) -> Future[WriteReceipt]:
        """Queue commands that run in one batch, with the changes to record if
        all of them succeed. Raises `WriterStopped` or `WriterOverloaded` at once
        when the submission cannot be taken."""
        ...

    def execute(
        self, commands: Sequence[Command], changes: AggregateChanges | None = None
    ) -> WriteReceipt:
        """`submit`, then wait at most `limits.submit_timeout_s` for the receipt."""
        ...

    def timed_out(self) -> WriterTimeout:
        """The error a caller that stopped waiting raises."""
        ...

    def start(self) -> None: ...

    def stop(self, timeout_s: float = 30.0) -> None: ...
