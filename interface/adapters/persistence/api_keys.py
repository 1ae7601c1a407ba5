"""API keys: made once, shown once, stored as a digest, revocable.

A key is `ldg_` followed by 43 URL-safe characters (32 random bytes). Each
request costs one index lookup on the key's SHA-256 digest, cached for a
moment so a busy client does not pay it every time; a revocation made in this
process takes effect at once, one made elsewhere within the cache's lifetime.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final
from uuid import UUID

from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

KEY_PREFIX: Final[str] = "ldg_"
KEY_SECRET_BYTES: Final[int] = 32
KEY_LENGTH_MAX: Final[int] = 128
CACHE_TTL_S: Final[float] = 1.0
CACHE_SIZE_MAX: Final[int] = 10_000
OWNER_ID_LENGTH_MAX: Final[int] = 128


class Role(StrEnum):
    # Bound to one owner: sees and moves only that owner's accounts.
    USER = "user"
    # The platform's operators: everything, every admin-only route.
    ADMIN = "admin"
    # Read-only, including the full history.
    AUDITOR = "auditor"
    # The platform's back end: moves money on anyone's behalf.
    SERVICE = "service"


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: UUID
    role: Role
    owner_id: str | None

    @property
    def is_user(self) -> bool:
        return self.role is Role.USER

    @property
    def idempotency_scope(self) -> str:
        """Keys of one owner never collide with another's; the platform's roles share one."""
        return f"owner:{self.owner_id}" if self.owner_id else "platform"

    def may_see_owner(self, owner_id: str) -> bool:
        return not self.is_user or owner_id == self.owner_id

    @property
    def actor(self) -> str:
        """Who did it, as recorded in events: the role and the key's id (never the key)."""
        return f"{self.role.value}:{self.key_id}"


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    key_id: UUID
    key_prefix: str
    role: Role
    owner_id: str | None
    label: str
    created_at: datetime
    revoked_at: datetime | None


def digest_of(raw_key: str) -> bytes:
    return hashlib.sha256(raw_key.encode()).digest()


def looks_like_a_key(raw_key: str) -> bool:
    return raw_key.startswith(KEY_PREFIX) and len(raw_key) <= KEY_LENGTH_MAX


class ApiKeyStore:
    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._cache: dict[bytes, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def create(self, role: Role, owner_id: str | None = None, label: str = "") -> tuple[UUID, str]:
        """A new key: returns its id and the key itself, which is never shown again."""
        if (role is Role.USER) != bool(owner_id):
            raise ValueError("a user key needs an owner id; other roles take none")
        if owner_id is not None and len(owner_id) > OWNER_ID_LENGTH_MAX:
            raise ValueError(f"owner id is longer than {OWNER_ID_LENGTH_MAX} characters")
        raw_key = KEY_PREFIX + secrets.token_urlsafe(KEY_SECRET_BYTES)
        key_id = uuid.uuid4()
        with self._pool.connection() as connection:
            connection.execute(
                "INSERT INTO api_keys (key_id, key_digest, key_prefix, role, owner_id, label) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (key_id, digest_of(raw_key), raw_key[:10], role.value, owner_id, label),
            )
        return key_id, raw_key

    def revoke(self, key_id: UUID) -> bool:
        with self._pool.connection() as connection:
            revoked = connection.execute(
                "UPDATE api_keys SET revoked_at = now() WHERE key_id = %s AND revoked_at IS NULL",
                (key_id,),
            ).rowcount
        with self._lock:
            self._cache.clear()
        return revoked == 1

    def list(self) -> list[ApiKeyRecord]:
        with (
            self._pool.connection() as connection,
            connection.cursor(row_factory=dict_row) as cursor,
        ):
            rows = cursor.execute(
                "SELECT key_id, key_prefix, role, owner_id, label, created_at, revoked_at "
                "FROM api_keys ORDER BY created_at"
            ).fetchall()
        return [ApiKeyRecord(**{**row, "role": Role(row["role"])}) for row in rows]

    def cached(self, raw_key: str) -> tuple[bool, Principal | None]:
        """(found, principal) from the cache alone, without blocking on the
        database: lets an event loop skip a thread for a recent key."""
        if not looks_like_a_key(raw_key):
            return True, None
        with self._lock:
            entry = self._cache.get(digest_of(raw_key))
        if entry is not None and time.monotonic() - entry[0] < CACHE_TTL_S:
            return True, entry[1]
        return False, None

    def authenticate(self, raw_key: str) -> Principal | None:
        """The principal a key stands for; None if unknown, revoked or malformed."""
        found, principal = self.cached(raw_key)
        if found:
            return principal
        digest = digest_of(raw_key)
        now = time.monotonic()
        with self._pool.connection() as connection:
            row = connection.execute(
                "SELECT key_id, role, owner_id FROM api_keys "
                "WHERE key_digest = %s AND revoked_at IS NULL",
                (digest,),
            ).fetchone()
        principal = None if row is None else Principal(row[0], Role(row[1]), row[2])
        with self._lock:
            if len(self._cache) >= CACHE_SIZE_MAX:
                self._cache.clear()
            self._cache[digest] = (now, principal)
        return principal
