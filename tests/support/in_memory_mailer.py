"""A closure Mailer kept in memory, for tests of the layers above the outbox.

It keeps the port's promises as OutboxMailer does (tests/contract holds both
to them): each message id is sent once, ever, and a failed send raises
MailDeliveryFailed with the attempts so far and is sent by a later try.
"""

from __future__ import annotations

import threading
from collections import Counter

from application.ports.closure_mailer import ClosureEmail, MailDeliveryFailed


class InMemoryMailer:
    def __init__(self) -> None:
        self.sent: list[ClosureEmail] = []
        self._attempts: Counter[str] = Counter()
        self._failures_to_raise = 0
        self._lock = threading.Lock()

    def send(self, email: ClosureEmail) -> bool:
        with self._lock:
            if any(sent.message_id == email.message_id for sent in self.sent):
                return False
            self._attempts[email.message_id] += 1
            if self._failures_to_raise:
                self._failures_to_raise -= 1
                raise MailDeliveryFailed(
                    email.message_id, self._attempts[email.message_id], "scripted failure"
                )
            self.sent.append(email)
            return True

    def fail_next(self, times: int = 1) -> None:
        """The next `times` sends of a message not yet sent fail."""
        if times <= 0:
            raise ValueError("times is positive")
        with self._lock:
            self._failures_to_raise += times
