"""One service process's writer, run in a child process by multi-writer tests.

The child builds its own ledger on the shared database (its own writer, its
own caches), waits for the start signal so that every child writes at once,
runs its planned transfers from a few threads, and reports every outcome and
its writer's statistics on a queue.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from domain.commands import Command, create_transfer
from domain.transfer import Posting, Side


@dataclass(frozen=True, slots=True)
class PlannedTransfer:
    key: str
    debit_account_id: str
    credit_account_id: str
    amount_minor: int

    def command(self) -> Command:
        return create_transfer(
            idempotency_key=self.key,
            postings=(
                Posting(UUID(self.debit_account_id), Side.DEBIT, self.amount_minor, "USD"),
                Posting(UUID(self.credit_account_id), Side.CREDIT, self.amount_minor, "USD"),
            ),
        )


@dataclass(frozen=True, slots=True)
class WriterPlan:
    database_url: str
    data_dir: str
    transfers: tuple[PlannedTransfer, ...]
    threads: int
    seed: int
    # Decide every batch under the log's write lock (LEDGER_WRITER_DECIDE_UNDER_LOCK).
    decide_under_lock: bool = False


def run_writer_process(plan: WriterPlan, ready: Any, start: Any, results: Any) -> None:
    """Entry point of a child process (multiprocessing 'spawn')."""
    from interface.bootstrap import build_ledger
    from interface.observability.logging import configure_logging
    from interface.settings import Settings

    configure_logging("WARNING")
    ledger = build_ledger(
        Settings.model_validate(
            {
                "LEDGER_DATABASE_URL": plan.database_url,
                "LEDGER_DATA_DIR": Path(plan.data_dir),
                "LEDGER_WRITER_DECIDE_UNDER_LOCK": plan.decide_under_lock,
            }
        ),
        start_projections=False,
    )
    outcomes: list[tuple[str, str]] = []
    lock = threading.Lock()
    rng = random.Random(plan.seed)
    submissions: list[list[PlannedTransfer]] = []
    remaining = list(plan.transfers)
    while remaining:
        size = rng.randint(1, 3)
        submissions.append(remaining[:size])
        remaining = remaining[size:]

    def work(share: list[list[PlannedTransfer]]) -> None:
        for submission in share:
            try:
                receipt = ledger.service.execute([item.command() for item in submission])
                found = [
                    (item.key, result.code.value)
                    for item, result in zip(submission, receipt.results, strict=True)
                ]
            except Exception as error:  # noqa: BLE001 - every failure is an outcome to report
                found = [(item.key, f"error:{type(error).__name__}") for item in submission]
            with lock:
                outcomes.extend(found)

    shares = [submissions[index :: plan.threads] for index in range(plan.threads)]
    workers = [threading.Thread(target=work, args=(share,)) for share in shares]
    ready.put(plan.seed)
    start.wait(120)
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    statistics = ledger.writer.statistics
    ledger.close()
    results.put(
        {
            "seed": plan.seed,
            "outcomes": outcomes,
            "conflicts_retried": statistics.conflicts_retried,
            "batches_decided_under_lock": statistics.batches_decided_under_lock,
            "batches_committed": statistics.batches_committed,
        }
    )
