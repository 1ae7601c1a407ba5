"""`ledger audit verify`: check the whole ledger from its stored events alone.

An auditor should not have to trust the service's code paths, caches or
views, so this reads `ledger_events` with plain SQL and checks, in one pass
in log order:

- the hash chain: each event's hash is recomputed from the stored hash of the
  event before it, so a changed byte, a deleted event or two swapped events
  are found, and the first bad event is named by its position;
- positions strictly increase, and every aggregate's versions run 1, 2, 3...
  in log order;
- money: every transfer's postings balance per currency (and so do the
  postings a pending transfer was posted with), debits equal credits per
  currency over every posted movement and every open hold, and each account's
  four totals (the sum of its `PostingsApplied` deltas) equal what its
  transfers' postings add up to: posted from transfers recorded posted and
  holds posted, pending from the holds still open at the end.

Then each view is compared with a fresh replay of the log up to the position
the view says it has reached (`check_views`).

The log is read in pages by keyset on `notification_id`, inside one
REPEATABLE READ transaction, so the checks see one consistent log however
much is written meanwhile. Memory stays flat in the length of the log: it
holds the accounts' figures and the open holds' postings, never the events
nor anything per closed transfer. A transfer's later events are matched to
its earlier ones by the open-holds memory, or (reversals) by one indexed
query per page. Rows come as tuples in binary, ids and topics as raw bytes,
so the per-event work is one sha256 and, for events that move money, one
orjson decode.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any, Final
from uuid import UUID

import orjson
import psycopg
from psycopg import IsolationLevel, sql
from psycopg.types.string import ByteaBinaryLoader

from domain.event_chain import GENESIS_HASH
from interface.adapters.persistence.advisory_locks import AUDIT_VERIFY_LOCK_KEY
from projections.digest import differing_rows, view_digest
from projections.events import (
    ACCOUNT_OPENED,
    ACCOUNT_POSTINGS_APPLIED,
    ACCOUNT_STATE_CHANGED,
    TRANSFER_PENDING_EXPIRED,
    TRANSFER_PENDING_POSTED,
    TRANSFER_PENDING_VOIDED,
    TRANSFER_RECORDED,
    TRANSFER_REVERSED,
    VERSIONED_AGGREGATES,
)
from projections.rebuild import LIVE_SCHEMA, replay_views_into_schema
from projections.registry import all_views
from projections.view import View

# Events read per round trip (and per progress report).
LOG_PAGE_ROWS: Final[int] = 20_000
# Pages read ahead of the checks (memory: this many pages at most).
PREFETCHED_PAGES_MAX: Final[int] = 2
# How often the page reader and its consumer look whether the other stopped.
PREFETCH_WAIT_S: Final[float] = 0.1
# Events whose earlier versions are asked of the database in one query.
LOOKUPS_PER_QUERY: Final[int] = 10_000
# Findings kept in the report; past this they are only counted.
FINDINGS_MAX: Final[int] = 1_000
# Where a view is replayed afresh, and where the live view is copied as of
# the verify's snapshot when the two differ (to list the differing rows).
VERIFY_SCHEMA: Final[str] = "ledger_verify"
LIVE_COPY_SCHEMA: Final[str] = "ledger_verify_live"
# Differing rows listed per view table.
DIFFERING_ROWS_SHOWN: Final[int] = 20

# (phase, done, total): phase "log" counts positions; "view:<name>" too.
Progress = Callable[[str, int, int], None]

_SELECT_PAGE: Final = (
    "SELECT notification_id, originator_id, originator_version, topic, state, event_hash "
    "FROM ledger_events WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
)
_SELECT_HEAD: Final = "SELECT coalesce(max(notification_id), 0) FROM ledger_events"
# For events whose predecessors memory does not hold (a reversal of a closed
# transfer): the first versions of the same aggregate, by the primary key's
# index (the LIMIT keeps the planner on the index whatever its statistics say;
# a transfer has at most three events).
_SELECT_VERSIONS_OF: Final = (
    "SELECT q.position, e.originator_version, e.notification_id "
    "FROM unnest(%s::uuid[], %s::int8[]) AS q(originator_id, position) "
    "CROSS JOIN LATERAL (SELECT originator_version, notification_id FROM ledger_events "
    "WHERE originator_id = q.originator_id ORDER BY originator_version LIMIT %s) AS e"
)
# Versions looked up per aggregate: more than any transfer has.
_VERSIONS_LOOKED_UP_MAX: Final[int] = 8

_ACCOUNT_OPENED: Final[bytes] = ACCOUNT_OPENED.encode()
_ACCOUNT_POSTINGS_APPLIED: Final[bytes] = ACCOUNT_POSTINGS_APPLIED.encode()
_ACCOUNT_STATE_CHANGED: Final[bytes] = ACCOUNT_STATE_CHANGED.encode()
_TRANSFER_RECORDED: Final[bytes] = TRANSFER_RECORDED.encode()
_TRANSFER_PENDING_POSTED: Final[bytes] = TRANSFER_PENDING_POSTED.encode()
_TRANSFER_PENDING_VOIDED: Final[bytes] = TRANSFER_PENDING_VOIDED.encode()
_TRANSFER_PENDING_EXPIRED: Final[bytes] = TRANSFER_PENDING_EXPIRED.encode()
_TRANSFER_REVERSED: Final[bytes] = TRANSFER_REVERSED.encode()
# Funded accounts and the processes (withdrawals, closures, forks, merges):
# their money is checked through the ledger transfers recorded with them;
# here, the order of their versions. First topic -> the topics after it.
_SEQUENCE_FIRSTS: Final[tuple[bytes, ...]] = tuple(
    first.encode() for first, _ in VERSIONED_AGGREGATES
)
_SEQUENCE_LATERS: Final[tuple[bytes, ...]] = tuple(
    topic.encode() for _, later in VERSIONED_AGGREGATES for topic in later
)
_FIGURES: Final = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")
# Indexes into an account's or a derivation's figures (as in `Totals`).
_DEBITS_PENDING, _DEBITS_POSTED, _CREDITS_PENDING, _CREDITS_POSTED = 0, 1, 2, 3


class FindingKind(StrEnum):
    HASH_CHAIN = "hash_chain"
    POSITION_ORDER = "position_order"
    VERSION_SEQUENCE = "version_sequence"
    UNKNOWN_EVENT = "unknown_event"
    UNBALANCED_TRANSFER = "unbalanced_transfer"
    INVALID_POSTING = "invalid_posting"
    TRANSFER_LIFECYCLE = "transfer_lifecycle"
    UNBALANCED_TOTALS = "unbalanced_totals"
    ACCOUNT_TOTALS = "account_totals"
    VIEW_MISMATCH = "view_mismatch"


@dataclass(frozen=True, slots=True)
class Finding:
    kind: FindingKind
    # The log position of the bad event; None for findings about totals at the
    # end of the log or about views, which no single event is to blame for.
    position: int | None
    message: str
    # Supporting lines, such as a view's differing rows.
    details: tuple[str, ...] = ()
    # What the finding is about, in words that stay the same from one verify
    # to the next ("event at position 7", "transfer <id>", "account <id>",
    # "currency USD", "view balances"): a reconciliation recognises a fault
    # it has seen before by it.
    subject: str | None = None
    # The money involved, in minor units of `currency` (0 when none is).
    amount_minor: int = 0
    currency: str | None = None


class ViewStatus(StrEnum):
    EQUAL = "equal"
    DIFFERENT = "different"
    # No tracking row: the view was never built in this database.
    NOT_BUILT = "not built"
    # Built by another version of the view's code: the service rebuilds it at start.
    OTHER_VERSION = "other version"


@dataclass(frozen=True, slots=True)
class ViewCheck:
    name: str
    status: ViewStatus
    # The position the live view had reached in the verify's snapshot.
    position: int
    # Table -> sha256 of its rows (see projections.digest).
    live_digests: dict[str, str] = field(default_factory=dict)
    replayed_digests: dict[str, str] = field(default_factory=dict)


@dataclass
class VerifyReport:
    events_checked: int = 0
    head_position: int = 0
    log_elapsed_s: float = 0.0
    elapsed_s: float = 0.0
    findings: list[Finding] = field(default_factory=list)
    # Findings past FINDINGS_MAX, counted but not kept.
    findings_dropped: int = 0
    views: list[ViewCheck] = field(default_factory=list)
    # Currency -> the debits and the credits of every posted movement, as the
    # transfers' postings add them up (minor units); filled at the end of the log.
    posted_debits_minor: dict[str, int] = field(default_factory=dict)
    posted_credits_minor: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.findings and not self.findings_dropped

    @property
    def first_bad_event(self) -> Finding | None:
        """The finding about the earliest event in the log, if any names one."""
        positioned = [finding for finding in self.findings if finding.position is not None]
        return min(positioned, key=lambda finding: finding.position or 0, default=None)

    @property
    def events_per_s(self) -> float:
        return self.events_checked / self.log_elapsed_s if self.log_elapsed_s > 0 else 0.0

    def add(self, finding: Finding) -> None:
        if len(self.findings) < FINDINGS_MAX:
            self.findings.append(finding)
        else:
            self.findings_dropped += 1


def verify_ledger(
    database_url: str, *, check_views: bool = True, progress: Progress | None = None
) -> VerifyReport:
    started = time.perf_counter()
    report = VerifyReport()
    _check_log(database_url, report, progress)
    report.log_elapsed_s = time.perf_counter() - started
    if check_views:
        _check_views(database_url, report, progress)
    report.elapsed_s = time.perf_counter() - started
    return report


# The log -----------------------------------------------------------------------


def _check_log(database_url: str, report: VerifyReport, progress: Progress | None) -> None:
    check = _LogCheck(report)
    with (
        _snapshot_connection(database_url) as reader,
        _snapshot_connection(database_url) as looker,
    ):
        exported = reader.execute("SELECT pg_export_snapshot()").fetchone()
        head = reader.execute(_SELECT_HEAD).fetchone()
        assert exported is not None and head is not None
        report.head_position = int(head[0])
        # The lookups see exactly the log the pages do.
        looker.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(str(exported[0]))))
        with _PrefetchedPages(reader) as pages, looker.cursor(binary=True) as lookups:
            for rows in pages:
                check.check_page(rows)
                check.check_earlier_versions(lookups, final=False)
                report.events_checked += len(rows)
                if progress is not None:
                    progress("log", rows[-1][0], report.head_position)
            check.check_earlier_versions(lookups, final=True)
    check.finish()


def _snapshot_connection(database_url: str) -> psycopg.Connection[Any]:
    """A read-only REPEATABLE READ connection that loads ids and text as raw
    bytes: what the hash covers, with no UUID or str made per event."""
    connection = psycopg.connect(database_url)
    connection.isolation_level = IsolationLevel.REPEATABLE_READ
    connection.read_only = True
    connection.adapters.register_loader("uuid", ByteaBinaryLoader)
    connection.adapters.register_loader("text", ByteaBinaryLoader)
    return connection


class _PrefetchedPages:
    """Pages of the log read by a thread of its own, a few ahead of the
    checks: the database and the network work while Python hashes."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self._connection = connection
        self._pages: queue.Queue[list[tuple[Any, ...]] | BaseException | None] = queue.Queue(
            maxsize=PREFETCHED_PAGES_MAX
        )
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._read, name="audit-verify-pages", daemon=True)

    def __enter__(self) -> _PrefetchedPages:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopping.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._pages.get(timeout=PREFETCH_WAIT_S)
        self._thread.join()

    def __iter__(self) -> Iterator[list[tuple[Any, ...]]]:
        while True:
            page = self._pages.get()
            if page is None:
                return
            if isinstance(page, BaseException):
                raise page
            yield page

    def _read(self) -> None:
        try:
            after = 0
            with self._connection.cursor(binary=True) as cursor:
                while not self._stopping.is_set():
                    cursor.execute(_SELECT_PAGE, (after, LOG_PAGE_ROWS))
                    rows = cursor.fetchall()
                    if rows:
                        self._put(rows)
                        after = rows[-1][0]
                    if len(rows) < LOG_PAGE_ROWS:
                        break
            self._put(None)
        except BaseException as error:  # noqa: BLE001 - handed to the reading thread
            self._put(error)

    def _put(self, item: list[tuple[Any, ...]] | BaseException | None) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(queue.Full):
                self._pages.put(item, timeout=PREFETCH_WAIT_S)
                return


class _LogCheck:
    """The state the single pass keeps: per account and per open hold only."""

    def __init__(self, report: VerifyReport) -> None:
        self.report = report
        self.previous_hash = GENESIS_HASH
        self.last_position = 0
        # Account id (16 bytes) -> [version, last position, currency, dp, dq, cp, cq]:
        # the figures as its own PostingsApplied events add them up.
        self.accounts: dict[bytes, list[Any]] = {}
        # Account id (text, as postings name it) -> [dp, dq, cp, cq, currency]:
        # the figures as the transfers' postings add them up.
        self.derived: dict[str, list[Any]] = {}
        # Open hold (transfer id, 16 bytes) -> its postings.
        self.holds: dict[bytes, list[dict[str, Any]]] = {}
        # Funded account id (16 bytes) -> its last version seen.
        # Each funded account's or process's last version seen.
        self.sequences: dict[bytes, int] = {}
        # (originator id, version, position) whose earlier versions are asked of the database.
        self.to_look_up: list[tuple[bytes, int, int]] = []
        self._handlers: dict[bytes, Callable[[int, bytes, int, bytes], None]] = {
            _ACCOUNT_OPENED: self._on_opened,
            _ACCOUNT_POSTINGS_APPLIED: self._on_postings_applied,
            _ACCOUNT_STATE_CHANGED: self._on_state_changed,
            _TRANSFER_RECORDED: self._on_recorded,
            _TRANSFER_PENDING_POSTED: self._on_pending_posted,
            _TRANSFER_PENDING_VOIDED: self._on_hold_released,
            _TRANSFER_PENDING_EXPIRED: self._on_hold_released,
            _TRANSFER_REVERSED: self._on_reversed,
            **dict.fromkeys(_SEQUENCE_FIRSTS, self._on_sequence_started),
            **dict.fromkeys(_SEQUENCE_LATERS, self._on_sequence_event),
        }

    def add(
        self,
        kind: FindingKind,
        position: int | None,
        message: str,
        *,
        subject: str | None = None,
        amount_minor: int = 0,
        currency: str | None = None,
    ) -> None:
        if subject is None and position is not None:
            subject = f"event at position {position}"
        self.report.add(
            Finding(
                kind,
                position,
                message,
                subject=subject,
                amount_minor=amount_minor,
                currency=currency,
            )
        )

    def check_page(self, rows: Sequence[tuple[Any, ...]]) -> None:
        sha256 = hashlib.sha256
        handlers = self._handlers
        previous_hash = self.previous_hash
        last_position = self.last_position
        for position, originator, version, topic, state, stored_hash in rows:
            if position <= last_position:
                self.add(
                    FindingKind.POSITION_ORDER,
                    position,
                    f"position {position} follows {last_position}",
                )
            last_position = position
            expected = sha256(
                b"".join(
                    (previous_hash, originator, version.to_bytes(8, "big"), topic, b"\0", state)
                )
            ).digest()
            if expected != stored_hash:
                self.add(
                    FindingKind.HASH_CHAIN,
                    position,
                    f"event at position {position} ({_uuid(originator)} v{version}) does not "
                    "hash to its stored hash from the one before it: it, or the event before "
                    "it, was changed, removed, inserted or moved",
                )
            # The next event must follow from what is stored, whatever this one is.
            previous_hash = stored_hash
            handler = handlers.get(topic)
            if handler is None:
                self.add(
                    FindingKind.UNKNOWN_EVENT,
                    position,
                    f"event at position {position} has an unknown type {topic.decode()!r}",
                )
            else:
                handler(position, originator, version, state)
        self.previous_hash = previous_hash
        self.last_position = last_position

    # One per event type: (position, originator id, version, body).

    def _on_opened(self, position: int, originator: bytes, version: int, state: bytes) -> None:
        if version != 1 or originator in self.accounts:
            self._bad_version(position, originator, version, "1, once")
        if originator not in self.accounts:
            currency = orjson.loads(state)["currency"]
            self.accounts[originator] = [version, position, currency, 0, 0, 0, 0]

    def _on_postings_applied(
        self, position: int, originator: bytes, version: int, state: bytes
    ) -> None:
        account = self._next_account_version(position, originator, version)
        if account is not None:
            data = orjson.loads(state)
            account[3] += data["debits_pending"]
            account[4] += data["debits_posted"]
            account[5] += data["credits_pending"]
            account[6] += data["credits_posted"]

    def _on_state_changed(
        self, position: int, originator: bytes, version: int, state: bytes
    ) -> None:
        self._next_account_version(position, originator, version)

    def _on_recorded(self, position: int, originator: bytes, version: int, state: bytes) -> None:
        if version != 1:
            self._bad_version(position, originator, version, "1")
        data = orjson.loads(state)
        postings = data["postings"]
        pending = data["pending"]
        self._apply_postings(position, originator, postings, label="postings", posted=not pending)
        if pending:
            self.holds[originator] = postings

    def _on_pending_posted(
        self, position: int, originator: bytes, version: int, state: bytes
    ) -> None:
        hold = self._resolve(position, originator, version, "posts")
        postings = orjson.loads(state)["postings"]
        self._apply_postings(position, originator, postings, label="posted postings", posted=True)
        if hold is not None:
            # A partial post releases the whole hold.
            self._release(hold)

    def _on_hold_released(
        self, position: int, originator: bytes, version: int, state: bytes
    ) -> None:
        hold = self._resolve(position, originator, version, "releases")
        if hold is not None:
            self._release(hold)

    def _on_reversed(self, position: int, originator: bytes, version: int, state: bytes) -> None:
        if originator in self.holds:
            self.add(
                FindingKind.TRANSFER_LIFECYCLE,
                position,
                f"event at position {position} reverses transfer {_uuid(originator)}, "
                "which is an open hold",
            )
        # Version 2 (a transfer recorded posted) or 3 (a hold posted): what
        # came before is asked of the database (check_earlier_versions).
        self.to_look_up.append((originator, version, position))

    def _on_sequence_started(
        self, position: int, originator: bytes, version: int, state: bytes
    ) -> None:
        if version != 1 or originator in self.sequences:
            self._bad_version(position, originator, version, "1, once")
        self.sequences.setdefault(originator, version)

    def _on_sequence_event(
        self, position: int, originator: bytes, version: int, state: bytes
    ) -> None:
        last = self.sequences.get(originator)
        if last is None:
            self.add(
                FindingKind.VERSION_SEQUENCE,
                position,
                f"event at position {position} is version {version} of "
                f"{_uuid(originator)}, whose first event never came before it",
            )
            return
        if version != last + 1:
            self._bad_version(position, originator, version, str(last + 1))
        self.sequences[originator] = version

    def _next_account_version(
        self, position: int, originator: bytes, version: int
    ) -> list[Any] | None:
        """The account's figures, after checking this is its next version."""
        account = self.accounts.get(originator)
        if account is None:
            self.add(
                FindingKind.VERSION_SEQUENCE,
                position,
                f"event at position {position} is version {version} of account "
                f"{_uuid(originator)}, which was never opened before it",
            )
            return None
        if version != account[0] + 1:
            self._bad_version(position, originator, version, str(account[0] + 1))
        account[0] = version
        account[1] = position
        return account

    def _resolve(
        self, position: int, originator: bytes, version: int, verb: str
    ) -> list[dict[str, Any]] | None:
        """The hold a posting, void or expiry closes; None if none is open."""
        hold = self.holds.pop(originator, None)
        if hold is None:
            self.add(
                FindingKind.TRANSFER_LIFECYCLE,
                position,
                f"event at position {position} {verb} transfer {_uuid(originator)}, "
                "which is not an open hold",
            )
            self.to_look_up.append((originator, version, position))
        elif version != 2:
            self._bad_version(position, originator, version, "2")
        return hold

    def _apply_postings(
        self,
        position: int,
        originator: bytes,
        postings: list[dict[str, Any]],
        *,
        label: str,
        posted: bool,
    ) -> None:
        """Check that the postings balance per currency and add them to the
        accounts' derived figures (posted or pending)."""
        derived = self.derived
        debit_figure, credit_figure = (
            (_DEBITS_POSTED, _CREDITS_POSTED) if posted else (_DEBITS_PENDING, _CREDITS_PENDING)
        )
        net: dict[str, int] = {}
        for posting in postings:
            amount = posting["amount_minor"]
            currency = posting["currency"]
            side = posting["side"]
            if type(amount) is not int or amount <= 0 or side not in ("debit", "credit"):
                self.add(
                    FindingKind.INVALID_POSTING,
                    position,
                    f"transfer {_uuid(originator)} at position {position} has a posting "
                    f"{side!r} of {amount!r}: amounts are positive integers, sides debit "
                    "or credit",
                    subject=f"transfer {_uuid(originator)}",
                    amount_minor=amount if type(amount) is int else 0,
                    currency=currency if type(currency) is str else None,
                )
                continue
            account_id = posting["account_id"]
            figures = derived.get(account_id)
            if figures is None:
                figures = derived[account_id] = [0, 0, 0, 0, currency]
            elif figures[4] != currency:
                self.add(
                    FindingKind.INVALID_POSTING,
                    position,
                    f"transfer {_uuid(originator)} at position {position} posts "
                    f"{currency} to account {account_id}, which transfers posted "
                    f"{figures[4]} to before",
                    subject=f"transfer {_uuid(originator)}",
                    amount_minor=amount,
                    currency=currency,
                )
            if side == "debit":
                figures[debit_figure] += amount
                net[currency] = net.get(currency, 0) + amount
            else:
                figures[credit_figure] += amount
                net[currency] = net.get(currency, 0) - amount
        for currency, difference in net.items():
            if difference:
                self.add(
                    FindingKind.UNBALANCED_TRANSFER,
                    position,
                    f"transfer {_uuid(originator)} at position {position}: its {label} "
                    f"debit {difference:+d} more than they credit in {currency}",
                    subject=f"transfer {_uuid(originator)}",
                    amount_minor=difference,
                    currency=currency,
                )

    def _release(self, hold: list[dict[str, Any]]) -> None:
        """Take a closed hold's postings back out of the derived pending figures."""
        derived = self.derived
        for posting in hold:
            amount = posting["amount_minor"]
            figures = derived.get(posting["account_id"])
            if figures is None or type(amount) is not int or amount <= 0:
                continue  # found invalid when the hold was recorded
            if posting["side"] == "debit":
                figures[_DEBITS_PENDING] -= amount
            elif posting["side"] == "credit":
                figures[_CREDITS_PENDING] -= amount

    def _bad_version(self, position: int, originator: bytes, version: int, expected: str) -> None:
        self.add(
            FindingKind.VERSION_SEQUENCE,
            position,
            f"event at position {position} is version {version} of {_uuid(originator)}; "
            f"expected version {expected}",
        )

    def check_earlier_versions(self, cursor: psycopg.Cursor[Any], *, final: bool) -> None:
        """Events whose predecessors memory does not hold: versions 1..v-1 of
        their aggregate must all come before them in the log (same snapshot).
        Asked in batches of LOOKUPS_PER_QUERY, and at the end."""
        if not self.to_look_up or (len(self.to_look_up) < LOOKUPS_PER_QUERY and not final):
            return
        wanted = {
            position: (originator, version) for originator, version, position in self.to_look_up
        }
        self.to_look_up = []
        cursor.execute(
            _SELECT_VERSIONS_OF,
            (
                [UUID(bytes=originator) for originator, _ in wanted.values()],
                list(wanted),
                _VERSIONS_LOOKED_UP_MAX,
            ),
        )
        earlier: dict[int, list[int]] = {position: [] for position in wanted}
        for position, other_version, other_position in cursor.fetchall():
            if other_position < position:
                earlier[position].append(other_version)
        for position, versions in sorted(earlier.items()):
            originator, version = wanted[position]
            # Versions are unique per aggregate (the primary key), so this is
            # exactly "versions 1..v-1 all come before it".
            if not len(versions) == max(versions, default=0) == version - 1:
                self.add(
                    FindingKind.VERSION_SEQUENCE,
                    position,
                    f"event at position {position} is version {version} of "
                    f"{_uuid(originator)}, but the versions before it in the log are "
                    f"{sorted(versions) or 'none'}",
                )

    def finish(self) -> None:
        """The checks over totals, once the whole log has been read."""
        derived = self.derived
        # Over every posted movement and open hold, as the transfers say (each
        # account's postings are in one currency: a posting in another is found).
        transfers_by_currency: dict[str, list[int]] = {}
        for *figures, currency in derived.values():
            sums = transfers_by_currency.setdefault(currency, [0, 0, 0, 0])
            for index, value in enumerate(figures):
                sums[index] += value
        # And as the accounts' own events say.
        accounts_by_currency: dict[str, list[int]] = {}
        for originator, account in self.accounts.items():
            _, last_position, currency, *figures = account
            sums = accounts_by_currency.setdefault(currency, [0, 0, 0, 0])
            for index, value in enumerate(figures):
                sums[index] += value
            account_id = str(UUID(bytes=originator))
            expected = derived.pop(account_id, None) or [0, 0, 0, 0, currency]
            if expected[4] != currency:
                self.add(
                    FindingKind.ACCOUNT_TOTALS,
                    None,
                    f"account {account_id} holds {currency}, but transfers post to it in "
                    f"{expected[4]}",
                    subject=f"account {account_id}",
                    amount_minor=max(expected[:4], key=abs),
                    currency=expected[4],
                )
            for index, name in enumerate(_FIGURES):
                if figures[index] != expected[index]:
                    self.add(
                        FindingKind.ACCOUNT_TOTALS,
                        None,
                        f"account {account_id} {name}: its events (to position "
                        f"{last_position}) add up to {figures[index]}, its transfers' "
                        f"postings to {expected[index]}",
                        subject=f"account {account_id}",
                        amount_minor=figures[index] - expected[index],
                        currency=currency,
                    )
        for account_id in sorted(derived):
            *figures, currency = derived[account_id]
            self.add(
                FindingKind.ACCOUNT_TOTALS,
                None,
                f"transfers post to account {account_id}, which was never opened",
                subject=f"account {account_id}",
                amount_minor=max(figures, key=abs),
                currency=currency,
            )
        for source, by_currency in (
            ("the transfers' postings", transfers_by_currency),
            ("the accounts' totals", accounts_by_currency),
        ):
            for currency, sums in sorted(by_currency.items()):
                debits_pending, debits_posted, credits_pending, credits_posted = sums
                if debits_posted != credits_posted or debits_pending != credits_pending:
                    self.add(
                        FindingKind.UNBALANCED_TOTALS,
                        None,
                        f"{currency}: {source} do not balance: posted debits {debits_posted}, "
                        f"credits {credits_posted}; pending debits {debits_pending}, "
                        f"credits {credits_pending}",
                        subject=f"currency {currency}",
                        amount_minor=(debits_posted - credits_posted)
                        or (debits_pending - credits_pending),
                        currency=currency,
                    )
        for currency, sums in transfers_by_currency.items():
            self.report.posted_debits_minor[currency] = sums[_DEBITS_POSTED]
            self.report.posted_credits_minor[currency] = sums[_CREDITS_POSTED]


def _uuid(raw: bytes) -> UUID:
    return UUID(bytes=raw)


# The views ---------------------------------------------------------------------


def check_views(database_url: str, *, progress: Progress | None = None) -> VerifyReport:
    """Only each view against a fresh replay of the log, not the log itself:
    the report's `views`, and a VIEW_MISMATCH finding per differing table."""
    started = time.perf_counter()
    report = VerifyReport()
    _check_views(database_url, report, progress)
    report.elapsed_s = time.perf_counter() - started
    return report


def _check_views(database_url: str, report: VerifyReport, progress: Progress | None) -> None:
    with psycopg.connect(database_url, autocommit=True) as guard:
        # The scratch schemas are shared: one verify at a time.
        guard.execute("SELECT pg_advisory_lock(%s)", (AUDIT_VERIFY_LOCK_KEY,))
        report.views.extend(_check_all_views(database_url, report, progress))
        if all(check.status is not ViewStatus.DIFFERENT for check in report.views):
            # Kept when a view differs, for a look; the next verify replaces them.
            for schema in (VERIFY_SCHEMA, LIVE_COPY_SCHEMA):
                guard.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                )


def _check_all_views(
    database_url: str, report: VerifyReport, progress: Progress | None
) -> list[ViewCheck]:
    """Digest every live view and its tracking position in one snapshot,
    replay the log up to those positions into a scratch schema, and compare.

    The runner moves its views together, so they have mostly reached one
    position: the views at one position are replayed together, in one read
    of the log (`replay_views_into_schema`), rather than each in its own."""
    views = all_views()
    checks: dict[str, ViewCheck] = {}
    with (
        psycopg.connect(database_url) as snapshot,
        psycopg.connect(database_url, autocommit=True) as reader,
    ):
        snapshot.isolation_level = IsolationLevel.REPEATABLE_READ
        tracked = {
            str(name): (int(position), int(version))
            for name, position, version in snapshot.execute(
                "SELECT name, position, version FROM projection_tracking"
            ).fetchall()
        }
        live: dict[str, dict[str, str]] = {}
        by_position: dict[int, list[View]] = {}
        for view in views:
            found = tracked.get(view.name)
            if found is None:
                checks[view.name] = ViewCheck(view.name, ViewStatus.NOT_BUILT, 0)
            elif found[1] != view.version:
                checks[view.name] = ViewCheck(view.name, ViewStatus.OTHER_VERSION, found[0])
            else:
                live[view.name] = view_digest(snapshot, view, LIVE_SCHEMA)
                by_position.setdefault(found[0], []).append(view)
        # The snapshot's transaction stays open (read only so far) while the
        # replays run on connections of their own.
        replayed: dict[str, dict[str, str]] = {}
        for position, replaying in sorted(by_position.items()):
            label = f"view:{','.join(view.name for view in replaying)}"
            replay_views_into_schema(
                database_url,
                replaying,
                VERIFY_SCHEMA,
                until=position,
                progress=None
                if progress is None
                else partial(_view_progress, progress, label, position),
            )
            with reader.transaction():
                for view in replaying:
                    replayed[view.name] = view_digest(reader, view, VERIFY_SCHEMA)
        differing: dict[str, list[str]] = {}
        for position, compared in by_position.items():
            for view in compared:
                tables = [
                    table
                    for table in view.tables
                    if live[view.name][table] != replayed[view.name][table]
                ]
                if tables:
                    differing[view.name] = tables
                status = ViewStatus.DIFFERENT if tables else ViewStatus.EQUAL
                checks[view.name] = ViewCheck(
                    view.name, status, position, live[view.name], replayed[view.name]
                )
        if not differing:
            snapshot.rollback()
            return [checks[view.name] for view in views]
        _copy_live_tables(snapshot, [table for tables in differing.values() for table in tables])
        snapshot.commit()
        for name, tables in differing.items():
            for table in tables:
                only_replayed, only_live = differing_rows(
                    reader, table, VERIFY_SCHEMA, LIVE_COPY_SCHEMA, DIFFERING_ROWS_SHOWN
                )
                report.add(
                    Finding(
                        FindingKind.VIEW_MISMATCH,
                        None,
                        f"view {name} table {table} at position {checks[name].position} "
                        f"differs from a fresh replay of the log: {len(only_live)} rows only "
                        f"in the live view, {len(only_replayed)} only in the replay (at most "
                        f"{DIFFERING_ROWS_SHOWN} of each shown)",
                        tuple(
                            [f"live only:   {text}" for text in only_live]
                            + [f"replay only: {text}" for text in only_replayed]
                        ),
                        subject=f"view {name}",
                    )
                )
    return [checks[view.name] for view in views]


def _view_progress(progress: Progress, label: str, position: int, reached: int) -> None:
    progress(label, reached, position)


def _copy_live_tables(snapshot: psycopg.Connection[Any], tables: Sequence[str]) -> None:
    """Copy live tables as the snapshot sees them, so their rows can be
    compared with the replay's after the snapshot's transaction ends."""
    snapshot.execute(
        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(LIVE_COPY_SCHEMA))
    )
    for table in tables:
        copy = sql.Identifier(LIVE_COPY_SCHEMA, table)
        snapshot.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(copy))
        snapshot.execute(
            sql.SQL("CREATE TABLE {} AS SELECT * FROM {}").format(
                copy, sql.Identifier(LIVE_SCHEMA, table)
            )
        )
