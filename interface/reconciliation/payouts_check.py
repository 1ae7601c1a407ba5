"""The processor's payouts against the withdrawals the log records.

See docs/rules.md#reconciliation.

Two records of the same money kept apart: the payment processor's list of
payouts (`PayoutGateway.list_payouts`, each payout naming its withdrawal in its
metadata) and the withdrawals' own events, read from `ledger_events` with plain
SQL (`withdrawal_records`), never from a view.

A payout belongs to its withdrawal when the withdrawal recorded that payout
id, or when the withdrawal is approved and has recorded no payout yet (the
service asked for the payout and has not recorded the answer: a moment
between two writes, or an answer lost to a timeout that the next attempt,
under the same idempotency key, gets back). Every other payout is
`payout_unknown_to_ledger`: no withdrawal by that id, a withdrawal not yet
approved or rejected, or one that recorded another payout or settled without
this one. Money left the processor's account that the ledger did not ask
for, or asked for twice: critical.

A withdrawal the ledger has paid out (`paid_out` or `completed`) whose payout
the processor does not list is `payout_missing`, for the withdrawal's amount.
A belonging payout of another amount (or currency) than its withdrawal's is
`payout_amount_differs`, for the difference.

`payout_status_differs`, by the ledger's status and the processor's:

    ledger \\ processor   pending, in_transit   paid          failed, canceled
    approved             differs, 0            differs, 0    differs, 0
    paid_out             agrees                differs, 0    differs, 0
    completed            differs, 0            agrees        differs, amount
    failed               differs, amount       differs, amount  agrees

An amount of 0 is a matter of timing: the ledger has not yet recorded what
the processor has already done (the payout's answer, or the webhook that
settles it), while the hold still keeps the money where it was. It is worth
a look if it lasts, not money lost, so it stays medium. The withdrawal's
amount is money the two records disagree on: the ledger counts as withdrawn
what the bank returned, or gave back to the trader what the processor paid
or may still pay; the amount raises the severity (`severity_of`).

Timing between the two reads. The payouts are listed first and the log is
read after, in one snapshot: a payout listed was asked for by a withdrawal
the snapshot holds. A withdrawal whose payout was recorded after the listing
began may name a payout made after it, so it is not called missing: only
payouts named at or before the log's head as read before the listing are
(an event at or below that position was written before the listing began,
and the payout it names was made before it was written).

Withdrawals paid out through another gateway (the sandbox before Stripe was
set up) are not compared: this gateway's list cannot show their payouts.

Subjects are "payout <id>" and "withdrawal <id>", the same in every run, so
a fault still open is recognised rather than raised again. Nothing here is
safe to correct by the service: money at the processor is for a person.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from uuid import UUID

from application.ports.payout_gateway import (
    WITHDRAWAL_ID_METADATA_KEY,
    Payout,
    PayoutGateway,
    PayoutStatus,
)
from domain.money import describe_money
from domain.reconciliation import CheckResult, Discrepancy, DiscrepancyKind, money_measure
from domain.tiers import TIER_CURRENCY
from domain.withdrawal import WithdrawalStatus
from interface.adapters.persistence.log_reads import log_head, snapshot_connection
from interface.reconciliation.withdrawal_records import WithdrawalRecord, read_withdrawals

PAYOUTS_CHECK: Final[str] = "payouts"
# Payouts in another currency are compared one by one, never added in.
MEASURE: Final[str] = money_measure("paid out", TIER_CURRENCY)

# What the ledger and the processor each count as paid out.
_LEDGER_PAID_OUT: Final = frozenset({WithdrawalStatus.PAID_OUT, WithdrawalStatus.COMPLETED})
_PROCESSOR_IN_FLIGHT: Final = frozenset({PayoutStatus.PENDING, PayoutStatus.IN_TRANSIT})
_PROCESSOR_NOT_PAID: Final = frozenset({PayoutStatus.FAILED, PayoutStatus.CANCELED})


@dataclass(frozen=True, slots=True)
class _StatusRule:
    """What a ledger status says of a processor status: agree, or differ for
    nothing (timing) or for the withdrawal's amount."""

    agrees: frozenset[PayoutStatus]
    differs_for_amount: frozenset[PayoutStatus]


_STATUS_RULES: Final[dict[WithdrawalStatus, _StatusRule]] = {
    WithdrawalStatus.APPROVED: _StatusRule(frozenset(), frozenset()),
    WithdrawalStatus.PAID_OUT: _StatusRule(_PROCESSOR_IN_FLIGHT, frozenset()),
    WithdrawalStatus.COMPLETED: _StatusRule(frozenset({PayoutStatus.PAID}), _PROCESSOR_NOT_PAID),
    WithdrawalStatus.FAILED: _StatusRule(
        _PROCESSOR_NOT_PAID, _PROCESSOR_IN_FLIGHT | {PayoutStatus.PAID}
    ),
}


class PayoutsCheck:
    def __init__(self, database_url: str, gateway: PayoutGateway) -> None:
        self._database_url = database_url
        self._gateway = gateway

    @property
    def name(self) -> str:
        return PAYOUTS_CHECK

    def run(self) -> CheckResult:
        started = time.perf_counter()
        # In this order: see "Timing between the two reads" above.
        head_before_listing = log_head(self._database_url)
        payouts = {payout.payout_id: payout for payout in self._gateway.list_payouts()}
        with snapshot_connection(self._database_url) as connection:
            withdrawals = read_withdrawals(connection)
        compared = [
            withdrawal
            for withdrawal in withdrawals.values()
            if withdrawal.payout_gateway in (None, self._gateway.name)
        ]
        discrepancies = [
            *_payouts_compared(payouts.values(), withdrawals),
            *_missing_payouts(compared, payouts, head_before_listing),
        ]
        return CheckResult.compared(
            PAYOUTS_CHECK,
            MEASURE,
            expected=sum(
                withdrawal.amount_minor
                for withdrawal in compared
                if withdrawal.status in _LEDGER_PAID_OUT and withdrawal.currency == TIER_CURRENCY
            ),
            actual=sum(
                payout.amount_minor
                for payout in payouts.values()
                if payout.status not in _PROCESSOR_NOT_PAID and payout.currency == TIER_CURRENCY
            ),
            discrepancies=tuple(discrepancies),
            elapsed_s=time.perf_counter() - started,
        )

    def correct(self, discrepancy: Discrepancy) -> str:
        raise ValueError(
            f"the payouts check corrects nothing ({discrepancy.fingerprint}): "
            "money at the processor is for a person to look into"
        )


def _payouts_compared(
    payouts: Iterable[Payout], withdrawals: dict[UUID, WithdrawalRecord]
) -> list[Discrepancy]:
    found: list[Discrepancy] = []
    for payout in payouts:
        withdrawal = _withdrawal_of(payout, withdrawals)
        if withdrawal is None:
            found.append(_unknown(payout, withdrawals))
            continue
        if payout.currency != withdrawal.currency or payout.amount_minor != withdrawal.amount_minor:
            found.append(_amount_differs(payout, withdrawal))
        status_differs = _status_differs(payout, withdrawal)
        if status_differs is not None:
            found.append(status_differs)
    return found


def _withdrawal_of(
    payout: Payout, withdrawals: dict[UUID, WithdrawalRecord]
) -> WithdrawalRecord | None:
    """The withdrawal the payout belongs to (see the module's docstring)."""
    withdrawal_id = _withdrawal_id_named(payout)
    withdrawal = None if withdrawal_id is None else withdrawals.get(withdrawal_id)
    if withdrawal is None:
        return None
    if withdrawal.payout_id == payout.payout_id:
        return withdrawal
    waiting = withdrawal.status is WithdrawalStatus.APPROVED and withdrawal.payout_id is None
    return withdrawal if waiting else None


def _withdrawal_id_named(payout: Payout) -> UUID | None:
    try:
        return UUID(payout.metadata.get(WITHDRAWAL_ID_METADATA_KEY, ""))
    except ValueError:
        return None


def _unknown(payout: Payout, withdrawals: dict[UUID, WithdrawalRecord]) -> Discrepancy:
    named = payout.metadata.get(WITHDRAWAL_ID_METADATA_KEY)
    withdrawal_id = _withdrawal_id_named(payout)
    withdrawal = None if withdrawal_id is None else withdrawals.get(withdrawal_id)
    if withdrawal is None:
        why = f"names withdrawal {named!r}, which the ledger has no record of"
    elif withdrawal.payout_id is not None:
        why = (
            f"names withdrawal {withdrawal.withdrawal_id}, which recorded payout "
            f"{withdrawal.payout_id} instead"
        )
    else:
        why = (
            f"names withdrawal {withdrawal.withdrawal_id}, which is "
            f"{withdrawal.status.value} and asked for no payout"
        )
    return Discrepancy(
        DiscrepancyKind.PAYOUT_UNKNOWN_TO_LEDGER,
        f"payout {payout.payout_id}",
        f"the processor lists payout {payout.payout_id} ({payout.status.value}, "
        f"{describe_money(payout.amount_minor, payout.currency)}) that {why}",
        amount_minor=payout.amount_minor,
        currency=payout.currency,
        expected="no payout",
        actual=f"{describe_money(payout.amount_minor, payout.currency)} {payout.status.value}",
    )


def _amount_differs(payout: Payout, withdrawal: WithdrawalRecord) -> Discrepancy:
    same_currency = payout.currency == withdrawal.currency
    return Discrepancy(
        DiscrepancyKind.PAYOUT_AMOUNT_DIFFERS,
        f"payout {payout.payout_id}",
        f"payout {payout.payout_id} is {describe_money(payout.amount_minor, payout.currency)} "
        f"at the processor; its withdrawal {withdrawal.withdrawal_id} is "
        f"{describe_money(withdrawal.amount_minor, withdrawal.currency)}",
        # Amounts in two currencies do not subtract: the larger is at stake.
        amount_minor=(
            payout.amount_minor - withdrawal.amount_minor
            if same_currency
            else max(payout.amount_minor, withdrawal.amount_minor)
        ),
        currency=withdrawal.currency,
        expected=describe_money(withdrawal.amount_minor, withdrawal.currency),
        actual=describe_money(payout.amount_minor, payout.currency),
    )


def _status_differs(payout: Payout, withdrawal: WithdrawalRecord) -> Discrepancy | None:
    rule = _STATUS_RULES.get(withdrawal.status)
    if rule is None or payout.status in rule.agrees:
        return None
    amount_minor = withdrawal.amount_minor if payout.status in rule.differs_for_amount else 0
    return Discrepancy(
        DiscrepancyKind.PAYOUT_STATUS_DIFFERS,
        f"payout {payout.payout_id}",
        f"payout {payout.payout_id} is {payout.status.value} at the processor; its "
        f"withdrawal {withdrawal.withdrawal_id} is {withdrawal.status.value} in the ledger"
        + ("" if amount_minor else " (the ledger has not yet recorded it)"),
        amount_minor=amount_minor,
        currency=withdrawal.currency,
        expected=withdrawal.status.value,
        actual=payout.status.value,
    )


def _missing_payouts(
    withdrawals: Iterable[WithdrawalRecord], payouts: dict[str, Payout], head_before_listing: int
) -> list[Discrepancy]:
    found: list[Discrepancy] = []
    for withdrawal in withdrawals:
        if (
            withdrawal.status not in _LEDGER_PAID_OUT
            or withdrawal.payout_id is None
            or withdrawal.payout_id in payouts
            or withdrawal.payout_named_at is None
            or withdrawal.payout_named_at > head_before_listing
        ):
            continue
        found.append(
            Discrepancy(
                DiscrepancyKind.PAYOUT_MISSING,
                withdrawal.subject,
                f"withdrawal {withdrawal.withdrawal_id} is {withdrawal.status.value} with "
                f"payout {withdrawal.payout_id}, which the processor does not list",
                amount_minor=withdrawal.amount_minor,
                currency=withdrawal.currency,
                expected=f"payout {withdrawal.payout_id}",
                actual="no payout",
            )
        )
    return found
