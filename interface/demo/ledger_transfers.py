"""The demo data set: platform accounts, 50 users and 10,000 transfers in
dollars, and a few users' euro accounts with some transfers of their own.

Every command carries a deterministic idempotency key, so loading the demo
again into the same database changes nothing (every result is `exists`).

The platform's accounts are the ones its processes use
(`application.funded_accounts.platform_account`: one of each kind per
currency, found again by their key): the demo once opened its own under
other keys, so the book showed two funding and two payouts-clearing
accounts. Each currency has its own set, as a real book keeps them.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from uuid import UUID

from application.funded_accounts import platform_account
from application.ledger_use_cases import LedgerService
from domain.account import AccountKind
from domain.commands import (
    Command,
    CreateTransfer,
    OpenAccount,
    PostPendingTransfer,
    ReverseTransfer,
    VoidPendingTransfer,
    create_transfer,
    open_account,
)
from domain.transfer import Posting, Side

USER_ACCOUNTS = 50
# The owner whose demo key `make run` prints.
DEMO_USER_OWNER = "user-01"
TRANSFERS = 10_000
CURRENCY = "USD"
# The second currency: the first few users hold an account in it too, each
# funded once from the platform's cash in it, then paying one another a
# fixed round of payments (no randomness: the same book every time).
SECOND_CURRENCY = "EUR"
SECOND_CURRENCY_USERS = 5
SECOND_CURRENCY_DEPOSIT_MINOR = 10_000_00
SECOND_CURRENCY_PAYMENTS = 20
PLATFORM_KINDS = (
    AccountKind.CASH,
    AccountKind.FUNDING,
    AccountKind.FEES,
    AccountKind.PAYOUTS_CLEARING,
    AccountKind.EQUITY,
)
# Holds that expire on their own within the demo's run.
EXPIRING_HOLD_TIMEOUT_S = 2
CHUNK_SIZE = 1_000


@dataclass
class DemoSummary:
    accounts: int = 0
    results: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0
    # The dollar accounts first (the demo user's is the first), then the euro ones.
    user_account_ids: list[UUID] = field(default_factory=list)
    # "kind/currency" (cash/USD) -> the platform's account.
    platform_account_ids: dict[str, UUID] = field(default_factory=dict)

    def lines(self) -> list[str]:
        rows = [
            f"accounts: {self.accounts} ({len(self.platform_account_ids)} platform, "
            f"{len(self.user_account_ids)} user)",
            "transfers by kind: "
            + ", ".join(f"{kind} {count}" for kind, count in sorted(self.kinds.items())),
            "results: "
            + ", ".join(f"{code} {count}" for code, count in sorted(self.results.items())),
            f"loaded in {self.elapsed_s:.2f} s",
        ]
        return rows


# Told (commands done, commands in all) after each batch.
LoadProgress = Callable[[int, int], None]


def _platform_accounts(currency: str) -> list[OpenAccount]:
    return [platform_account(kind, currency) for kind in PLATFORM_KINDS]


def _second_currency_accounts() -> list[OpenAccount]:
    return [
        open_account(
            idempotency_key=f"demo-user-{number:02d}-{SECOND_CURRENCY.lower()}",
            currency=SECOND_CURRENCY,
            owner_id=f"user-{number:02d}",
            debits_must_not_exceed_credits=True,
            metadata={"display_name": f"Demo trader {number:02d} ({SECOND_CURRENCY})"},
        )
        for number in range(1, SECOND_CURRENCY_USERS + 1)
    ]


def _second_currency_plan(cash: UUID, users: list[UUID]) -> list[tuple[str, list[Command]]]:
    prefix = f"demo-{SECOND_CURRENCY.lower()}"
    plan: list[tuple[str, list[Command]]] = [
        (
            "deposit",
            [
                _two_leg(
                    f"{prefix}-deposit-{index}",
                    cash,
                    user,
                    SECOND_CURRENCY_DEPOSIT_MINOR,
                    currency=SECOND_CURRENCY,
                )
            ],
        )
        for index, user in enumerate(users)
    ]
    for number in range(SECOND_CURRENCY_PAYMENTS):
        payer, payee = users[number % len(users)], users[(number + 1) % len(users)]
        amount = 10_00 + 2_50 * number
        payment = _two_leg(f"{prefix}-{number}", payer, payee, amount, currency=SECOND_CURRENCY)
        plan.append(("payment", [payment]))
    return plan


def _user_accounts() -> list[OpenAccount]:
    return [
        open_account(
            idempotency_key=f"demo-user-{number:02d}",
            currency=CURRENCY,
            owner_id=f"user-{number:02d}",
            debits_must_not_exceed_credits=True,
            metadata={"display_name": f"Demo trader {number:02d}"},
        )
        for number in range(1, USER_ACCOUNTS + 1)
    ]


def _two_leg(
    key: str,
    debit: UUID,
    credit: UUID,
    amount_minor: int,
    currency: str = CURRENCY,
    **options: object,
) -> CreateTransfer:
    return create_transfer(
        idempotency_key=key,
        postings=(
            Posting(debit, Side.DEBIT, amount_minor, currency),
            Posting(credit, Side.CREDIT, amount_minor, currency),
        ),
        **options,  # type: ignore[arg-type]
    )


def _transfer_plan(
    rng: random.Random, cash: UUID, fees: UUID, users: list[UUID], count: int
) -> list[tuple[str, list[Command]]]:
    """(kind, commands) pairs; commands of one pair run in one batch, in order."""
    plan: list[tuple[str, list[Command]]] = [
        ("deposit", [_two_leg(f"demo-deposit-{index}", cash, user, 5_000_000)])
        for index, user in enumerate(users)
    ]
    number = len(plan)
    while number < count:
        number += 1
        key = f"demo-{number}"
        payer, payee = rng.sample(users, 2)
        roll = rng.random()
        amount = rng.randint(100, 50_000)
        if roll < 0.55:
            plan.append(("payment", [_two_leg(key, payer, payee, amount)]))
        elif roll < 0.70:
            fee = max(1, amount // 100)
            plan.append(
                (
                    "payment_with_fee",
                    [
                        create_transfer(
                            idempotency_key=key,
                            postings=(
                                Posting(payer, Side.DEBIT, amount + fee, CURRENCY),
                                Posting(payee, Side.CREDIT, amount, CURRENCY),
                                Posting(fees, Side.CREDIT, fee, CURRENCY),
                            ),
                        )
                    ],
                )
            )
        elif roll < 0.80:
            hold = _two_leg(key, payer, payee, amount, pending=True, timeout_s=3600)
            plan.append(("hold_posted", [hold, PostPendingTransfer(hold.transfer_id)]))
        elif roll < 0.86:
            hold = _two_leg(key, payer, payee, amount, pending=True, timeout_s=3600)
            partial = PostPendingTransfer(hold.transfer_id, amount // 2)
            plan.append(("hold_partially_posted", [hold, partial]))
        elif roll < 0.92:
            hold = _two_leg(key, payer, payee, amount, pending=True, timeout_s=3600)
            plan.append(("hold_voided", [hold, VoidPendingTransfer(hold.transfer_id)]))
        elif roll < 0.96:
            hold = _two_leg(
                key, payer, payee, amount, pending=True, timeout_s=EXPIRING_HOLD_TIMEOUT_S
            )
            plan.append(("hold_expiring", [hold]))
        else:
            original = _two_leg(key, payer, payee, amount)
            plan.append(("reversed", [original, ReverseTransfer(original.transfer_id)]))
    return plan


def load_demo(
    service: LedgerService,
    transfers: int = TRANSFERS,
    seed: int = 7,
    progress: LoadProgress | None = None,
) -> DemoSummary:
    started = time.perf_counter()
    summary = DemoSummary()
    users, second_users = _user_accounts(), _second_currency_accounts()
    platform = [*_platform_accounts(CURRENCY), *_platform_accounts(SECOND_CURRENCY)]
    # The dollar book is opened first, as it was before the euro one was added.
    dollars = len(PLATFORM_KINDS)
    opened = [*platform[:dollars], *users, *platform[dollars:], *second_users]
    for result in service.execute(opened).results:
        summary.results[result.code.value] += 1
    summary.accounts = len(opened)
    summary.platform_account_ids = {
        f"{command.kind.value}/{command.currency}": command.account_id for command in platform
    }
    summary.user_account_ids = [command.account_id for command in [*users, *second_users]]
    plan = _transfer_plan(
        random.Random(seed),  # noqa: S311 - demo data, not secrets
        summary.platform_account_ids[f"cash/{CURRENCY}"],
        summary.platform_account_ids[f"fees/{CURRENCY}"],
        [command.account_id for command in users],
        transfers,
    ) + _second_currency_plan(
        summary.platform_account_ids[f"cash/{SECOND_CURRENCY}"],
        [command.account_id for command in second_users],
    )
    total = sum(len(commands) for _, commands in plan)
    done = 0
    chunk: list[Command] = []
    for kind, commands in plan:
        summary.kinds[kind] += 1
        if len(chunk) + len(commands) > CHUNK_SIZE:
            _run(service, chunk, summary)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
            chunk = []
        chunk.extend(commands)
    if chunk:
        _run(service, chunk, summary)
        if progress is not None:
            progress(total, total)
    summary.elapsed_s = time.perf_counter() - started
    return summary


def _run(service: LedgerService, commands: list[Command], summary: DemoSummary) -> None:
    for result in service.execute(commands).results:
        summary.results[result.code.value] += 1
