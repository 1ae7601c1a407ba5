"""`ledger bench`: the benchmarks' command, added to the `ledger` CLI as a plugin.

The product finds it through the `ledger.commands` entry point group
(pyproject.toml), so the product never imports this package.
"""

from __future__ import annotations

from typing import Annotated

import typer

from interface.cli.context import command_settings


def register(app: typer.Typer) -> None:
    """Add `ledger bench` to the `ledger` command line."""
    app.command(
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(bench)


def bench(
    context: typer.Context,
    only: Annotated[
        str,
        typer.Option(
            help="all (the writer, then HTTP), writer, http, projections, reconciliation"
            ", webhooks or audit"
        ),
    ] = "all",
) -> None:
    """Measure the writer against the naive eventsourcing baseline, side by side,
    then the HTTP API under 64 concurrent clients against a `ledger serve` process.
    `--only projections` (never part of all): rebuilding every view and the audit
    over a log of 1,000,000 events, in events/s and peak memory, beside the
    library's own per-event ProjectionRunner.

    Options pass through. Both: --quick, --json, --seed N, --data-dir DIR,
    --database-url URL. Writer: --accounts N, --history-transfers N,
    --measured-transfers N, --baseline-transfers N, --prebuilt-transfers N,
    --client-threads N, --chunk-size N, --profile-writer, and the floors beside
    it: --copy-limit-rows N (0 skips the floors), --round-trip-iterations N,
    --single-client-transfers N, --waiting-clients N,
    --waiting-clients-transfers N, --floor-rounds N; --writer-batches-in-flight 1|2 (default:
    the writer's own). HTTP:
    --http-duration-s S, --http-warmup-s S, --http-clients N, --http-accounts N,
    --http-server-workers 1,2, --http-phases transfers,reads,
    --http-idempotency-header, --http-client raw|httpx, --http-profile (py-spy),
    --http-writer-process, --http-servers uvicorn,granian (each process count
    under each), --http-worker-busy (transfers and reads again beside a
    projection rebuild and a reconciliation run), --http-output-dir DIR.
    Projections: --events N, --accounts N, --baseline-events N, --chunk-size N, --profile-views.
    `--only reconciliation` (never part of all either): one full reconciliation
    run over the demo data set and a log of 1,000,000 events, time per check,
    events/s and peak memory; --events N, --demo-transfers N, --accounts N,
    --chunk-size N, --skip-audit-reference.
    `--only webhooks` (never part of all): the writer's transfers/s with one
    webhook subscription and the Redis stream publisher (with REDIS_URL) on,
    as a ratio to both off, and the delivery latency p50/p99; --accounts N,
    --transfers N, --rounds N, --quick.
    `--only audit` (never part of all): the writer's transfers/s with
    checkpoint signing on as a ratio to off, and `audit verify` against the
    checkpoints in events/s; --accounts N, --transfers N, --rounds N, --quick."""
    # Imported here, not at the top: every `ledger` command loads this plugin
    # to list `bench`, and the benchmark modules cost a second of start-up.
    from benchmarks import audit_benchmark, reconciliation_benchmark, webhooks_benchmark
    from benchmarks.http_benchmark import BENCHMARKS, run_selected

    if only == "reconciliation":
        command_settings()
        raise typer.Exit(reconciliation_benchmark.main(list(context.args)))
    if only == "webhooks":
        command_settings()
        raise typer.Exit(webhooks_benchmark.main(list(context.args)))
    if only == "audit":
        command_settings()
        raise typer.Exit(audit_benchmark.main(list(context.args)))
    if only not in BENCHMARKS:
        raise typer.BadParameter(f"--only is one of {', '.join(BENCHMARKS)}")
    command_settings()
    raise typer.Exit(run_selected(only, list(context.args)))
