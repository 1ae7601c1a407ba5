"""The closure Mailer port: one contract, held by the outbox mailer (on real
PostgreSQL, delivering to a folder) and by the in-memory one tests use.

A subclass gives `world`: the mailer, what reached the recipient, and a way
to make the next delivery fail. What is held here is what a closure relies
on when it retries or resumes: each message id is sent once, ever, and a
failed send says so and is sent by a later one.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Final, Protocol
from uuid import UUID, uuid4

import pytest

from application.ports.closure_mailer import (
    ClosureEmail,
    ClosureEmailKind,
    MailDeliveryFailed,
    Mailer,
    closure_email_message_id,
)
from interface.adapters.email import FolderTransport, MailTransport, OutboxMailer
from tests.support.in_memory_mailer import InMemoryMailer

SENDER: Final = "Ledger <no-reply@ledger.local>"
NAME: Final = "Zelda Quintessa-Pemberton"
ADDRESS: Final = "zelda.quintessa@example.org"
AT: Final = datetime(2025, 11, 3, 9, 30, tzinfo=UTC)
SENDERS_AT_ONCE: Final = 8


class MailWorld(Protocol):
    @property
    def mailer(self) -> Mailer: ...

    def delivered(self) -> list[str]:
        """The message id of every delivery that reached the recipient, in order."""
        ...

    def fail_next_delivery(self) -> None: ...


def closure_email(
    kind: ClosureEmailKind = ClosureEmailKind.STARTED, closure_id: UUID | None = None
) -> ClosureEmail:
    return ClosureEmail(
        message_id=closure_email_message_id(closure_id or uuid4(), kind),
        kind=kind,
        recipient_name=NAME,
        recipient_address=ADDRESS,
        funded_account_id=uuid4(),
        confirmation_number="CLA-7QK2M-X9D4B",
        at=AT,
        amount_paid_minor=18_000_000 if kind is ClosureEmailKind.COMPLETED else None,
    )


class ClosureMailerContract:
    """Every Mailer must pass these; subclasses give `world`."""

    @pytest.fixture
    def world(self) -> MailWorld:
        raise NotImplementedError

    def test_a_new_message_is_sent_now(self, world: MailWorld) -> None:
        email = closure_email()
        assert world.mailer.send(email) is True
        assert world.delivered() == [email.message_id]

    def test_a_message_id_sent_before_is_not_sent_again(self, world: MailWorld) -> None:
        email = closure_email()
        world.mailer.send(email)
        assert world.mailer.send(email) is False
        assert world.delivered() == [email.message_id]

    def test_a_closures_two_emails_are_two_messages(self, world: MailWorld) -> None:
        closure_id = uuid4()
        started = closure_email(ClosureEmailKind.STARTED, closure_id)
        completed = closure_email(ClosureEmailKind.COMPLETED, closure_id)
        assert world.mailer.send(started) is True
        assert world.mailer.send(completed) is True
        assert world.delivered() == [started.message_id, completed.message_id]

    def test_a_failed_send_says_so_without_the_recipient_and_a_later_send_delivers(
        self, world: MailWorld
    ) -> None:
        email = closure_email()
        for attempt in (1, 2):
            world.fail_next_delivery()
            with pytest.raises(MailDeliveryFailed) as failed:
                world.mailer.send(email)
            assert (failed.value.message_id, failed.value.attempts) == (email.message_id, attempt)
            assert ADDRESS not in failed.value.reason
            assert NAME not in failed.value.reason
        assert world.delivered() == []
        assert world.mailer.send(email) is True
        assert world.mailer.send(email) is False
        assert world.delivered() == [email.message_id]

    def test_senders_of_one_message_at_once_deliver_it_once(self, world: MailWorld) -> None:
        email = closure_email()
        with ThreadPoolExecutor(SENDERS_AT_ONCE) as pool:
            answers = list(pool.map(lambda _: world.mailer.send(email), range(SENDERS_AT_ONCE)))
        assert sorted(answers) == [False] * (SENDERS_AT_ONCE - 1) + [True]
        assert world.delivered() == [email.message_id]


# The outbox ---------------------------------------------------------------------------


class RecordingTransport:
    """Delivers through another transport, records what it delivered, and can
    be told to fail the next delivery as a mail server that is down would."""

    def __init__(self, inner: MailTransport) -> None:
        self.inner = inner
        self.delivered: list[str] = []
        self.failures_to_raise = 0

    def deliver(self, message_id: str, message: EmailMessage) -> None:
        if self.failures_to_raise:
            self.failures_to_raise -= 1
            raise ConnectionRefusedError(111, "Connection refused")
        self.inner.deliver(message_id, message)
        self.delivered.append(message_id)


class OutboxWorld:
    def __init__(self, database_url: str, folder: Path) -> None:
        self.transport = RecordingTransport(FolderTransport(folder))
        self.outbox = OutboxMailer(database_url, self.transport, sender=SENDER)

    @property
    def mailer(self) -> Mailer:
        return self.outbox

    def delivered(self) -> list[str]:
        return list(self.transport.delivered)

    def fail_next_delivery(self) -> None:
        self.transport.failures_to_raise += 1


class TestOutboxMailer(ClosureMailerContract):
    @pytest.fixture
    def world(self, database_url: str, tmp_path: Path) -> MailWorld:
        return OutboxWorld(database_url, tmp_path / "outbox")

    def test_a_mailer_started_again_finds_the_message_sent(
        self, database_url: str, tmp_path: Path
    ) -> None:
        """The outbox is the record, not the process: a restart sends nothing twice."""
        email = closure_email()
        first = OutboxWorld(database_url, tmp_path / "outbox")
        assert first.mailer.send(email) is True
        restarted = OutboxWorld(database_url, tmp_path / "outbox")
        assert restarted.mailer.send(email) is False
        assert restarted.delivered() == []


# The in-memory fake -------------------------------------------------------------------


class InMemoryWorld:
    def __init__(self) -> None:
        self.fake = InMemoryMailer()

    @property
    def mailer(self) -> Mailer:
        return self.fake

    def delivered(self) -> list[str]:
        return [email.message_id for email in self.fake.sent]

    def fail_next_delivery(self) -> None:
        self.fake.fail_next()


class TestInMemoryMailer(ClosureMailerContract):
    @pytest.fixture
    def world(self) -> MailWorld:
        return InMemoryWorld()
