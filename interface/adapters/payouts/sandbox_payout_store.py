"""Where the sandbox payout gateway keeps its payouts so that they outlive the process.

Stripe does not forget a payout when the ledger restarts, so neither does the
sandbox: without this, a restart lost every payout and its idempotency key,
and reconciliation found the paid withdrawals' payouts missing. The sandbox
writes each payout (and each change of status) here before it answers.

`PostgresSandboxPayoutStore` keeps them in `sandbox_payouts` (migrations/0013):
the sandbox's state, never the ledger's. Scripted faults are not kept.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any, Final, Protocol

from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from application.ports.payout_gateway import Payout, PayoutRequest, PayoutStatus

_INSERT: Final = """
INSERT INTO sandbox_payouts (payout_id, idempotency_key, request, amount_minor, currency,
    status, metadata, created_at, failure_code, failure_message)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""

_SET_STATUS: Final = """
UPDATE sandbox_payouts SET status = %s, failure_code = %s, failure_message = %s
WHERE payout_id = %s
"""

_LOAD: Final = """
SELECT idempotency_key, request, payout_id, amount_minor, currency, status, metadata,
    created_at, failure_code, failure_message
FROM sandbox_payouts ORDER BY made_order
"""


class SandboxPayoutStore(Protocol):
    def load(self) -> list[tuple[PayoutRequest, Payout]]:
        """Every payout with the request that made it, in the order they were made."""
        ...

    def record_created(self, request: PayoutRequest, payout: Payout) -> None: ...

    def record_status(self, payout: Payout) -> None: ...


class PostgresSandboxPayoutStore:
    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def load(self) -> list[tuple[PayoutRequest, Payout]]:
        with self._pool.connection() as connection:
            rows = connection.execute(_LOAD).fetchall()
        return [(_request(row[0], row[1]), _payout(row[2:])) for row in rows]

    def record_created(self, request: PayoutRequest, payout: Payout) -> None:
        request_json = {
            "amount_minor": request.amount_minor,
            "currency": request.currency,
            "metadata": dict(request.metadata),
            "description": request.description,
        }
        with self._pool.connection() as connection:
            connection.execute(
                _INSERT,
                (
                    payout.payout_id,
                    request.idempotency_key,
                    Jsonb(request_json),
                    payout.amount_minor,
                    payout.currency,
                    payout.status.value,
                    Jsonb(dict(payout.metadata)),
                    payout.created_at,
                    payout.failure_code,
                    payout.failure_message,
                ),
            )

    def record_status(self, payout: Payout) -> None:
        with self._pool.connection() as connection:
            connection.execute(
                _SET_STATUS,
                (
                    payout.status.value,
                    payout.failure_code,
                    payout.failure_message,
                    payout.payout_id,
                ),
            )


def _request(idempotency_key: str, data: dict[str, Any]) -> PayoutRequest:
    return PayoutRequest(
        idempotency_key=idempotency_key,
        amount_minor=data["amount_minor"],
        currency=data["currency"],
        metadata=data["metadata"],
        description=data["description"],
    )


def _payout(row: tuple[Any, ...]) -> Payout:
    payout_id, amount_minor, currency, status, metadata, created_at, code, message = row
    return Payout(
        payout_id=payout_id,
        amount_minor=amount_minor,
        currency=currency,
        status=PayoutStatus(status),
        metadata=metadata,
        # The session's time zone may be any: a payout's time is in UTC.
        created_at=created_at.astimezone(UTC),
        failure_code=code,
        failure_message=message,
    )
