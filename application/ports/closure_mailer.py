"""The emails an account closure sends, and the port that sends them.

Two emails per closure: one when it starts, one when it completes (with the
total paid out). Each is identified by a message id derived from the closure
and the kind of email, so a process that retries, or resumes after a restart,
asks for the same message again and the mailer sends it only once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final, Protocol
from uuid import UUID

from domain.money import CURRENCY_EXPONENTS

# Message ids become file names and Message-ID headers: no path separators,
# no spaces, nothing a header would have to quote.
MESSAGE_ID_PATTERN: Final[re.Pattern[str]] = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
CONFIRMATION_NUMBER_PATTERN: Final[re.Pattern[str]] = re.compile(r"CLA-[A-Z0-9]{5}-[A-Z0-9]{5}")
# One address, no display name: the name travels in its own field.
_ADDRESS_PATTERN: Final[re.Pattern[str]] = re.compile(r"[^\s@<>\"(),;:]+@[^\s@<>\"(),;:]+")
RECIPIENT_NAME_LENGTH_MAX: Final[int] = 200
RECIPIENT_ADDRESS_LENGTH_MAX: Final[int] = 254


class ClosureEmailKind(StrEnum):
    STARTED = "closure_started"
    COMPLETED = "closure_completed"


def closure_email_message_id(closure_id: UUID, kind: ClosureEmailKind) -> str:
    """The one message id of this closure's email of this kind."""
    return f"{closure_id}.{kind.value}"


@dataclass(frozen=True, slots=True)
class ClosureEmail:
    # Stable for a closure and kind (see closure_email_message_id): the
    # outbox's key, and what makes a repeated send a no-op.
    message_id: str
    kind: ClosureEmailKind
    recipient_name: str
    recipient_address: str
    funded_account_id: UUID
    confirmation_number: str
    # Aware, UTC: when the closure started (STARTED) or completed (COMPLETED).
    at: datetime
    # COMPLETED only: the total paid out, in minor units.
    amount_paid_minor: int | None = None
    currency: str = "USD"

    def __post_init__(self) -> None:
        # Messages are made from these values (headers, file names), so a bad
        # one is refused here, where the caller can still see whose it was.
        if MESSAGE_ID_PATTERN.fullmatch(self.message_id) is None:
            raise ValueError(f"message id {self.message_id!r} must match {MESSAGE_ID_PATTERN}")
        if CONFIRMATION_NUMBER_PATTERN.fullmatch(self.confirmation_number) is None:
            raise ValueError("confirmation number must be shaped CLA-XXXXX-XXXXX")
        if not self.recipient_name.strip() or len(self.recipient_name) > RECIPIENT_NAME_LENGTH_MAX:
            raise ValueError(f"recipient name must be 1 to {RECIPIENT_NAME_LENGTH_MAX} characters")
        if any(not character.isprintable() for character in self.recipient_name):
            raise ValueError("recipient name must not hold control characters or line breaks")
        if (
            len(self.recipient_address) > RECIPIENT_ADDRESS_LENGTH_MAX
            or _ADDRESS_PATTERN.fullmatch(self.recipient_address) is None
        ):
            # The address itself is personal data: not repeated in the error.
            raise ValueError("recipient address must be a single plain address")
        if self.at.tzinfo is None or self.at.utcoffset() != timedelta(0):
            raise ValueError("`at` must be an aware UTC datetime")
        if self.currency not in CURRENCY_EXPONENTS:
            raise ValueError(f"currency {self.currency!r} is not one the ledger accepts")
        if self.kind is ClosureEmailKind.COMPLETED:
            if type(self.amount_paid_minor) is not int or self.amount_paid_minor < 0:
                raise ValueError(
                    "a completion email needs the amount paid, a whole minor-unit count"
                )
        elif self.amount_paid_minor is not None:
            raise ValueError("only a completion email carries an amount paid")


class MailDeliveryFailed(Exception):
    """The message was queued but not delivered; sending it again retries it.

    `reason` never holds the recipient's address or name.
    """

    def __init__(self, message_id: str, attempts: int, reason: str) -> None:
        super().__init__(f"email {message_id} not delivered (attempt {attempts}): {reason}")
        self.message_id = message_id
        self.attempts = attempts
        self.reason = reason


class Mailer(Protocol):
    def send(self, email: ClosureEmail) -> bool:
        """True if sent now, False if this message id was sent before (each is
        sent once, ever). Raises MailDeliveryFailed when it could not be sent
        now; the caller retries later."""
        ...
