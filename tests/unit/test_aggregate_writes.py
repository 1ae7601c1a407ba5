"""The read-decide-write loop every use case shares (`retry_while_stale`)."""

from __future__ import annotations

import pytest

from application.aggregate_writes import WRITE_ATTEMPTS_MAX, retry_while_stale
from domain.result_codes import LedgerRefusal, ResultCode


def _contended() -> LedgerRefusal:
    return LedgerRefusal(ResultCode.CONCURRENT_CHANGE, "kept changing")


def test_the_first_outcome_is_answered_after_stale_attempts() -> None:
    attempts: list[int] = []

    def attempt() -> str | None:
        attempts.append(len(attempts))
        return "recorded" if len(attempts) == 3 else None

    assert retry_while_stale(attempt, _contended) == "recorded"
    assert len(attempts) == 3


def test_past_the_attempts_the_contended_refusal_is_raised() -> None:
    attempts: list[int] = []

    def attempt() -> str | None:
        attempts.append(len(attempts))
        return None

    with pytest.raises(LedgerRefusal) as raised:
        retry_while_stale(attempt, _contended)
    assert raised.value.code is ResultCode.CONCURRENT_CHANGE
    assert len(attempts) == WRITE_ATTEMPTS_MAX


def test_a_refusal_of_the_decision_is_not_retried() -> None:
    attempts: list[int] = []

    def attempt() -> str | None:
        attempts.append(len(attempts))
        raise LedgerRefusal(ResultCode.ACCOUNT_NOT_ACTIVE, "closed")

    with pytest.raises(LedgerRefusal) as raised:
        retry_while_stale(attempt, _contended)
    assert raised.value.code is ResultCode.ACCOUNT_NOT_ACTIVE
    assert attempts == [0]
