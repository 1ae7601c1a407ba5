"""`ledger bench --only projections` runs end to end and checks its own
results (no timing asserted), at one size and at two."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.projection_benchmark import ProjectionBenchmarkConfig, render, run, to_json
from projections.registry import view_names


@pytest.mark.timeout(300)
def test_a_tiny_run_rebuilds_verifies_and_matches_the_baseline(
    postgres_server_url: str, tmp_path: Path
) -> None:
    report = run(
        ProjectionBenchmarkConfig.quick(
            events=3_000,
            accounts=50,
            baseline_events=500,
            chunk_size=500,
            growth_events=200,
            database_url=postgres_server_url,
            data_dir=tmp_path,
        )
    )

    assert report.verification.ok, report.verification
    assert report.history.events >= 3_000
    names = [phase.name for phase in report.phases]
    for name in view_names():
        assert f"rebuild_in_place: {name}" in names
    kinds = {phase.kind for phase in report.phases}
    assert kinds == {"rebuild", "verify", "reconcile"}
    # The incremental reconciliation run covers the events written after the full one.
    (incremental,) = [phase for phase in report.phases if "incremental" in phase.name]
    assert 0 < incremental.events < report.history.events
    assert report.baseline is not None
    for phase in [*report.phases, report.baseline]:
        assert phase.events > 0
        assert phase.seconds > 0
        assert len(phase.memory.quarter_max_rss_kib) == 4
        assert phase.memory.peak_rss_kib > 0
    assert 0 < report.baseline.events <= report.history.events
    assert report.baseline.detail["events_processed"] > 0

    text = render(report)
    assert "baseline: library ProjectionRunner" in text
    assert "verification: OK" in text
    document = json.loads(to_json(report))
    assert document["verification"]["ok"] is True
    assert {"ratio_to_baseline", "meets_target"} <= set(document["phases"][0])


@pytest.mark.timeout(300)
def test_a_scale_run_measures_at_two_sizes(postgres_server_url: str, tmp_path: Path) -> None:
    report = run(
        ProjectionBenchmarkConfig.quick(
            events=4_000,
            smaller_size=2_500,
            accounts=50,
            chunk_size=500,
            growth_events=200,
            scale_only=True,
            database_url=postgres_server_url,
            data_dir=tmp_path,
        )
    )

    assert report.verification.ok, report.verification
    assert report.baseline is None
    smaller = [phase for phase in report.phases if " @ " in phase.name]
    assert len(smaller) == len(report.phases) // 2 == 5
    assert sum("peak RSS of" in note for note in report.notes) == 5
    assert "verification: OK" in render(report)
    assert json.loads(to_json(report))["baseline"] is None
