"""Withdrawals against the ledger's holds and the transfers that settle them.

See docs/rules.md#reconciliation.

A withdrawal's request writes a hold (a pending transfer from the trader's
account to the payouts clearing account, its id in the withdrawal's
`Requested`, the withdrawal's id in its metadata) in the same transaction;
completing posts the hold, rejecting or failing voids it. This check reads both
records from `ledger_events` with plain SQL, in one snapshot (never the views,
which the projections check compares with the log), and finds where they part:

- A completed withdrawal has exactly one posted transfer of its amount: its
  hold, posted and not reversed. None (the hold never written, still
  pending, voided, expired, or reversed after posting) is
  `withdrawal_transfer_missing`, for the withdrawal's amount; another sum
  (posted for less or more, or a second hold naming it posted as well) is
  `withdrawal_amount_differs`, for the difference.
- A withdrawal not completed has nothing posted: anything posted is
  `withdrawal_amount_differs`, for what was posted.
- A live withdrawal (pending, approved, paid out) keeps its hold open; a
  hold missing, voided or expired is `withdrawal_transfer_missing`, for the
  withdrawal's amount (the money is no longer held for a payout that may
  still be made). A rejected or failed one whose hold was never written is
  reported too, for nothing: the two are written together, always.
- A rejected or failed withdrawal whose hold is still open is
  `hold_not_released`, for the hold's amount.
- An open hold crediting the payouts clearing account that is no
  withdrawal's hold (written around the service, or a second hold naming a
  withdrawal in its metadata) is `orphan_hold`, for its amount.

Finding the holds without decoding the log: the transfers' `Recorded` events
are filtered in SQL by the clearing account's id appearing in their body (a
byte search, so only candidates are sent and decoded), and each candidate's
later events come by the primary key. A withdrawal's hold that does not
mention the clearing account is looked up by its id. Memory holds one record
per withdrawal and per hold, never the events.

Subjects are "withdrawal <id>" and "hold <transfer id>", the same in every
run. Nothing is corrected by the service: which record is right is for a
person to decide.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from uuid import UUID

import orjson
import psycopg

from application.funded_accounts import platform_account
from domain.account import AccountKind
from domain.money import describe_money
from domain.reconciliation import CheckResult, Discrepancy, DiscrepancyKind, money_measure
from domain.tiers import TIER_CURRENCY
from domain.transfer import TransferStatus
from domain.withdrawal import FINAL_STATUSES, WithdrawalStatus
from interface.adapters.persistence.log_reads import snapshot_connection
from interface.reconciliation.withdrawal_records import WithdrawalRecord, read_withdrawals
from projections.events import (
    TRANSFER_PENDING_EXPIRED,
    TRANSFER_PENDING_POSTED,
    TRANSFER_PENDING_VOIDED,
    TRANSFER_RECORDED,
    TRANSFER_REVERSED,
)

WITHDRAWALS_CHECK: Final[str] = "withdrawals"
# Withdrawals in another currency are compared one by one, never added in.
MEASURE: Final[str] = money_measure("withdrawn", TIER_CURRENCY)
# Transfer ids looked up by the primary key in one query.
LOOKUPS_PER_QUERY: Final[int] = 10_000
# The metadata key a withdrawal's hold names its withdrawal by.
HOLD_WITHDRAWAL_METADATA_KEY: Final[str] = "withdrawal_id"

# The `Recorded` events that mention a clearing account: candidate holds.
_SELECT_CLEARING_TRANSFERS: Final = (
    "SELECT originator_id, topic, state FROM ledger_events "
    "WHERE topic = %s AND EXISTS ("
    "SELECT FROM unnest(%s::bytea[]) AS needle WHERE position(needle IN state) > 0)"
)
# Events of the transfers named, from a version on, by the primary key.
_SELECT_EVENTS_OF: Final = (
    "SELECT originator_id, topic, state FROM ledger_events "
    "WHERE originator_id = ANY(%s) AND originator_version >= %s "
    "ORDER BY originator_id, originator_version"
)
_FIRST_VERSION: Final[int] = 1
_RESOLVED_STATUS: Final[dict[str, TransferStatus]] = {
    TRANSFER_PENDING_VOIDED: TransferStatus.VOIDED,
    TRANSFER_PENDING_EXPIRED: TransferStatus.EXPIRED,
}
_LIVE: Final = frozenset(WithdrawalStatus) - FINAL_STATUSES


@dataclass(slots=True)
class _Hold:
    """A transfer that is, or claims to be, a withdrawal's hold."""

    transfer_id: UUID
    status: TransferStatus
    # What its postings move (the sum of the credits), as recorded and as posted.
    amount_minor: int
    posted_minor: int
    currency: str
    credits_clearing: bool
    # The withdrawal its metadata names, if any.
    claimed_withdrawal_id: str | None
    reversed: bool = False

    @property
    def withdrawn_minor(self) -> int:
        """What it moved for good: posted and not reversed."""
        if self.status is TransferStatus.POSTED and not self.reversed:
            return self.posted_minor
        return 0

    def described(self) -> str:
        if self.status is TransferStatus.POSTED and self.reversed:
            return f"hold {self.transfer_id} was posted, then reversed"
        return f"hold {self.transfer_id} is {self.status.value}"


@dataclass(slots=True)
class _Holds:
    by_id: dict[UUID, _Hold] = field(default_factory=dict)
    # Withdrawal id (as text) -> holds naming it that are not its own.
    claims: dict[str, list[_Hold]] = field(default_factory=dict)


class WithdrawalsCheck:
    def __init__(self, database_url: str) -> None:
        self._database_url = database_url

    @property
    def name(self) -> str:
        return WITHDRAWALS_CHECK

    def run(self) -> CheckResult:
        started = time.perf_counter()
        with snapshot_connection(self._database_url) as connection:
            withdrawals = read_withdrawals(connection)
            holds = _read_holds(connection, withdrawals.values())
        discrepancies: list[Discrepancy] = []
        expected = actual = 0
        for withdrawal in withdrawals.values():
            own = holds.by_id.get(withdrawal.hold_transfer_id)
            claims = holds.claims.get(str(withdrawal.withdrawal_id), [])
            withdrawn = sum(hold.withdrawn_minor for hold in [own, *claims] if hold is not None)
            if (
                withdrawal.status is WithdrawalStatus.COMPLETED
                and withdrawal.currency == TIER_CURRENCY
            ):
                expected += withdrawal.amount_minor
                actual += withdrawn
            found = _compared(withdrawal, own, claims, withdrawn)
            if found is not None:
                discrepancies.append(found)
        discrepancies.extend(_orphans(holds, {w.hold_transfer_id for w in withdrawals.values()}))
        return CheckResult.compared(
            WITHDRAWALS_CHECK,
            MEASURE,
            expected=expected,
            actual=actual,
            discrepancies=tuple(discrepancies),
            elapsed_s=time.perf_counter() - started,
        )

    def correct(self, discrepancy: Discrepancy) -> str:
        raise ValueError(
            f"the withdrawals check corrects nothing ({discrepancy.fingerprint}): "
            "which record is right is for a person to decide"
        )


# Reading ---------------------------------------------------------------------------


def _read_holds(
    connection: psycopg.Connection[Any], withdrawals: Collection[WithdrawalRecord]
) -> _Holds:
    own_holds = {withdrawal.hold_transfer_id for withdrawal in withdrawals}
    currencies = {TIER_CURRENCY} | {withdrawal.currency for withdrawal in withdrawals}
    clearing_ids = {
        str(platform_account(AccountKind.PAYOUTS_CLEARING, currency).account_id)
        for currency in sorted(currencies)
    }
    holds = _Holds()
    with connection.cursor(binary=True) as cursor:
        # Streamed, not through a server-side cursor: PostgreSQL scans in
        # parallel only for a query it runs to the end at once.
        needles = [account_id.encode() for account_id in sorted(clearing_ids)]
        _fold(
            cursor.stream(_SELECT_CLEARING_TRANSFERS, (TRANSFER_RECORDED, needles)),
            holds,
            own_holds,
            clearing_ids,
        )
        # Holds of withdrawals that do not mention a clearing account, whole;
        # then what became of every hold since it was recorded.
        not_found = sorted(own_holds - holds.by_id.keys())
        _fold_events_of(cursor, not_found, _FIRST_VERSION, holds, own_holds, clearing_ids)
        recorded = sorted(holds.by_id.keys() - set(not_found))
        _fold_events_of(cursor, recorded, _FIRST_VERSION + 1, holds, own_holds, clearing_ids)
    for hold in holds.by_id.values():
        if hold.claimed_withdrawal_id is not None and hold.transfer_id not in own_holds:
            holds.claims.setdefault(hold.claimed_withdrawal_id, []).append(hold)
    return holds


def _fold_events_of(
    cursor: psycopg.Cursor[Any],
    transfer_ids: Sequence[UUID],
    from_version: int,
    holds: _Holds,
    own_holds: set[UUID],
    clearing_ids: set[str],
) -> None:
    for start in range(0, len(transfer_ids), LOOKUPS_PER_QUERY):
        batch = list(transfer_ids[start : start + LOOKUPS_PER_QUERY])
        cursor.execute(_SELECT_EVENTS_OF, (batch, from_version))
        _fold(cursor, holds, own_holds, clearing_ids)


def _fold(
    rows: Iterable[tuple[UUID, str, bytes]],
    holds: _Holds,
    own_holds: set[UUID],
    clearing_ids: set[str],
) -> None:
    """Apply transfers' events, in log order, to the holds they make or settle."""
    for transfer_id, topic, state in rows:
        if topic == TRANSFER_RECORDED:
            data = orjson.loads(state)
            # A transfer recorded posted is no hold, unless a withdrawal says it is.
            if data.get("pending") or transfer_id in own_holds:
                holds.by_id[transfer_id] = _recorded(transfer_id, data, clearing_ids)
            continue
        hold = holds.by_id.get(transfer_id)
        if hold is None:
            continue
        if topic == TRANSFER_PENDING_POSTED:
            hold.status = TransferStatus.POSTED
            hold.posted_minor = _credited(orjson.loads(state)["postings"])
        elif topic in _RESOLVED_STATUS:
            hold.status = _RESOLVED_STATUS[topic]
        elif topic == TRANSFER_REVERSED:
            hold.reversed = True


def _recorded(transfer_id: UUID, data: dict[str, Any], clearing_ids: set[str]) -> _Hold:
    postings: list[dict[str, Any]] = data["postings"]
    amount_minor = _credited(postings)
    pending = bool(data.get("pending"))
    claimed = (data.get("metadata") or {}).get(HOLD_WITHDRAWAL_METADATA_KEY)
    return _Hold(
        transfer_id=transfer_id,
        status=TransferStatus.PENDING if pending else TransferStatus.POSTED,
        amount_minor=amount_minor,
        posted_minor=0 if pending else amount_minor,
        currency=str(postings[0]["currency"]) if postings else "",
        credits_clearing=any(
            posting["side"] == "credit" and posting["account_id"] in clearing_ids
            for posting in postings
        ),
        claimed_withdrawal_id=None if claimed is None else str(claimed),
    )


def _credited(postings: Sequence[dict[str, Any]]) -> int:
    return sum(int(posting["amount_minor"]) for posting in postings if posting["side"] == "credit")


# Comparing -------------------------------------------------------------------------


def _compared(
    withdrawal: WithdrawalRecord, own: _Hold | None, claims: list[_Hold], withdrawn: int
) -> Discrepancy | None:
    """What one withdrawal and its holds disagree about, the gravest first."""
    completed = withdrawal.status is WithdrawalStatus.COMPLETED
    owed = withdrawal.amount_minor if completed else 0
    what_holds = "its hold was never written" if own is None else own.described()
    if completed and withdrawn == 0:
        return _discrepancy(
            DiscrepancyKind.WITHDRAWAL_TRANSFER_MISSING,
            withdrawal,
            f"is completed but nothing was posted for it: {what_holds}",
            withdrawal.amount_minor,
            expected=f"{describe_money(owed, withdrawal.currency)} posted",
            actual="none posted",
        )
    if withdrawn != owed:
        posted_by = len([hold for hold in [own, *claims] if hold and hold.withdrawn_minor])
        return _discrepancy(
            DiscrepancyKind.WITHDRAWAL_AMOUNT_DIFFERS,
            withdrawal,
            f"is {withdrawal.status.value} for "
            f"{describe_money(withdrawal.amount_minor, withdrawal.currency)}, and "
            f"{posted_by} transfer(s) posted {describe_money(withdrawn, withdrawal.currency)} "
            "for it",
            withdrawn - owed,
            expected=f"{describe_money(owed, withdrawal.currency)} posted",
            actual=f"{describe_money(withdrawn, withdrawal.currency)} posted",
        )
    if own is None and not completed:
        at_stake = withdrawal.amount_minor if withdrawal.status in _LIVE else 0
        return _discrepancy(
            DiscrepancyKind.WITHDRAWAL_TRANSFER_MISSING,
            withdrawal,
            f"is {withdrawal.status.value} and {what_holds}",
            at_stake,
            expected="a hold",
            actual="none",
        )
    if own is None or completed:
        return None
    if withdrawal.status in _LIVE and own.status is not TransferStatus.PENDING:
        return _discrepancy(
            DiscrepancyKind.WITHDRAWAL_TRANSFER_MISSING,
            withdrawal,
            f"is {withdrawal.status.value}, but {what_holds}: the money is not held",
            withdrawal.amount_minor,
            expected="hold pending",
            actual=f"hold {own.status.value}",
        )
    if withdrawal.status not in _LIVE and own.status is TransferStatus.PENDING:
        return _discrepancy(
            DiscrepancyKind.HOLD_NOT_RELEASED,
            withdrawal,
            f"is {withdrawal.status.value}, but {what_holds} and still holds the money",
            own.amount_minor,
            expected="hold voided",
            actual="hold pending",
        )
    return None


def _discrepancy(
    kind: DiscrepancyKind,
    withdrawal: WithdrawalRecord,
    what: str,
    amount_minor: int,
    *,
    expected: str,
    actual: str,
) -> Discrepancy:
    return Discrepancy(
        kind,
        withdrawal.subject,
        f"withdrawal {withdrawal.withdrawal_id} {what}",
        amount_minor=amount_minor,
        currency=withdrawal.currency,
        expected=expected,
        actual=actual,
    )


def _orphans(holds: _Holds, own_holds: set[UUID]) -> list[Discrepancy]:
    found: list[Discrepancy] = []
    for hold in holds.by_id.values():
        if (
            hold.transfer_id in own_holds
            or hold.status is not TransferStatus.PENDING
            or not hold.credits_clearing
        ):
            continue
        claim = (
            "names no withdrawal"
            if hold.claimed_withdrawal_id is None
            else f"names withdrawal {hold.claimed_withdrawal_id}, whose hold it is not"
        )
        found.append(
            Discrepancy(
                DiscrepancyKind.ORPHAN_HOLD,
                f"hold {hold.transfer_id}",
                f"hold {hold.transfer_id} holds {_held(hold)} for payout and {claim}",
                amount_minor=hold.amount_minor,
                currency=hold.currency or None,
                expected="no hold",
                actual=f"{_held(hold)} held",
            )
        )
    return found


def _held(hold: _Hold) -> str:
    # A hold whose postings named no currency (never written so) shows its count.
    if not hold.currency:
        return f"{hold.amount_minor} minor units"
    return describe_money(hold.amount_minor, hold.currency)
