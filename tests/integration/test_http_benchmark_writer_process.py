"""`ledger bench --only http --http-writer-process` runs end to end: the floor,
then the writer process with its HTTP processes through every phase, and the
balances read back equal what was acknowledged (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.http_benchmark import (
    HttpBenchmarkConfig,
    config_from_arguments,
    render,
    run_http_benchmark,
    to_json,
)

PHASES = ("floor", "health", "transfers", "hot", "reads", "batch")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_writer_process_topology_answers_every_phase_and_its_books_balance(
    postgres_server_url: str, tmp_path: Path
) -> None:
    report = run_http_benchmark(
        HttpBenchmarkConfig.quick(
            duration_s=1.5,
            warmup_s=0.5,
            database_url=postgres_server_url,
            data_dir=tmp_path,
            output_dir=tmp_path,
            writer_process=True,
            server_workers=(2,),
            phases=PHASES,
            writer_baseline_transfers=2_000,
        )
    )

    assert report.ok, [run.failures for run in report.runs]
    [run] = report.runs
    assert [phase.kind for phase in run.phases] == list(PHASES)
    for phase in run.phases:
        assert phase.errors == 0, (phase.kind, phase.outcomes)
        assert phase.requests > 0
    assert report.writer_baseline_transfers_per_s
    assert run.command.startswith("ledger serve --http-processes 2")
    text = render(report)
    assert "floor: bare FastAPI async GET /" in text
    assert "POST /v1/transfers/batch" in text
    document = json.loads(to_json(report))
    batch = document["runs"][0]["phases"][-1]
    assert batch["operations_per_s"] == pytest.approx(100 * batch["requests_per_s"])
    assert batch["share_of_baseline"] > 0


def test_the_writer_process_options_reach_the_configuration() -> None:
    config, _ = config_from_arguments(
        [
            "--quick",
            "--http-writer-process",
            "--http-server-workers=1,2,4",
            "--http-phases=floor,health,transfers,hot,reads,batch",
            "--http-writer-baseline-transfers=5000",
        ]
    )

    assert config.writer_process
    assert config.server_workers == (1, 2, 4)
    assert config.phases == PHASES
    assert config.writer_baseline_transfers == 5_000
