"""Deposits: the capital funded accounts were given against the ledger transfers.

See docs/rules.md#reconciliation.

Two records of the same money, both read from the stored events with plain SQL
(no view: the projections check compares the views):

- the funding side: each funded account's `Activated` (its starting
  balance), and the `CapitalMovedOut` / `CapitalMovedIn` of forks and merges;
- the ledger: the transfers that moved that capital.

An account activated for a passed assessment is funded by one transfer from
the platform's funding account to its ledger account, whose id the check
derives as the writer does (scope "funded", key "funding-<funded account
id>"). Missing: `deposit_transfer_missing`; another amount, or from another
account, or reversed: `deposit_amount_differs`. Every other transfer that
took money out of the platform's funding account, or that touched it and
says its purpose is funding, is capital no activation accounts for:
`deposit_unknown_to_funding` (critical: money left the platform outside the
funding records). A closure returning a negative balance also debits the
funding account; it is the closure's (purpose "capital_return") and not
counted here. A hold is no capital given: its transfer counts nothing.

A fork's child and a merge's target are given capital by another funded
account, not by the platform: the fork's or merge's transfer (key
"fork-capital-<fork id>" or "merge-capital-<merge id>") must move the amount
the funding side recorded out of the source's ledger account and into the
target's. Those moves are checked transfer by transfer but are not capital
funded, so they stay out of the measure: expected is what activations were
given from the platform, actual what the ledger moved out of the platform's
funding account to funded accounts (including transfers no activation
accounts for).

Cost on a long log (most of it ordinary transfers): one scan of
`ledger_events` for three funded-account topics, whose bodies alone are
decoded. The transfers are never scanned for: the platform's funding
account's own `PostingsApplied` events name every transfer that touched it
(read by the primary key's index), and those, the activations' and the
moves' transfers (ids derived as their writers derive them) and their
reversals are looked up by id. A transfer that reached the log without
being applied to the funding account's totals is the ledger check's to find
(its account totals would not add up). Memory holds one entry per funded
account and per transfer of the funding account, never the log. The scan
and the lookups read one snapshot (REPEATABLE READ).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from uuid import UUID

import orjson
import psycopg

from application.funded_accounts import FUNDED_SCOPE, platform_account
from domain.account import AccountKind
from domain.fork import child_assessment_id
from domain.funded_account import (
    fork_capital_transfer_key,
    funding_transfer_key,
    merge_capital_transfer_key,
)
from domain.identifiers import reversal_id_for, transfer_id_for
from domain.merge import new_account_assessment_id
from domain.money import describe_money
from domain.reconciliation import CheckResult, Discrepancy, DiscrepancyKind, money_measure
from domain.tiers import TIER_CURRENCY
from domain.transfer import Side
from interface.adapters.persistence.log_reads import snapshot_connection
from projections.events import (
    ACCOUNT_POSTINGS_APPLIED,
    FUNDED_ACTIVATED,
    FUNDED_CAPITAL_MOVED_IN,
    FUNDED_CAPITAL_MOVED_OUT,
    TRANSFER_RECORDED,
)

DEPOSITS_CHECK: Final[str] = "deposits"
MEASURE: Final[str] = money_measure("capital funded", TIER_CURRENCY)


def _money(minor: int) -> str:
    """Every amount this check compares is in the tier currency."""
    return describe_money(minor, TIER_CURRENCY)


def _money_or_none(minor: int | None) -> str:
    return "nothing" if minor is None else _money(minor)


# Metadata purposes, as the writers of these transfers set them.
FUNDING_PURPOSE: Final[str] = "funding"
CAPITAL_RETURN_PURPOSE: Final[str] = "capital_return"
# Transfers looked up by id in one query.
LOOKUPS_PER_QUERY: Final[int] = 5_000
# Rows the database sends per round trip while the scan streams in.
STREAM_ROWS_PER_FETCH: Final[int] = 2_000

# The platform's funding account, derived as every use case that opens it does.
PLATFORM_FUNDING_ACCOUNT_ID: Final[UUID] = platform_account(AccountKind.FUNDING).account_id

_FUNDED_TOPICS: Final[tuple[str, ...]] = (
    FUNDED_ACTIVATED,
    FUNDED_CAPITAL_MOVED_OUT,
    FUNDED_CAPITAL_MOVED_IN,
)
# The planner scans and sorts the few funded events rather than walking a
# million transfers through an index.
_SELECT_FUNDED: Final = (
    "SELECT originator_id, topic, state FROM ledger_events "
    "WHERE topic = ANY(%s) ORDER BY notification_id"
)
_SELECT_ACCOUNT_CHANGES: Final = (
    "SELECT state FROM ledger_events WHERE originator_id = %s AND topic = %s"
)
_SELECT_TRANSFERS: Final = (
    "SELECT originator_id, state FROM ledger_events "
    "WHERE originator_id = ANY(%s) AND originator_version = 1 AND topic = %s"
)


def funding_transfer_id(funded_account_id: UUID) -> UUID:
    """The activation's funding transfer, as `FundedAccountsService.activate` names it."""
    return transfer_id_for(funding_transfer_key(funded_account_id), FUNDED_SCOPE)


def capital_move_transfer_ids(process_id: UUID) -> tuple[UUID, UUID]:
    """The transfer a fork or a merge with this id moves capital with (one of
    the two exists): the keys `ForksService` and `MergesService` write."""
    return (
        transfer_id_for(fork_capital_transfer_key(process_id), FUNDED_SCOPE),
        transfer_id_for(merge_capital_transfer_key(process_id), FUNDED_SCOPE),
    )


# What was read -----------------------------------------------------------------------


@dataclass(slots=True)
class Activation:
    funded_account_id: UUID
    ledger_account_id: UUID
    starting_balance_minor: int
    # The fork or merge that gave the capital; None: the platform funded it.
    process_id: UUID | None


@dataclass(slots=True)
class CapitalMove:
    """One fork's or merge's capital, as the funding side recorded it."""

    process_id: UUID
    source_id: UUID | None = None
    target_id: UUID | None = None
    moved_out_minor: int | None = None
    moved_in_minor: int | None = None


@dataclass(slots=True)
class LedgerMoney:
    """A transfer with its reversal, if any: what it did to each account, net."""

    transfer_id: UUID
    # The original's metadata purpose (a reversal carries its own metadata).
    purpose: str | None = None
    # Net credit per account (a debit is negative), posted transfers only.
    net_credits: dict[UUID, int] = field(default_factory=dict)
    # The original's credits, posted or held: its size whatever became of it.
    gross_minor: int = 0
    # Held, not posted: a hold moves no capital.
    pending: bool = False
    reversed: bool = False
    touches_funding: bool = False

    @property
    def funded_minor(self) -> int:
        """What left the platform's funding account, net."""
        return -self.net_credits.get(PLATFORM_FUNDING_ACCOUNT_ID, 0)

    def credited(self, account_id: UUID | None) -> int:
        """The net credit to an account (0 to one not known)."""
        return 0 if account_id is None else self.net_credits.get(account_id, 0)

    def add(self, data: dict[str, Any]) -> None:
        """Add the transfer's `Recorded`, or its reversal's."""
        credit = Side.CREDIT.value
        if data.get("reverses_transfer_id") is None:
            self.purpose = data["metadata"].get("purpose")
            self.gross_minor = sum(
                posting["amount_minor"] for posting in data["postings"] if posting["side"] == credit
            )
        else:
            self.reversed = True
        funding_account = str(PLATFORM_FUNDING_ACCOUNT_ID)
        if any(posting["account_id"] == funding_account for posting in data["postings"]):
            self.touches_funding = True
        if data["pending"]:
            self.pending = True
            return
        for posting in data["postings"]:
            account_id = UUID(posting["account_id"])
            signed = (
                posting["amount_minor"] if posting["side"] == credit else -posting["amount_minor"]
            )
            self.net_credits[account_id] = self.net_credits.get(account_id, 0) + signed

    def described(self) -> str:
        state = " (a hold)" if self.pending else " (reversed)" if self.reversed else ""
        return f"transfer {self.transfer_id}{state}"


@dataclass(slots=True)
class FundingRecords:
    activations: dict[UUID, Activation] = field(default_factory=dict)
    moves: dict[UUID, CapitalMove] = field(default_factory=dict)

    def move(self, process_id: UUID) -> CapitalMove:
        return self.moves.setdefault(process_id, CapitalMove(process_id))

    def funding_transfer_ids(self) -> dict[UUID, Activation]:
        """Transfer id -> the activation it funds, for the platform-funded ones."""
        return {
            funding_transfer_id(activation.funded_account_id): activation
            for activation in self.activations.values()
            if activation.process_id is None
        }


# The check ---------------------------------------------------------------------------


class DepositsCheck:
    def __init__(self, database_url: str) -> None:
        self._database_url = database_url

    @property
    def name(self) -> str:
        return DEPOSITS_CHECK

    def run(self) -> CheckResult:
        started = time.perf_counter()
        with snapshot_connection(self._database_url) as connection:
            records = _read_funding_records(connection)
            move_transfer_ids = [
                transfer_id
                for process_id in records.moves
                for transfer_id in capital_move_transfer_ids(process_id)
            ]
            transfers = _look_up(
                connection,
                [
                    *_funding_account_transfer_ids(connection),
                    *records.funding_transfer_ids(),
                    *move_transfer_ids,
                ],
            )
        discrepancies: list[Discrepancy] = []
        expected, actual = _compare_funding(
            records, transfers, set(move_transfer_ids), discrepancies
        )
        _compare_moves(records, transfers, discrepancies)
        return CheckResult.compared(
            DEPOSITS_CHECK,
            MEASURE,
            expected=expected,
            actual=actual,
            discrepancies=tuple(discrepancies),
            elapsed_s=time.perf_counter() - started,
        )

    def correct(self, discrepancy: Discrepancy) -> str:
        raise ValueError(
            f"the deposits check corrects nothing ({discrepancy.fingerprint}): capital "
            "given or missing is for a person to look into"
        )


# Reading -----------------------------------------------------------------------------


def _read_funding_records(connection: psycopg.Connection[Any]) -> FundingRecords:
    records = FundingRecords()
    rows = connection.cursor().stream(
        _SELECT_FUNDED, (list(_FUNDED_TOPICS),), size=STREAM_ROWS_PER_FETCH
    )
    for originator_id, topic, state in rows:
        data: dict[str, Any] = orjson.loads(state)
        if topic == FUNDED_ACTIVATED:
            process_id = capital_move_of(data["assessment_id"])
            records.activations[originator_id] = Activation(
                originator_id,
                UUID(data["ledger_account_id"]),
                data["starting_balance_minor"],
                process_id,
            )
            if process_id is not None:
                move = records.move(process_id)
                move.target_id = originator_id
                move.moved_in_minor = data["starting_balance_minor"]
        elif topic == FUNDED_CAPITAL_MOVED_OUT:
            move = records.move(UUID(data["process_id"]))
            move.source_id = originator_id
            move.target_id = move.target_id or UUID(data["to_account_id"])
            move.moved_out_minor = data["amount_minor"]
        elif topic == FUNDED_CAPITAL_MOVED_IN:
            move = records.move(UUID(data["process_id"]))
            move.target_id = originator_id
            move.source_id = move.source_id or UUID(data["from_account_id"])
            move.moved_in_minor = data["amount_minor"]
    return records


def _funding_account_transfer_ids(connection: psycopg.Connection[Any]) -> list[UUID]:
    """Every transfer the platform's funding account's totals were changed by."""
    rows = connection.execute(
        _SELECT_ACCOUNT_CHANGES, (PLATFORM_FUNDING_ACCOUNT_ID, ACCOUNT_POSTINGS_APPLIED)
    )
    return [
        UUID(transfer_id)
        for (state,) in rows
        for transfer_id in orjson.loads(state)["transfer_ids"]
    ]


def _look_up(
    connection: psycopg.Connection[Any], transfer_ids: Sequence[UUID]
) -> dict[UUID, LedgerMoney]:
    """These transfers with their reversals, by the primary key's index."""
    found: dict[UUID, LedgerMoney] = {}
    # Insertion-ordered and without repeats: a reversal may be asked for twice.
    wanted = list(
        dict.fromkeys(
            each
            for transfer_id in transfer_ids
            for each in (transfer_id, reversal_id_for(transfer_id))
        )
    )
    for start in range(0, len(wanted), LOOKUPS_PER_QUERY):
        batch = wanted[start : start + LOOKUPS_PER_QUERY]
        for transfer_id, state in connection.execute(_SELECT_TRANSFERS, (batch, TRANSFER_RECORDED)):
            data: dict[str, Any] = orjson.loads(state)
            reverses = data.get("reverses_transfer_id")
            root = transfer_id if reverses is None else UUID(reverses)
            found.setdefault(root, LedgerMoney(root)).add(data)
    return found


# Comparing ---------------------------------------------------------------------------


def _compare_funding(
    records: FundingRecords,
    transfers: dict[UUID, LedgerMoney],
    move_transfer_ids: set[UUID],
    found: list[Discrepancy],
) -> tuple[int, int]:
    """Each platform-funded activation against its transfer, then the transfers
    of the funding account no activation accounts for; (capital the
    activations were given, capital the ledger moved out of the funding account)."""
    given = moved = 0
    funding_transfers = records.funding_transfer_ids()
    for transfer_id, activation in funding_transfers.items():
        starting = activation.starting_balance_minor
        given += starting
        money = transfers.get(transfer_id)
        subject = f"funding of funded account {activation.funded_account_id}"
        if money is None:
            found.append(
                Discrepancy(
                    DiscrepancyKind.DEPOSIT_TRANSFER_MISSING,
                    subject,
                    f"funded account {activation.funded_account_id} was activated with "
                    f"{_money(starting)}, and the ledger has no funding transfer "
                    f"{transfer_id} for it",
                    amount_minor=starting,
                    currency=TIER_CURRENCY,
                    expected=_money(starting),
                    actual="no transfer",
                )
            )
            continue
        moved += money.funded_minor
        credited = money.credited(activation.ledger_account_id)
        if credited == starting and money.funded_minor == starting:
            continue
        found.append(
            Discrepancy(
                DiscrepancyKind.DEPOSIT_AMOUNT_DIFFERS,
                subject,
                f"funded account {activation.funded_account_id} was activated with "
                f"{_money(starting)}; its {money.described()} moved "
                f"{_money(money.funded_minor)} out of the platform's funding account and "
                f"{_money(credited)} into the account's ledger account "
                f"{activation.ledger_account_id}",
                amount_minor=max(abs(starting - credited), abs(starting - money.funded_minor)),
                currency=TIER_CURRENCY,
                expected=_money(starting),
                actual=_money(credited),
            )
        )
    for transfer_id, money in transfers.items():
        if (
            transfer_id in funding_transfers
            or transfer_id in move_transfer_ids
            or not money.touches_funding
            or money.purpose == CAPITAL_RETURN_PURPOSE
        ):
            continue
        if money.funded_minor <= 0 and money.purpose != FUNDING_PURPOSE and not money.pending:
            # Money into the funding account: not capital given to anyone.
            continue
        moved += money.funded_minor
        found.append(
            Discrepancy(
                DiscrepancyKind.DEPOSIT_UNKNOWN_TO_FUNDING,
                f"transfer {transfer_id}",
                f"{money.described()} (purpose {money.purpose or 'none'}) moved "
                f"{_money(money.funded_minor)} out of the platform's funding account "
                f"and no activation accounts for it",
                amount_minor=money.funded_minor if money.funded_minor > 0 else money.gross_minor,
                currency=TIER_CURRENCY,
                expected="no transfer",
                actual=_money(money.funded_minor),
            )
        )
    return given, moved


def _compare_moves(
    records: FundingRecords, transfers: dict[UUID, LedgerMoney], found: list[Discrepancy]
) -> None:
    """Each fork's or merge's capital against the transfer that moved it."""
    for move in records.moves.values():
        recorded = move.moved_in_minor if move.moved_in_minor is not None else move.moved_out_minor
        assert recorded is not None, "a move is made from one of its records"
        subject = f"capital move {move.process_id}"
        money = next(
            (
                transfers[transfer_id]
                for transfer_id in capital_move_transfer_ids(move.process_id)
                if transfer_id in transfers
            ),
            None,
        )
        if money is None:
            found.append(
                Discrepancy(
                    DiscrepancyKind.DEPOSIT_TRANSFER_MISSING,
                    subject,
                    f"fork or merge {move.process_id} moved {_money(recorded)} from "
                    f"funded account {move.source_id} to {move.target_id}, and the ledger "
                    "has no transfer for it",
                    amount_minor=recorded,
                    currency=TIER_CURRENCY,
                    expected=_money(recorded),
                    actual="no transfer",
                )
            )
            continue
        problems, differences = _move_problems(records, move, money)
        if problems:
            found.append(
                Discrepancy(
                    DiscrepancyKind.DEPOSIT_AMOUNT_DIFFERS,
                    subject,
                    f"fork or merge {move.process_id}: " + "; ".join(problems),
                    amount_minor=max(differences),
                    currency=TIER_CURRENCY,
                    expected=_money(recorded),
                    actual=_money(money.credited(_ledger_account(records, move.target_id))),
                )
            )


def _move_problems(
    records: FundingRecords, move: CapitalMove, money: LedgerMoney
) -> tuple[list[str], list[int]]:
    problems: list[str] = []
    differences: list[int] = []
    moved_out, moved_in = move.moved_out_minor, move.moved_in_minor
    if moved_out != moved_in:
        problems.append(
            f"the source recorded {_money_or_none(moved_out)} moved out, the target "
            f"{_money_or_none(moved_in)} in"
        )
        differences.append(abs((moved_out or 0) - (moved_in or 0)))
    if moved_in is not None:
        credited = money.credited(_ledger_account(records, move.target_id))
        if credited != moved_in:
            problems.append(
                f"its {money.described()} credited {_money(credited)} to the target's "
                "ledger account"
            )
            differences.append(abs(moved_in - credited))
    if moved_out is not None:
        debited = -money.credited(_ledger_account(records, move.source_id))
        if debited != moved_out:
            problems.append(
                f"its {money.described()} debited {_money(debited)} from the source's "
                "ledger account"
            )
            differences.append(abs(moved_out - debited))
    return problems, differences


def _ledger_account(records: FundingRecords, funded_account_id: UUID | None) -> UUID | None:
    activation = None if funded_account_id is None else records.activations.get(funded_account_id)
    return None if activation is None else activation.ledger_account_id


def capital_move_of(assessment_id: str) -> UUID | None:
    """The fork or merge an account's 'assessment' names, None for a real one."""
    _, separator, rest = assessment_id.partition(":")
    if not separator:
        return None
    try:
        process_id = UUID(rest)
    except ValueError:
        return None
    if assessment_id in (child_assessment_id(process_id), new_account_assessment_id(process_id)):
        return process_id
    return None
