"""The integration events view: the public events other systems are told of.

Each stored domain event the catalogue names (projections/integration_catalogue.py)
becomes one row of `view_integration_events`: a stable id, a public type and
version, the log position and time it derives from, the accounts it
concerns, and a payload with amounts as decimal strings. The events API
reads this table, the webhook worker fans it out to subscriptions and the
stream publisher copies it to Redis Streams, all by position.

Being a view, it is rebuilt from the log like the others and can never
disagree with it; an event's id is derived from its source position and
type, so a rebuild gives every event the id it had.

Later events of a process (a withdrawal approved, a hold voided, a fork
completed) do not repeat the accounts they concern: the view keeps those in
`view_integration_subjects` (one row per account, funded account, open hold
and process), remembers them between pages and reads back what it forgot.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple
from uuid import UUID, uuid5

import orjson

from domain.account_guard import AccountGuard
from domain.closure import Closure
from domain.fork import Fork
from domain.merge import Merge
from domain.money import CURRENCY_EXPONENTS, format_amount
from domain.tiers import TIER_CURRENCY
from domain.webhook_endpoint import EndpointDisabling
from domain.withdrawal import Withdrawal
from projections.events import (
    ACCOUNT_OPENED,
    ACCOUNT_STATE_CHANGED,
    CLOSURE_INITIATED,
    FORK_PROPOSED,
    FUNDED_ACTIVATED,
    GUARD_STARTED,
    MERGE_PROPOSED,
    RECONCILIATION_EXCEPTION_RAISED,
    TRANSFER_PENDING_EXPIRED,
    TRANSFER_PENDING_POSTED,
    TRANSFER_PENDING_VOIDED,
    TRANSFER_RECORDED,
    WITHDRAWAL_REQUESTED,
    LoggedEvent,
    plain,
)
from projections.integration_catalogue import EVENT_TYPES
from projections.view import Cursor, copy_rows

NAME: Final[str] = "integration_events"
EVENTS_TABLE: Final[str] = "view_integration_events"
SUBJECTS_TABLE: Final[str] = "view_integration_subjects"
# Subjects remembered between pages; past this memory is dropped and misses
# are read back from the table.
REMEMBERED_SUBJECTS_MAX: Final[int] = 200_000
# uuid5 namespace of integration event ids; never change it, or every id changes.
INTEGRATION_EVENT_NAMESPACE: Final = UUID("b7e4c2d9-1a3f-4e8b-9c6d-5f2a8e1b3d47")
# Subjects that are accounts, by `kind` in their attributes: a user's events
# are those concerning the accounts they own.
ACCOUNT_KIND: Final[str] = "account"
FUNDED_ACCOUNT_KIND: Final[str] = "funded_account"
OWNED_KINDS: Final[tuple[str, ...]] = (ACCOUNT_KIND, FUNDED_ACCOUNT_KIND)


def _topic(event_class: Any, name: str) -> str:
    found = getattr(event_class, name)
    return f"{found.__module__}:{found.__qualname__}"


WITHDRAWAL_APPROVED: Final = _topic(Withdrawal, "Approved")
WITHDRAWAL_REJECTED: Final = _topic(Withdrawal, "Rejected")
WITHDRAWAL_COMPLETED: Final = _topic(Withdrawal, "Completed")
WITHDRAWAL_FAILED: Final = _topic(Withdrawal, "Failed")
CLOSURE_PHASE_ENTERED: Final = _topic(Closure, "PhaseEntered")
CLOSURE_MARKED_STUCK: Final = _topic(Closure, "MarkedStuck")
FORK_COMPLETED: Final = _topic(Fork, "Completed")
FORK_ROLLED_BACK: Final = _topic(Fork, "RolledBack")
MERGE_COMPLETED: Final = _topic(Merge, "Completed")
MERGE_ROLLED_BACK: Final = _topic(Merge, "RolledBack")
GUARD_DRAWDOWN_WARNED: Final = _topic(AccountGuard, "DrawdownWarned")
GUARD_LIQUIDATION_SCHEDULED: Final = _topic(AccountGuard, "LiquidationScheduled")
GUARD_LIQUIDATED: Final = _topic(AccountGuard, "Liquidated")
ENDPOINT_DISABLED: Final = _topic(EndpointDisabling, "Recorded")

# Later events whose subject is the event's own aggregate (`_subject` of its
# originator): read back for a whole page at once.
_ORIGINATOR_SUBJECT_TOPICS: Final[frozenset[str]] = frozenset(
    {
        ACCOUNT_STATE_CHANGED,
        TRANSFER_PENDING_POSTED,
        TRANSFER_PENDING_VOIDED,
        TRANSFER_PENDING_EXPIRED,
        WITHDRAWAL_APPROVED,
        WITHDRAWAL_REJECTED,
        WITHDRAWAL_COMPLETED,
        WITHDRAWAL_FAILED,
        CLOSURE_PHASE_ENTERED,
        CLOSURE_MARKED_STUCK,
        FORK_COMPLETED,
        FORK_ROLLED_BACK,
        MERGE_COMPLETED,
        MERGE_ROLLED_BACK,
        GUARD_DRAWDOWN_WARNED,
        GUARD_LIQUIDATION_SCHEDULED,
        GUARD_LIQUIDATED,
    }
)

_EVENT_COLUMNS: Final = (
    "event_id",
    "position",
    "ordinal",
    "type",
    "version",
    "occurred_at",
    "account_ids",
    "payload",
)
_SUBJECT_COLUMNS: Final = ("subject_id", "account_ids", "owner_ids", "attributes")


# Posting account ids parsed, remembered by their text: a replay parses the
# same few accounts' ids hundreds of thousands of times, and UUID(text) is
# slow Python. Past this many the memory starts again.
PARSED_ACCOUNT_IDS_MAX: Final[int] = 100_000
# The sha1 state after the namespace: every event id's hash starts from it.
_EVENT_ID_HASH: Final = hashlib.sha1(INTEGRATION_EVENT_NAMESPACE.bytes, usedforsecurity=False)


def integration_event_id(position: int, ordinal: int, event_type: str) -> UUID:
    return uuid5(INTEGRATION_EVENT_NAMESPACE, f"{position}/{ordinal}/{event_type}")


def integration_event_id_text(position: int, ordinal: int, event_type: str) -> str:
    """`integration_event_id` as text, made without a UUID object (the
    view writes one per event; building UUIDs was much of a rebuild's time):
    uuid5's sha1 with its version and variant bits, in the canonical form."""
    hashed = _EVENT_ID_HASH.copy()
    hashed.update(f"{position}/{ordinal}/{event_type}".encode())
    raw = bytearray(hashed.digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def uuid_array_text(values: Sequence[UUID]) -> str:
    """A uuid[] as PostgreSQL's array text (what COPY reads): cheaper to
    write than a list, which psycopg dumps element by element in Python."""
    return "{" + ",".join([str(value) for value in values]) + "}"


@dataclass(frozen=True, slots=True)
class Subject:
    """What later events of an account, hold or process do not repeat."""

    account_ids: tuple[UUID, ...]
    owner_ids: tuple[str, ...]
    attributes: dict[str, Any] = field(default_factory=dict)

    def row(self, subject_id: UUID) -> tuple[Any, ...]:
        return (
            subject_id,
            list(self.account_ids),
            list(self.owner_ids),
            orjson.dumps(self.attributes).decode(),
        )


class Derived(NamedTuple):
    type: str
    account_ids: tuple[UUID, ...]
    payload: dict[str, Any]
    # `account_ids` as array text (uuid_array_text), when the handler has it.
    account_ids_text: str | None = None


def _unique(values: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(values))


def amount_text(minor: int, currency: str) -> str:
    """`format_amount`, several times faster for what most amounts are (not
    negative, a currency with decimals): a replay formats every posting's."""
    exponent = CURRENCY_EXPONENTS.get(currency) if type(currency) is str else None
    if not exponent or type(minor) is not int or minor < 0:
        # Its own way, and its refusal of an unknown currency.
        return format_amount(minor, currency)
    digits = str(minor).rjust(exponent + 1, "0")
    return f"{digits[:-exponent]}.{digits[-exponent:]}"


def _postings(postings: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    return [
        {
            "account_id": posting["account_id"],
            "side": posting["side"],
            "amount": amount_text(posting["amount_minor"], posting["currency"]),
            "currency": posting["currency"],
        }
        for posting in postings
    ]


def _tier_amount(minor: int | None) -> str | None:
    return None if minor is None else amount_text(minor, TIER_CURRENCY)


@dataclass
class IntegrationPage:
    events: list[tuple[Any, ...]]
    # Subjects whose rows this page replaces or removes; then the new rows.
    replaced: list[UUID]
    subjects: list[tuple[Any, ...]]

    def write(self, cursor: Cursor) -> None:
        if self.replaced:
            cursor.execute(
                f"DELETE FROM {SUBJECTS_TABLE} WHERE subject_id = ANY(%s)",  # noqa: S608
                (self.replaced,),
            )
        copy_rows(cursor, SUBJECTS_TABLE, _SUBJECT_COLUMNS, self.subjects)
        copy_rows(cursor, EVENTS_TABLE, _EVENT_COLUMNS, self.events)


class IntegrationEventsView:
    name = NAME
    version = 1
    tables: tuple[str, ...] = (EVENTS_TABLE, SUBJECTS_TABLE)

    def __init__(self) -> None:
        self._subjects: dict[UUID, Subject] = {}
        self._complete = False
        self._cursor: Cursor | None = None
        # This page's changed subjects (None: removed) and those it made.
        self._dirty: dict[UUID, Subject | None] = {}
        self._made: set[UUID] = set()
        # Posting account id text -> (the id, its canonical text).
        self._account_ids: dict[str, tuple[UUID, str]] = {}
        self._handlers: dict[str, Callable[[dict[str, Any], LoggedEvent], list[Derived]]] = {
            ACCOUNT_OPENED: self._account_opened,
            ACCOUNT_STATE_CHANGED: self._account_state_changed,
            FUNDED_ACTIVATED: self._funded_activated,
            TRANSFER_RECORDED: self._transfer_recorded,
            TRANSFER_PENDING_POSTED: self._hold_resolved,
            TRANSFER_PENDING_VOIDED: self._hold_resolved,
            TRANSFER_PENDING_EXPIRED: self._hold_resolved,
            WITHDRAWAL_REQUESTED: self._withdrawal_requested,
            WITHDRAWAL_APPROVED: self._withdrawal_later,
            WITHDRAWAL_REJECTED: self._withdrawal_later,
            WITHDRAWAL_COMPLETED: self._withdrawal_later,
            WITHDRAWAL_FAILED: self._withdrawal_later,
            CLOSURE_INITIATED: self._closure_initiated,
            CLOSURE_PHASE_ENTERED: self._closure_later,
            CLOSURE_MARKED_STUCK: self._closure_later,
            FORK_PROPOSED: self._fork_proposed,
            FORK_COMPLETED: self._fork_later,
            FORK_ROLLED_BACK: self._fork_later,
            MERGE_PROPOSED: self._merge_proposed,
            MERGE_COMPLETED: self._merge_later,
            MERGE_ROLLED_BACK: self._merge_later,
            RECONCILIATION_EXCEPTION_RAISED: self._exception_raised,
            GUARD_STARTED: self._guard_started,
            GUARD_DRAWDOWN_WARNED: self._guard_later,
            GUARD_LIQUIDATION_SCHEDULED: self._guard_later,
            GUARD_LIQUIDATED: self._guard_later,
            ENDPOINT_DISABLED: self._endpoint_disabled,
        }

    # The View protocol -----------------------------------------------------------

    def create_tables(self, cursor: Cursor) -> None:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {EVENTS_TABLE} ("
            " event_id uuid NOT NULL, position bigint NOT NULL, ordinal smallint NOT NULL,"
            " type text NOT NULL, version integer NOT NULL, occurred_at timestamptz NOT NULL,"
            " account_ids uuid[] NOT NULL, payload jsonb NOT NULL,"
            " PRIMARY KEY (position, ordinal))"
        )
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {SUBJECTS_TABLE} ("
            " subject_id uuid PRIMARY KEY, account_ids uuid[] NOT NULL,"
            " owner_ids text[] NOT NULL, attributes jsonb NOT NULL)"
        )

    def create_indexes(self, cursor: Cursor) -> None:
        cursor.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS view_integration_events_id_idx"
            f" ON {EVENTS_TABLE} (event_id)"
        )
        cursor.execute(
            "CREATE INDEX IF NOT EXISTS view_integration_events_accounts_idx"
            f" ON {EVENTS_TABLE} USING gin (account_ids)"
        )
        cursor.execute(
            "CREATE INDEX IF NOT EXISTS view_integration_subjects_owners_idx"
            f" ON {SUBJECTS_TABLE} USING gin (owner_ids)"
        )
        cursor.execute(
            "CREATE INDEX IF NOT EXISTS view_integration_events_type_idx"
            f" ON {EVENTS_TABLE} (type, position)"
        )

    def forget(self, *, starts_empty: bool) -> None:
        self._subjects = {}
        self._complete = starts_empty

    def digest_order(self, table: str) -> str:
        return "position, ordinal" if table == EVENTS_TABLE else "subject_id"

    def prepare(self, cursor: Cursor | None, events: Sequence[LoggedEvent]) -> IntegrationPage:
        if cursor is not None and len(self._subjects) > REMEMBERED_SUBJECTS_MAX:
            self.forget(starts_empty=False)
        if cursor is None and not self._complete:
            raise ValueError("only a view that replays from empty prepares without a cursor")
        self._cursor = cursor
        self._dirty = {}
        self._made = set()
        if cursor is not None and not self._complete:
            self._read_back(cursor, events)
        rows: list[tuple[Any, ...]] = []
        for event in events:
            handler = self._handlers.get(event.topic)
            if handler is None:
                continue
            for ordinal, derived in enumerate(handler(event.data(), event)):
                rows.append(_event_row(event, ordinal, derived))
        self._cursor = None
        return IntegrationPage(
            events=rows,
            replaced=[key for key in self._dirty if key not in self._made],
            subjects=[
                subject.row(key) for key, subject in self._dirty.items() if subject is not None
            ],
        )

    # Memory ----------------------------------------------------------------------

    def _remember(self, subject_id: UUID, subject: Subject) -> None:
        if subject_id not in self._subjects and subject_id not in self._dirty:
            self._made.add(subject_id)
        self._subjects[subject_id] = subject
        self._dirty[subject_id] = subject

    def _drop(self, subject_id: UUID) -> None:
        self._subjects.pop(subject_id, None)
        self._dirty[subject_id] = None

    def _read_back(self, cursor: Cursor, events: Sequence[LoggedEvent]) -> None:
        """The subjects of the page's later events that memory lacks, in one
        query (the live runner, a reconciliation's replica: a hold resolved
        is otherwise a query of its own). The table is as the page found it
        either way: the page is written after it is worked out."""
        missing = list(
            {
                event.originator_id: None
                for event in events
                if event.topic in _ORIGINATOR_SUBJECT_TOPICS
                and event.originator_id not in self._subjects
            }
        )
        if not missing:
            return
        cursor.execute(
            f"SELECT subject_id, account_ids, owner_ids, attributes FROM {SUBJECTS_TABLE}"  # noqa: S608
            " WHERE subject_id = ANY(%s)",
            (missing,),
        )
        for subject_id, account_ids, owner_ids, attributes in cursor.fetchall():
            self._subjects[subject_id] = Subject(tuple(account_ids), tuple(owner_ids), attributes)

    def _subject(self, subject_id: UUID) -> Subject:
        found = self._subjects.get(subject_id)
        if found is not None:
            return found
        if not self._complete and self._cursor is not None:
            self._cursor.execute(
                f"SELECT account_ids, owner_ids, attributes FROM {SUBJECTS_TABLE}"  # noqa: S608
                " WHERE subject_id = %s",
                (subject_id,),
            )
            row = self._cursor.fetchone()
            if row is not None:
                found = Subject(tuple(row[0]), tuple(row[1]), row[2])
                self._subjects[subject_id] = found
                return found
        raise LookupError(f"{NAME}: no subject {subject_id} (an event before its first?)")

    def _account_id(self, text: str) -> tuple[UUID, str]:
        found = self._account_ids.get(text)
        if found is None:
            if len(self._account_ids) >= PARSED_ACCOUNT_IDS_MAX:
                self._account_ids = {}
            account_id = UUID(text)
            found = self._account_ids[text] = (account_id, str(account_id))
        return found

    # Accounts and transfers ------------------------------------------------------

    def _account_opened(self, data: dict[str, Any], event: LoggedEvent) -> list[Derived]:
        account_id = event.originator_id
        owner = data["owner_id"]
        self._remember(account_id, Subject((account_id,), (owner,), {"kind": ACCOUNT_KIND}))
        payload = {
            "account_id": str(account_id),
            "owner_id": owner,
            "currency": data["currency"],
            "kind": data["kind"],
            "metadata": data["metadata"],
        }
        return [Derived("account.created", (account_id,), payload)]

    def _account_state_changed(self, data: dict[str, Any], event: LoggedEvent) -> list[Derived]:
        if data["to_state"] != "closed":
            return []
        account_id = event.originator_id
        owners = self._subject(account_id).owner_ids
        payload = {
            "account_id": str(account_id),
            "owner_id": owners[0] if owners else None,
            "reason": data["reason"],
        }
        return [Derived("account.closed", (account_id,), payload)]

    def _funded_activated(self, data: dict[str, Any], event: LoggedEvent) -> list[Derived]:
        accounts = (event.originator_id, UUID(data["ledger_account_id"]))
        subject = Subject(accounts, (data["owner_id"],), {"kind": FUNDED_ACCOUNT_KIND})
        self._remember(event.originator_id, subject)
        return []

    def _transfer_recorded(self, data: dict[str, Any], event: LoggedEvent) -> list[Derived]:
        postings = data["postings"]
        # Not the owners: the accounts may be opened later in the same write
        # (the writer records a batch's transfers first); readers find a
        # user's events through the accounts (integration_event_reads).
        # Unique by canonical text (one text per id), in the postings' order.
        unique: dict[str, UUID] = {}
        for posting in postings:
            account_id, text = self._account_id(posting["account_id"])
            unique.setdefault(text, account_id)
        accounts = tuple(unique.values())
        accounts_text = "{" + ",".join(unique) + "}"
        payload: dict[str, Any] = {"transfer_id": str(event.originator_id)}
        if data["reverses_transfer_id"] is not None:
            event_type = "transfer.reversed"
            payload["reverses_transfer_id"] = data["reverses_transfer_id"]
        elif data["pending"]:
            event_type = "hold.created"
            self._remember(event.originator_id, Subject(accounts, (), {"postings": postings}))
        else:
            event_type = "transfer.posted"
        payload["postings"] = _postings(postings)
        if event_type == "hold.created":
            payload["expires_at"] = plain(data["expires_at"])
        payload["metadata"] = data["metadata"]
        return [Derived(event_type, accounts, payload, accounts_text)]

    def _hold_resolved(self, data: dict[str, Any], event: LoggedEvent) -> list[Derived]:
        hold = self._subject(event.originator_id)
        self._drop(event.originator_id)
        if event.topic == TRANSFER_PENDING_POSTED:
            event_type, postings = "hold.posted", data["postings"]
        else:
            expired = event.topic == TRANSFER_PENDING_EXPIRED
            event_type = "hold.expired" if expired else "hold.voided"
            postings = hold.attributes["postings"]
        payload = {"transfer_id": str(event.originator_id), "postings": _postings(postings)}
        return [Derived(event_type, hold.account_ids, payload)]

    # Withdrawals and closures ----------------------------------------------------

    def _withdrawal_requested(self, data: dict[str, Any], event: LoggedEvent) -> list[Derived]:
        accounts = (UUID(data["funded_account_id"]), UUID(data["ledger_account_id"]))
        attributes = {
            "funded_account_id": data["funded_account_id"],
            "amount_minor": data["amount_minor"],
            "currency": data["currency"],
        }
        subject = Subject(accounts, (data["owner_id"],), attributes)
        self._remember(event.originator_id, subject)
        payload = self._withdrawal_payload(event.originator_id, subject)
        payload["approval_required"] = data["approval_required"]
        payload["hold_transfer_id"] = data["hold_transfer_id"]
        return [Derived("withdrawal.requested", accounts, payload)]

    @staticmethod
    def _withdrawal_payload(withdrawal_id: UUID, subject: Subject) -> dict[str, Any]:
        attributes = subject.attributes
        return {
            "withdrawal_id": str(withdrawal_id),
            "funded_account_id": attributes["funded_account_id"],
            "amount": amount_text(attributes["amount_minor"], attributes["currency"]),
            "currency": attributes["currency"],
        }

    def _withdrawal_later(self, data: dict[str, Any], event: LoggedEvent) -> list[Derived]:
        subject = self._subject(event.originator_id)
        payload = self._withdrawal_payload(event.originator_id, subject)
        if event.topic == WITHDRAWAL_APPROVED:
            event_type = "withdrawal.approved"
            payload["automatic"] = data["automatic"]
        elif event.topic == WITHDRAWAL_REJECTED:
            event_type = "withdrawal.rejected"
            payload["reason"] = data["reason"]
        elif event.topic == WITHDRAWAL_COMPLETED:
            event_type = "withdrawal.paid"
            payload["payout_id"] = data["payout_id"]
        else:
            event_type = "withdrawal.failed"
            payload["code"] = data["code"]
            payload["message"] = data["message"]
        return [Derived(event_type, subject.account_ids, payload)]

    def _closure_initiated(self, data: dict[str, Any], event: LoggedEvent) -> list[Derived]:
        accounts = (UUID(data["funded_account_id"]), UUID(data["ledger_account_id"]))
        attributes = {"funded_account_id": data["funded_account_id"]}
        self._remember(event.originator_id, Subject(accounts, (data["owner_id"],), attributes))
        return []

    def _closure_later(self, data: dict[str, Any], event: LoggedEvent) -> list[Derived]:
        subject = self._subject(event.originator_id)
        payload: dict[str, Any] = {
            "closure_id": str(event.originator_id),
            "funded_account_id": subject.attributes["funded_account_id"],
        }
        if event.topic == CLOSURE_PHASE_ENTERED:
            event_type = "closure.phase_changed"
            payload["phase"] = data["phase"]
        else:
            event_type = "closure.stuck"
            payload["reason"] = data["reason"]
        return [Derived(event_type, subject.account_ids, payload)]

    # Forks and merges ------------------------------------------------------------

    def _fork_proposed(self, data: dict[str, Any], event: LoggedEvent) -> list[Derived]:
        parent = self._subject(UUID(data["parent_id"]))
        attributes = {
            "parent_id": data["parent_id"],
            "child_tier": data["child_tier"],
            "amount_minor": data["amount_minor"],
        }
        self._remember(
            event.originator_id, Subject(parent.account_ids, parent.owner_ids, attributes)
        )
        return []

    def _fork_later(self, data: dict[str, Any], event: LoggedEvent) -> list[Derived]:
        subject = self._subject(event.originator_id)
        attributes = subject.attributes
        payload: dict[str, Any] = {
            "fork_id": str(event.originator_id),
            "parent_id": attributes["parent_id"],
        }
        accounts = subject.account_ids
        if event.topic == FORK_COMPLETED:
            event_type = "fork.executed"
            accounts = _unique([*accounts, UUID(data["child_id"])])
            payload |= {
                "child_id": data["child_id"],
                "child_tier": attributes["child_tier"],
                "amount": _tier_amount(attributes["amount_minor"]),
                "currency": TIER_CURRENCY,
            }
        else:
            event_type = "fork.rolled_back"
            payload["reason"] = data["reason"]
        return [Derived(event_type, accounts, payload)]

    def _merge_proposed(self, data: dict[str, Any], event: LoggedEvent) -> list[Derived]:
        source = self._subject(UUID(data["source_id"]))
        attributes = {"source_id": data["source_id"]}
        self._remember(
            event.originator_id, Subject(source.account_ids, source.owner_ids, attributes)
        )
        return []

    def _merge_later(self, data: dict[str, Any], event: LoggedEvent) -> list[Derived]:
        subject = self._subject(event.originator_id)
        payload: dict[str, Any] = {
            "merge_id": str(event.originator_id),
            "source_id": subject.attributes["source_id"],
        }
        accounts = subject.account_ids
        if event.topic == MERGE_COMPLETED:
            event_type = "merge.executed"
            accounts = _unique([*accounts, UUID(data["target_id"])])
            payload |= {
                "target_id": data["target_id"],
                "amount": _tier_amount(data["moved_minor"]),
                "currency": TIER_CURRENCY,
            }
        else:
            event_type = "merge.rolled_back"
            payload["reason"] = data["reason"]
        return [Derived(event_type, accounts, payload)]

    # Reconciliation, guards, webhooks --------------------------------------------

    def _exception_raised(self, data: dict[str, Any], event: LoggedEvent) -> list[Derived]:
        currency = data["currency"]
        payload = {
            "run_id": str(event.originator_id),
            "exception_id": data["exception_id"],
            "check": data["check"],
            "kind": data["kind"],
            "severity": data["severity"],
            "subject": data["subject"],
            "message": data["message"],
            "amount": None if currency is None else amount_text(data["amount_minor"], currency),
            "currency": currency,
        }
        # For operators only: no account, so no user sees it.
        return [Derived("reconciliation.exception_raised", (), payload)]

    def _guard_started(self, data: dict[str, Any], event: LoggedEvent) -> list[Derived]:
        funded = self._subject(UUID(data["funded_account_id"]))
        attributes = {"funded_account_id": data["funded_account_id"]}
        self._remember(
            event.originator_id, Subject(funded.account_ids, funded.owner_ids, attributes)
        )
        return []

    def _guard_later(self, data: dict[str, Any], event: LoggedEvent) -> list[Derived]:
        subject = self._subject(event.originator_id)
        payload: dict[str, Any] = {
            "funded_account_id": subject.attributes["funded_account_id"],
            "equity": _tier_amount(data["equity_minor"]),
        }
        if event.topic == GUARD_LIQUIDATED:
            event_type = "guard.liquidated"
            payload |= {
                "currency": TIER_CURRENCY,
                "closed": data["closed"],
                "failed": data["failed"],
            }
        else:
            payload |= {
                "peak_equity": _tier_amount(data["peak_equity_minor"]),
                "drawdown": data["drawdown"],
                "minimum_equity": _tier_amount(data["minimum_equity_minor"]),
                "currency": TIER_CURRENCY,
            }
            if event.topic == GUARD_DRAWDOWN_WARNED:
                event_type = "guard.drawdown_warned"
            else:
                event_type = "guard.liquidation_warned"
                payload["positions"] = data["positions"]
                payload["due_at"] = plain(data["due_at"])
        return [Derived(event_type, subject.account_ids, payload)]

    def _endpoint_disabled(self, data: dict[str, Any], event: LoggedEvent) -> list[Derived]:
        payload = {
            "endpoint_id": data["endpoint_id"],
            "reason": data["reason"],
            "failed_attempts": data["failed_attempts"],
        }
        return [Derived("webhook_endpoint.disabled", (), payload)]


def _event_row(event: LoggedEvent, ordinal: int, derived: Derived) -> tuple[Any, ...]:
    # The ids as text, which COPY writes as they are (the same values).
    return (
        integration_event_id_text(event.position, ordinal, derived.type),
        event.position,
        ordinal,
        derived.type,
        EVENT_TYPES[derived.type].version,
        event.recorded_at,
        derived.account_ids_text or uuid_array_text(derived.account_ids),
        orjson.dumps(derived.payload).decode(),
    )
