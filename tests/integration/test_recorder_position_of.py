"""`position_of`: where the store holds an event, asked by a writer whose save
raised (the connection broke) to learn whether the save committed. Only that
very event counts: the same aggregate and version with other contents is
another writer's, and says nothing of this save."""

from __future__ import annotations

from dataclasses import replace
from uuid import UUID

import pytest

from application.ports.event_store import LedgerRecorder
from interface.bootstrap import Ledger
from tests.support.ledgers import in_memory_writer, platform_account


@pytest.fixture(params=["postgres", "in_memory"])
def written(request: pytest.FixtureRequest) -> tuple[LedgerRecorder, int, UUID]:
    """A store, the position of one account's opening, and that account's id."""
    if request.param == "postgres":
        ledger: Ledger = request.getfixturevalue("ledger")
        app, writer = ledger.app, ledger.writer
        receipt = writer.execute([platform_account()])
    else:
        app, writer, _ = in_memory_writer()
        receipt = writer.apply([platform_account()])
    account_id = receipt.results[0].id
    assert receipt.position is not None and account_id is not None
    return app.ledger_recorder, receipt.position, account_id


def test_the_store_tells_the_position_of_an_event_it_holds_and_of_no_other(
    written: tuple[LedgerRecorder, int, UUID],
) -> None:
    recorder, position, account_id = written
    (stored,) = recorder.select_events_of_originators([account_id])[account_id]
    assert recorder.position_of(stored) == position
    assert recorder.position_of(replace(stored, state=stored.state + b" ")) is None
    assert recorder.position_of(replace(stored, topic=stored.topic + "x")) is None
    assert recorder.position_of(replace(stored, originator_version=2)) is None
