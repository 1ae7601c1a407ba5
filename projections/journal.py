"""The journal view: every transfer as one row, and every account's statement
as entries with the running balance after each.

Built from the transfers' events only (never the accounts'), so its running
figures are a second derivation of what the accounts' `PostingsApplied`
events say; the balances view keeps the first, and an audit compares them.

`view_journal_transfers` has one row per transfer: its postings, what was
posted of them, its status and links. `view_journal_entries` has one row per
posting of each money movement, keyed (account_id, position, seq): `position`
is the log position of the transfer event that moved the money and `seq` the
posting's index in that transfer. Each entry's `amount_minor` is:

- `posted`: the amount posted to `side` (a transfer made posted, a reversal);
- `pending`: the amount held on `side` (a pending transfer recorded);
- `pending_posted`: the amount posted to `side` out of the hold; the posting's
  whole hold is released by the same entry, so a partial post releases the
  rest of the hold too (the drop shows in the running pending figure);
- `pending_voided`, `pending_expired`: the amount of the hold released.

After every entry the row carries the account's running figures: the posted
balance (credits_posted - debits_posted), debits_pending and credits_pending.
They are kept in memory between pages for the accounts seen lately, as are
the postings of pending transfers still open; what memory lacks is read back
from the tables, once per page for all the misses together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import orjson

from projections.events import (
    TRANSFER_PENDING_EXPIRED,
    TRANSFER_PENDING_POSTED,
    TRANSFER_PENDING_VOIDED,
    TRANSFER_RECORDED,
    TRANSFER_REVERSED,
    LoggedEvent,
    plain,
)
from projections.view import Cursor

NAME: Final[str] = "journal"
# Accounts whose running figures are remembered between pages; past this the
# memory is dropped and misses are read back from each account's last entry.
REMEMBERED_ACCOUNTS_MAX: Final[int] = 200_000
# Open holds (pending transfers' postings) remembered between pages; past this
# the memory is dropped and misses are read back from the transfers table.
REMEMBERED_HOLDS_MAX: Final[int] = 200_000
# Metadata pairs one transfers query may filter on (a transfer has at most 16).
METADATA_FILTERS_MAX: Final[int] = 16
# Rows one query may return: callers page with smaller limits.
QUERY_ROWS_MAX: Final[int] = 1_000

ENTRY_POSTED: Final[str] = "posted"
ENTRY_PENDING: Final[str] = "pending"
ENTRY_PENDING_POSTED: Final[str] = "pending_posted"
ENTRY_PENDING_VOIDED: Final[str] = "pending_voided"
ENTRY_PENDING_EXPIRED: Final[str] = "pending_expired"

_TRANSFER_COLUMNS: Final = (
    "transfer_id",
    "position",
    "logged_at",
    "recorded_at",
    "status",
    "pending",
    "expires_at",
    "reverses_transfer_id",
    "reversed_by_transfer_id",
    "resolved_at",
    "metadata",
    "postings",
    "posted_postings",
)
# Indexes into a transfer row (the order of `_TRANSFER_COLUMNS`).
_STATUS, _REVERSED_BY, _RESOLVED_AT, _POSTED_POSTINGS = 4, 8, 9, 12

_ENTRY_COLUMNS: Final = (
    "account_id",
    "position",
    "seq",
    "transfer_id",
    "entry_type",
    "side",
    "amount_minor",
    "currency",
    "logged_at",
    "posted_balance",
    "debits_pending",
    "credits_pending",
)

# Rows go in as lines of COPY's text format, formatted here: much faster
# than psycopg adapting each value of each row.
_COPY_TRANSFERS: Final = f"COPY view_journal_transfers ({', '.join(_TRANSFER_COLUMNS)}) FROM STDIN"
_COPY_ENTRIES: Final = f"COPY view_journal_entries ({', '.join(_ENTRY_COLUMNS)}) FROM STDIN"
# COPY's text form of NULL.
_NULL: Final[str] = "\\N"
_DEBIT: Final[str] = "debit"
_EMPTY_LIST: Final[str] = "[]"
_EMPTY_OBJECT: Final[str] = "{}"
_RELEASES: Final[dict[str, tuple[str, str]]] = {
    TRANSFER_PENDING_VOIDED: ("voided", ENTRY_PENDING_VOIDED),
    TRANSFER_PENDING_EXPIRED: ("expired", ENTRY_PENDING_EXPIRED),
}
_RESOLUTIONS: Final = frozenset({TRANSFER_PENDING_POSTED, *_RELEASES})

# A hold's postings: (account id as text, side, amount_minor, currency).
Hold = list[tuple[str, str, int, str]]


@dataclass(frozen=True, slots=True)
class RunningFigures:
    """An account's figures after an entry, in minor units."""

    posted_balance: int
    debits_pending: int
    credits_pending: int

    @property
    def available(self) -> int:
        return self.posted_balance - self.debits_pending


ZERO_FIGURES: Final = RunningFigures(0, 0, 0)


@dataclass(frozen=True, slots=True)
class JournalTransfer:
    transfer_id: UUID
    position: int
    logged_at: datetime
    recorded_at: datetime
    status: str
    pending: bool
    expires_at: datetime | None
    reverses_transfer_id: UUID | None
    reversed_by_transfer_id: UUID | None
    resolved_at: datetime | None
    metadata: dict[str, str]
    # As in the events: [{"account_id", "side", "amount_minor", "currency"}, ...]
    postings: list[dict[str, Any]]
    posted_postings: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class JournalEntry:
    account_id: UUID
    position: int
    seq: int
    transfer_id: UUID
    entry_type: str
    side: str
    amount_minor: int
    currency: str
    logged_at: datetime
    # The account's figures after this entry.
    after: RunningFigures


@dataclass(frozen=True, slots=True)
class StatementPage:
    # The account's figures before the page's first entry (for an empty page:
    # at the start of the range asked for).
    opening: RunningFigures
    entries: list[JournalEntry]


class JournalView:
    name = NAME
    version = 2
    tables: tuple[str, ...] = ("view_journal_transfers", "view_journal_entries")

    def __init__(self) -> None:
        # account id (text) -> [posted_balance, debits_pending, credits_pending]
        self._figures: dict[str, list[int]] = {}
        self._figures_complete = False
        # pending transfer id -> its postings, while it is open
        self._holds: dict[UUID, Hold] = {}
        self._holds_complete = False

    def create_tables(self, cursor: Cursor) -> None:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS view_journal_transfers ("
            " transfer_id uuid PRIMARY KEY, position bigint NOT NULL,"
            " logged_at timestamptz NOT NULL, recorded_at timestamptz NOT NULL,"
            " status text NOT NULL, pending boolean NOT NULL, expires_at timestamptz,"
            " reverses_transfer_id uuid, reversed_by_transfer_id uuid,"
            " resolved_at timestamptz, metadata jsonb NOT NULL, postings jsonb NOT NULL,"
            " posted_postings jsonb)"
        )
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS view_journal_entries ("
            " account_id uuid NOT NULL, position bigint NOT NULL, seq integer NOT NULL,"
            " transfer_id uuid NOT NULL, entry_type text NOT NULL, side text NOT NULL,"
            " amount_minor bigint NOT NULL, currency text NOT NULL,"
            " logged_at timestamptz NOT NULL, posted_balance bigint NOT NULL,"
            " debits_pending bigint NOT NULL, credits_pending bigint NOT NULL)"
        )

    def create_indexes(self, cursor: Cursor) -> None:
        # The entries' key: made after a replay has loaded them, not row by row
        # during it (a replay from empty never reads entries back).
        cursor.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS view_journal_entries_key_idx"
            " ON view_journal_entries (account_id, position, seq)"
        )
        cursor.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS view_journal_transfers_position_idx"
            " ON view_journal_transfers (position)"
        )
        cursor.execute(
            "CREATE INDEX IF NOT EXISTS view_journal_transfers_logged_at_idx"
            " ON view_journal_transfers (logged_at)"
        )
        cursor.execute(
            "CREATE INDEX IF NOT EXISTS view_journal_transfers_metadata_idx"
            " ON view_journal_transfers USING gin (metadata jsonb_path_ops)"
        )
        # The open holds (`GET /v1/transfers?status=pending`), few among many.
        cursor.execute(
            "CREATE INDEX IF NOT EXISTS view_journal_transfers_open_idx"
            " ON view_journal_transfers (position) WHERE status = 'pending'"
        )
        # A statement for a time range starts here, not at the account's first entry.
        cursor.execute(
            "CREATE INDEX IF NOT EXISTS view_journal_entries_logged_at_idx"
            " ON view_journal_entries (account_id, logged_at)"
        )

    def forget(self, *, starts_empty: bool) -> None:
        self._figures = {}
        self._figures_complete = starts_empty
        self._holds = {}
        self._holds_complete = starts_empty

    def digest_order(self, table: str) -> str:
        if table == "view_journal_entries":
            return "account_id, position, seq"
        return "transfer_id"

    def prepare(self, cursor: Cursor | None, events: Sequence[LoggedEvent]) -> _Page:
        # Only a view that can read back forgets: a replay from empty (no
        # cursor) keeps every account and open hold.
        if cursor is not None and len(self._figures) > REMEMBERED_ACCOUNTS_MAX:
            self._figures = {}
            self._figures_complete = False
        if cursor is not None and len(self._holds) > REMEMBERED_HOLDS_MAX:
            self._holds = {}
            self._holds_complete = False
        decoded = [(event, event.data()) for event in events if event.topic in _JOURNAL_TOPICS]
        try:
            if not self._holds_complete:
                self._remember_holds(_read_back(cursor), decoded)
            self._remember_figures(cursor, decoded)
            page = _Page(self._figures, self._holds)
            for event, data in decoded:
                topic = event.topic
                if topic == TRANSFER_RECORDED:
                    page.record(event, data)
                elif topic == TRANSFER_PENDING_POSTED:
                    page.post_hold(event, data)
                elif topic == TRANSFER_REVERSED:
                    reversal_id = data["reversal_transfer_id"]
                    page.change(event.originator_id, [None, None, None, reversal_id])
                else:
                    page.release_hold(event, data, *_RELEASES[topic])
            return page
        except BaseException:
            # Memory has moved on with a page whose rows will be rolled back;
            # the tables are right, so read back from them from now on.
            self.forget(starts_empty=False)
            raise

    def _remember_holds(self, cursor: Cursor, decoded: Sequence[tuple[LoggedEvent, Any]]) -> None:
        """Read back the postings of holds this page resolves that memory lacks."""
        holds = self._holds
        recorded_here: set[UUID] = set()
        missing: set[UUID] = set()
        for event, _ in decoded:
            transfer_id = event.originator_id
            if event.topic == TRANSFER_RECORDED:
                recorded_here.add(transfer_id)
            elif (
                event.topic in _RESOLUTIONS
                and transfer_id not in holds
                and transfer_id not in recorded_here
            ):
                missing.add(transfer_id)
        if not missing:
            return
        cursor.execute(
            "SELECT transfer_id, postings FROM view_journal_transfers"
            " WHERE transfer_id = ANY(%s) AND status = 'pending'",
            (list(missing),),
        )
        for transfer_id, postings in cursor.fetchall():
            holds[transfer_id] = [
                (p["account_id"], p["side"], p["amount_minor"], p["currency"]) for p in postings
            ]

    def _remember_figures(
        self, cursor: Cursor | None, decoded: Sequence[tuple[LoggedEvent, Any]]
    ) -> None:
        """Running figures of the accounts this page moves that memory lacks:
        read back from each one's last entry, or zero if it has none."""
        figures, holds = self._figures, self._holds
        accounts: set[str] = set()
        for event, data in decoded:
            if event.topic == TRANSFER_RECORDED:
                accounts.update(posting["account_id"] for posting in data["postings"])
            elif event.originator_id in holds:
                accounts.update(posting[0] for posting in holds[event.originator_id])
        missing = [account_id for account_id in accounts if account_id not in figures]
        if missing and not self._figures_complete:
            cursor = _read_back(cursor)
            cursor.execute(
                "SELECT a.id, e.posted_balance, e.debits_pending, e.credits_pending"
                " FROM unnest(%s::uuid[]) AS a(id) CROSS JOIN LATERAL ("
                " SELECT posted_balance, debits_pending, credits_pending"
                " FROM view_journal_entries WHERE account_id = a.id"
                " ORDER BY position DESC, seq DESC LIMIT 1) AS e",
                (missing,),
            )
            for account_id, posted_balance, debits_pending, credits_pending in cursor.fetchall():
                figures[str(account_id)] = [posted_balance, debits_pending, credits_pending]
        for account_id in missing:
            if account_id not in figures:
                figures[account_id] = [0, 0, 0]


def _read_back(cursor: Cursor | None) -> Cursor:
    if cursor is None:
        raise ValueError("only a view that replays from empty prepares without a cursor")
    return cursor


class _Page:
    """One page's work: rows and entries made in memory, then written at once."""

    __slots__ = ("_changed", "_entries", "_figures", "_holds", "_recorded")

    def __init__(self, figures: dict[str, list[int]], holds: dict[UUID, Hold]) -> None:
        self._figures = figures
        self._holds = holds
        # Transfers recorded in this page (rows still to be copied in), and
        # changes to transfers of earlier pages: id -> [status, resolved_at,
        # posted_postings, reversed_by], None where unchanged.
        self._recorded: dict[UUID, list[Any]] = {}
        self._changed: dict[UUID, list[Any]] = {}
        # Entries as lines of COPY's text format: every value in them is a
        # number, a uuid, a timestamp or one of a few fixed words, so none
        # needs escaping. Transfer rows are lists of such text (JSON escaped).
        self._entries: list[str] = []

    def record(self, event: LoggedEvent, data: dict[str, Any]) -> None:
        transfer_id, position = event.originator_id, event.position
        transfer_text = str(transfer_id)
        postings = data["postings"]
        pending = data["pending"]
        posting_json = orjson.dumps(postings).decode()
        recorded_at = plain(data["recorded_at"])
        logged_text = event.recorded_at.isoformat()
        metadata = data["metadata"]
        self._recorded[transfer_id] = [
            transfer_text,
            str(position),
            logged_text,
            recorded_at,
            "pending" if pending else "posted",
            "t" if pending else "f",
            plain(data["expires_at"]) or _NULL,
            data["reverses_transfer_id"] or _NULL,
            _NULL,
            _NULL if pending else recorded_at,
            _copy_text(orjson.dumps(metadata).decode()) if metadata else _EMPTY_OBJECT,
            _copy_text(posting_json),
            # NULL: posted as recorded (saves storing the postings twice).
            _EMPTY_LIST if pending else _NULL,
        ]
        entry_type = ENTRY_PENDING if pending else ENTRY_POSTED
        common = f"\t{transfer_text}\t{entry_type}\t"
        figures = self._figures
        append_entry = self._entries.append
        hold: Hold = []
        for seq, posting in enumerate(postings):
            account_id = posting["account_id"]
            side = posting["side"]
            amount = posting["amount_minor"]
            currency = posting["currency"]
            running = figures[account_id]
            if pending:
                hold.append((account_id, side, amount, currency))
                running[1 if side == _DEBIT else 2] += amount
            elif side == _DEBIT:
                running[0] -= amount
            else:
                running[0] += amount
            append_entry(
                f"{account_id}\t{position}\t{seq}{common}{side}\t{amount}\t{currency}"
                f"\t{logged_text}\t{running[0]}\t{running[1]}\t{running[2]}\n"
            )
        if pending:
            self._holds[transfer_id] = hold

    def _take_hold(self, transfer_id: UUID) -> Hold:
        hold = self._holds.pop(transfer_id, None)
        if hold is None:
            raise LookupError(f"transfer {transfer_id} is resolved but was never pending")
        return hold

    def post_hold(self, event: LoggedEvent, data: dict[str, Any]) -> None:
        """Release each posting's whole hold and post what the event says."""
        transfer_id, position = event.originator_id, event.position
        posted = data["postings"]
        common = f"\t{transfer_id}\t{ENTRY_PENDING_POSTED}\t"
        logged_text = event.recorded_at.isoformat()
        figures = self._figures
        append_entry = self._entries.append
        for seq, (account_id, side, held, currency) in enumerate(self._take_hold(transfer_id)):
            amount = posted[seq]["amount_minor"]
            running = figures[account_id]
            if side == _DEBIT:
                running[1] -= held
                running[0] -= amount
            else:
                running[2] -= held
                running[0] += amount
            append_entry(
                f"{account_id}\t{position}\t{seq}{common}{side}\t{amount}\t{currency}"
                f"\t{logged_text}\t{running[0]}\t{running[1]}\t{running[2]}\n"
            )
        self.change(transfer_id, ["posted", plain(data["at"]), orjson.dumps(posted).decode(), None])

    def release_hold(
        self, event: LoggedEvent, data: dict[str, Any], status: str, entry_type: str
    ) -> None:
        transfer_id, position = event.originator_id, event.position
        common = f"\t{transfer_id}\t{entry_type}\t"
        logged_text = event.recorded_at.isoformat()
        figures = self._figures
        append_entry = self._entries.append
        for seq, (account_id, side, held, currency) in enumerate(self._take_hold(transfer_id)):
            running = figures[account_id]
            running[1 if side == _DEBIT else 2] -= held
            append_entry(
                f"{account_id}\t{position}\t{seq}{common}{side}\t{held}\t{currency}"
                f"\t{logged_text}\t{running[0]}\t{running[1]}\t{running[2]}\n"
            )
        self.change(transfer_id, [status, plain(data["at"]), None, None])

    def change(self, transfer_id: UUID, change: list[Any]) -> None:
        """A change to a transfer: made to its row if recorded in this page,
        else merged with this page's other changes to it."""
        row = self._recorded.get(transfer_id)
        if row is not None:
            _merge_into_row(row, change)
            return
        earlier = self._changed.get(transfer_id)
        if earlier is not None:
            change = [
                new if new is not None else old for new, old in zip(change, earlier, strict=True)
            ]
        self._changed[transfer_id] = change

    def write(self, cursor: Cursor) -> None:
        if self._recorded:
            with cursor.copy(_COPY_TRANSFERS) as copy:
                copy.write("".join("\t".join(row) + "\n" for row in self._recorded.values()))
        if self._entries:
            with cursor.copy(_COPY_ENTRIES) as copy:
                copy.write("".join(self._entries))
        changed = self._changed
        if changed:
            ids = list(changed)
            cursor.execute(
                "UPDATE view_journal_transfers AS t SET"
                " status = coalesce(v.status, t.status),"
                " resolved_at = coalesce(v.resolved_at, t.resolved_at),"
                " posted_postings = coalesce(v.posted_postings, t.posted_postings),"
                " reversed_by_transfer_id = coalesce(v.reversed_by, t.reversed_by_transfer_id)"
                " FROM unnest(%s::uuid[], %s::text[], %s::timestamptz[], %s::jsonb[],"
                " %s::uuid[]) AS v(id, status, resolved_at, posted_postings, reversed_by)"
                " WHERE t.transfer_id = v.id",
                (ids, *([changed[i][column] for i in ids] for column in range(4))),
            )


_JOURNAL_TOPICS: Final = frozenset({TRANSFER_RECORDED, TRANSFER_REVERSED, *_RESOLUTIONS})


def _merge_into_row(row: list[Any], change: list[Any]) -> None:
    """A change to a transfer recorded in the same page, made to its row before copying."""
    status, resolved_at, posted_postings, reversed_by = change
    if status is not None:
        row[_STATUS] = status
        row[_RESOLVED_AT] = resolved_at
    if posted_postings is not None:
        row[_POSTED_POSTINGS] = _copy_text(posted_postings)
    if reversed_by is not None:
        row[_REVERSED_BY] = reversed_by


def _copy_text(text: str) -> str:
    """A value as COPY's text format needs it. JSON from orjson has no raw
    tab, newline or carriage return (it escapes every control character),
    so a backslash is the one character to escape."""
    return text.replace("\\", "\\\\") if "\\" in text else text


# Queries ---------------------------------------------------------------------

_TRANSFER_SELECT: Final = ", ".join(
    "coalesce(t.posted_postings, t.postings)" if column == "posted_postings" else f"t.{column}"
    for column in _TRANSFER_COLUMNS
)
_ENTRY_SELECT: Final = ", ".join(f"e.{column}" for column in _ENTRY_COLUMNS)
_FIGURES_BEFORE_ENTRY: Final = (
    "SELECT posted_balance, debits_pending, credits_pending FROM view_journal_entries"
    " WHERE account_id = %s AND (position, seq) < (%s, %s)"
    " ORDER BY position DESC, seq DESC LIMIT 1"
)
_FIGURES_BEFORE_TIME: Final = (
    "SELECT posted_balance, debits_pending, credits_pending FROM view_journal_entries"
    " WHERE account_id = %s AND logged_at < %s"
    " ORDER BY logged_at DESC, position DESC, seq DESC LIMIT 1"
)


def _transfer(row: Sequence[Any]) -> JournalTransfer:
    return JournalTransfer(*row)


def _entry(row: Sequence[Any]) -> JournalEntry:
    (
        account_id,
        position,
        seq,
        transfer_id,
        entry_type,
        side,
        amount_minor,
        currency,
        logged_at,
        posted_balance,
        debits_pending,
        credits_pending,
    ) = row
    return JournalEntry(
        account_id,
        position,
        seq,
        transfer_id,
        entry_type,
        side,
        amount_minor,
        currency,
        logged_at,
        RunningFigures(posted_balance, debits_pending, credits_pending),
    )


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= QUERY_ROWS_MAX:
        raise ValueError(f"limit must be from 1 to {QUERY_ROWS_MAX}")


def transfers_page(
    cursor: Cursor,
    *,
    account_id: UUID | None = None,
    logged_from: datetime | None = None,
    logged_to: datetime | None = None,
    metadata: dict[str, str] | None = None,
    status: str | None = None,
    currency: str | None = None,
    after_position: int = 0,
    limit: int,
) -> list[JournalTransfer]:
    """Transfers recorded after `after_position`, in log order: those with a
    posting on `account_id` (when given), logged in [logged_from, logged_to),
    whose metadata holds every given key with the given value, in `status`
    (`pending`: the open holds) and with a posting in `currency`."""
    _check_limit(limit)
    if metadata and len(metadata) > METADATA_FILTERS_MAX:
        raise ValueError(f"at most {METADATA_FILTERS_MAX} metadata filters")
    conditions = ["t.position > %s"]
    parameters: list[Any] = [after_position]
    if logged_from is not None:
        conditions.append("t.logged_at >= %s")
        parameters.append(logged_from)
    if logged_to is not None:
        conditions.append("t.logged_at < %s")
        parameters.append(logged_to)
    if metadata:
        conditions.append("t.metadata @> %s::jsonb")
        parameters.append(orjson.dumps(metadata).decode())
    if status is not None:
        conditions.append("t.status = %s")
        parameters.append(status)
    if currency is not None:
        conditions.append("t.postings @> %s::jsonb")
        parameters.append(orjson.dumps([{"currency": currency}]).decode())
    where = " AND ".join(conditions)
    if account_id is None:
        query = (
            f"SELECT {_TRANSFER_SELECT} FROM view_journal_transfers AS t"  # noqa: S608
            f" WHERE {where} ORDER BY t.position LIMIT %s"
        )
        parameters.append(limit)
    else:
        # The account's entries for recording a transfer (posted or pending)
        # sit at the transfer's own position: walk them in order, one row per
        # transfer however many of its postings are on the account.
        query = (
            f"SELECT DISTINCT ON (e.position) {_TRANSFER_SELECT}"  # noqa: S608
            " FROM view_journal_entries AS e"
            " JOIN view_journal_transfers AS t ON t.position = e.position"
            " WHERE e.account_id = %s AND e.position > %s AND e.entry_type = ANY(%s)"
            f" AND {where} ORDER BY e.position LIMIT %s"
        )
        parameters = [
            account_id,
            after_position,
            [ENTRY_POSTED, ENTRY_PENDING],
            *parameters,
            limit,
        ]
    cursor.execute(query, parameters)
    return [_transfer(row) for row in cursor.fetchall()]


def statement_page(
    cursor: Cursor,
    account_id: UUID,
    *,
    logged_from: datetime | None = None,
    logged_to: datetime | None = None,
    after: tuple[int, int] | None = None,
    limit: int,
) -> StatementPage:
    """The account's entries logged in [logged_from, logged_to), after the
    entry `after` (position, seq) when given, in log order; and the running
    figures before the first of them."""
    _check_limit(limit)
    conditions = ["e.account_id = %s"]
    parameters: list[Any] = [account_id]
    if after is not None:
        conditions.append("(e.position, e.seq) > (%s, %s)")
        parameters.extend(after)
    if logged_from is not None:
        conditions.append("e.logged_at >= %s")
        parameters.append(logged_from)
    if logged_to is not None:
        conditions.append("e.logged_at < %s")
        parameters.append(logged_to)
    cursor.execute(
        f"SELECT {_ENTRY_SELECT} FROM view_journal_entries AS e"  # noqa: S608
        f" WHERE {' AND '.join(conditions)} ORDER BY e.position, e.seq LIMIT %s",
        [*parameters, limit],
    )
    entries = [_entry(row) for row in cursor.fetchall()]
    if entries:
        first = entries[0]
        cursor.execute(_FIGURES_BEFORE_ENTRY, (account_id, first.position, first.seq))
    elif after is not None:
        # Nothing after the cursor's entry: the figures after it.
        cursor.execute(_FIGURES_BEFORE_ENTRY, (account_id, after[0], after[1] + 1))
    elif logged_from is not None:
        cursor.execute(_FIGURES_BEFORE_TIME, (account_id, logged_from))
    else:
        return StatementPage(ZERO_FIGURES, [])
    row = cursor.fetchone()
    opening = ZERO_FIGURES if row is None else RunningFigures(*row)
    return StatementPage(opening, entries)
