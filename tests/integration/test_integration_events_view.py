"""The integration events view: what each ledger change is told as, and that
a rebuild gives every event the id it had."""

from __future__ import annotations

from datetime import timedelta

import psycopg

from application.clock import SettableClock
from domain.account import AccountState
from domain.commands import (
    ChangeAccountState,
    ExpirePendingTransfer,
    PostPendingTransfer,
    ReverseTransfer,
    VoidPendingTransfer,
)
from interface.bootstrap import Ledger
from projections.integration_catalogue import EVENT_TYPES
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


def _events(ledger: Ledger, event_filter: EventFilter | None = None) -> list[IntegrationEvent]:
    assert ledger.projections is not None
    assert ledger.projections.wait_for(ledger.writer.last_position, [NAME], WAIT_S)
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        return integration_event_page(cursor, event_filter or EventFilter(), START, 1_000)


def test_each_ledger_change_is_one_public_event_in_log_order(
    ledger: Ledger, clock: SettableClock
) -> None:
    cash_command = platform_account()
    alice_command = user_account(owner_id="alice")
    unused_command = user_account(owner_id="bob")
    service = ledger.service
    service.execute([cash_command, alice_command, unused_command])
    cash, alice = cash_command.account_id, alice_command.account_id
    funding = transfer(cash, alice, 10_000)
    service.execute([funding])
    refunded = transfer(cash, alice, 5)
    service.execute([refunded])
    hold_to_post, hold_to_void, hold_to_expire = (
        transfer(alice, cash, 100, pending=True, timeout_s=3600) for _ in range(3)
    )
    service.execute([hold_to_post, hold_to_void, hold_to_expire])
    service.execute([PostPendingTransfer(hold_to_post.transfer_id, amount_minor=60)])
    service.execute([VoidPendingTransfer(hold_to_void.transfer_id)])
    clock.advance(timedelta(hours=2))
    service.execute([ExpirePendingTransfer(hold_to_expire.transfer_id)])
    service.execute([ReverseTransfer(refunded.transfer_id)])
    unused = unused_command.account_id
    service.execute([ChangeAccountState(unused, AccountState.CLOSED, "done", "test")])

    events = _events(ledger)
    assert [event.type for event in events] == [
        "account.created",
        "account.created",
        "account.created",
        "transfer.posted",
        "transfer.posted",
        "hold.created",
        "hold.created",
        "hold.created",
        "hold.posted",
        "hold.voided",
        "hold.expired",
        "transfer.reversed",
        "account.closed",
    ]
    for event in events:
        assert set(event.payload) == set(EVENT_TYPES[event.type].payload_fields), event.type
    posted = events[3]
    assert posted.payload["postings"][0] == {
        "account_id": str(cash),
        "side": "debit",
        "amount": "100.00",
        "currency": "USD",
    }
    assert set(posted.account_ids) == {cash, alice}

    voided = events[9]
    assert voided.payload["postings"][0]["amount"] == "1.00"
    assert voided.account_ids == [alice, cash]
    assert events[8].payload["postings"][0]["amount"] == "0.60"
    assert [event.type for event in _events(ledger, EventFilter(owner_id="alice"))][:2] == [
        "account.created",
        "transfer.posted",
    ]


def test_a_rebuild_gives_every_event_the_id_it_had(ledger: Ledger) -> None:
    cash_command = platform_account()
    alice_command = user_account(owner_id="alice")
    ledger.service.execute([cash_command, alice_command])
    for _ in range(5):
        ledger.service.execute([transfer(cash_command.account_id, alice_command.account_id, 7)])
    before = _events(ledger)
    assert ledger.projections is not None
    ledger.projections.stop()
    # Pages of three: events whose subjects were made pages before are read back.
    runner = ProjectionRunner(ledger.database_url, [IntegrationEventsView()], page_size=3)
    with psycopg.connect(ledger.database_url) as connection, connection.cursor() as cursor:
        cursor.execute("DROP TABLE view_integration_events, view_integration_subjects")
        cursor.execute("UPDATE projection_tracking SET position = 0 WHERE name = %s", (NAME,))
    runner.catch_up()
    runner.stop()
    with ledger.pool.connection() as connection, connection.cursor() as cursor:
        after = integration_event_page(cursor, EventFilter(), START, 1_000)
    assert after == before
