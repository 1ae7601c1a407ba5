"""Idempotency records: the first response to each (API key, Idempotency-Key).

One row per API key and header value, in the interface's own table, on the
Ledger's pool. A row without a response is a request in progress; its claim
token names the request that owns it, so a request that lost its claim (taken
over after its lease, when its process died) can never overwrite the response
of the one that holds it. The HTTP side is interface/api/middleware/idempotency.py.

A record the writer answers for (`mark`) has no owner: its claim token is
WRITER_ANSWERS_TOKEN and it holds no response while the ledger's own record
of the transfer answers every retry; only an answer the writer would not
give again the same way (a refusal) is stored on it (`settle_marked`). See
"the writer's fast path" in the middleware.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from enum import Enum
from typing import Final
from uuid import UUID

from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

# Clients are promised at least a day to retry in.
RETENTION_S: Final[float] = 24 * 60 * 60.0
# Longer than any request runs (the writer gives up on a command after 30 s),
# so only a claim whose process died is ever taken over.
CLAIM_LEASE_S: Final[float] = 120.0
SWEEP_INTERVAL_S: Final[float] = 60.0
SWEEP_BATCH_SIZE_MAX: Final[int] = 1_000


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


@dataclass(frozen=True, slots=True)
class Claim:
    """This request owns the key: it runs, then completes or releases the claim."""

    key_id: UUID
    idempotency_key: str
    token: UUID


class Pending(Enum):
    # Another request with this key is running.
    IN_PROGRESS = "in_progress"
    # This key was first used for another request.
    REUSED = "reused"


Outcome = Claim | StoredResponse | Pending

# The claim token of a record the writer answers for: no request owns it, so
# `complete` and `release` (which match a request's own random token) never
# touch it, and no request waits on it.
WRITER_ANSWERS_TOKEN: Final[UUID] = UUID(int=0)


@dataclass(frozen=True, slots=True)
class Marked:
    """The key is the writer's to answer: the request runs, and a retry runs
    again (the writer finds what the first made)."""

    key_id: UUID
    idempotency_key: str
    digest: bytes
    # True when this request made the record: nothing ran with this key before.
    first: bool


MarkOutcome = Marked | StoredResponse | Pending


_CLAIM: Final = """
INSERT INTO idempotency_records AS record
    (key_id, idempotency_key, request_digest, claim_token)
VALUES (%(key_id)s, %(key)s, %(digest)s, %(token)s)
ON CONFLICT (key_id, idempotency_key) DO UPDATE SET
    request_digest = EXCLUDED.request_digest, claim_token = EXCLUDED.claim_token,
    created_at = now(), claimed_at = now(), response_status = NULL,
    response_headers = NULL, response_body = NULL, completed_at = NULL
WHERE record.created_at < now() - make_interval(secs => %(retention_s)s)
    OR (record.response_status IS NULL AND record.request_digest = EXCLUDED.request_digest
        AND record.claimed_at < now() - make_interval(secs => %(lease_s)s))
RETURNING claim_token
"""

# One statement, one round trip: the record is made, or the one there is
# returned (a no-op update locks and returns it as committed, which a SELECT
# in the same statement could not see). Past its retention it starts afresh,
# as in _CLAIM. `first`: the record was made (or restarted) by this statement.
_MARK: Final = """
INSERT INTO idempotency_records AS record
    (key_id, idempotency_key, request_digest, claim_token)
VALUES (%(key_id)s, %(key)s, %(digest)s, %(token)s)
ON CONFLICT (key_id, idempotency_key) DO UPDATE SET
    request_digest = CASE WHEN record.created_at < now() - make_interval(secs => %(retention_s)s)
        THEN EXCLUDED.request_digest ELSE record.request_digest END,
    claim_token = CASE WHEN record.created_at < now() - make_interval(secs => %(retention_s)s)
        THEN EXCLUDED.claim_token ELSE record.claim_token END,
    response_status = CASE WHEN record.created_at < now() - make_interval(secs => %(retention_s)s)
        THEN NULL ELSE record.response_status END,
    response_headers = CASE WHEN record.created_at < now() - make_interval(secs => %(retention_s)s)
        THEN NULL ELSE record.response_headers END,
    response_body = CASE WHEN record.created_at < now() - make_interval(secs => %(retention_s)s)
        THEN NULL ELSE record.response_body END,
    completed_at = CASE WHEN record.created_at < now() - make_interval(secs => %(retention_s)s)
        THEN NULL ELSE record.completed_at END,
    claimed_at = CASE WHEN record.created_at < now() - make_interval(secs => %(retention_s)s)
        THEN now() ELSE record.claimed_at END,
    created_at = CASE WHEN record.created_at < now() - make_interval(secs => %(retention_s)s)
        THEN now() ELSE record.created_at END
RETURNING record.created_at = now(), request_digest, claim_token, response_status,
    response_headers, response_body
"""

# The first definitive answer the writer would not repeat is kept; a request
# that comes second gets the one kept (RETURNING nothing: read it).
_SETTLE_MARKED: Final = """
UPDATE idempotency_records SET response_status = %(status)s, response_headers = %(headers)s,
    response_body = %(body)s, completed_at = now()
WHERE key_id = %(key_id)s AND idempotency_key = %(key)s AND claim_token = %(token)s
    AND request_digest = %(digest)s AND response_status IS NULL
"""

_SWEEP: Final = """
DELETE FROM idempotency_records
WHERE (key_id, idempotency_key) IN (
        SELECT key_id, idempotency_key FROM idempotency_records
        WHERE created_at < now() - make_interval(secs => %(retention_s)s)
        ORDER BY created_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
    -- Checked again on the row as it is now: a claim made since is not expired.
    AND created_at < now() - make_interval(secs => %(retention_s)s)
"""


class IdempotencyStore:
    """Idempotency records in the interface's own table, on the Ledger's pool."""

    def __init__(
        self,
        pool: ConnectionPool,
        *,
        retention_s: float = RETENTION_S,
        claim_lease_s: float = CLAIM_LEASE_S,
    ) -> None:
        assert retention_s >= RETENTION_S, "clients are promised a day to retry in"
        self.pool = pool
        self._retention_s = retention_s
        self._claim_lease_s = claim_lease_s
        self._sweep_due_at = 0.0
        self._sweep_lock = threading.Lock()

    def claim(self, key_id: UUID, idempotency_key: str, digest: bytes) -> Outcome:
        token = uuid.uuid4()
        parameters = {
            "key_id": key_id,
            "key": idempotency_key,
            "digest": digest,
            "token": token,
            "retention_s": self._retention_s,
            "lease_s": self._claim_lease_s,
        }
        with self.pool.connection() as connection:
            if connection.execute(_CLAIM, parameters).fetchone() is not None:
                return Claim(key_id, idempotency_key, token)
            row = connection.execute(
                "SELECT request_digest, response_status, response_headers, response_body "
                "FROM idempotency_records WHERE key_id = %s AND idempotency_key = %s",
                (key_id, idempotency_key),
            ).fetchone()
        if row is None:
            # Released between the two statements: the next attempt claims it.
            return Pending.IN_PROGRESS
        stored_digest, status, headers, body = row
        if bytes(stored_digest) != digest:
            return Pending.REUSED
        if status is None:
            return Pending.IN_PROGRESS
        return _stored(status, headers, body)

    def mark(self, key_id: UUID, idempotency_key: str, digest: bytes) -> MarkOutcome:
        """The writer's fast path: one statement. `Marked` when the request
        may run (first, or again after a first the writer answers for); the
        stored response, or REUSED, as `claim` answers; IN_PROGRESS when a
        request that owns the key (the claiming path) still runs."""
        parameters = {
            "key_id": key_id,
            "key": idempotency_key,
            "digest": digest,
            "token": WRITER_ANSWERS_TOKEN,
            "retention_s": self._retention_s,
        }
        with self.pool.connection() as connection:
            row = connection.execute(_MARK, parameters).fetchone()
        assert row is not None, "an upsert returns its row"
        first, stored_digest, token, status, headers, body = row
        if bytes(stored_digest) != digest:
            return Pending.REUSED
        if status is not None:
            return _stored(status, headers, body)
        if token != WRITER_ANSWERS_TOKEN:
            return Pending.IN_PROGRESS
        return Marked(key_id, idempotency_key, digest, first=bool(first))

    def settle_marked(self, marked: Marked, response: StoredResponse) -> StoredResponse:
        """Keep `response` on the record the writer answers for, unless an
        answer is kept there already: the one kept, which every retry gets."""
        headers = [
            [name.decode("latin-1"), value.decode("latin-1")] for name, value in response.headers
        ]
        parameters = {
            "status": response.status,
            "headers": Jsonb(headers),
            "body": response.body,
            "key_id": marked.key_id,
            "key": marked.idempotency_key,
            "token": WRITER_ANSWERS_TOKEN,
            "digest": marked.digest,
        }
        with self.pool.connection() as connection:
            if connection.execute(_SETTLE_MARKED, parameters).rowcount == 1:
                return response
            row = connection.execute(
                "SELECT response_status, response_headers, response_body "
                "FROM idempotency_records WHERE key_id = %s AND idempotency_key = %s "
                "AND request_digest = %s AND response_status IS NOT NULL",
                (marked.key_id, marked.idempotency_key, marked.digest),
            ).fetchone()
        # Swept or restarted meanwhile: this request's own answer stands.
        return response if row is None else _stored(*row)

    def unmark(self, marked: Marked) -> None:
        """Forget a record this request made and could not answer for (a 5xx,
        a 429): its retry runs as the first."""
        with self.pool.connection() as connection:
            connection.execute(
                "DELETE FROM idempotency_records WHERE key_id = %s AND idempotency_key = %s "
                "AND claim_token = %s AND request_digest = %s AND response_status IS NULL",
                (marked.key_id, marked.idempotency_key, WRITER_ANSWERS_TOKEN, marked.digest),
            )

    def complete(self, claim: Claim, response: StoredResponse) -> bool:
        """Store the response; False if the claim was lost (taken over after its lease)."""
        headers = [
            [name.decode("latin-1"), value.decode("latin-1")] for name, value in response.headers
        ]
        with self.pool.connection() as connection:
            updated = connection.execute(
                "UPDATE idempotency_records SET response_status = %s, response_headers = %s, "
                "response_body = %s, completed_at = now() "
                "WHERE key_id = %s AND idempotency_key = %s AND claim_token = %s "
                "AND response_status IS NULL",
                (
                    response.status,
                    Jsonb(headers),
                    response.body,
                    claim.key_id,
                    claim.idempotency_key,
                    claim.token,
                ),
            ).rowcount
        return updated == 1

    def release(self, claim: Claim) -> None:
        with self.pool.connection() as connection:
            connection.execute(
                "DELETE FROM idempotency_records "
                "WHERE key_id = %s AND idempotency_key = %s AND claim_token = %s "
                "AND response_status IS NULL",
                (claim.key_id, claim.idempotency_key, claim.token),
            )

    def delete_expired(self, limit: int = SWEEP_BATCH_SIZE_MAX) -> int:
        """Delete up to `limit` records older than the retention, oldest first."""
        with self.pool.connection() as connection:
            return connection.execute(
                _SWEEP, {"retention_s": self._retention_s, "limit": limit}
            ).rowcount

    def sweep_if_due(self) -> int:
        """Opportunistic cleanup: at most one bounded sweep a minute per process,
        sooner while a sweep keeps finding a full batch."""
        now = time.monotonic()
        with self._sweep_lock:
            if now < self._sweep_due_at:
                return 0
            self._sweep_due_at = now + SWEEP_INTERVAL_S
        deleted = self.delete_expired()
        if deleted >= SWEEP_BATCH_SIZE_MAX:
            with self._sweep_lock:
                self._sweep_due_at = 0.0
        return deleted


def _stored(status: int, headers: list[list[str]], body: bytes) -> StoredResponse:
    return StoredResponse(
        status,
        tuple((name.encode("latin-1"), value.encode("latin-1")) for name, value in headers),
        bytes(body),
    )
