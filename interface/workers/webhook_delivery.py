"""The webhook worker: owes each subscribed event to its endpoints, and sends it.

A leased loop (interface/workers/leased_worker.py): one process at a time,
every `interval_s`. Each pass, for each enabled endpoint:

1. Fan out: copy the next events it subscribes to from the integration
   events view into the outbox, with its cursor, in one transaction
   (interface/adapters/webhooks/outbox.py): each event is owed once.
2. Deliver: POST the due owed deliveries, signed (`Ledger-Signature`,
   interface/adapters/webhooks/signing.py), in waves sent at once and
   recorded in one transaction. A delivery waits while an earlier one
   concerning any of its accounts is still owed, and a wave holds at most
   one per account, so a receiver sees each account's events in order. A 2xx is
   delivered; anything else is retried with exponential backoff and jitter
   until the retry window (3 days) closes, when the delivery fails for good
   and the endpoint is disabled, with a log event saying so.

A crash between a receiver's 2xx and the record of it sends that event
again, with the same id: delivery is at least once, and receivers
deduplicate on `id`. The write path never waits for any of this: the worker
reads only the view and its own tables. A dead receiver costs rows in the
outbox (bounded by the retry window), never memory: each pass reads a page.
"""

from __future__ import annotations

import functools
import random
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

import certifi
import httpx
import structlog

from application.ports.clock import Clock
from application.ports.writer import Writer
from application.webhook_endpoints import record_endpoint_disabled
from interface.adapters.persistence.advisory_locks import WEBHOOK_WORKER_LOCK_KEY
from interface.adapters.webhooks import outbox
from interface.adapters.webhooks.outbox import (
    ActiveEndpoint,
    Attempted,
    AttemptOutcome,
    OwedDelivery,
)
from interface.adapters.webhooks.signing import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    signature_header,
)
from interface.adapters.webhooks.url_safety import UrlRefused, require_callable_url
from interface.workers.leased_worker import Connection, LeasedLoop, OnLeasedLoop

log = structlog.get_logger(__name__)

# Events copied into one endpoint's outbox per transaction.
FAN_OUT_PAGE_SIZE: Final[int] = 500
# Owed deliveries one pass reads per endpoint (due or waiting).
OWED_PER_PASS_MAX: Final[int] = 500
# Deliveries sent to one endpoint at once (each to different accounts).
WAVE_SIZE_MAX: Final[int] = 16
# Deliveries one pass sends to one endpoint at most, before the others' turn.
DELIVERIES_PER_PASS_MAX: Final[int] = 2_000
# Failed attempts after which a pass leaves an endpoint until the next pass,
# so a dead receiver's timeouts never hold the other endpoints up for long.
FAILURES_PER_PASS_MAX: Final[int] = 3
USER_AGENT: Final[str] = "ledger-webhooks/1"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    first_delay_s: float
    delay_max_s: float
    window_s: float

    def next_attempt_at(
        self, attempts: int, owed_since: datetime, now: datetime, rng: random.Random
    ) -> datetime | None:
        """When to try again after `attempts` failed ones; None once the
        window has closed. The delay doubles each time up to the longest,
        and a random half of it is taken off so that many deliveries failing
        together do not all come back together."""
        closes_at = owed_since + timedelta(seconds=self.window_s)
        if now >= closes_at:
            return None
        delay_s = min(self.first_delay_s * 2 ** min(attempts - 1, 32), self.delay_max_s)
        jittered_s = delay_s * (0.5 + rng.random() / 2)
        return min(now + timedelta(seconds=jittered_s), closes_at)


@dataclass
class DeliveryPass:
    fanned_out: int = 0
    attempted: int = 0
    delivered: int = 0
    failed_for_good: int = 0
    disabled: list[UUID] = field(default_factory=list)
    # More was due than the pass took on: the next pass starts at once.
    more: bool = False


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One per process: loading the certificate authorities costs about a
    tenth of a second, and every ledger built (each test's too) has a worker."""
    return ssl.create_default_context(cafile=certifi.where())


class WebhookWorker(OnLeasedLoop[DeliveryPass]):
    def __init__(
        self,
        *,
        database_url: str,
        writer: Writer,
        clock: Clock,
        policy: RetryPolicy,
        timeout_s: float,
        allow_private_urls: bool,
        interval_s: float,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._writer = writer
        self._clock = clock
        self._policy = policy
        self._allow_private_urls = allow_private_urls
        self._rng = random.Random()  # noqa: S311 - jitter, not a secret
        # Redirects are not followed: one could lead to a private address.
        self._http = httpx.Client(
            verify=_tls_context(),
            timeout=timeout_s,
            follow_redirects=False,
            transport=transport,
            headers={"User-Agent": USER_AGENT},
        )
        self._senders = ThreadPoolExecutor(WAVE_SIZE_MAX, thread_name_prefix="webhook-sender")
        self._loop = LeasedLoop(
            name="webhook-worker",
            database_url=database_url,
            lock_key=WEBHOOK_WORKER_LOCK_KEY,
            interval_s=interval_s,
            work=self._pass,
            report=self._report,
        )

    def run_once(self) -> DeliveryPass:
        done = self._loop.run_once()
        return DeliveryPass() if done is None else done

    def wake(self) -> None:
        self._loop.wake()

    def stop(self, timeout_s: float = 30.0) -> None:
        super().stop(timeout_s)
        self._senders.shutdown()
        self._http.close()

    def _pass(self, connection: Connection, stopping: threading.Event) -> DeliveryPass:
        done = DeliveryPass()
        for endpoint in outbox.enabled_endpoints(connection):
            if stopping.is_set():
                break
            fanned = outbox.fan_out(connection, endpoint, self._clock.now(), FAN_OUT_PAGE_SIZE)
            done.fanned_out += fanned
            done.more |= fanned == FAN_OUT_PAGE_SIZE
            self._deliver(connection, endpoint, stopping, done)
        return done

    def _deliver(
        self,
        connection: Connection,
        endpoint: ActiveEndpoint,
        stopping: threading.Event,
        done: DeliveryPass,
    ) -> None:
        """Waves of deliveries, each sent at once, until none is due now."""
        refusal = self._url_refusal(endpoint.url)
        failures = 0
        sent = 0
        while not stopping.is_set() and failures < FAILURES_PER_PASS_MAX:
            if sent >= DELIVERIES_PER_PASS_MAX:
                done.more = True
                return
            owed = outbox.owed_deliveries(connection, endpoint.endpoint_id, OWED_PER_PASS_MAX)
            wave = self._wave(owed)
            if not wave:
                return
            outcomes = list(
                self._senders.map(lambda item: self._send(endpoint, item, refusal), wave)
            )
            attempted = [
                Attempted(
                    delivery,
                    outcome,
                    None
                    if outcome.delivered
                    else self._policy.next_attempt_at(
                        delivery.attempts + 1, delivery.owed_since, outcome.attempted_at, self._rng
                    ),
                )
                for delivery, outcome in zip(wave, outcomes, strict=True)
            ]
            outbox.record_attempts(connection, attempted)
            sent += len(wave)
            done.attempted += len(wave)
            done.delivered += sum(item.outcome.delivered for item in attempted)
            failures += sum(not item.outcome.delivered for item in attempted)
            given_up = [item for item in attempted if item.status == outbox.FAILED]
            if given_up:
                done.failed_for_good += len(given_up)
                self._disable(connection, endpoint, given_up[0].delivery)
                done.disabled.append(endpoint.endpoint_id)
                return

    def _wave(self, owed: list[OwedDelivery]) -> list[OwedDelivery]:
        """The due deliveries that may go out together: at most one per
        account, none behind an earlier one of its accounts still owed."""
        now = self._clock.now()
        waiting: set[UUID] = set()
        wave: list[OwedDelivery] = []
        for delivery in owed:
            accounts = set(delivery.account_ids)
            if not (accounts & waiting) and delivery.next_attempt_at <= now:
                wave.append(delivery)
                if len(wave) == WAVE_SIZE_MAX:
                    break
            waiting |= accounts
        return wave

    def _url_refusal(self, url: str) -> str | None:
        try:
            require_callable_url(url, allow_private=self._allow_private_urls)
        except UrlRefused as refused:
            return str(refused)
        return None

    def _send(
        self, endpoint: ActiveEndpoint, delivery: OwedDelivery, refusal: str | None
    ) -> AttemptOutcome:
        attempted_at = self._clock.now()
        if refusal is not None:
            return AttemptOutcome(attempted_at, None, refusal, 0)
        body = delivery.body.encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(
                endpoint.secret, body, int(attempted_at.timestamp())
            ),
            EVENT_ID_HEADER: str(delivery.event_id),
            EVENT_TYPE_HEADER: delivery.event_type,
        }
        status_code: int | None = None
        error: str | None = None
        started = time.monotonic()
        try:
            response = self._http.post(endpoint.url, content=body, headers=headers)
        except httpx.TimeoutException:
            error = "timed out"
        except httpx.HTTPError as failure:
            error = f"{type(failure).__name__}: {failure}"
        else:
            status_code = response.status_code
            error = None if response.is_success else f"answered {response.status_code}"
        duration_ms = round((time.monotonic() - started) * 1000)
        return AttemptOutcome(attempted_at, status_code, error, duration_ms)

    def _disable(
        self, connection: Connection, endpoint: ActiveEndpoint, delivery: OwedDelivery
    ) -> None:
        """The log event first (recorded once, whatever crashes), then the switch."""
        now = self._clock.now()
        window_h = self._policy.window_s / 3600
        reason = f"deliveries failed for {window_h:g} hours"
        record_endpoint_disabled(
            self._writer,
            endpoint.endpoint_id,
            times_disabled_before=endpoint.times_disabled,
            reason=reason,
            failed_attempts=delivery.attempts + 1,
            at=now,
        )
        outbox.disable_endpoint(connection, endpoint.endpoint_id, reason, now)
        # The endpoint's id only: a URL may carry a token in its query.
        log.warning("webhook_endpoint_disabled", endpoint_id=str(endpoint.endpoint_id))

    def _report(self, done: DeliveryPass) -> None:
        if done.more:
            self._loop.wake()
        if done.attempted or done.disabled:
            log.debug(
                "webhook_pass",
                fanned_out=done.fanned_out,
                attempted=done.attempted,
                delivered=done.delivered,
                failed_for_good=done.failed_for_good,
                disabled=len(done.disabled),
            )
