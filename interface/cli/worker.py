"""`ledger worker`: everything that is neither HTTP nor the writer, in one process.

The projection runner, the rules monitor, the broker sync and guards, the
payout worker, the closure worker (timers and emails), the fork scanner, the
reconciliation schedule, webhook delivery, the stream publishers and the
checkpointer (docs/architecture.md#processes). Each still obeys its
LEDGER_*_IN_PROCESS setting, and each takes its lease for every pass, so
several worker processes may run: one at a time does each part's work.
"""

from __future__ import annotations

import os

import structlog

from interface.cli.context import command_settings

log = structlog.get_logger(__name__)


def worker() -> None:
    """Run the projections and every background worker until SIGTERM or Ctrl-C."""
    from interface.bootstrap import build_ledger_with_workers
    from interface.observability.metrics_server import serve_metrics
    from interface.processes.readiness import tell_ready
    from interface.processes.stop_signals import stop_requested

    settings = command_settings()
    # Background work yields the CPU to the writer and the HTTP processes.
    os.nice(settings.worker_niceness)
    # Before the build, so that a stop asked for during it is not lost.
    stop = stop_requested()
    ledger = build_ledger_with_workers(settings)
    # The loops run here, not in the HTTP processes: their series too.
    metrics = (
        serve_metrics(settings.host, settings.worker_metrics_port, ledger.writer_metrics.registry)
        if settings.worker_metrics_port
        else None
    )
    try:
        log.info("worker_started")
        tell_ready()
        stop.wait()
        log.info("worker_stopping")
    finally:
        if metrics is not None:
            metrics.close()
        ledger.close()
