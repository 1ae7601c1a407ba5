"""What every `ledger` command starts from: settings, logging, the database."""

from __future__ import annotations

from interface.settings import Settings


def command_settings() -> Settings:
    """Settings from the environment, with logging set up as they say."""
    from interface.observability.logging import configure_logging

    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return settings


def migrated_database_url() -> str:
    """The database's URL (starting the embedded server if none is set), its
    schema brought up to date; for commands that need no writer."""
    from interface.adapters.persistence import database
    from interface.bootstrap import resolve_database_url

    url = resolve_database_url(command_settings())
    database.upgrade(url)
    return url
