"""The hash chain and the money, checked in one pass over the stored log in
log order, for `ledger audit verify`:

- the hash chain and the signed checkpoints (tamper_checks.py): each event's
  link is recomputed from the stored link before it (chain version 1 or 2),
  and the log is compared with every checkpoint signed by a trusted key, so a
  changed byte, an event forged with the chain recomputed, a deleted,
  inserted or moved event, a moved time or a cut tail are found, and the first
  affected event is named with the checkpoint that proves it;
- positions strictly increase, and every aggregate's versions run 1, 2, 3...
  in log order;
- money: every transfer's postings balance per currency (and so do the
  postings a pending transfer was posted with), debits equal credits per
  currency over every posted movement and every open hold, and each account's
  four totals (the sum of its `PostingsApplied` deltas) equal what its
  transfers' postings add up to: posted from transfers recorded posted and
  holds posted, pending from the holds still open at the end.

Memory stays flat in the length of the log: it holds the accounts' figures
and the open holds' postings, never the events nor anything per closed
transfer. A transfer's later events are matched to its earlier ones by the
open-holds memory, or (reversals) by one indexed query per page. The per-event
work is one sha256 and, for events that move money, one orjson decode; a
checkpoint's events are kept until its range ends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import orjson
import psycopg
from psycopg import sql

from interface.adapters.audit_keys import PublicKeys
from interface.audit.checkpoints import CheckpointCheck, CheckpointReport
from interface.audit.report import Finding, FindingKind, Progress, VerifyReport
from interface.audit.stored_events import (
    PrefetchedPages,
    earlier_versions,
    snapshot_connection,
)
from interface.audit.tamper_checks import add_tamper_findings, tamper_check
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
from projections.runner import log_head

# Events whose earlier versions are asked of the database in one query.
LOOKUPS_PER_QUERY: Final[int] = 10_000

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


def check_log(
    database_url: str,
    report: VerifyReport,
    progress: Progress | None,
    *,
    public_keys: PublicKeys | None = None,
    checkpoint_directory: Path | None = None,
    read: Callable[[LogCheck], None] | None = None,
) -> None:
    """The whole log, in one pass in one snapshot; what is wrong goes to
    `report`. Against the checkpoints only with `public_keys` to trust.
    `read`: called with the pass's state once the whole log is read, before
    the totals are checked (the reconciliation keeps it to go on from)."""
    tamper_report = CheckpointReport()
    with (
        snapshot_connection(database_url) as reader,
        snapshot_connection(database_url) as looker,
    ):
        exported = reader.execute("SELECT pg_export_snapshot()").fetchone()
        assert exported is not None
        with reader.cursor() as cursor:
            report.head_position = log_head(cursor)
        # Read before the pages' thread takes the connection over.
        check = LogCheck(
            report, tamper_check(reader, tamper_report, public_keys, checkpoint_directory)
        )
        # The lookups see exactly the log the pages do.
        looker.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(str(exported[0]))))
        with PrefetchedPages(reader) as pages, looker.cursor(binary=True) as lookups:
            for rows in pages:
                check.check_page(rows)
                check.check_earlier_versions(lookups, final=False)
                report.events_checked += len(rows)
                if progress is not None:
                    progress("log", rows[-1][0], report.head_position)
            check.check_earlier_versions(lookups, final=True)
    if read is not None:
        read(check)
    check.finish()
    add_tamper_findings(tamper_report, report)


class LogCheck:
    """The state the single pass keeps: per account and per open hold only."""

    def __init__(self, report: VerifyReport, tamper: CheckpointCheck) -> None:
        self.report = report
        # The chain and the checkpoints (tamper_checks.py).
        self.tamper = tamper
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
        self.tamper.check_page(rows)
        handlers = self._handlers
        last_position = self.last_position
        for position, originator, version, topic, state, _link, _recorded in rows:
            if position <= last_position:
                self.add(
                    FindingKind.POSITION_ORDER,
                    position,
                    f"position {position} follows {last_position}",
                )
            last_position = position
            handler = handlers.get(topic)
            if handler is None:
                self.add(
                    FindingKind.UNKNOWN_EVENT,
                    position,
                    f"event at position {position} has an unknown type {topic.decode()!r}",
                )
            else:
                try:
                    handler(position, originator, version, state)
                except (orjson.JSONDecodeError, KeyError, TypeError) as error:
                    # A body changed under its link: the chain or a checkpoint
                    # names the damage; here, that its money cannot be read.
                    self.add(
                        FindingKind.UNREADABLE_EVENT,
                        position,
                        f"event at position {position} has a body that cannot be read "
                        f"as its type: {error!r}",
                    )
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
        for position, versions in sorted(earlier_versions(cursor, wanted).items()):
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
        """The checks over totals, and the checkpoints the log did not reach,
        once the whole log has been read."""
        self.tamper.finish()
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
