"""The transfer aggregate: one balanced journal entry, never edited.

A transfer is created posted, or pending (a hold) with a deadline. A pending
transfer is later posted (in full, or a smaller amount), voided, or expires.
A posted transfer is corrected only by a reversal: a new transfer, linked to
it, with every posting's side swapped.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Final, NamedTuple
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.money import CURRENCY_EXPONENTS, format_amount, require_valid_minor
from domain.result_codes import LedgerRefusal, ResultCode

POSTINGS_MAX: Final[int] = 32
PENDING_TIMEOUT_S_MAX: Final[int] = 90 * 24 * 3600


class Side(StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"

    @property
    def opposite(self) -> Side:
        return Side.CREDIT if self is Side.DEBIT else Side.DEBIT


class Posting(NamedTuple):
    """One leg of a journal entry. Account ids are kept as text in events."""

    account_id: UUID
    side: Side
    amount_minor: int
    currency: str

    def as_event_data(self) -> dict[str, Any]:
        return {
            "account_id": str(self.account_id),
            "side": self.side.value,
            "amount_minor": self.amount_minor,
            "currency": self.currency,
        }

    @classmethod
    def from_event_data(cls, data: dict[str, Any]) -> Posting:
        return cls(
            UUID(data["account_id"]), Side(data["side"]), data["amount_minor"], data["currency"]
        )


class TransferStatus(StrEnum):
    PENDING = "pending"
    POSTED = "posted"
    VOIDED = "voided"
    EXPIRED = "expired"


def require_balanced(postings: tuple[Posting, ...]) -> None:
    """Sum of debits equals sum of credits, separately in every currency."""
    if len(postings) < 2:
        raise LedgerRefusal(ResultCode.TOO_FEW_POSTINGS, "a transfer needs at least two postings")
    if len(postings) > POSTINGS_MAX:
        raise LedgerRefusal(
            ResultCode.TOO_MANY_POSTINGS, f"a transfer may have at most {POSTINGS_MAX} postings"
        )
    net_by_currency: dict[str, int] = {}
    debited: set[UUID] = set()
    credited: set[UUID] = set()
    for posting in postings:
        require_valid_minor(posting.amount_minor)
        signed = posting.amount_minor if posting.side is Side.DEBIT else -posting.amount_minor
        net_by_currency[posting.currency] = net_by_currency.get(posting.currency, 0) + signed
        (debited if posting.side is Side.DEBIT else credited).add(posting.account_id)
    unbalanced = {currency: net for currency, net in net_by_currency.items() if net != 0}
    if unbalanced:
        # A currency not accepted is refused on its own; its count is shown as is.
        differences = {
            currency: format_amount(net, currency) if currency in CURRENCY_EXPONENTS else str(net)
            for currency, net in unbalanced.items()
        }
        raise LedgerRefusal(
            ResultCode.UNBALANCED_POSTINGS,
            "debits must equal credits in every currency; debits minus credits: "
            + ", ".join(f"{amount} {currency}" for currency, amount in differences.items()),
            debits_minus_credits=differences,
            debits_minus_credits_minor=unbalanced,
        )
    if debited & credited:
        raise LedgerRefusal(
            ResultCode.ACCOUNTS_MUST_BE_DIFFERENT,
            "an account cannot be both debited and credited by one transfer",
            accounts=sorted(str(account_id) for account_id in debited & credited),
        )


class Transfer(Aggregate):
    class Recorded(Aggregate.Created):
        """The journal entry itself: every posting, and whether it is a hold."""

        postings: list[dict[str, Any]]
        pending: bool
        expires_at: datetime | None
        reverses_transfer_id: str | None
        metadata: dict[str, str]
        fingerprint: str
        recorded_at: datetime

    @classmethod
    def recorded_event(
        cls,
        *,
        transfer_id: UUID,
        postings: tuple[Posting, ...],
        pending: bool,
        expires_at: datetime | None,
        reverses_transfer_id: str | None,
        metadata: dict[str, str],
        fingerprint: str,
        recorded_at: datetime,
    ) -> Transfer.Recorded:
        """The event that creating a transfer records, without building the
        aggregate. A batch records thousands of transfers that nothing reads
        again before they are saved; `materialize` builds one when needed.
        Replay is unchanged: it is the same event class and the same mutate."""
        # The library makes event classes frozen dataclasses by metaclass, which
        # type checkers cannot see; the fields are the annotations above.
        make_event: Any = cls.Recorded
        recorded: Transfer.Recorded = make_event(
            originator_id=transfer_id,
            originator_version=cls.INITIAL_VERSION,
            timestamp=cls.Recorded.create_timestamp(),
            originator_topic=_TRANSFER_TOPIC,
            postings=[posting.as_event_data() for posting in postings],
            pending=pending,
            expires_at=expires_at,
            reverses_transfer_id=reverses_transfer_id,
            metadata=metadata,
            fingerprint=fingerprint,
            recorded_at=recorded_at,
        )
        return recorded

    @staticmethod
    def materialize(recorded: Transfer.Recorded) -> Transfer:
        transfer = recorded.mutate(None)
        assert isinstance(transfer, Transfer)
        return transfer

    @event(Recorded)
    def __init__(
        self,
        id: UUID,  # noqa: A002 - the library takes the aggregate id by this name
        postings: list[dict[str, Any]],
        pending: bool,
        expires_at: datetime | None,
        reverses_transfer_id: str | None,
        metadata: dict[str, str],
        fingerprint: str,
        recorded_at: datetime,
    ) -> None:
        self._posting_data = postings
        self._postings: tuple[Posting, ...] | None = None
        self.status = TransferStatus.PENDING if pending else TransferStatus.POSTED
        self.was_pending = pending
        self.expires_at = expires_at
        self.reverses_transfer_id = reverses_transfer_id
        self.metadata = metadata
        self.fingerprint = fingerprint
        self.recorded_at = recorded_at
        self._posted_posting_data: list[dict[str, Any]] = [] if pending else postings
        self.reversed_by_transfer_id: str | None = None
        self.resolved_at: datetime | None = None if pending else recorded_at

    # Postings are parsed from event data when first read, not on every replay.
    @property
    def postings(self) -> tuple[Posting, ...]:
        if self._postings is None:
            self._postings = tuple(Posting.from_event_data(data) for data in self._posting_data)
        return self._postings

    @property
    def posted_postings(self) -> tuple[Posting, ...]:
        if self._posted_posting_data is self._posting_data:
            return self.postings
        return tuple(Posting.from_event_data(data) for data in self._posted_posting_data)

    def post_pending(self, posted_postings: tuple[Posting, ...], at: datetime) -> None:
        assert self.status is TransferStatus.PENDING, self.status
        self._pending_posted(postings=[p.as_event_data() for p in posted_postings], at=at)

    @event("PendingPosted")
    def _pending_posted(self, postings: list[dict[str, Any]], at: datetime) -> None:
        self.status = TransferStatus.POSTED
        self._posted_posting_data = postings
        self.resolved_at = at

    def void_pending(self, at: datetime) -> None:
        assert self.status is TransferStatus.PENDING, self.status
        self._pending_voided(at=at)

    @event("PendingVoided")
    def _pending_voided(self, at: datetime) -> None:
        self.status = TransferStatus.VOIDED
        self.resolved_at = at

    def expire_pending(self, at: datetime) -> None:
        assert self.status is TransferStatus.PENDING, self.status
        self._pending_expired(at=at)

    @event("PendingExpired")
    def _pending_expired(self, at: datetime) -> None:
        self.status = TransferStatus.EXPIRED
        self.resolved_at = at

    def mark_reversed(self, reversal_transfer_id: UUID, at: datetime) -> None:
        assert self.status is TransferStatus.POSTED and self.reversed_by_transfer_id is None
        self._reversed(reversal_transfer_id=str(reversal_transfer_id), at=at)

    @event("Reversed")
    def _reversed(self, reversal_transfer_id: str, at: datetime) -> None:
        self.reversed_by_transfer_id = reversal_transfer_id


# The library names an aggregate class by this topic in its created event.
_TRANSFER_TOPIC: Final[str] = f"{Transfer.__module__}:{Transfer.__qualname__}"
