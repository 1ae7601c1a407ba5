"""The PayoutGateway port: one contract, held by the sandbox and by the Stripe
gateway (the real `stripe` SDK against the local fake of Stripe's API).

A subclass gives `world`: the gateway, and the few things a test makes
happen outside it (the bank moves a payout, the processor refuses or is
unreachable, an answer is lost). Everything else is the same for both, and
is what the payout worker relies on: one payout per idempotency key, a
reused key refused, an unknown id not found, listing newest first.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol

import pytest

from application.ports.payout_gateway import (
    IDEMPOTENCY_KEY_REUSED,
    PAYOUT_NOT_FOUND,
    Payout,
    PayoutGateway,
    PayoutRejected,
    PayoutRequest,
    PayoutStatus,
    PayoutUnavailable,
)
from interface.adapters.payouts.sandbox_gateway import SandboxPayoutGateway
from interface.adapters.payouts.sandbox_payout_store import PostgresSandboxPayoutStore
from interface.adapters.payouts.stripe_gateway import StripePayoutGateway
from tests.support.fake_stripe import FakeStripe
from tests.support.simulator_state import empty_simulator_tables, simulator_pool

# Whole seconds, as Stripe counts them.
FIRST_CREATED: Final = datetime(2026, 1, 1, tzinfo=UTC)
# Short, so that a lost answer costs a second.
STRIPE_CLIENT_TIMEOUT_S: Final = 1.0
# Well past the client's timeout; closing the fake cuts it short.
STRIPE_SERVER_DELAY_S: Final = 10.0
# A refusal the processor makes for reasons of its own, passed through as is.
REFUSAL_CODE: Final = "balance_insufficient"
# What a payout can be just after it was asked for (the sandbox pays at once).
STATUSES_ON_CREATION: Final = frozenset(
    {PayoutStatus.PENDING, PayoutStatus.IN_TRANSIT, PayoutStatus.PAID}
)


class PayoutWorld(Protocol):
    """A gateway, and what a test makes happen at the processor behind it."""

    @property
    def gateway(self) -> PayoutGateway: ...

    def move(self, payout_id: str, status: PayoutStatus, failure_code: str | None) -> None:
        """The bank moves the payout on."""
        ...

    def refuse_next(self, code: str) -> None:
        """The next create is refused with this code; nothing is made."""
        ...

    def unavailable_next(self) -> None:
        """The next create gets no answer; nothing is made."""
        ...

    def lose_next_answer(self) -> None:
        """The next create makes its payout, and its answer is lost."""
        ...


def payout_request(
    withdrawal_id: str = "wd-1",
    amount_minor: int = 12_345,
    currency: str = "USD",
    description: str | None = None,
) -> PayoutRequest:
    return PayoutRequest(
        idempotency_key=f"withdrawal-{withdrawal_id}",
        amount_minor=amount_minor,
        currency=currency,
        metadata={"withdrawal_id": withdrawal_id},
        description=description or f"Withdrawal {withdrawal_id}",
    )


def ids(payouts: Iterator[Payout] | list[Payout]) -> list[str]:
    return [payout.payout_id for payout in payouts]


class PayoutGatewayContract:
    """Every PayoutGateway must pass these; subclasses give `world`."""

    # What `name` says: recorded with each withdrawal paid out.
    expected_name: str

    @pytest.fixture
    def world(self) -> PayoutWorld:
        raise NotImplementedError

    def test_the_gateway_says_its_name(self, world: PayoutWorld) -> None:
        assert world.gateway.name == self.expected_name

    # Creating -----------------------------------------------------------------------

    def test_a_payout_carries_the_request_and_a_creation_time_in_utc(
        self, world: PayoutWorld
    ) -> None:
        payout = world.gateway.create_payout(payout_request("wd-1", 12_345, "USD"))
        assert (payout.amount_minor, payout.currency) == (12_345, "USD")
        assert dict(payout.metadata) == {"withdrawal_id": "wd-1"}
        assert payout.status in STATUSES_ON_CREATION
        assert payout.created_at.utcoffset() == timedelta(0)
        assert payout.payout_id

    def test_the_same_request_twice_returns_the_first_payout_and_makes_no_other(
        self, world: PayoutWorld
    ) -> None:
        first = world.gateway.create_payout(payout_request("wd-1"))
        again = world.gateway.create_payout(payout_request("wd-1"))
        assert again == first
        assert ids(world.gateway.list_payouts()) == [first.payout_id]

    @pytest.mark.parametrize(
        "other",
        [
            payout_request("wd-1", amount_minor=99),
            payout_request("wd-1", currency="EUR"),
            payout_request("wd-1", description="Another note"),
        ],
        ids=["amount", "currency", "description"],
    )
    def test_the_same_key_with_another_request_is_refused_as_reused(
        self, world: PayoutWorld, other: PayoutRequest
    ) -> None:
        first = world.gateway.create_payout(payout_request("wd-1"))
        with pytest.raises(PayoutRejected) as refused:
            world.gateway.create_payout(other)
        assert refused.value.code == IDEMPOTENCY_KEY_REUSED
        assert ids(world.gateway.list_payouts()) == [first.payout_id]

    def test_each_key_makes_a_payout_of_its_own(self, world: PayoutWorld) -> None:
        first = world.gateway.create_payout(payout_request("wd-1"))
        second = world.gateway.create_payout(payout_request("wd-2"))
        assert first.payout_id != second.payout_id

    def test_a_refusal_carries_the_processors_code_and_makes_nothing(
        self, world: PayoutWorld
    ) -> None:
        world.refuse_next(REFUSAL_CODE)
        with pytest.raises(PayoutRejected) as refused:
            world.gateway.create_payout(payout_request("wd-1"))
        assert refused.value.code == REFUSAL_CODE
        assert ids(world.gateway.list_payouts()) == []

    def test_after_no_answer_the_retry_with_the_same_key_pays_once(
        self, world: PayoutWorld
    ) -> None:
        world.unavailable_next()
        with pytest.raises(PayoutUnavailable):
            world.gateway.create_payout(payout_request("wd-1"))
        payout = world.gateway.create_payout(payout_request("wd-1"))
        assert ids(world.gateway.list_payouts()) == [payout.payout_id]

    def test_after_a_lost_answer_the_retry_with_the_same_key_returns_the_payout_made(
        self, world: PayoutWorld
    ) -> None:
        world.lose_next_answer()
        with pytest.raises(PayoutUnavailable):
            world.gateway.create_payout(payout_request("wd-1"))
        [made] = list(world.gateway.list_payouts())
        assert world.gateway.create_payout(payout_request("wd-1")).payout_id == made.payout_id
        assert ids(world.gateway.list_payouts()) == [made.payout_id]

    # Reading ------------------------------------------------------------------------

    def test_retrieving_a_payout_reads_its_current_status(self, world: PayoutWorld) -> None:
        created = world.gateway.create_payout(payout_request("wd-1"))
        assert world.gateway.retrieve_payout(created.payout_id) == created
        # A paid payout may still fail days later, when the bank returns it.
        world.move(created.payout_id, PayoutStatus.FAILED, "account_closed")
        payout = world.gateway.retrieve_payout(created.payout_id)
        assert (payout.payout_id, payout.status, payout.failure_code) == (
            created.payout_id,
            PayoutStatus.FAILED,
            "account_closed",
        )
        assert (payout.amount_minor, payout.created_at) == (
            created.amount_minor,
            created.created_at,
        )

    def test_retrieving_an_unknown_payout_is_refused_as_not_found(self, world: PayoutWorld) -> None:
        world.gateway.create_payout(payout_request("wd-1"))
        with pytest.raises(PayoutRejected) as refused:
            world.gateway.retrieve_payout("po_no_such_payout")
        assert refused.value.code == PAYOUT_NOT_FOUND

    def test_listing_is_newest_first_and_from_a_time_leaves_out_older_payouts(
        self, world: PayoutWorld
    ) -> None:
        created = [
            world.gateway.create_payout(payout_request(f"wd-{number}")) for number in range(4)
        ]
        assert ids(world.gateway.list_payouts()) == ids(list(reversed(created)))
        # At or after: the payout made at that very time is in.
        from_third = world.gateway.list_payouts(created_from=created[2].created_at)
        assert ids(from_third) == [created[3].payout_id, created[2].payout_id]
        later = world.gateway.list_payouts(created_from=created[3].created_at + timedelta(days=1))
        assert ids(later) == []

    def test_listing_with_nothing_made_lists_nothing(self, world: PayoutWorld) -> None:
        assert ids(world.gateway.list_payouts()) == []


# The sandbox ----------------------------------------------------------------------------


class TickingClock:
    """One second later at every reading: each payout made at a time of its own."""

    def __init__(self, start: datetime) -> None:
        self._seconds = itertools.count()
        self._start = start

    def now(self) -> datetime:
        return self._start + timedelta(seconds=next(self._seconds))


class SandboxWorld:
    def __init__(self, store: PostgresSandboxPayoutStore | None = None) -> None:
        self.sandbox = SandboxPayoutGateway(TickingClock(FIRST_CREATED), store=store)

    @property
    def gateway(self) -> PayoutGateway:
        return self.sandbox

    def move(self, payout_id: str, status: PayoutStatus, failure_code: str | None) -> None:
        self.sandbox.set_status(payout_id, status, failure_code, failure_code)

    def refuse_next(self, code: str) -> None:
        self.sandbox.fail_next(code, "The sandbox says no.")

    def unavailable_next(self) -> None:
        self.sandbox.unavailable_next()

    def lose_next_answer(self) -> None:
        self.sandbox.unavailable_after_create_next()


class TestSandboxPayoutGateway(PayoutGatewayContract):
    expected_name = "sandbox"

    @pytest.fixture
    def world(self) -> PayoutWorld:
        return SandboxWorld()


class RestartingSandboxWorld(SandboxWorld):
    """The sandbox read back from its table whenever the contract reaches for
    the gateway, unless a fault is scripted (faults live in memory): whatever
    the contract sees has survived a restart."""

    def __init__(self, store: PostgresSandboxPayoutStore) -> None:
        self._clock = TickingClock(FIRST_CREATED)
        self._store = store
        self._fault_scripted = False
        self.sandbox = SandboxPayoutGateway(self._clock, store=store)

    @property
    def gateway(self) -> PayoutGateway:
        if not self._fault_scripted:
            self.sandbox = SandboxPayoutGateway(self._clock, store=self._store)
        self._fault_scripted = False
        return self.sandbox

    def refuse_next(self, code: str) -> None:
        super().refuse_next(code)
        self._fault_scripted = True

    def unavailable_next(self) -> None:
        super().unavailable_next()
        self._fault_scripted = True

    def lose_next_answer(self) -> None:
        super().lose_next_answer()
        self._fault_scripted = True


class TestDurableSandboxPayoutGateway(PayoutGatewayContract):
    """The sandbox as `build_ledger` wires it: its payouts in their own table."""

    expected_name = "sandbox"

    @pytest.fixture
    def world(self, database_url: str) -> Iterator[PayoutWorld]:
        with simulator_pool(database_url) as pool:
            empty_simulator_tables(pool)
            yield SandboxWorld(PostgresSandboxPayoutStore(pool))


class TestSandboxPayoutGatewayRestartedBeforeEveryCall(PayoutGatewayContract):
    expected_name = "sandbox"

    @pytest.fixture
    def world(self, database_url: str) -> Iterator[PayoutWorld]:
        with simulator_pool(database_url) as pool:
            yield RestartingSandboxWorld(PostgresSandboxPayoutStore(pool))


# Stripe -------------------------------------------------------------------------------


class StripeWorld:
    def __init__(self, fake: FakeStripe, gateway: StripePayoutGateway) -> None:
        self.fake = fake
        self.stripe = gateway

    @property
    def gateway(self) -> PayoutGateway:
        return self.stripe

    def move(self, payout_id: str, status: PayoutStatus, failure_code: str | None) -> None:
        self.fake.set_status(payout_id, status.value, failure_code, failure_code)

    def refuse_next(self, code: str) -> None:
        self.fake.fail_next_create(400, "invalid_request_error", code, "Stripe says no.")

    def unavailable_next(self) -> None:
        self.fake.fail_next_create(503, "api_error", None, "Try again later.")

    def lose_next_answer(self) -> None:
        self.fake.delay_after_create_next(STRIPE_SERVER_DELAY_S)


class TestStripePayoutGateway(PayoutGatewayContract):
    expected_name = "stripe"

    @pytest.fixture
    def world(self) -> Iterator[PayoutWorld]:
        seconds = itertools.count(int(FIRST_CREATED.timestamp()))
        with FakeStripe(now=lambda: next(seconds)) as fake:
            gateway = StripePayoutGateway(
                fake.api_key, api_base=fake.base_url, timeout_s=STRIPE_CLIENT_TIMEOUT_S
            )
            try:
                yield StripeWorld(fake, gateway)
            finally:
                gateway.close()
