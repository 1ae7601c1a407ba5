"""The closures view against the aggregates it is made from: generated
histories of closures (every kind of step, in any order the process allows,
refusals skipped), recorded in the log and projected by a runner that
remembers and by a fresh one that reads back, show each closure as the
aggregate holds it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any, Final
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application.clock import SettableClock
from domain.closure import NEXT_PHASE, Closure, TrancheStatus
from domain.result_codes import LedgerRefusal
from interface.bootstrap import Ledger, build_ledger
from interface.settings import Settings
from projections.closures import ClosuresView, closures_due
from projections.runner import ProjectionRunner
from tests.support.ledgers import EPOCH

STEPS: Final = (
    "enter",
    "wait",
    "fail",
    "stuck",
    "resume",
    "tranche",
    "paid",
    "unpaid",
    "closed_out",
    "email",
    "project",
)


@pytest.fixture
def idle_ledger(settings: Settings, clock: SettableClock) -> Iterator[Ledger]:
    running = build_ledger(settings, clock=clock, start_writer=False, start_projections=False)
    try:
        yield running
    finally:
        running.close()


def _new() -> Closure:
    return Closure.initiate(
        funded_account_id=uuid4(),
        owner_id="trader-1",
        ledger_account_id=uuid4(),
        recipient_name="Ada",
        recipient_address="ada@example.com",
        reason="test",
        at=EPOCH,
        actor="user:1",
    )


def _step(closure: Closure, kind: str, minute: int, amount: int) -> None:
    at = EPOCH + timedelta(minutes=minute)
    if kind == "enter":
        following = NEXT_PHASE.get(closure.phase)
        if following is not None:
            closure.enter(following, at, deadline_at=at + timedelta(hours=1))
    elif kind == "wait":
        closure.wait(at + timedelta(hours=2), at, "checked")
    elif kind == "fail":
        closure.attempt_failed("broker down", at)
    elif kind == "stuck":
        closure.mark_stuck("it broke", at)
    elif kind == "resume":
        closure.resume("admin:1", at, at + timedelta(hours=3))
    elif kind == "tranche":
        closure.tranche_requested(uuid4(), amount, at)
    elif kind in ("paid", "unpaid"):
        status = TrancheStatus.COMPLETED if kind == "paid" else TrancheStatus.FAILED
        closure.tranche_settled(status, "po_1", at, None if kind == "paid" else "declined")
    elif kind == "closed_out":
        closure.closed_out(amount, at)
    elif kind == "email":
        closure.email_sent(f"kind-{minute % 2}", f"message-{minute}", at)


def _expected(closure: Closure) -> dict[str, Any]:
    return {
        "phase": closure.phase.value,
        "stuck": closure.stuck,
        "stuck_reason": closure.stuck_reason,
        "next_action_at": closure.next_action_at,
        "deadline_at": closure.deadline_at,
        "failed_attempts": closure.failed_attempts,
        "last_error": closure.last_error,
        "tranches_completed": closure.tranches_completed,
        "total_paid_minor": closure.total_paid_minor,
        "completed_at": closure.completed_at,
        "updated_at": closure.updated_at,
        "funded_account_id": closure.funded_account_id,
        "confirmation_number": closure.confirmation_number,
    }


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    count=st.integers(1, 3),
    story=st.lists(
        st.tuples(st.integers(0, 2), st.sampled_from(STEPS), st.integers(1, 5_000_000)),
        min_size=1,
        max_size=40,
    ),
    page_size=st.sampled_from([1, 4, 500]),
)
def test_the_view_shows_each_closure_as_the_aggregate_holds_it(
    idle_ledger: Ledger, count: int, story: list[tuple[int, str, int]], page_size: int
) -> None:
    ledger = idle_ledger
    closures = [_new() for _ in range(count)]
    ledger.app.save(*closures)
    runner = ProjectionRunner(ledger.database_url, [ClosuresView()], page_size=page_size)
    try:
        for minute, (index, kind, amount) in enumerate(story, start=1):
            closure = closures[index % len(closures)]
            if kind == "project":
                runner.catch_up()
                continue
            try:
                _step(closure, kind, minute, amount)
            except (LedgerRefusal, ValueError):
                continue
            ledger.app.save(closure)
        runner.catch_up()
    finally:
        runner.stop()
    fresh = ProjectionRunner(ledger.database_url, [ClosuresView()], page_size=page_size)
    try:
        fresh.catch_up()
    finally:
        fresh.stop()
    far = EPOCH + timedelta(days=365)
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT * FROM view_closures WHERE closure_id = ANY(%s)", ([c.id for c in closures],)
        )
        columns = [column.name for column in cursor.description or ()]
        rows = {row[0]: dict(zip(columns, row, strict=True)) for row in cursor.fetchall()}
        due = set(closures_due(cursor, far, limit=10_000))
    for closure in closures:
        shown = {name: rows[closure.id][name] for name in _expected(closure)}
        assert shown == _expected(closure)
    ours = {closure.id for closure in closures}
    assert due & ours == {closure.id for closure in closures if closure.due(far)}
