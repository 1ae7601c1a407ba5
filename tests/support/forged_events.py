"""Events written around the writer, by a forger who knows the hash chain's
scheme: the chain stays valid, so only the ledger's own rules (balanced
transfers, version order, totals) can catch them."""

from __future__ import annotations

from typing import Any, Final
from uuid import UUID

import orjson
import psycopg

from domain.event_chain import GENESIS_HASH, chained_link_of
from projections.events import TRANSFER_RECORDED

_FORGED_TIME: Final = {"_type_": "datetime_iso", "_data_": "2026-01-01T00:00:00+00:00"}


def append_with_chain(
    database_url: str, originator_id: UUID, version: int, topic: str, body: dict[str, Any]
) -> int:
    """Append an event whose link follows the chain as the database extends
    it (version 2, ledger_append_events); its log position."""
    state = orjson.dumps(body)
    with psycopg.connect(database_url) as connection:
        connection.execute("LOCK TABLE ledger_events IN EXCLUSIVE MODE")
        row = connection.execute(
            "SELECT event_hash FROM ledger_events ORDER BY notification_id DESC LIMIT 1"
        ).fetchone()
        previous = bytes(row[0]) if row else GENESIS_HASH
        position_row = connection.execute(
            "SELECT nextval(pg_get_serial_sequence('ledger_events', 'notification_id')), now()"
        ).fetchone()
        assert position_row is not None
        position, recorded_at = position_row
        link = chained_link_of(
            previous, position, originator_id, version, topic, state, recorded_at
        )
        connection.execute(
            "INSERT INTO ledger_events (notification_id, originator_id, originator_version, topic,"
            " state, event_hash, recorded_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (position, originator_id, version, topic, state, link, recorded_at),
        )
    return int(position)


def forge_unbalanced_transfer(
    database_url: str,
    transfer_id: UUID,
    debit_account: str,
    credit_account: str,
    debit_minor: int,
    credit_minor: int,
) -> int:
    """A posted USD transfer whose debit and credit differ; its log position."""
    return append_with_chain(
        database_url,
        transfer_id,
        1,
        TRANSFER_RECORDED,
        {
            "timestamp": _FORGED_TIME,
            "originator_topic": "domain.transfer:Transfer",
            "postings": [
                {
                    "account_id": debit_account,
                    "side": "debit",
                    "amount_minor": debit_minor,
                    "currency": "USD",
                },
                {
                    "account_id": credit_account,
                    "side": "credit",
                    "amount_minor": credit_minor,
                    "currency": "USD",
                },
            ],
            "pending": False,
            "expires_at": None,
            "reverses_transfer_id": None,
            "metadata": {},
            "fingerprint": "forged",
            "recorded_at": _FORGED_TIME,
        },
    )
