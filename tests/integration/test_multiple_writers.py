"""Several service processes writing to one database: slower is fine, wrong is not.

Three OS processes, each with its own writer and caches, hammer the same three
flagged user accounts with transfers that together would overdraw them many
times over, and send some of the same idempotency keys (with the same details,
and with other details). The events must then show every limit kept, every
key used for at most one transfer, and exactly the acknowledged transfers.
"""

from __future__ import annotations

import multiprocessing
import queue
import random
from collections import defaultdict
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from domain.account import Totals
from domain.identifiers import transfer_id_for
from domain.result_codes import ResultCode
from domain.transfer import Posting, Side
from interface.bootstrap import Ledger
from tests.support.audit import audit, first_broken_link
from tests.support.ledgers import platform_account, transfer, user_account
from tests.support.writer_process import PlannedTransfer, WriterPlan, run_writer_process

PROCESSES = 3
THREADS_PER_PROCESS = 3
OWN_TRANSFERS_PER_PROCESS = 150
SHARED_KEYS = 40
REUSED_KEYS = 20
FUNDING_MINOR = 5_000

OK, EXISTS = ResultCode.OK.value, ResultCode.EXISTS.value
# Refusals a transfer between funded, active USD accounts may meet. A writer
# that keeps losing races decides under the write lock instead of giving up,
# so no command may fail for contention.
EXPECTED_REFUSALS = {
    ResultCode.INSUFFICIENT_FUNDS.value,
    ResultCode.IDEMPOTENCY_KEY_REUSED.value,
}


def _plans(
    database_url: str, data_dir: Path, cash: str, users: list[str], decide_under_lock: bool
) -> list[WriterPlan]:
    rng = random.Random(20260101)

    def random_transfer(key: str) -> PlannedTransfer:
        debit = rng.choice(users)
        # Mostly out of the users' accounts altogether: together far more
        # than the users hold.
        credit = cash if rng.random() < 0.6 else rng.choice([u for u in users if u != debit])
        return PlannedTransfer(key, debit, credit, rng.randint(50, 150))

    shared = [random_transfer(f"shared-{index}") for index in range(SHARED_KEYS)]
    reused = [random_transfer(f"reused-{index}") for index in range(REUSED_KEYS)]
    plans = []
    for process in range(PROCESSES):
        own = [
            random_transfer(f"own-{process}-{index}") for index in range(OWN_TRANSFERS_PER_PROCESS)
        ]
        # The same key, other details in every process: at most one may win.
        mine = [
            PlannedTransfer(
                item.key, item.debit_account_id, item.credit_account_id, item.amount_minor + process
            )
            for item in reused
        ]
        # Shared and reused keys early, while the accounts still hold money.
        contested = [*shared, *mine, *own[:60]]
        random.Random(process).shuffle(contested)
        transfers = [*contested, *own[60:]]
        plans.append(
            WriterPlan(
                database_url=database_url,
                data_dir=str(data_dir / f"process-{process}"),
                transfers=tuple(transfers),
                threads=THREADS_PER_PROCESS,
                seed=process,
                decide_under_lock=decide_under_lock,
            )
        )
    return plans


def _run_processes(plans: list[WriterPlan]) -> list[dict[str, Any]]:
    context = multiprocessing.get_context("spawn")
    ready, results = context.Queue(), context.Queue()
    start = context.Event()
    processes = [
        context.Process(target=run_writer_process, args=(plan, ready, start, results))
        for plan in plans
    ]
    for process in processes:
        process.start()
    try:
        for _ in processes:
            ready.get(timeout=90)
        start.set()
        reports = [results.get(timeout=180) for _ in processes]
    except queue.Empty:
        pytest.fail("a writer process did not report in time")
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    assert [process.exitcode for process in processes] == [0] * len(processes)
    return reports


@pytest.mark.timeout(300)
@pytest.mark.parametrize("decide_under_lock", [False, True], ids=["optimistic", "under_lock"])
def test_writers_in_several_processes_never_overdraw_never_duplicate_and_lose_nothing(
    ledger: Ledger, tmp_path: Path, decide_under_lock: bool
) -> None:
    cash = platform_account()
    users = [user_account() for _ in range(3)]
    ledger.service.execute([cash, *users])
    funding = [transfer(cash.account_id, user.account_id, FUNDING_MINOR) for user in users]
    assert all(r.succeeded for r in ledger.service.execute(funding).results)
    cash_id, user_ids = str(cash.account_id), [str(user.account_id) for user in users]
    plans = _plans(ledger.database_url, tmp_path, cash_id, user_ids, decide_under_lock)
    planned: dict[tuple[int, str], PlannedTransfer] = {
        (plan.seed, item.key): item for plan in plans for item in plan.transfers
    }

    reports = _run_processes(plans)

    if decide_under_lock:
        # Every batch was decided under the lock, after checking what it read:
        # none conflicted, none was retried.
        assert sum(report["conflicts_retried"] for report in reports) == 0
        # (Batches that only refused wrote nothing and are not counted as committed.)
        assert all(
            report["batches_decided_under_lock"] >= report["batches_committed"] > 0
            for report in reports
        )
    else:
        # Version conflicts happened: the processes really did race for the accounts.
        assert sum(report["conflicts_retried"] for report in reports) > 0
    outcomes: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for report in reports:
        assert len(report["outcomes"]) == len(plans[report["seed"]].transfers)
        for key, code in report["outcomes"]:
            outcomes[key].append((report["seed"], code))
    unexpected = {
        key: codes
        for key, codes in outcomes.items()
        if any(code not in {OK, EXISTS, *EXPECTED_REFUSALS} for _, code in codes)
    }
    assert unexpected == {}
    all_codes = [code for codes in outcomes.values() for _, code in codes]
    assert ResultCode.INSUFFICIENT_FUNDS.value in all_codes
    assert ResultCode.IDEMPOTENCY_KEY_REUSED.value in all_codes

    rows, replayed = audit(ledger.database_url)
    assert replayed.problems() == []
    assert first_broken_link(rows) is None

    # Every key made at most one transfer, acknowledged as made exactly once,
    # with the details of the request that made it; `exists` only for the same details.
    expected: dict[str, Totals] = defaultdict(Totals)
    for key, codes in outcomes.items():
        made_by = [process for process, code in codes if code == OK]
        stored = replayed.transfers.get(transfer_id_for(key))
        assert len(made_by) <= 1, f"{key} was made by {made_by}"
        assert (stored is not None) == (len(made_by) == 1), f"{key}: {codes}"
        if stored is None:
            assert all(code != EXISTS for _, code in codes), f"{key}: {codes}"
            continue
        winner = planned[(made_by[0], key)]
        assert stored.postings == (
            Posting(UUID(winner.debit_account_id), Side.DEBIT, winner.amount_minor, "USD"),
            Posting(UUID(winner.credit_account_id), Side.CREDIT, winner.amount_minor, "USD"),
        )
        for process, code in codes:
            if code == EXISTS:
                assert planned[(process, key)] == winner, f"{key}: exists for other details"
        expected[winner.debit_account_id] = expected[winner.debit_account_id].plus(
            Totals(debits_posted=winner.amount_minor)
        )
        expected[winner.credit_account_id] = expected[winner.credit_account_id].plus(
            Totals(credits_posted=winner.amount_minor)
        )

    # What the processes acknowledged is exactly what the accounts show.
    assert len(replayed.transfers) == len(funding) + sum(
        1 for codes in outcomes.values() if any(code == OK for _, code in codes)
    )
    for user_id in user_ids:
        account = replayed.accounts[UUID(user_id)]
        assert account.totals == expected[user_id].plus(Totals(credits_posted=FUNDING_MINOR))
        assert account.totals.debits_posted <= account.totals.credits_posted
    cash_totals = replayed.accounts[cash.account_id].totals
    assert cash_totals == expected[cash_id].plus(Totals(debits_posted=FUNDING_MINOR * len(users)))
