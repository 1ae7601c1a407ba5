"""API keys: made once, shown once, stored as a digest, revocable.

A key is `ldg_` followed by 43 URL-safe characters (32 random bytes). A
request costs one index lookup on the key's SHA-256 digest, and the answer is
cached so a busy client does not pay it every time. A revocation takes effect
at once in every process: it is announced with NOTIFY in the transaction that
makes it, and each process LISTENs (`RevocationListener`) and drops its cache
on the notice. A process that is not listening (its connection broke, or it
never started one) keeps answers only for CACHE_TTL_S, so a revocation reaches
it within that; a listening one keeps a known key for CACHE_TTL_LISTENING_S.
"""

from __future__ import annotations

import contextlib
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

import psycopg
import structlog
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from projections.notification_wait import NotificationWait

KEY_PREFIX: Final[str] = "ldg_"
KEY_SECRET_BYTES: Final[int] = 32
KEY_LENGTH_MAX: Final[int] = 128
CACHE_TTL_S: Final[float] = 1.0
# While the revocation notices arrive, a known key's answer is kept longer:
# only a revocation changes it, and its notice drops the cache.
CACHE_TTL_LISTENING_S: Final[float] = 60.0
# The channel revocations are announced on.
REVOCATION_CHANNEL: Final[str] = "ledger_api_key_revoked"
# How long the listener waits on its connection before looking again (a stop
# wakes it at once), and how long after a broken connection before it
# connects again.
REVOCATION_POLL_S: Final[float] = 1.0
REVOCATION_RECONNECT_S: Final[float] = 1.0
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


log = structlog.get_logger(__name__)


class ApiKeyStore:
    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._cache: dict[bytes, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()
        # Set while a RevocationListener hears every notice.
        self.listening = threading.Event()

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
        """Revoke the key; every process hears of it at commit (NOTIFY)."""
        with self._pool.connection() as connection, connection.transaction():
            revoked = connection.execute(
                "UPDATE api_keys SET revoked_at = now() WHERE key_id = %s AND revoked_at IS NULL",
                (key_id,),
            ).rowcount
            if revoked:
                connection.execute("SELECT pg_notify(%s, %s)", (REVOCATION_CHANNEL, str(key_id)))
        self.forget_all()
        return revoked == 1

    def forget_all(self) -> None:
        """Drop every cached answer (a revocation was announced, or the
        notices may have been missed)."""
        with self._lock:
            self._cache.clear()

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
        if entry is not None and time.monotonic() - entry[0] < self._ttl_s(entry[1]):
            return True, entry[1]
        return False, None

    def _ttl_s(self, principal: Principal | None) -> float:
        # An unknown key may be created any moment: never kept long.
        if principal is not None and self.listening.is_set():
            return CACHE_TTL_LISTENING_S
        return CACHE_TTL_S

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


class RevocationListener:
    """LISTENs for revocation notices on a connection of its own and drops
    the store's cache on each (a thread; started with the ledger)."""

    def __init__(self, database_url: str, store: ApiKeyStore) -> None:
        self._database_url = database_url
        self._store = store
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # A stop wakes the thread at once, not at its next poll.
        self._notification_wait = NotificationWait()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="api-key-revocations", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._notification_wait.wake()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                return
        self._notification_wait.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except psycopg.Error as error:
                log.warning("api_key_revocations_unheard", error_type=type(error).__name__)
            # Notices may have been missed: nothing cached is trusted past
            # the short lifetime until listening again.
            self._store.listening.clear()
            self._store.forget_all()
            self._stop.wait(REVOCATION_RECONNECT_S)

    def _listen(self) -> None:
        with psycopg.connect(
            self._database_url, autocommit=True, application_name="ledger-api-key-revocations"
        ) as connection:
            connection.execute(f"LISTEN {REVOCATION_CHANNEL}")
            # Anything cached before the LISTEN may predate a revocation.
            self._store.forget_all()
            self._store.listening.set()
            try:
                while not self._stop.is_set():
                    if self._notification_wait.wait(connection, REVOCATION_POLL_S):
                        self._store.forget_all()
            finally:
                self._store.listening.clear()
                with contextlib.suppress(psycopg.Error):
                    connection.execute(f"UNLISTEN {REVOCATION_CHANNEL}")
