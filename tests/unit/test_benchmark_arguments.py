"""A benchmark's integer options: a given 0 is taken, not dropped as unset."""

from __future__ import annotations

import pytest

from benchmarks.projection_benchmark import ProjectionBenchmarkConfig, config_from_arguments


def test_smaller_size_0_measures_at_one_size_only() -> None:
    config, _ = config_from_arguments(
        ["--events", "3000", "--accounts", "10", "--smaller-size", "0"]
    )

    assert config.smaller_size == 0
    assert config.events == 3_000


def test_a_given_0_overrides_a_nonzero_default() -> None:
    default = ProjectionBenchmarkConfig()
    assert default.smaller_size != 0 and default.seed != 0

    config, _ = config_from_arguments(["--seed", "0", "--smaller-size", "0"])

    assert (config.seed, config.smaller_size) == (0, 0)


def test_options_not_given_keep_the_defaults() -> None:
    config, as_json = config_from_arguments([])

    assert config == ProjectionBenchmarkConfig()
    assert as_json is False


def test_a_given_0_where_0_is_not_allowed_is_refused() -> None:
    with pytest.raises(ValueError, match="growth_events must be at least 1"):
        config_from_arguments(["--growth-events", "0"])


def test_flags_not_given_stay_off_and_given_ones_are_on() -> None:
    config, _ = config_from_arguments(["--scale-only"])

    assert config.scale_only is True
    assert config.profile_views is False


def test_the_help_says_what_smaller_size_0_means(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        config_from_arguments(["--help"])

    assert "0: at --events only" in " ".join(capsys.readouterr().out.split())
