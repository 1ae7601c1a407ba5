"""`ledger bench --only reconciliation` runs end to end and checks its own
results (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.reconciliation_benchmark import (
    ReconciliationBenchmarkConfig,
    config_from_arguments,
    render,
    run,
    to_json,
)
from benchmarks.reconciliation_report import NO_BASELINE

# The checks issue 9 asks for; a run may make more.
CHECK_NAMES = [
    "ledger",
    "projections",
    "payouts",
    "broker",
    "deposits",
    "withdrawals",
    "broker_sync",
]
EVENTS = 3_000


@pytest.mark.timeout(300)
def test_a_tiny_run_loads_the_demo_and_passes_every_check(
    postgres_server_url: str, tmp_path: Path
) -> None:
    report = run(
        ReconciliationBenchmarkConfig.quick(
            events=EVENTS,
            demo_transfers=200,
            accounts=50,
            chunk_size=500,
            database_url=postgres_server_url,
            data_dir=tmp_path,
        )
    )

    assert report.verification.ok, (report.verification, report.exceptions)
    assert report.run_status == "passed"
    assert report.exceptions == []
    assert report.events >= EVENTS
    assert report.load.events >= EVENTS
    assert set(report.load.results) == {"ok"}
    # The demo's records beyond plain transfers are in the data set.
    demo = "\n".join(report.load.demo_lines)
    assert "funded accounts:" in demo
    assert "withdrawals of funded account" in demo
    assert "closure:" in demo
    names = [check.name for check in report.checks]
    assert names[: len(CHECK_NAMES)] == CHECK_NAMES
    for check in report.checks:
        assert check.status == "passed"
        assert check.elapsed_s >= 0
        assert check.discrepancies_found == 0
    assert report.run_seconds > 0
    assert report.events_per_s > 0
    assert sum(report.share(check) for check in report.checks) <= 1.0
    assert report.memory.rss_before_kib > 0
    assert report.memory.peak_rss_kib >= report.memory.rss_before_kib
    assert report.memory.samples > 0
    reference = report.audit_reference
    assert reference is not None
    assert reference.ok
    assert reference.events_checked >= report.events

    text = render(report)
    assert NO_BASELINE in text
    assert "verification: OK" in text
    assert "total: the run" in text
    assert "reference: verify_ledger(check_views=True)" in text
    for name in CHECK_NAMES:
        assert f"\n{name} " in text
    assert "peak RSS:" in text
    assert "PostgreSQL" in text
    document = json.loads(to_json(report))
    assert document["verification"]["ok"] is True
    assert document["run_status"] == "passed"
    assert {"share_of_run", "elapsed_s", "status"} <= set(document["checks"][0])
    assert "growth_kib" in document["memory"]


def test_the_options_reach_the_config() -> None:
    config, as_json = config_from_arguments(
        ["--events", "5000", "--demo-transfers", "300", "--skip-audit-reference", "--json"]
    )

    assert config.events == 5_000
    assert config.demo_transfers == 300
    assert config.skip_audit_reference is True
    assert as_json is True
    assert config_from_arguments([])[0] == ReconciliationBenchmarkConfig()
