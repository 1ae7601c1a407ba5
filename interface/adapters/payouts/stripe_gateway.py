"""The PayoutGateway on Stripe, through the official SDK's `StripeClient`.

The SDK's own retries are off: the payout worker retries with the same
idempotency key on its own schedule, and retries in two places would multiply
the wait (and the load on Stripe during an incident).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Final

import stripe
import structlog
from stripe.params import PayoutCreateParams, PayoutListParams

from application.ports.payout_gateway import (
    IDEMPOTENCY_KEY_REUSED,
    Payout,
    PayoutError,
    PayoutRejected,
    PayoutRequest,
    PayoutUnavailable,
)
from interface.adapters.payouts.stripe_objects import MalformedStripeObject, payout_from_stripe

log = structlog.get_logger(__name__)

# Long enough for Stripe's slowest ordinary answers; a timeout costs nothing
# but a retry under the same key, which cannot pay twice.
TIMEOUT_S_DEFAULT: Final[float] = 30.0
NETWORK_RETRIES_DEFAULT: Final[int] = 0
# Stripe's largest page.
LIST_PAGE_SIZE_MAX: Final[int] = 100
# A million payouts at the largest page: far beyond any reconciliation window,
# so reaching it means the pages do not advance.
LIST_PAGES_MAX: Final[int] = 10_000

# Stripe answers 409 while another request under the same key is in flight; the
# SDK raises it as a plain APIError, not an IdempotencyError.
_CONFLICT_STATUS: Final[int] = 409
_CLIENT_ERROR_STATUS_MIN: Final[int] = 400
_SERVER_ERROR_STATUS_MIN: Final[int] = 500


class StripePayoutGateway:
    name: Final = "stripe"

    def __init__(
        self,
        api_key: str,
        api_base: str | None = None,
        timeout_s: float = TIMEOUT_S_DEFAULT,
        *,
        network_retries: int = NETWORK_RETRIES_DEFAULT,
        list_page_size: int = LIST_PAGE_SIZE_MAX,
    ) -> None:
        """`api_base` replaces https://api.stripe.com (tests point it at a fake)."""
        if not api_key:
            raise ValueError("a Stripe API key is required")
        if timeout_s <= 0:
            raise ValueError("the timeout is positive")
        if network_retries < 0:
            raise ValueError("network retries are zero or more")
        if not 0 < list_page_size <= LIST_PAGE_SIZE_MAX:
            raise ValueError(f"a page holds 1 to {LIST_PAGE_SIZE_MAX} payouts")
        self._list_page_size = list_page_size
        # Chosen explicitly rather than left to the SDK's guess from what is
        # installed, so that the timeout is ours.
        self._http_client = stripe.RequestsClient(timeout=timeout_s)
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base is not None else None,
            max_network_retries=network_retries,
            http_client=self._http_client,
        )

    def create_payout(self, request: PayoutRequest) -> Payout:
        params: PayoutCreateParams = {
            "amount": request.amount_minor,
            "currency": request.currency.lower(),
            "metadata": dict(request.metadata),
        }
        if request.description is not None:
            params["description"] = request.description
        with _stripe_errors_mapped():
            created = self._client.v1.payouts.create(
                params, {"idempotency_key": request.idempotency_key}
            )
            return payout_from_stripe(created.to_dict())

    def retrieve_payout(self, payout_id: str) -> Payout:
        if not payout_id:
            raise ValueError("a payout id is required")
        with _stripe_errors_mapped():
            return payout_from_stripe(self._client.v1.payouts.retrieve(payout_id).to_dict())

    def list_payouts(self, created_from: datetime | None = None) -> Iterator[Payout]:
        params: PayoutListParams = {"limit": self._list_page_size}
        if created_from is not None:
            if created_from.tzinfo is None:
                raise ValueError("created_from must carry a time zone")
            # Stripe counts whole seconds: rounding down keeps a payout made
            # earlier in the same second.
            params["created"] = {"gte": math.floor(created_from.timestamp())}
        return self._pages(params)

    def close(self) -> None:
        """Closes this thread's connections (the SDK keeps one session per thread)."""
        self._http_client.close()  # type: ignore[no-untyped-call]  # the SDK leaves it unannotated

    def _pages(self, params: PayoutListParams) -> Iterator[Payout]:
        for _ in range(LIST_PAGES_MAX):
            with _stripe_errors_mapped():
                page = self._client.v1.payouts.list(params)
                payouts = [payout_from_stripe(payout.to_dict()) for payout in page.data]
            yield from payouts
            if not page.has_more:
                return
            if not payouts:
                # Without a last id there is no next page to ask for.
                raise PayoutUnavailable("Stripe announced more payouts on an empty page")
            params["starting_after"] = payouts[-1].payout_id
        raise PayoutUnavailable(f"Stripe listed more than {LIST_PAGES_MAX} pages of payouts")


@contextmanager
def _stripe_errors_mapped() -> Iterator[None]:
    try:
        yield
    except stripe.StripeError as error:
        raise payout_error_from_stripe(error) from error
    except MalformedStripeObject as error:
        # Stripe's answer cannot be read, so what happened is unknown: the same
        # key, asked again, is the safe next step.
        raise PayoutUnavailable(f"unreadable answer from Stripe: {error}") from error


def payout_error_from_stripe(error: stripe.StripeError) -> PayoutError:
    """Transient failures become `PayoutUnavailable`, refusals `PayoutRejected`."""
    detail = error.user_message or type(error).__name__
    status = error.http_status
    if isinstance(error, stripe.APIConnectionError | stripe.RateLimitError):
        return PayoutUnavailable(detail)
    if isinstance(error, stripe.AuthenticationError | stripe.PermissionError):
        # Our key, not the payout, is wrong: failing every withdrawal for it
        # would be worse than retrying until an operator fixes the key (and,
        # past the retry window, flagging each one for a person).
        log.error("stripe_key_refused", error_type=type(error).__name__)
        return PayoutUnavailable(f"Stripe refused the API key: {detail}")
    if (
        status is None
        or status < _CLIENT_ERROR_STATUS_MIN
        or status == _CONFLICT_STATUS
        or status >= _SERVER_ERROR_STATUS_MIN
    ):
        return PayoutUnavailable(detail)
    # The same code as the sandbox's, whatever Stripe's wording.
    if isinstance(error, stripe.IdempotencyError):
        return PayoutRejected(IDEMPOTENCY_KEY_REUSED, detail)
    return PayoutRejected(_error_code(error), detail)


def _error_code(error: stripe.StripeError) -> str:
    """Stripe's code ("balance_insufficient"); failing that, one for the kind of
    error, since Stripe sends no code with a bad API key."""
    body = error.json_body
    fields = body.get("error") if isinstance(body, dict) else None
    fields = fields if isinstance(fields, dict) else {}
    code = fields.get("code")
    if isinstance(code, str) and code:
        return code
    if isinstance(error, stripe.AuthenticationError):
        return "authentication_failed"
    if isinstance(error, stripe.PermissionError):
        return "permission_denied"
    error_type = fields.get("type")
    return error_type if isinstance(error_type, str) and error_type else "stripe_error"
