"""`ledger bench` runs end to end and checks its own books (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.writer_benchmark import (
    WriterBenchmarkConfig,
    render,
    run_writer_benchmark,
    to_json,
)


@pytest.mark.timeout(300)
def test_the_quick_benchmark_runs_both_sides_and_its_books_balance(
    postgres_server_url: str, tmp_path: Path
) -> None:
    report = run_writer_benchmark(
        WriterBenchmarkConfig.quick(database_url=postgres_server_url, data_dir=tmp_path)
    )
    assert report.verification.ok, report.verification
    text = render(report)
    assert "naive baseline" in text
    assert "verification: OK" in text


FLOOR_KEYS = (
    "copy_limit_rows_per_s",
    "round_trip_floor_per_s",
    "writer_prebuilt_transfers_per_s",
    "writer_threads_transfers_per_s",
    "single_client_transfers_per_s",
    "eight_clients_transfers_per_s",
)


@pytest.mark.timeout(300)
def test_the_json_report_gives_the_floors_their_ratios_and_the_writer_profile(
    postgres_server_url: str, tmp_path: Path
) -> None:
    config = WriterBenchmarkConfig.quick(
        database_url=postgres_server_url,
        data_dir=tmp_path,
        history_transfers=500,
        measured_transfers=1_000,
        prebuilt_transfers=1_000,
        baseline_transfers=20,
        copy_limit_rows=2_000,
        round_trip_iterations=20,
        single_client_transfers=20,
        waiting_clients_transfers=40,
        profile_writer=True,
    )
    report = run_writer_benchmark(config)
    assert report.verification.ok, report.verification
    document = json.loads(to_json(report))
    for key in FLOOR_KEYS:
        assert document[key] > 0, key
    assert document["events_per_transfer"] >= 1
    assert set(document["ratios"]) == set(document["targets"])
    assert all(value > 0 for value in document["ratios"].values())
    # The profile is the writer thread's loop and the batches it decided.
    assert report.writer_profile is not None
    assert "_decide_batch" in report.writer_profile
