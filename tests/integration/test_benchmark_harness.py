"""`ledger bench` runs end to end and checks its own books (no timing asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.writer_benchmark import WriterBenchmarkConfig, render, run_writer_benchmark


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
