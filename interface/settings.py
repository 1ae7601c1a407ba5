"""All configuration, from the environment, in one place."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from application.writer import BATCH_SIZE_MAX_DEFAULT
from domain.account import METADATA_KEY_LENGTH_MAX, METADATA_KEYS_MAX, METADATA_VALUE_LENGTH_MAX


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    database_url: str | None = Field(
        default=None,
        validation_alias="LEDGER_DATABASE_URL",
        description="PostgreSQL URL; unset starts an embedded PostgreSQL in data_dir.",
    )
    data_dir: Path = Field(default=Path(".ledger"), validation_alias="LEDGER_DATA_DIR")
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    stripe_api_key: str | None = Field(default=None, validation_alias="STRIPE_API_KEY")
    stripe_api_base: str | None = Field(default=None, validation_alias="STRIPE_API_BASE")
    # The signing secret of the Stripe webhook endpoint (whsec_...); without
    # it POST /v1/webhooks/stripe refuses every delivery.
    stripe_webhook_secret: str | None = Field(
        default=None, validation_alias="STRIPE_WEBHOOK_SECRET"
    )
    log_level: str = Field(default="INFO", validation_alias="LEDGER_LOG_LEVEL")
    log_json: bool = Field(default=True, validation_alias="LEDGER_LOG_JSON")
    host: str = Field(default="127.0.0.1", validation_alias="LEDGER_HOST")
    port: int = Field(default=8000, ge=1, le=65535, validation_alias="LEDGER_PORT")
    # The ASGI server of `ledger http` (interface/processes/http_server.py).
    http_server: Literal["uvicorn", "granian"] = Field(
        default="uvicorn", validation_alias="LEDGER_HTTP_SERVER"
    )
    database_pool_size: int = Field(
        default=8, ge=1, le=256, validation_alias="LEDGER_DATABASE_POOL_SIZE"
    )
    writer_batch_size_max: int = Field(
        default=BATCH_SIZE_MAX_DEFAULT,
        ge=1,
        le=BATCH_SIZE_MAX_DEFAULT,
        validation_alias=AliasChoices("LEDGER_WRITER_BATCH_SIZE_MAX"),
    )
    writer_queued_commands_max: int = Field(
        default=16 * BATCH_SIZE_MAX_DEFAULT,
        ge=BATCH_SIZE_MAX_DEFAULT,
        le=10_000_000,
        validation_alias="LEDGER_WRITER_QUEUED_COMMANDS_MAX",
    )
    writer_account_cache_size_max: int = Field(
        default=100_000,
        ge=1,
        le=10_000_000,
        validation_alias="LEDGER_WRITER_ACCOUNT_CACHE_SIZE_MAX",
    )
    writer_transfer_cache_size_max: int = Field(
        default=20_000,
        ge=1,
        le=10_000_000,
        validation_alias="LEDGER_WRITER_TRANSFER_CACHE_SIZE_MAX",
    )
    # Several processes writing the same accounts: decide each batch under
    # the log's write lock (see application.writer.WriterLimits).
    writer_decide_under_lock: bool = Field(
        default=False, validation_alias="LEDGER_WRITER_DECIDE_UNDER_LOCK"
    )
    # The writer process's ZeroMQ endpoint (tcp://127.0.0.1:7701,
    # ipc:///run/ledger/writer.sock): `ledger writer` binds it, every other
    # process submits to it. Unset: each process runs its own writer.
    writer_endpoint: str | None = Field(
        default=None,
        pattern=r"^(tcp|ipc)://\S+$",
        validation_alias="LEDGER_WRITER_ENDPOINT",
    )
    # Every process of the deployment holds this CURVE secret key (Z85 text,
    # `ledger writer --new-key`): the writer channel is then encrypted and
    # the writer admits only holders of it. Required when the endpoint is a
    # tcp address beyond loopback (interface/writer_process/curve.py).
    writer_curve_secret_key: SecretStr | None = Field(
        default=None, validation_alias="LEDGER_WRITER_CURVE_SECRET_KEY"
    )

    @model_validator(mode="after")
    def _writer_channel_is_guarded(self) -> Settings:
        if self.writer_endpoint is None and self.writer_curve_secret_key is None:
            return self
        # Imported here: only a deployment with a writer process needs ZeroMQ.
        from interface.writer_process.curve import CurveKeys, needs_curve

        if self.writer_curve_secret_key is not None:
            try:
                CurveKeys.from_secret(self.writer_curve_secret_key.get_secret_value())
            except ValueError as error:
                raise ValueError(
                    f"LEDGER_WRITER_CURVE_SECRET_KEY: {error} (`ledger writer --new-key` makes one)"
                ) from error
        elif self.writer_endpoint is not None and needs_curve(self.writer_endpoint):
            raise ValueError(
                "LEDGER_WRITER_ENDPOINT is a tcp address other hosts may reach: set "
                "LEDGER_WRITER_CURVE_SECRET_KEY in every process (`ledger writer --new-key` "
                "makes one), or bind loopback or an ipc:// path"
            )
        return self

    # `ledger worker` serves its own /metrics (its background loops' series,
    # docs/operations.md#metrics) on LEDGER_HOST at this port; unset: none.
    worker_metrics_port: int | None = Field(
        default=None, ge=1, le=65535, validation_alias="LEDGER_WORKER_METRICS_PORT"
    )
    # `ledger writer` serves its own /metrics (its batches, queue, socket and
    # lease, docs/operations.md#metrics) on LEDGER_HOST at this port; unset: none.
    writer_metrics_port: int | None = Field(
        default=None, ge=1, le=65535, validation_alias="LEDGER_WRITER_METRICS_PORT"
    )
    # `ledger worker` lowers its own CPU priority by this much (nice(2)): on a
    # machine it shares with the writer, deliveries, streams and views take
    # what the write path leaves, so they never slow it (docs/events.md).
    # 0 keeps the priority it was started with.
    worker_niceness: int = Field(default=10, ge=0, le=19, validation_alias="LEDGER_WORKER_NICENESS")
    # Run the projection runner inside `ledger serve` (off: run
    # `ledger projections run` as its own process instead).
    projections_in_process: bool = Field(
        default=True, validation_alias="LEDGER_PROJECTIONS_IN_PROCESS"
    )
    # How long a read waits for the views to reach the position it needs
    # (its own last write) before answering 503 projection_lagging.
    read_wait_s_max: float = Field(
        default=2.0, gt=0, le=30, validation_alias="LEDGER_READ_WAIT_S_MAX"
    )
    # /readyz answers 503 while a view is further behind the log than this:
    # the first event it has not applied was recorded longer ago.
    readiness_view_lag_s_max: float = Field(
        default=30.0, gt=0, validation_alias="LEDGER_READINESS_VIEW_LAG_S_MAX"
    )
    # Run the funded accounts' rules monitor inside `ledger serve` (one process
    # at a time marks, under a lease), and how often it marks open positions.
    rules_monitor_in_process: bool = Field(
        default=True, validation_alias="LEDGER_RULES_MONITOR_IN_PROCESS"
    )
    rules_monitor_interval_s: float = Field(
        default=5.0, gt=0, le=3600, validation_alias="LEDGER_RULES_MONITOR_INTERVAL_S"
    )
    # Closure emails: through this SMTP server (smtp://[user:password@]host[:port]
    # [?starttls=true] or smtps://...), or without it written to
    # LEDGER_DATA_DIR/outbox as .eml files; from this sender.
    smtp_url: str | None = Field(default=None, validation_alias="SMTP_URL")
    mail_sender: str = Field(
        default="Ledger <no-reply@ledger.local>",
        min_length=3,
        max_length=254,
        validation_alias="LEDGER_MAIL_SENDER",
    )
    # Run the closure worker inside `ledger serve` (one process at a time
    # advances closures, under a lease), and how often it looks for due work.
    closure_worker_in_process: bool = Field(
        default=True, validation_alias="LEDGER_CLOSURE_WORKER_IN_PROCESS"
    )
    closure_worker_interval_s: float = Field(
        default=30.0, gt=0, le=3600, validation_alias="LEDGER_CLOSURE_WORKER_INTERVAL_S"
    )
    # Run the fork scanner inside `ledger serve` (one process at a time, under a
    # lease): it proposes forks past thresholds and executes waiting ones.
    fork_scanner_in_process: bool = Field(
        default=True, validation_alias="LEDGER_FORK_SCANNER_IN_PROCESS"
    )
    fork_scan_interval_s: float = Field(
        default=300.0, gt=0, le=86_400, validation_alias="LEDGER_FORK_SCAN_INTERVAL_S"
    )
    # Run the broker sync and the guards inside `ledger serve` (one process at
    # a time, under a lease): every account's positions and equity fetched
    # from the broker, divergences recorded, drawdown and market guards
    # decided, due liquidations carried out.
    guards_in_process: bool = Field(default=True, validation_alias="LEDGER_GUARDS_IN_PROCESS")
    broker_sync_interval_s: float = Field(
        default=10.0, gt=0, le=3_600, validation_alias="LEDGER_BROKER_SYNC_INTERVAL_S"
    )
    # Accounts synced at once (each a broker call or two).
    broker_sync_concurrency: int = Field(
        default=8, ge=1, le=64, validation_alias="LEDGER_BROKER_SYNC_CONCURRENCY"
    )
    # The guards' figures (docs/rules.md#position-sync-and-guards). Each also
    # answers to the name the specification gives it, without the prefix.
    # Warn from this drawdown, in percent of the peak equity.
    drawdown_alert_threshold_percent: Decimal = Field(
        default=Decimal(15),
        gt=0,
        lt=100,
        validation_alias=AliasChoices(
            "LEDGER_DRAWDOWN_ALERT_THRESHOLD_PERCENT", "DRAWDOWN_ALERT_THRESHOLD_PERCENT"
        ),
    )
    # Liquidate when the drawdown is over this (exactly this does not).
    max_drawdown_percent: Decimal = Field(
        default=Decimal(20),
        gt=0,
        lt=100,
        validation_alias=AliasChoices("LEDGER_MAX_DRAWDOWN_PERCENT", "MAX_DRAWDOWN_PERCENT"),
    )
    # Liquidate whatever the drawdown when equity is under this, in major
    # units of the account's currency.
    min_equity: Decimal = Field(
        default=Decimal(100),
        ge=0,
        le=Decimal(10) ** 12,
        validation_alias=AliasChoices("LEDGER_MIN_EQUITY", "MIN_EQUITY"),
    )
    # The owner is warned this long before a liquidation closes the positions.
    pre_liquidation_warning_s: float = Field(
        default=10.0,
        ge=0,
        le=86_400,
        validation_alias=AliasChoices(
            "LEDGER_PRE_LIQUIDATION_WARNING_S", "PRE_LIQUIDATION_WARNING_SECONDS"
        ),
    )
    # Market guard: a gap between the session's open and the last close over
    # this, either way, in percent of the last close.
    price_gap_alert_percent: Decimal = Field(
        default=Decimal(5),
        gt=0,
        le=100,
        validation_alias=AliasChoices("LEDGER_PRICE_GAP_ALERT_PERCENT", "PRICE_GAP_ALERT_PERCENT"),
    )
    # A spread over this, in percent of the bid.
    bid_ask_spread_max_percent: Decimal = Field(
        default=Decimal("0.5"),
        gt=0,
        le=100,
        validation_alias=AliasChoices(
            "LEDGER_BID_ASK_SPREAD_MAX_PERCENT", "BID_ASK_SPREAD_MAX_PERCENT"
        ),
    )
    # A session volume under this many lots (units of quantity) is illiquid;
    # the liquidity check (this and the position's size) can be switched off.
    min_liquidity_volume_lots: int = Field(
        default=10,
        ge=0,
        le=10**12,
        validation_alias=AliasChoices(
            "LEDGER_MIN_LIQUIDITY_VOLUME_LOTS", "MIN_LIQUIDITY_VOLUME_LOTS"
        ),
    )
    liquidity_check_enabled: bool = Field(
        default=True,
        validation_alias=AliasChoices("LEDGER_LIQUIDITY_CHECK_ENABLED", "LIQUIDITY_CHECK_ENABLED"),
    )
    # A rule or guard decision is taken only on marks (quotes) at most this
    # old; on an older one it waits for a fresh one.
    mark_age_max_s: float = Field(
        default=60.0, gt=0, le=86_400, validation_alias="LEDGER_MARK_AGE_MAX_S"
    )
    # Run the reconciliation schedule inside `ledger serve` (hourly, and daily
    # at 02:00 UTC; one process at a time, under a lease), and how often it
    # looks whether a slot is due.
    reconciliation_schedule_in_process: bool = Field(
        default=True, validation_alias="LEDGER_RECONCILIATION_SCHEDULE_IN_PROCESS"
    )
    reconciliation_schedule_poll_s: float = Field(
        default=60.0, gt=0, le=3_600, validation_alias="LEDGER_RECONCILIATION_SCHEDULE_POLL_S"
    )
    # Run the payout worker inside `ledger serve` (one process at a time pays
    # out, under a lease), and how often it looks for due payouts when not
    # woken by an approval.
    payout_worker_in_process: bool = Field(
        default=True, validation_alias="LEDGER_PAYOUT_WORKER_IN_PROCESS"
    )
    payout_worker_interval_s: float = Field(
        default=5.0, gt=0, le=3600, validation_alias="LEDGER_PAYOUT_WORKER_INTERVAL_S"
    )
    # Per API key (per client address without one); generous by default so
    # load tests and the test suite are not throttled.
    rate_limit_per_s: float = Field(
        default=1000.0, gt=0, le=1_000_000, validation_alias="LEDGER_RATE_LIMIT_PER_S"
    )
    rate_limit_burst: int = Field(
        default=2000, ge=1, le=10_000_000, validation_alias="LEDGER_RATE_LIMIT_BURST"
    )
    rate_limit_key_prefix: str = Field(
        default="ledger:rate_limit:",
        min_length=1,
        max_length=128,
        validation_alias="LEDGER_RATE_LIMIT_KEY_PREFIX",
        description="Prefix of the rate limiter's Redis keys (several ledgers may share a Redis).",
    )
    # What a request may hold (docs/api.md#limits-on-what-a-request-holds),
    # checked at the edge before anything is parsed or written. A body over
    # its limit answers 413; the batch route has its own, for 8190 transfers.
    # At most the 16 MiB the Idempotency-Key middleware holds to digest.
    request_body_bytes_max: int = Field(
        default=1024 * 1024,
        ge=1024,
        le=16 * 1024 * 1024,
        validation_alias="LEDGER_REQUEST_BODY_BYTES_MAX",
    )
    batch_request_body_bytes_max: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        le=16 * 1024 * 1024,
        validation_alias="LEDGER_BATCH_REQUEST_BODY_BYTES_MAX",
    )
    # Any string of a body, path, query or declared header, in characters:
    # the longest field (a webhook URL) fits; each field's schema may be tighter.
    string_length_max: int = Field(
        default=2048, ge=64, le=65_536, validation_alias="LEDGER_STRING_LENGTH_MAX"
    )
    # Any `metadata` object of a body. The ledger's own limits (domain.account)
    # are the ceilings: these can tighten them, never widen them.
    metadata_keys_max: int = Field(
        default=METADATA_KEYS_MAX,
        ge=1,
        le=METADATA_KEYS_MAX,
        validation_alias="LEDGER_METADATA_KEYS_MAX",
    )
    metadata_key_length_max: int = Field(
        default=METADATA_KEY_LENGTH_MAX,
        ge=1,
        le=METADATA_KEY_LENGTH_MAX,
        validation_alias="LEDGER_METADATA_KEY_LENGTH_MAX",
    )
    metadata_value_length_max: int = Field(
        default=METADATA_VALUE_LENGTH_MAX,
        ge=1,
        le=METADATA_VALUE_LENGTH_MAX,
        validation_alias="LEDGER_METADATA_VALUE_LENGTH_MAX",
    )
    # 1: the object holds only plain values (the ledger's metadata is flat).
    metadata_depth_max: int = Field(
        default=1, ge=1, le=32, validation_alias="LEDGER_METADATA_DEPTH_MAX"
    )
    # The object as compact UTF-8 JSON.
    metadata_bytes_max: int = Field(
        default=8192, ge=64, le=65_536, validation_alias="LEDGER_METADATA_BYTES_MAX"
    )
    # Webhooks (docs/events.md): run the delivery worker inside `ledger serve`
    # (one process at a time, under a lease), how often it looks for events
    # to deliver, how long one delivery may take, how retries back off
    # (doubling from the first delay up to the longest, with jitter) and for
    # how long before a delivery fails for good and its endpoint is disabled.
    webhook_worker_in_process: bool = Field(
        default=True, validation_alias="LEDGER_WEBHOOK_WORKER_IN_PROCESS"
    )
    webhook_worker_interval_s: float = Field(
        default=0.5, gt=0, le=3_600, validation_alias="LEDGER_WEBHOOK_WORKER_INTERVAL_S"
    )
    webhook_timeout_s: float = Field(
        default=10.0, gt=0, le=60, validation_alias="LEDGER_WEBHOOK_TIMEOUT_S"
    )
    webhook_retry_first_delay_s: float = Field(
        default=10.0, gt=0, le=3_600, validation_alias="LEDGER_WEBHOOK_RETRY_FIRST_DELAY_S"
    )
    webhook_retry_delay_max_s: float = Field(
        default=3_600.0, gt=0, le=86_400, validation_alias="LEDGER_WEBHOOK_RETRY_DELAY_MAX_S"
    )
    webhook_retry_window_s: float = Field(
        default=3 * 86_400.0, gt=0, le=30 * 86_400, validation_alias="LEDGER_WEBHOOK_RETRY_WINDOW_S"
    )
    # Let webhook URLs reach private and loopback addresses (tests, private
    # networks); off, such URLs are refused (server-side request forgery).
    webhooks_allow_private_urls: bool = Field(
        default=False, validation_alias="LEDGER_WEBHOOKS_ALLOW_PRIVATE_URLS"
    )
    # The integration events copied to a Redis stream when REDIS_URL is set
    # (one process at a time, under a lease), trimmed to about this many.
    stream_publisher_in_process: bool = Field(
        default=True, validation_alias="LEDGER_STREAM_PUBLISHER_IN_PROCESS"
    )
    stream_key: str = Field(
        default="ledger:events", min_length=1, max_length=128, validation_alias="LEDGER_STREAM_KEY"
    )
    stream_length_max: int = Field(
        default=1_000_000, ge=1_000, le=1_000_000_000, validation_alias="LEDGER_STREAM_LENGTH_MAX"
    )
    # The integration events copied to a Kafka topic when the bootstrap servers
    # are set (the `kafka` extra; docs/events.md#kafka). Client settings are
    # librdkafka's, as a JSON object (TLS, SASL: they may hold a password).
    kafka_bootstrap_servers: str | None = Field(
        default=None,
        min_length=1,
        max_length=1_024,
        validation_alias="LEDGER_KAFKA_BOOTSTRAP_SERVERS",
    )
    kafka_topic: str = Field(
        default="ledger.events",
        pattern=r"^[A-Za-z0-9._-]{1,249}$",
        validation_alias="LEDGER_KAFKA_TOPIC",
    )
    kafka_client_settings: SecretStr | None = Field(
        default=None, validation_alias="LEDGER_KAFKA_CLIENT_SETTINGS"
    )

    @model_validator(mode="after")
    def _kafka_client_settings_are_an_object(self) -> Settings:
        if self.kafka_client_settings is None:
            return self
        try:
            parsed = json.loads(self.kafka_client_settings.get_secret_value())
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict) or not all(
            isinstance(value, str | int | float | bool) for value in parsed.values()
        ):
            raise ValueError(
                "LEDGER_KAFKA_CLIENT_SETTINGS must be a JSON object of librdkafka settings, "
                'for example {"security.protocol": "SASL_SSL"}'
            )
        return self

    # Where this runs: "production" refuses to start without an audit signing key.
    environment: Literal["local", "production"] = Field(
        default="local", validation_alias="LEDGER_ENVIRONMENT"
    )
    # The service's clock starts at the system time and then moves only when an
    # admin moves it (POST /v1/admin/clock/advance), so a served closure's
    # timers can be driven past their timeouts in a test or a demo. Refused in
    # production, where every timer runs on the system clock.
    clock_settable: bool = Field(default=False, validation_alias="LEDGER_CLOCK_SETTABLE")

    @model_validator(mode="after")
    def _no_settable_clock_in_production(self) -> Settings:
        if self.clock_settable and self.environment == "production":
            raise ValueError("LEDGER_CLOCK_SETTABLE is refused with LEDGER_ENVIRONMENT=production")
        return self

    # Signed checkpoints of the log (docs/operations.md#audit): the Ed25519
    # private key (PEM text, or a file), the public keys a verify trusts (every
    # key ever used, one PEM block each), the append-only directory outside the
    # database (default under data_dir/audit), and how often: a checkpoint
    # each interval with new events, at most this many events each.
    audit_signing_key: SecretStr | None = Field(
        default=None, validation_alias="LEDGER_AUDIT_SIGNING_KEY"
    )
    audit_signing_key_file: Path | None = Field(
        default=None, validation_alias="LEDGER_AUDIT_SIGNING_KEY_FILE"
    )
    audit_public_keys_file: Path | None = Field(
        default=None, validation_alias="LEDGER_AUDIT_PUBLIC_KEYS_FILE"
    )
    audit_checkpoint_dir: Path | None = Field(
        default=None, validation_alias="LEDGER_AUDIT_CHECKPOINT_DIR"
    )
    audit_checkpoint_events: int = Field(
        default=10_000, ge=1, le=1_000_000, validation_alias="LEDGER_AUDIT_CHECKPOINT_EVENTS"
    )
    audit_checkpoint_interval_s: float = Field(
        default=1.0, gt=0, le=3_600, validation_alias="LEDGER_AUDIT_CHECKPOINT_INTERVAL_S"
    )
    # Run the checkpointer inside `ledger serve` (one process at a time, under a lease).
    audit_checkpointer_in_process: bool = Field(
        default=True, validation_alias="LEDGER_AUDIT_CHECKPOINTER_IN_PROCESS"
    )
