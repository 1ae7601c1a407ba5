"""API keys for tests, made straight in a test database."""

from __future__ import annotations

from psycopg_pool import ConnectionPool

from interface.adapters.persistence.api_keys import ApiKeyStore, Role, digest_of


def create_api_key(database_url: str, role: Role, owner_id: str | None = None) -> str:
    with ConnectionPool(
        database_url, min_size=1, max_size=1, kwargs={"autocommit": True}, open=True
    ) as pool:
        _, raw_key = ApiKeyStore(pool).create(role, owner_id=owner_id, label="test")
    return raw_key


def bearer(raw_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw_key}"}


def install_known_key(ledger_pool: ConnectionPool, raw_key: str, role: Role) -> None:
    """A key whose value the test fixes in advance (tools that need it before
    any fixture runs, like Schemathesis' explicit examples)."""
    with ledger_pool.connection() as connection:
        connection.execute(
            "INSERT INTO api_keys (key_id, key_digest, key_prefix, role, label) "
            "VALUES (gen_random_uuid(), %s, %s, %s, 'fixed test key') "
            "ON CONFLICT (key_digest) DO NOTHING",
            (digest_of(raw_key), raw_key[:10], role.value),
        )
