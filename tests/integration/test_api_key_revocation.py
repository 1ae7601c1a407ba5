"""A key revoked in one process is refused at once by every other, although
each keeps known keys cached: the revocation is announced with NOTIFY and
each process's RevocationListener drops its cache on the notice."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Final

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from interface.adapters.persistence.api_keys import (
    CACHE_TTL_LISTENING_S,
    ApiKeyStore,
    RevocationListener,
    Role,
)
from interface.bootstrap import Ledger

# Bounds on waiting for what must happen, well inside the listening lifetime
# of a cached answer (so only the notice can explain a refusal in time).
WAIT_S: Final[float] = CACHE_TTL_LISTENING_S / 3
POLL_S: Final[float] = 0.02


def _wait(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(POLL_S)


@pytest.fixture
def other_process(ledger: Ledger) -> Iterator[ApiKeyStore]:
    """Another process's key store: its own pool, cache and listener."""
    with ConnectionPool(ledger.database_url, min_size=1, max_size=2, open=True) as pool:
        store = ApiKeyStore(pool)
        listener = RevocationListener(ledger.database_url, store)
        listener.start()
        try:
            _wait(store.listening.is_set, "the other process never listened")
            yield store
        finally:
            listener.stop()


def test_a_revocation_elsewhere_is_refused_at_once_despite_the_cache(
    ledger: Ledger, other_process: ApiKeyStore
) -> None:
    key_id, raw_key = ledger.api_keys.create(Role.SERVICE)
    principal = other_process.authenticate(raw_key)
    assert principal is not None and principal.key_id == key_id
    # Cached, and kept for the listening lifetime.
    assert other_process.cached(raw_key) == (True, principal)

    assert ledger.api_keys.revoke(key_id)

    _wait(lambda: other_process.cached(raw_key) == (False, None), "the notice never came")
    assert other_process.authenticate(raw_key) is None


def test_a_broken_listening_connection_drops_the_cache_and_listens_again(
    ledger: Ledger, other_process: ApiKeyStore
) -> None:
    _, raw_key = ledger.api_keys.create(Role.AUDITOR)
    assert other_process.authenticate(raw_key) is not None
    with psycopg.connect(ledger.database_url, autocommit=True) as connection:
        connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'ledger-api-key-revocations'"
            " AND datname = current_database()"
        )
    # Notices may have been missed meanwhile: nothing cached is trusted.
    _wait(lambda: other_process.cached(raw_key) == (False, None), "the cache was kept")
    _wait(other_process.listening.is_set, "the listener never came back")
    assert other_process.authenticate(raw_key) is not None
