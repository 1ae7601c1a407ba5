"""Wiring, once: settings in, a running ledger out."""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from typing import Any, Final

import structlog
from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.postgres import PostgresFactory
from psycopg_pool import ConnectionPool

from application.broker_sync import BrokerSyncService
from application.clock import SettableClock, SystemClock
from application.closures import ClosuresService
from application.event_log import LedgerApplication
from application.forks import ForksService
from application.funded_accounts import FundedAccountsService
from application.guards import GuardsService
from application.ledger_use_cases import LedgerService
from application.merges import MergesService
from application.ports.broker import Broker
from application.ports.clock import Clock
from application.ports.closure_mailer import Mailer
from application.ports.payout_gateway import PayoutGateway
from application.ports.writer import Writer
from application.reconciliation import ReconciliationService
from application.withdrawals import WithdrawalsService
from application.writer import LedgerWriter, WriterLimits
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.adapters.broker.simulated_broker_store import PostgresSimulatedBrokerStore
from interface.adapters.email.outbox_mailer import (
    FolderTransport,
    MailTransport,
    OutboxMailer,
    SmtpTransport,
)
from interface.adapters.notifications.closure_progress import RedisClosureProgress
from interface.adapters.notifications.guard_notification_files import (
    GUARD_NOTIFICATIONS_FOLDER,
    FileGuardNotifier,
)
from interface.adapters.payouts.sandbox_gateway import SandboxPayoutGateway
from interface.adapters.payouts.sandbox_payout_store import PostgresSandboxPayoutStore
from interface.adapters.payouts.stripe_gateway import StripePayoutGateway
from interface.adapters.persistence import database
from interface.adapters.persistence.api_keys import ApiKeyStore, RevocationListener
from interface.adapters.persistence.broker_sync_status import PostgresSyncStatusStore
from interface.adapters.persistence.fork_load import ViewedForkLoad
from interface.adapters.persistence.postgres_recorder import HashChainedPostgresRecorder
from interface.adapters.rate_limits import (
    InMemoryRateLimiter,
    RateLimit,
    RateLimiter,
    RedisRateLimiter,
)
from interface.audit_setup import build_checkpointer, checkpoint_dir, trusted_public_keys
from interface.integration import Integration, build_integration
from interface.observability import tracing
from interface.observability.metrics import WriterMetrics
from interface.observability.worker_metrics import WatchedLoop, WorkerCollector
from interface.reconciliation.background_runs import BackgroundRuns
from interface.reconciliation.checks import reconciliation_checks
from interface.reconciliation.open_exceptions import ViewedOpenExceptions
from interface.reconciliation.schedule import SchedulePass, reconciliation_schedule
from interface.settings import Settings
from interface.trading_settings import guard_thresholds, mark_age_max
from interface.workers.checkpointer import Checkpointer
from interface.workers.closure_worker import closure_worker
from interface.workers.fork_scanner import ForkScan, fork_scanner
from interface.workers.guard_worker import GuardWorker
from interface.workers.leased_worker import DueWorker, LeasedLoop
from interface.workers.payout_worker import payout_worker
from interface.workers.rules_monitor import RulesMonitor
from projections.registry import all_views
from projections.runner import ProjectionRunner
from projections.view_sessions import SERVICE_APPLICATION_NAME

log = structlog.get_logger(__name__)

# Where closure emails go without SMTP_URL, inside LEDGER_DATA_DIR.
OUTBOX_FOLDER: Final[str] = "outbox"


def _hash_chained_recorder(factory: InfrastructureFactory[Any]) -> HashChainedPostgresRecorder:
    assert isinstance(factory, PostgresFactory), type(factory)
    # The library builds the pool without this setting; it is read on each
    # reconnection, so setting it before the pool opens is enough.
    factory.datastore.pool.reconnect_timeout = database.POOL_RECONNECT_TIMEOUT_S
    database.recover_from_lost_connections(factory.datastore.pool)
    return HashChainedPostgresRecorder(factory.datastore)


# The writer allocates tens of thousands of short-lived objects per batch
# (events, dicts, tuples) and makes no reference cycles on that path. With the
# default first-generation threshold (700) the cyclic collector runs hundreds
# of times a batch; measured here it cost about 40 % of the writer's time.
GC_FIRST_GENERATION_THRESHOLD = 50_000


def tune_garbage_collector() -> None:
    _, second, third = gc.get_threshold()
    gc.set_threshold(GC_FIRST_GENERATION_THRESHOLD, second, third)


def prepare_process() -> None:
    """Before any connection opens: the collector's thresholds, and tracing
    when the environment asks for it (psycopg's connections are traced only
    if made after; docs/operations.md#tracing)."""
    tune_garbage_collector()
    tracing.configure_from_environment()


def resolve_database_url(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    return database.start_embedded_postgres(settings.data_dir)


def writer_limits(settings: Settings) -> WriterLimits:
    return WriterLimits(
        batch_size_max=settings.writer_batch_size_max,
        queued_commands_max=settings.writer_queued_commands_max,
        account_cache_size_max=settings.writer_account_cache_size_max,
        transfer_cache_size_max=settings.writer_transfer_cache_size_max,
        decide_under_lock=settings.writer_decide_under_lock,
    )


def build_writer(
    settings: Settings, app: LedgerApplication, clock: Clock, metrics: WriterMetrics
) -> Writer:
    """This process's writer; with LEDGER_WRITER_ENDPOINT, a client of the
    `ledger writer` process there instead (docs/architecture.md#the-write-path)."""
    if settings.writer_endpoint:
        from interface.writer_process.client import RemoteWriter
        from interface.writer_process.curve import keys_of

        return RemoteWriter(
            settings.writer_endpoint,
            writer_limits(settings),
            curve=keys_of(settings.writer_curve_secret_key),
        )
    return LedgerWriter(app, clock, writer_limits(settings), observer=metrics)


@dataclass
class Ledger:
    """The running parts of one service process."""

    settings: Settings
    database_url: str
    app: LedgerApplication
    writer: Writer
    service: LedgerService
    # Connections for the interface's own tables (API keys, idempotency records).
    pool: ConnectionPool
    api_keys: ApiKeyStore
    # Where funded accounts trade: the simulated broker unless an adapter is wired.
    broker: Broker
    funded_accounts: FundedAccountsService
    # Marks funded accounts' positions and enforces violations (started by
    # `ledger serve`; tests run its passes themselves).
    rules_monitor: RulesMonitor
    withdrawals: WithdrawalsService
    # Pays out approved withdrawals (started by `ledger serve`, like the monitor).
    payout_worker: DueWorker
    closures: ClosuresService
    # Advances account closures whose work is due (started by `ledger serve`).
    closure_worker: DueWorker
    forks: ForksService
    merges: MergesService
    # Proposes forks past thresholds and executes waiting ones (started by
    # `ledger serve`).
    fork_scanner: LeasedLoop[ForkScan]
    # The drawdown and market guards, and closing positions
    # (docs/rules.md#position-sync-and-guards).
    guards: GuardsService
    # Fetches each account's positions and equity from the broker
    # (docs/rules.md#position-sync-and-guards).
    broker_sync: BrokerSyncService
    # Syncs every account, then runs its guards (started by `ledger serve`).
    guard_worker: GuardWorker
    # Where withdrawals are paid out (and what reconciliation lists payouts of).
    payout_gateway: PayoutGateway
    reconciliation: ReconciliationService
    # Runs asked for through the API, carried out in the background.
    reconciliation_runs: BackgroundRuns
    # Hourly and daily runs (started by `ledger serve`).
    reconciliation_schedule: LeasedLoop[SchedulePass]
    # Webhook endpoints, their delivery worker and the stream publisher
    # (started by `ledger serve`; docs/events.md).
    integration: Integration
    clock: Clock = field(default_factory=SystemClock)
    # The writer's Prometheus series (it is the writer's observer).
    writer_metrics: WriterMetrics = field(default_factory=WriterMetrics)
    # Keeps the views (balances, journal, directory) up with the log.
    projections: ProjectionRunner | None = None
    # Views' positions as this process's readers last read them from the
    # tracking table (when the runner runs elsewhere): a read that needs no
    # more than these asks nothing of the database.
    seen_view_positions: dict[str, int] = field(default_factory=dict)
    # Signs checkpoints of the log (started by `ledger serve`; docs/operations.md#audit).
    checkpointer: Checkpointer | None = None
    # Drops the API key cache when any process revokes a key (started here).
    key_revocations: RevocationListener = field(init=False)

    def __post_init__(self) -> None:
        self.key_revocations = RevocationListener(self.database_url, self.api_keys)
        self.key_revocations.start()
        self.writer_metrics.registry.register(WorkerCollector(self.leased_loops))

    def leased_loops(self) -> list[WatchedLoop]:
        """Every background loop under a lease, started or not: /metrics
        shows each (docs/operations.md#metrics)."""
        loops: list[WatchedLoop] = [
            self.rules_monitor.loop,
            self.payout_worker.loop,
            self.closure_worker.loop,
            self.fork_scanner,
            self.guard_worker.loop,
            self.reconciliation_schedule,
            self.integration.webhook_worker.loop,
        ]
        for publisher in (self.integration.stream_publisher, self.integration.kafka_publisher):
            if publisher is not None:
                loops.append(publisher.loop)
        if self.checkpointer is not None:
            loops.append(self.checkpointer.loop)
        return loops

    @property
    def local_writer(self) -> LedgerWriter:
        """The writer running in this process, for what drives it directly
        (tests, benchmarks); none when the writer is the writer process."""
        if not isinstance(self.writer, LedgerWriter):
            raise RuntimeError("the writer runs in the writer process (LEDGER_WRITER_ENDPOINT)")
        return self.writer

    def close(self) -> None:
        self.key_revocations.stop()
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.integration.stop()
        self.guard_worker.stop()
        self.reconciliation_schedule.stop()
        self.reconciliation_runs.close()
        self.fork_scanner.stop()
        self.closure_worker.stop()
        self.payout_worker.stop()
        self.rules_monitor.stop()
        self.writer.stop()
        if self.projections is not None:
            self.projections.stop()
        # The writer's own connection is not the pool's: closed here, not left
        # to the garbage collector (a session left open keeps the database
        # from being dropped or copied).
        if isinstance(self.app.ledger_recorder, HashChainedPostgresRecorder):
            self.app.ledger_recorder.close_append_connection()
        self.app.close()
        self.pool.close()


def build_ledger(
    settings: Settings,
    *,
    clock: Clock | None = None,
    start_writer: bool = True,
    start_projections: bool = True,
    start_rules_monitor: bool = False,
    start_payout_worker: bool = False,
    start_closure_worker: bool = False,
    start_fork_scanner: bool = False,
    start_reconciliation_schedule: bool = False,
    start_guard_worker: bool = False,
    start_webhook_worker: bool = False,
    start_checkpointer: bool = False,
    payout_gateway: PayoutGateway | None = None,
    mailer: Mailer | None = None,
    broker: Broker | None = None,
) -> Ledger:
    """The running parts of a service process. Background workers (the rules
    monitor, the payout worker) start only when asked: `ledger serve` asks,
    tests run their passes themselves. `payout_gateway` replaces the one the
    settings choose (Stripe with STRIPE_API_KEY, the sandbox without); `mailer`
    and `broker` likewise replace the outbox mailer and the simulated broker."""
    prepare_process()
    database_url = resolve_database_url(settings)
    applied = database.upgrade(database_url)
    if applied:
        log.info("migrations_applied", migrations=applied)
    app = LedgerApplication(
        env=database.eventsourcing_environment(database_url, settings.database_pool_size),
        recorder_factory=_hash_chained_recorder,
    )
    clock = clock or service_clock(settings)
    writer_metrics = WriterMetrics()
    writer = build_writer(settings, app, clock, writer_metrics)
    writer_metrics.track(writer)
    pool = ConnectionPool(
        database_url,
        min_size=1,
        max_size=settings.database_pool_size,
        # Named so that `ledger projections rebuild --in-place` sees the
        # service uses the views (projections/view_sessions.py).
        kwargs={"autocommit": True, "application_name": SERVICE_APPLICATION_NAME},
        open=True,
        name="ledger-interface",
        reconnect_timeout=database.POOL_RECONNECT_TIMEOUT_S,
    )
    database.recover_from_lost_connections(pool)
    projections = ProjectionRunner(database_url, all_views())
    writer_metrics.track_projections(projections, writer)
    writer_metrics.track_projection_failures(pool)
    writer_metrics.track_withdrawals(pool)
    writer_metrics.track_reconciliation(pool)
    if start_projections and settings.projections_in_process:
        projections.start()
    if start_writer:
        writer.start()
    # The embedded default: a deterministic market that tests, the demo and an
    # admin (PUT /v1/admin/simulated-market/{symbol}) set prices in. Its
    # state is kept in its own tables, so a restart finds its accounts.
    broker = broker or SimulatedBroker(clock, store=PostgresSimulatedBrokerStore(pool))
    funded_accounts = FundedAccountsService(
        app, writer, broker, clock, mark_age_max=mark_age_max(settings)
    )
    rules_monitor = RulesMonitor(database_url, funded_accounts, settings.rules_monitor_interval_s)
    if start_rules_monitor and start_writer and settings.rules_monitor_in_process:
        rules_monitor.start()
    payout_gateway = payout_gateway or build_payout_gateway(settings, clock, pool)
    withdrawals = WithdrawalsService(app, writer, payout_gateway, clock)
    payouts = payout_worker(database_url, withdrawals, clock, settings.payout_worker_interval_s)
    if start_payout_worker and start_writer and settings.payout_worker_in_process:
        payouts.start()
    closures = ClosuresService(
        app,
        writer,
        funded_accounts,
        withdrawals,
        broker,
        mailer or build_mailer(settings, pool),
        clock,
        RedisClosureProgress(settings.redis_url) if settings.redis_url else None,
    )
    closing = closure_worker(database_url, closures, clock, settings.closure_worker_interval_s)
    if start_closure_worker and start_writer and settings.closure_worker_in_process:
        closing.start()
    fork_service = ForksService(
        app, writer, clock, ViewedForkLoad(pool, writer, projections), broker=broker
    )
    scanner = fork_scanner(database_url, fork_service, settings.fork_scan_interval_s)
    if start_fork_scanner and start_writer and settings.fork_scanner_in_process:
        scanner.start()
    guards = GuardsService(
        app,
        writer,
        funded_accounts,
        broker,
        clock,
        guard_thresholds(settings),
        notifier=FileGuardNotifier(settings.data_dir / GUARD_NOTIFICATIONS_FOLDER),
    )
    broker_sync = BrokerSyncService(app, writer, broker, clock, PostgresSyncStatusStore(pool))
    guard_worker = GuardWorker(
        database_url=database_url,
        sync=broker_sync,
        after_sync=guards.guard_account,
        interval_s=settings.broker_sync_interval_s,
        concurrency=settings.broker_sync_concurrency,
    )
    if start_guard_worker and start_writer and settings.guards_in_process:
        guard_worker.start()
    reconciliation = ReconciliationService(
        app,
        writer,
        clock,
        reconciliation_checks(
            database_url,
            payout_gateway,
            broker,
            trusted_keys=lambda: trusted_public_keys(settings),
            checkpoint_directory=checkpoint_dir(settings),
        ),
        ViewedOpenExceptions(pool, writer, projections),
    )
    schedule = reconciliation_schedule(
        database_url, reconciliation, clock, settings.reconciliation_schedule_poll_s
    )
    if (
        start_reconciliation_schedule
        and start_writer
        and settings.reconciliation_schedule_in_process
    ):
        schedule.start()
    integration = build_integration(
        settings, database_url, pool, writer, clock, start=start_webhook_worker and start_writer
    )
    return Ledger(
        settings=settings,
        database_url=database_url,
        app=app,
        writer=writer,
        service=LedgerService(app, writer),
        pool=pool,
        api_keys=ApiKeyStore(pool),
        broker=broker,
        funded_accounts=funded_accounts,
        rules_monitor=rules_monitor,
        withdrawals=withdrawals,
        payout_worker=payouts,
        closures=closures,
        closure_worker=closing,
        forks=fork_service,
        merges=MergesService(app, writer, clock),
        fork_scanner=scanner,
        guards=guards,
        broker_sync=broker_sync,
        guard_worker=guard_worker,
        payout_gateway=payout_gateway,
        reconciliation=reconciliation,
        reconciliation_runs=BackgroundRuns(reconciliation),
        reconciliation_schedule=schedule,
        integration=integration,
        clock=clock,
        writer_metrics=writer_metrics,
        projections=projections,
        # Built whether it starts or not: a production setup without a
        # signing key refuses to start here.
        checkpointer=build_checkpointer(
            settings,
            database_url,
            start=start_checkpointer and settings.audit_checkpointer_in_process,
        ),
    )


def build_ledger_with_workers(settings: Settings, *, clock: Clock | None = None) -> Ledger:
    """A ledger running every background worker its settings allow (each
    `*_IN_PROCESS` setting still decides): `ledger worker`, and one process
    that is the whole service (`ledger http --all-in-one`, the app's default)."""
    return build_ledger(
        settings,
        clock=clock,
        start_rules_monitor=True,
        start_payout_worker=True,
        start_closure_worker=True,
        start_fork_scanner=True,
        start_reconciliation_schedule=True,
        start_guard_worker=True,
        start_webhook_worker=True,
        start_checkpointer=True,
    )


def service_clock(settings: Settings) -> Clock:
    """The system clock; with LEDGER_CLOCK_SETTABLE, one that starts at the
    system time and moves only when an admin moves it: every timer (closures,
    payouts, guards) reads this one clock, in the service as in tests."""
    if settings.clock_settable:
        log.warning("clock_settable", reason="LEDGER_CLOCK_SETTABLE is set: time moves on request")
        return SettableClock(SystemClock().now())
    return SystemClock()


def build_payout_gateway(settings: Settings, clock: Clock, pool: ConnectionPool) -> PayoutGateway:
    """Stripe through its SDK when STRIPE_API_KEY is set (STRIPE_API_BASE points
    it elsewhere, a test server say); otherwise the built-in sandbox, which
    pays at once, moves no money and says so in the logs. The sandbox keeps
    its payouts in its own table, so a restart forgets none."""
    if settings.stripe_api_key:
        return StripePayoutGateway(settings.stripe_api_key, settings.stripe_api_base)
    log.warning("payout_gateway_sandbox", reason="STRIPE_API_KEY is not set")
    return SandboxPayoutGateway(clock, store=PostgresSandboxPayoutStore(pool))


def build_mailer(settings: Settings, pool: ConnectionPool) -> Mailer:
    """Closure emails through SMTP_URL, or into LEDGER_DATA_DIR/outbox as .eml
    files; either way each message id is sent once (the email_outbox table)."""
    transport: MailTransport = (
        SmtpTransport(settings.smtp_url)
        if settings.smtp_url
        else FolderTransport(settings.data_dir / OUTBOX_FOLDER)
    )
    return OutboxMailer(pool, transport, sender=settings.mail_sender)


def build_rate_limiter(settings: Settings) -> RateLimiter:
    """Shared through Redis when REDIS_URL is set, in this process otherwise
    (and as Redis' fallback while it is unavailable). Built in the app's
    lifespan: the Redis client belongs to the server's event loop."""
    limit = RateLimit(per_s=settings.rate_limit_per_s, burst=settings.rate_limit_burst)
    in_process = InMemoryRateLimiter(limit)
    if not settings.redis_url:
        return in_process
    return RedisRateLimiter.from_url(
        settings.redis_url, limit, fallback=in_process, key_prefix=settings.rate_limit_key_prefix
    )
