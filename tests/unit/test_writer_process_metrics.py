"""The writer process's /metrics serves the writer's series of the ledger's
registry and runs none of its other collectors (those query the database)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from application.writer import WriterLimits, WriterStatistics
from interface.observability.metrics import WriterMetrics, render
from interface.writer_process.metrics import WriterProcessMetrics


class _QueryingCollector(Collector):
    """Stands for the withdrawals' and views' collectors: counts its runs."""

    def __init__(self) -> None:
        self.runs = 0

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("ledger_withdrawals", "Withdrawals by status.")

    def collect(self) -> Iterator[Metric]:
        self.runs += 1
        yield GaugeMetricFamily("ledger_withdrawals", "Withdrawals by status.", value=1)


class _Writer:
    limits = WriterLimits()
    statistics = WriterStatistics(batches_committed=3)
    last_position = 9
    is_running = True
    queued_commands = 2


def _families(metrics: WriterProcessMetrics) -> dict[str, Any]:
    text = render(metrics.registry).decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_only_the_writers_series_are_read_from_the_ledgers_registry() -> None:
    ledger_metrics = WriterMetrics()
    querying = _QueryingCollector()
    ledger_metrics.registry.register(querying)
    writer: Any = _Writer()
    ledger_metrics.track(writer)
    ledger_metrics.batch_committed([], [], events_written=4, commit_s=0.002)
    metrics = WriterProcessMetrics()
    metrics.track(writer, ledger_metrics.registry, lambda: 5)

    families = _families(metrics)

    assert querying.runs == 0
    assert "ledger_withdrawals" not in families
    assert families["ledger_writer_queued_commands"].samples[0].value == 2
    assert families["ledger_writer_batches_committed"].samples[0].value == 3
    assert families["ledger_writer_answers_waiting"].samples[0].value == 5
    commit = {
        sample.name: sample.value
        for sample in families["ledger_writer_commit_duration_seconds"].samples
    }
    assert commit["ledger_writer_commit_duration_seconds_count"] == 1


def test_before_the_lease_only_the_lease_and_the_socket_are_served() -> None:
    metrics = WriterProcessMetrics()

    families = _families(metrics)

    lease = {
        sample.labels["ledger_writer_lease"]: sample.value
        for sample in families["ledger_writer_lease"].samples
    }
    assert lease == {"waiting": 1, "held": 0, "lost": 0, "released": 0}
    assert "ledger_writer_running" not in families
    metrics.lease_state("held")
    held = _families(metrics)["ledger_writer_lease"].samples
    assert {sample.labels["ledger_writer_lease"] for sample in held if sample.value} == {"held"}
