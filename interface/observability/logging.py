"""structlog, configured once: JSON lines (or a console format), snake_case events."""

from __future__ import annotations

import datetime
import logging
import sys
import time
from collections.abc import MutableMapping
from typing import Any, Final, TextIO, cast

import orjson
import structlog

from interface.observability.tracing import add_trace_ids

# Audit records are written whatever the log level: a quieter log must not
# lose the record of who was refused or what an admin changed.
AUDIT_EVENT: Final[str] = "audit"
URL_LOGGING_LIBRARIES: Final = ("httpx", "httpcore", "urllib3")
_METHOD_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "msg": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}


class _CurrentStandardError:
    """sys.stderr as it is at each write, not as it was when logging was
    configured: a command run in process (a test's CLI runner) swaps in a
    stream of its own and closes it after, and the loggers must not keep it."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


# A TextIO to the logger factory, which calls only write and flush.
CURRENT_STANDARD_ERROR: Final = cast(TextIO, _CurrentStandardError())


def configure_logging(
    level: str = "INFO",
    *,
    json: bool = True,
    stream: TextIO | None = None,
    cache_loggers: bool = True,
) -> None:
    """`stream` defaults to stderr; tests pass their own, with `cache_loggers`
    off so that configuring again takes effect on loggers already used."""
    output = stream or CURRENT_STANDARD_ERROR
    threshold: int = logging.getLevelName(level.upper())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        UtcIsoTimeStamper(),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        # Inside a traced span, its ids (docs/operations.md#tracing).
        add_trace_ids,
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(serializer=_json_line)
        if json
        else structlog.dev.ConsoleRenderer()
    )
    level_filter: list[structlog.types.Processor] = (
        [_below_threshold_dropped_except_audit(threshold)] if threshold > logging.INFO else []
    )
    structlog.configure(
        processors=[*level_filter, *shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(min(threshold, logging.INFO)),
        # One write per line, newline included (print() makes two): the
        # processes of `ledger serve` share one output, and two writes
        # let another process's line in between.
        logger_factory=structlog.WriteLoggerFactory(output),
        cache_logger_on_first_use=cache_loggers,
    )
    # Libraries that log through the standard library go through the same renderer.
    handler = logging.StreamHandler(output)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                *shared,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # These log each request's full URL, query string included, at INFO: a
    # way for tokens and personal data into the logs. Their warnings stay.
    for url_logging_library in URL_LOGGING_LIBRARIES:
        logging.getLogger(url_logging_library).setLevel(max(threshold, logging.WARNING))


_NS_PER_S: Final[int] = 1_000_000_000
_NS_PER_US: Final[int] = 1_000
_US_PER_S: Final[int] = 1_000_000


class UtcIsoTimeStamper:
    """structlog processor: `timestamp` as structlog's
    `TimeStamper(fmt="iso", utc=True)` writes it (`2026-12-07T03:27:00.123456Z`,
    no fraction on a whole second), for a third of its time: the part to the
    second is formatted once a second, not on every line (every request
    writes one)."""

    __slots__ = ("_second", "_to_the_second")

    def __init__(self) -> None:
        self._second = -1
        self._to_the_second = ""

    def __call__(
        self, _: Any, __: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        now_ns = time.time_ns()
        second, micros = divmod(now_ns // _NS_PER_US, _US_PER_S)
        if second != self._second:
            whole = datetime.datetime.fromtimestamp(second, tz=datetime.UTC)
            self._to_the_second = whole.isoformat().removesuffix("+00:00")
            self._second = second
        event_dict["timestamp"] = (
            f"{self._to_the_second}.{micros:06d}Z" if micros else f"{self._to_the_second}Z"
        )
        return event_dict


def _json_line(event_dict: Any, **options: Any) -> str:
    # orjson: a tenth of the standard library's time, on every request's log line.
    return orjson.dumps(
        event_dict, default=options.get("default", str), option=orjson.OPT_NON_STR_KEYS
    ).decode()


def _below_threshold_dropped_except_audit(threshold: int) -> structlog.types.Processor:
    def drop(
        _: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if event_dict.get("event") == AUDIT_EVENT:
            return event_dict
        if _METHOD_LEVELS.get(method_name, logging.INFO) < threshold:
            raise structlog.DropEvent
        return event_dict

    return drop
