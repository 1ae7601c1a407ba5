"""Advisory lock keys are shared by every process on a database: two jobs with
one key would keep each other out, so each key is its own."""

from __future__ import annotations

from interface.adapters.persistence import advisory_locks

# PostgreSQL takes a key as a signed 64-bit integer.
BIGINT_MIN = -(2**63)
BIGINT_MAX = 2**63 - 1


def _keys() -> dict[str, int]:
    return {
        name: value for name, value in vars(advisory_locks).items() if name.endswith("_LOCK_KEY")
    }


def test_every_advisory_lock_key_is_distinct() -> None:
    keys = _keys()
    # Every key is listed, the shadow rebuild's (defined in projections/) too.
    assert sorted(keys) == sorted(advisory_locks.__all__)
    assert len(set(keys.values())) == len(keys)


def test_every_advisory_lock_key_fits_a_bigint() -> None:
    for name, value in _keys().items():
        assert isinstance(value, int), name
        assert BIGINT_MIN <= value <= BIGINT_MAX, name
