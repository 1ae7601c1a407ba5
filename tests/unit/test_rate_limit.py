"""The rate limiter port's reference arithmetic and its values.

The adapters are held to the port by tests/contract/test_rate_limiter_contract.py.
"""

from __future__ import annotations

import pytest

from application.ports.rate_limiter import RateDecision, RateLimit, take_token


def test_the_reference_arithmetic_refills_linearly_and_caps_at_the_burst() -> None:
    limit = RateLimit(per_s=2.0, burst=4)
    tokens, decision = take_token(0.0, 0.0, 1.0, limit)
    assert decision.allowed and tokens == 1.0
    tokens, decision = take_token(0.0, 0.0, 100.0, limit)
    assert decision.allowed and tokens == 3.0
    tokens, decision = take_token(0.5, 0.0, 0.0, limit)
    assert not decision.allowed
    assert decision.retry_after_s == 0.25
    assert tokens == 0.5


@pytest.mark.parametrize(("per_s", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_a_limit_that_would_refuse_everything_is_refused(per_s: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate limit"):
        RateLimit(per_s=per_s, burst=burst)


def test_retry_after_is_whole_seconds_and_never_zero() -> None:
    assert RateDecision(False, 0.001).retry_after_header == "1"
    assert RateDecision(False, 1.0).retry_after_header == "1"
    assert RateDecision(False, 1.01).retry_after_header == "2"
