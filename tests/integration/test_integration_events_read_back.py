"""The integration events view after a restart: it remembers nothing, so
the holds a page resolves are read back from its table (a page's at once);
what it writes is what a rebuild from empty, remembering everything, writes."""

from __future__ import annotations

import psycopg

from domain.commands import PostPendingTransfer, VoidPendingTransfer
from interface.bootstrap import Ledger
from projections.integration_event_reads import (
    START,
    EventFilter,
    IntegrationEvent,
    integration_event_page,
)
from projections.integration_events import NAME, IntegrationEventsView
from projections.runner import ProjectionRunner
from tests.support.ledgers import platform_account, transfer, user_account

WAIT_S = 10.0
EVENTS_READ_MAX = 1_000


def _stored(ledger: Ledger) -> list[IntegrationEvent]:
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        return integration_event_page(cursor, EventFilter(), START, EVENTS_READ_MAX)


def _catch_up_alone(ledger: Ledger) -> None:
    runner = ProjectionRunner(ledger.database_url, [IntegrationEventsView()])
    try:
        runner.prepare()
        runner.catch_up()
    finally:
        runner.stop()


def test_holds_resolved_after_a_restart_are_read_back_as_a_rebuild_has_them(
    ledger: Ledger,
) -> None:
    cash_command = platform_account()
    alice_command = user_account(owner_id="alice")
    ledger.service.execute([cash_command, alice_command])
    cash, alice = cash_command.account_id, alice_command.account_id
    holds = [transfer(alice, cash, 100, pending=True, timeout_s=3600) for _ in range(4)]
    ledger.service.execute([transfer(cash, alice, 10_000), *holds])
    assert ledger.projections is not None
    assert ledger.projections.wait_for(ledger.writer.last_position, [NAME], WAIT_S)
    ledger.projections.stop()
    ledger.service.execute(
        [
            PostPendingTransfer(holds[0].transfer_id),
            VoidPendingTransfer(holds[1].transfer_id),
            PostPendingTransfer(holds[2].transfer_id, amount_minor=60),
        ]
    )

    _catch_up_alone(ledger)
    after_restart = _stored(ledger)
    with psycopg.connect(ledger.database_url) as connection, connection.cursor() as cursor:
        cursor.execute("DROP TABLE view_integration_events, view_integration_subjects")
        cursor.execute("UPDATE projection_tracking SET position = 0 WHERE name = %s", (NAME,))
    _catch_up_alone(ledger)

    assert [event.type for event in after_restart][-3:] == [
        "hold.posted",
        "hold.voided",
        "hold.posted",
    ]
    assert after_restart[-2].account_ids == [alice, cash]
    assert _stored(ledger) == after_restart
