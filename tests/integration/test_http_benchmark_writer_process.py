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
    assert run.command.startswith("LEDGER_HTTP_SERVER=uvicorn ledger serve --http-processes 2")
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
            "--http-servers=uvicorn,granian",
            "--http-worker-busy",
        ]
    )

    assert config.writer_process
    assert config.server_workers == (1, 2, 4)
    assert config.phases == PHASES
    assert config.writer_baseline_transfers == 5_000
    assert config.http_servers == ("uvicorn", "granian")
    assert config.worker_busy


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_both_servers_and_the_busy_worker_run_in_one_report(
    postgres_server_url: str, tmp_path: Path
) -> None:
    report = run_http_benchmark(
        HttpBenchmarkConfig.quick(
            duration_s=1.0,
            warmup_s=0.3,
            database_url=postgres_server_url,
            data_dir=tmp_path,
            output_dir=tmp_path,
            writer_process=True,
            server_workers=(1,),
            http_servers=("uvicorn", "granian"),
            phases=("floor", "transfers", "reads"),
            worker_busy=True,
        )
    )

    assert report.ok, [run.failures for run in report.runs]
    assert [run.http_server for run in report.runs] == ["uvicorn", "granian"]
    for run in report.runs:
        assert [phase.kind for phase in run.phases] == ["floor", "transfers", "reads"]
        assert [phase.kind for phase in run.busy_quiet_phases] == ["transfers", "reads"]
        assert [phase.kind for phase in run.busy_phases] == ["transfers", "reads"]
        for phase in [*run.phases, *run.busy_quiet_phases, *run.busy_phases]:
            assert phase.errors == 0, (run.http_server, phase.kind, phase.outcomes)
            assert phase.requests > 0
        assert run.busy_ratio("transfers")
        assert len(run.busy_work) == 2
        assert run.command.startswith(f"LEDGER_HTTP_SERVER={run.http_server} ledger serve")
    text = render(report)
    assert "1 HTTP process, granian" in text
    assert "with the worker busy" in text
    document = json.loads(to_json(report))
    assert set(document["runs"][1]["busy_over_quiet"]) == {"transfers", "reads"}
