"""Capturing the service's real log output (the production configuration,
JSON lines) in a buffer, and reading it back."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

from interface.observability.logging import configure_logging


@contextmanager
def captured_logs(level: str = "INFO") -> Iterator[io.StringIO]:
    """Every log line (structlog's and the standard library's) written while
    inside, exactly as the service would write it to stderr."""
    buffer = io.StringIO()
    root = logging.getLogger()
    handlers, root_level = root.handlers[:], root.level
    configure_logging(level, json=True, stream=buffer, cache_loggers=False)
    try:
        yield buffer
    finally:
        structlog.reset_defaults()
        root.handlers[:] = handlers
        root.setLevel(root_level)


def log_records(buffer: io.StringIO) -> list[dict[str, Any]]:
    """Each line as the JSON object it must be."""
    records: list[dict[str, Any]] = []
    for line in buffer.getvalue().splitlines():
        record = json.loads(line)
        assert isinstance(record, dict), line
        records.append(record)
    return records


def events_named(buffer: io.StringIO, event: str) -> list[dict[str, Any]]:
    return [record for record in log_records(buffer) if record.get("event") == event]
