"""Events written around the writer, by a forger who knows the hash chain's
scheme: the chain stays valid, so only the ledger's own rules (balanced
transfers, version order, totals) can catch them."""

from __future__ import annotations

from typing import Any, Final
from uuid import UUID

import orjson
import psycopg

from domain.event_chain import GENESIS_HASH, chained_hash
from projections.events import TRANSFER_RECORDED

_FORGED_TIME: Final = {"_type_": "datetime_iso", "_data_": "2026-01-01T00:00:00+00:00"}


def append_with_chain(
    database_url: str, originator_id: UUID, version: int, topic: str, body: dict[str, Any]
) -> int:
    """Append an event whose hash follows the chain; its log position."""
    state = orjson.dumps(body)
    with psycopg.connect(database_url) as connection:
        connection.execute("LOCK TABLE ledger_events IN EXCLUSIVE MODE")
        row = connection.execute(
            "SELECT event_hash FROM ledger_events ORDER BY notification_id DESC LIMIT 1"
        ).fetchone()
        previous = bytes(row[0]) if row else GENESIS_HASH
        inserted = connection.execute(
            "INSERT INTO ledger_events (originator_id, originator_version, topic, state,"
            " event_hash) VALUES (%s, %s, %s, %s, %s) RETURNING notification_id",
            (
                originator_id,
                version,
                topic,
                state,
                chained_hash(previous, originator_id, version, topic, state),
            ),
        ).fetchone()
    assert inserted is not None
    return int(inserted[0])


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
