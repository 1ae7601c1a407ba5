"""API keys for tests, made straight in a test database."""

from __future__ import annotations

from psycopg_pool import ConnectionPool

from interface.api_keys import ApiKeyStore, Role


def create_api_key(database_url: str, role: Role, owner_id: str | None = None) -> str:
    with ConnectionPool(
        database_url, min_size=1, max_size=1, kwargs={"autocommit": True}, open=True
    ) as pool:
        _, raw_key = ApiKeyStore(pool).create(role, owner_id=owner_id, label="test")
    return raw_key


def bearer(raw_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw_key}"}
