"""A PayoutGateway that moves no money: for the demo, for staging, and for tests
of the layers above, which can script its failures.

It keeps Stripe's promises about idempotency keys, so code written against it
behaves the same against Stripe. Scripted failures are not remembered under
the key: the retry that follows one reaches the sandbox as a new attempt.

Given a `store`, it starts from the payouts kept there and writes each new
payout and change of status to it before answering, so a restart forgets
none, as Stripe would not (sandbox_payout_store.py). Without one it lives in
memory only.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

import structlog

from application.clock import SystemClock
from application.ports.clock import Clock
from application.ports.payout_gateway import (
    IDEMPOTENCY_KEY_REUSED,
    PAYOUT_NOT_FOUND,
    Payout,
    PayoutRejected,
    PayoutRequest,
    PayoutStatus,
    PayoutUnavailable,
)
from interface.adapters.payouts.sandbox_payout_store import SandboxPayoutStore

# Payouts are kept in memory for idempotency and listing; past this the sandbox refuses more.
PAYOUTS_KEPT_MAX: Final[int] = 100_000
FAULTS_QUEUED_MAX: Final[int] = 100
PAYOUT_ID_PREFIX: Final[str] = "po_sandbox_"
PAYOUTS_LIMIT_REACHED: Final[str] = "sandbox_payouts_limit_reached"

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class _Rejection:
    code: str
    detail: str


class _Unavailable:
    """Raised instead of creating."""


class _UnavailableAfterCreate:
    """Created, then the answer is lost."""


_Fault = _Rejection | _Unavailable | _UnavailableAfterCreate


class SandboxPayoutGateway:
    name: Final = "sandbox"

    def __init__(
        self, clock: Clock | None = None, *, store: SandboxPayoutStore | None = None
    ) -> None:
        self._clock: Clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._payouts: dict[str, Payout] = {}
        # The first request under each key, and the payout it made.
        self._by_key: dict[str, tuple[PayoutRequest, str]] = {}
        self._faults: deque[_Fault] = deque()
        self._store = store
        for request, payout in store.load() if store is not None else []:
            self._payouts[payout.payout_id] = payout
            self._by_key[request.idempotency_key] = (request, payout.payout_id)

    @property
    def keeps_state(self) -> bool:
        """Whether its payouts are in the database, where another process reads them."""
        return self._store is not None

    # The port -------------------------------------------------------------------

    def create_payout(self, request: PayoutRequest) -> Payout:
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
            if isinstance(fault, _Rejection):
                raise PayoutRejected(fault.code, fault.detail)
            if isinstance(fault, _Unavailable):
                raise PayoutUnavailable("sandbox: scripted unavailability")
            payout, created = self._payout_for(request)
        if created:
            # Loud on purpose: a sandbox gateway in production would pay no one.
            log.warning(
                "sandbox_payout_paid",
                payout_id=payout.payout_id,
                withdrawal_id=request.withdrawal_id,
                amount_minor=request.amount_minor,
                currency=request.currency,
                money_moved=False,
                detail="sandbox gateway: the payout is marked paid, no money moved",
            )
        if isinstance(fault, _UnavailableAfterCreate):
            raise PayoutUnavailable("sandbox: payout created, answer lost (scripted)")
        return payout

    def retrieve_payout(self, payout_id: str) -> Payout:
        with self._lock:
            payout = self._payouts.get(payout_id)
        if payout is None:
            raise PayoutRejected(PAYOUT_NOT_FOUND, f"no such payout: {payout_id}")
        return payout

    def list_payouts(self, created_from: datetime | None = None) -> Iterator[Payout]:
        if created_from is not None and created_from.tzinfo is None:
            raise ValueError("created_from must carry a time zone")
        with self._lock:
            # Newest first; among payouts of the same moment, the later made first.
            payouts = list(reversed(self._payouts.values()))
        payouts.sort(key=lambda payout: payout.created_at, reverse=True)
        return iter(
            [
                payout
                for payout in payouts
                if created_from is None or payout.created_at >= created_from
            ]
        )

    # Scripting, for tests -------------------------------------------------------

    def fail_next(self, code: str, detail: str) -> None:
        """The next create raises `PayoutRejected(code, detail)` and makes nothing."""
        self._queue([_Rejection(code, detail)])

    def unavailable_next(self, times: int = 1) -> None:
        """The next `times` creates raise `PayoutUnavailable` and make nothing."""
        if times <= 0:
            raise ValueError("times is positive")
        self._queue([_Unavailable()] * times)

    def unavailable_after_create_next(self) -> None:
        """The next create makes its payout, then raises `PayoutUnavailable`, as
        when Stripe pays but the answer times out."""
        self._queue([_UnavailableAfterCreate()])

    def set_status(
        self,
        payout_id: str,
        status: PayoutStatus,
        failure_code: str | None = None,
        failure_message: str | None = None,
    ) -> Payout:
        """Moves a payout on, as the bank would (`paid` to `failed` on a return)."""
        with self._lock:
            payout = self._payouts.get(payout_id)
            if payout is None:
                raise PayoutRejected(PAYOUT_NOT_FOUND, f"no such payout: {payout_id}")
            changed = replace(
                payout,
                status=status,
                failure_code=failure_code,
                failure_message=failure_message,
            )
            if self._store is not None:
                self._store.record_status(changed)
            self._payouts[payout_id] = changed
            return changed

    def _queue(self, faults: list[_Fault]) -> None:
        with self._lock:
            if len(self._faults) + len(faults) > FAULTS_QUEUED_MAX:
                raise ValueError(f"at most {FAULTS_QUEUED_MAX} faults queued")
            self._faults.extend(faults)

    def _payout_for(self, request: PayoutRequest) -> tuple[Payout, bool]:
        """Under the lock: the key's payout, and whether it was made just now."""
        known = self._by_key.get(request.idempotency_key)
        if known is not None:
            first_request, payout_id = known
            if first_request != request:
                raise PayoutRejected(
                    IDEMPOTENCY_KEY_REUSED,
                    "this idempotency key was first used with other parameters",
                )
            return self._payouts[payout_id], False
        if len(self._payouts) >= PAYOUTS_KEPT_MAX:
            raise PayoutRejected(PAYOUTS_LIMIT_REACHED, f"at most {PAYOUTS_KEPT_MAX} payouts")
        payout = Payout(
            payout_id=f"{PAYOUT_ID_PREFIX}{uuid.uuid4().hex}",
            amount_minor=request.amount_minor,
            currency=request.currency,
            status=PayoutStatus.PAID,
            metadata=request.metadata,
            created_at=self._clock.now(),
        )
        if self._store is not None:
            self._store.record_created(request, payout)
        self._payouts[payout.payout_id] = payout
        self._by_key[request.idempotency_key] = (request, payout.payout_id)
        return payout, True
