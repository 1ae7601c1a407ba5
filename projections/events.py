r"""Events as the projections read them: position, identity, type, body, time.

Projections read the log directly rather than through the library's mapper:
a rebuild reads millions of events, and decoding each body with orjson into
plain dicts (datetimes left as their ISO strings) costs a few microseconds
where reconstructing the library's event objects costs tens.

PostgreSQL's text and jsonb cannot hold U+0000, and the writer accepts it in
strings (owner ids, metadata): the views store every NUL of an event's
strings (keys included) as the six characters `\u0000`, its JSON spelling.
Every view reads events through `LoggedEvent.data` and the set-based replay
through `NUL_SAFE_BODY_SQL`, so a live view, a rebuild and an audit's
replay store the same text. The spelling is one way: a string that held
those six characters already reads the same (the edge refuses NUL anyway).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Final, NamedTuple
from uuid import UUID

import orjson

from domain.account import Account
from domain.account_guard import AccountGuard
from domain.closure import Closure
from domain.fork import Fork
from domain.funded_account import FundedAccount
from domain.merge import Merge
from domain.reconciliation import ReconciliationRun
from domain.transfer import Transfer
from domain.withdrawal import Withdrawal


def _topic(event_class: type) -> str:
    return f"{event_class.__module__}:{event_class.__qualname__}"


def _funded_topic(name: str) -> str:
    # The @event decorator makes these classes, which mypy cannot see; a
    # misspelt name still fails here, at import.
    return _topic(getattr(FundedAccount, name))


def _withdrawal_topic(name: str) -> str:
    return _topic(getattr(Withdrawal, name))


ACCOUNT_OPENED: Final[str] = _topic(Account.Opened)  # type: ignore[attr-defined]
ACCOUNT_POSTINGS_APPLIED: Final[str] = _topic(Account.PostingsApplied)  # type: ignore[attr-defined]
ACCOUNT_STATE_CHANGED: Final[str] = _topic(Account.StateChanged)  # type: ignore[attr-defined]
TRANSFER_RECORDED: Final[str] = _topic(Transfer.Recorded)
TRANSFER_PENDING_POSTED: Final[str] = _topic(Transfer.PendingPosted)  # type: ignore[attr-defined]
TRANSFER_PENDING_VOIDED: Final[str] = _topic(Transfer.PendingVoided)  # type: ignore[attr-defined]
TRANSFER_PENDING_EXPIRED: Final[str] = _topic(Transfer.PendingExpired)  # type: ignore[attr-defined]
TRANSFER_REVERSED: Final[str] = _topic(Transfer.Reversed)  # type: ignore[attr-defined]
FUNDED_ACTIVATED: Final[str] = _funded_topic("Activated")
FUNDED_STATE_CHANGED: Final[str] = _funded_topic("StateChanged")
FUNDED_POSITION_OPENED: Final[str] = _funded_topic("PositionOpened")
FUNDED_POSITION_CLOSED: Final[str] = _funded_topic("PositionClosed")
FUNDED_MARKED_TO_MARKET: Final[str] = _funded_topic("MarkedToMarket")
FUNDED_WITHDRAWAL_RECORDED: Final[str] = _funded_topic("WithdrawalRecorded")
FUNDED_WITHDRAWAL_RESERVED: Final[str] = _funded_topic("WithdrawalReserved")
FUNDED_WITHDRAWAL_RELEASED: Final[str] = _funded_topic("WithdrawalReleased")
FUNDED_BAND_CHANGED: Final[str] = _funded_topic("BandChanged")
FUNDED_CAPITAL_MOVED_OUT: Final[str] = _funded_topic("CapitalMovedOut")
FUNDED_CAPITAL_MOVED_IN: Final[str] = _funded_topic("CapitalMovedIn")
FUNDED_FORK_ATTEMPTED: Final[str] = _funded_topic("ForkAttempted")
FUNDED_LINKED_TO_PARENT: Final[str] = _funded_topic("LinkedToParent")

# A funded account's events after its `Activated`, in no particular order.
FUNDED_LATER_TOPICS: Final[frozenset[str]] = frozenset(
    {
        FUNDED_STATE_CHANGED,
        FUNDED_POSITION_OPENED,
        FUNDED_POSITION_CLOSED,
        FUNDED_MARKED_TO_MARKET,
        FUNDED_WITHDRAWAL_RECORDED,
        FUNDED_WITHDRAWAL_RESERVED,
        FUNDED_WITHDRAWAL_RELEASED,
        FUNDED_BAND_CHANGED,
        FUNDED_CAPITAL_MOVED_OUT,
        FUNDED_CAPITAL_MOVED_IN,
        FUNDED_FORK_ATTEMPTED,
        FUNDED_LINKED_TO_PARENT,
    }
)

CLOSURE_INITIATED: Final[str] = _topic(Closure.Initiated)  # type: ignore[attr-defined]
# A closure's events after its `Initiated`.
CLOSURE_LATER_TOPICS: Final[frozenset[str]] = frozenset(
    _topic(getattr(Closure, name))
    for name in (
        "PhaseEntered",
        "Waiting",
        "AttemptFailed",
        "MarkedStuck",
        "Resumed",
        "TrancheRequested",
        "TrancheSettled",
        "ClosedOut",
        "EmailSent",
    )
)

FORK_PROPOSED: Final[str] = _topic(Fork.Proposed)  # type: ignore[attr-defined]
FORK_LATER_TOPICS: Final[frozenset[str]] = frozenset(
    _topic(getattr(Fork, name)) for name in ("Approved", "Executing", "Completed", "RolledBack")
)

MERGE_PROPOSED: Final[str] = _topic(Merge.Proposed)  # type: ignore[attr-defined]
MERGE_LATER_TOPICS: Final[frozenset[str]] = frozenset(
    _topic(getattr(Merge, name)) for name in ("Approved", "Executing", "Completed", "RolledBack")
)

WITHDRAWAL_REQUESTED: Final[str] = _withdrawal_topic("Requested")
# A withdrawal's events after its `Requested`.
WITHDRAWAL_LATER_TOPICS: Final[frozenset[str]] = frozenset(
    _withdrawal_topic(name)
    for name in (
        "Approved",
        "Rejected",
        "PayoutAttemptFailed",
        "PayoutRetriesResumed",
        "PaidOut",
        "Completed",
        "Failed",
    )
)

RECONCILIATION_STARTED: Final[str] = _topic(ReconciliationRun.Started)  # type: ignore[attr-defined]
RECONCILIATION_CHECK_RECORDED: Final[str] = _topic(ReconciliationRun.CheckRecorded)  # type: ignore[attr-defined]
RECONCILIATION_EXCEPTION_RAISED: Final[str] = _topic(ReconciliationRun.ExceptionRaised)  # type: ignore[attr-defined]
RECONCILIATION_EXCEPTION_CORRECTED: Final[str] = _topic(ReconciliationRun.ExceptionCorrected)  # type: ignore[attr-defined]
RECONCILIATION_EXCEPTION_RESOLVED: Final[str] = _topic(ReconciliationRun.ExceptionResolved)  # type: ignore[attr-defined]
RECONCILIATION_COMPLETED: Final[str] = _topic(ReconciliationRun.Completed)  # type: ignore[attr-defined]
RECONCILIATION_LATER_TOPICS: Final[frozenset[str]] = frozenset(
    {
        RECONCILIATION_CHECK_RECORDED,
        RECONCILIATION_EXCEPTION_RAISED,
        RECONCILIATION_EXCEPTION_CORRECTED,
        RECONCILIATION_EXCEPTION_RESOLVED,
        RECONCILIATION_COMPLETED,
    }
)

GUARD_STARTED: Final[str] = _topic(AccountGuard.Started)  # type: ignore[attr-defined]
# A guard's events after its `Started`.
GUARD_LATER_TOPICS: Final[frozenset[str]] = frozenset(
    _topic(getattr(AccountGuard, name))
    for name in (
        "PeakEquityRaised",
        "DrawdownWarned",
        "LiquidationScheduled",
        "DrawdownRecovered",
        "Liquidated",
        "PositionMarkedForClosing",
        "CloseRecorded",
        "DivergenceFound",
        "DivergenceCleared",
    )
)

# Aggregates checked only for the order of their versions by `audit verify`
# (their money is checked through the transfers recorded with them): the
# first event's topic, and the topics that may follow it.
VERSIONED_AGGREGATES: Final[tuple[tuple[str, frozenset[str]], ...]] = (
    (FUNDED_ACTIVATED, FUNDED_LATER_TOPICS),
    (WITHDRAWAL_REQUESTED, WITHDRAWAL_LATER_TOPICS),
    (CLOSURE_INITIATED, CLOSURE_LATER_TOPICS),
    (FORK_PROPOSED, FORK_LATER_TOPICS),
    (MERGE_PROPOSED, MERGE_LATER_TOPICS),
    (RECONCILIATION_STARTED, RECONCILIATION_LATER_TOPICS),
    (GUARD_STARTED, GUARD_LATER_TOPICS),
)

# A log position is a PostgreSQL bigint: no position is larger.
POSITION_MAX: Final[int] = 2**63 - 1

# The columns every reader of the log selects, in `LoggedEvent`'s order.
EVENT_COLUMNS: Final[str] = (
    "notification_id, originator_id, originator_version, topic, state, recorded_at"
)


# A JSON string escape `\u0000` (a NUL), not the text `\\u0000` (an escaped
# backslash, then "u0000"): the escape follows an even run of backslashes.
_JSON_NUL_PATTERN: Final[str] = r"(?<!\\)((?:\\\\)*)\\u0000"
_JSON_NUL: Final = re.compile(_JSON_NUL_PATTERN.encode())
# The run, then an escaped backslash and "u0000": the string holds `\u0000`.
_JSON_NUL_SPELT: Final[bytes] = rb"\1\\\\u0000"
_JSON_NUL_ESCAPE: Final[bytes] = rb"\u0000"


def nul_safe_body(state: bytes) -> bytes:
    r"""An event's JSON body with each NUL in its strings spelt `\u0000`."""
    if _JSON_NUL_ESCAPE not in state:
        return state
    return _JSON_NUL.sub(_JSON_NUL_SPELT, state)


# `nul_safe_body` in SQL, for a bytea column or expression `state`: the body
# as jsonb. The regular expression runs only on bodies holding the escape
# (bytea '\x5c7530303030' is the six bytes `\u0000`).
NUL_SAFE_BODY_SQL: Final[str] = (
    r"(CASE WHEN position('\x5c7530303030'::bytea IN state) = 0"
    r" THEN convert_from(state, 'UTF8')"
    rf" ELSE regexp_replace(convert_from(state, 'UTF8'), '{_JSON_NUL_PATTERN}',"
    r" '\1\\\\u0000', 'g') END)::jsonb"
)


class LoggedEvent(NamedTuple):
    position: int
    originator_id: UUID
    originator_version: int
    topic: str
    state: bytes
    recorded_at: datetime

    def data(self) -> dict[str, Any]:
        decoded: dict[str, Any] = orjson.loads(nul_safe_body(self.state))
        return decoded


def plain(value: Any) -> Any:
    """A stored custom value (`{"_type_": ..., "_data_": ...}`) as its plain
    data: a datetime stays its ISO string (parse it with `parse_time`)."""
    if type(value) is dict and "_type_" in value:
        return value["_data_"]
    return value


def parse_time(value: Any) -> datetime | None:
    text = plain(value)
    return None if text is None else datetime.fromisoformat(text)
