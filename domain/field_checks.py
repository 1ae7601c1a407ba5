"""Checks every aggregate makes of the values a command brings.

A value of the wrong shape is a programming error here (the interface
validates what clients send, with stable codes, before a command is made),
so these raise ValueError.
"""

from __future__ import annotations

from datetime import datetime, timedelta


def is_storable_text(value: str) -> bool:
    """Whether the event store can keep this text: UTF-8 (and so JSON) cannot
    encode a lone surrogate, and one in an event would fail the whole batch
    it was written with, so a command carrying one is refused alone."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def require_text(name: str, value: object, length_max: int) -> str:
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= length_max
        or value != value.strip()
        or not is_storable_text(value)
    ):
        raise ValueError(
            f"{name} must be 1 to {length_max} characters of valid Unicode, without outer spaces"
        )
    return value


def require_aware(name: str, at: object) -> datetime:
    if not isinstance(at, datetime) or at.tzinfo is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return at


def exponential_backoff(failed_attempts: int, base: timedelta, cap: timedelta) -> timedelta:
    """`base` after the first failure, doubling with each, never above `cap`."""
    if failed_attempts < 1:
        raise ValueError("failed_attempts starts at 1")
    # Past 2**20 the cap has long been reached; a bounded exponent keeps the
    # arithmetic small.
    delay: timedelta = base * 2 ** min(failed_attempts - 1, 20)
    return min(delay, cap)
