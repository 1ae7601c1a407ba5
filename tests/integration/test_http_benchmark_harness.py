"""`ledger bench --only http` runs end to end against a real server (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.http_benchmark import (
    HttpBenchmarkConfig,
    render,
    run_http_benchmark,
    split_arguments,
    to_json,
)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("projections_apart", [False, True], ids=["in_process", "apart"])
def test_the_quick_http_benchmark_answers_every_request_and_its_books_balance(
    postgres_server_url: str, tmp_path: Path, projections_apart: bool
) -> None:
    # Apart: the reads are answered from views a `ledger projections run`
    # beside the server keeps, so they must reach the transfers' positions.
    report = run_http_benchmark(
        HttpBenchmarkConfig.quick(
            duration_s=2.0,
            warmup_s=0.5,
            database_url=postgres_server_url,
            data_dir=tmp_path,
            output_dir=tmp_path,
            projections_apart=projections_apart,
        )
    )

    assert report.ok, [run.failures for run in report.runs]
    [run] = report.runs
    assert [phase.kind for phase in run.phases] == ["transfers", "reads"]
    for phase in run.phases:
        assert phase.errors == 0, phase.outcomes
        assert phase.requests > 0
        assert phase.requests_per_s > 0
        assert 0 < phase.latency_p50_ms <= phase.latency_p99_ms <= phase.latency_max_ms
    text = render(report)
    assert "POST /v1/transfers" in text
    assert "GET /v1/accounts/{id}" in text
    assert "verification: OK" in text
    document = json.loads(to_json(report))
    assert document["ok"] is True
    assert document["runs"][0]["phases"][0]["errors"] == 0


def test_bench_options_go_to_the_benchmark_they_belong_to() -> None:
    writer, http = split_arguments(
        [
            "--quick",
            "--http-clients",
            "8",
            "--history-transfers=500",
            "--http-profile",
            "--seed",
            "3",
            "--http-server-workers=1,2",
            "--http-projections-apart",
            "--http-worker-busy",
            "--http-servers",
            "uvicorn,granian",
            "--profile-writer",
        ]
    )

    assert writer == ["--quick", "--history-transfers=500", "--seed", "3", "--profile-writer"]
    assert http == [
        "--quick",
        "--http-clients",
        "8",
        "--http-profile",
        "--seed",
        "3",
        "--http-server-workers=1,2",
        "--http-projections-apart",
        "--http-worker-busy",
        "--http-servers",
        "uvicorn,granian",
    ]
