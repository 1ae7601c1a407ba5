"""Closure emails through the outbox, to a real SMTP server and a folder."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from psycopg_pool import ConnectionPool

from application.ports.closure_mailer import (
    ClosureEmail,
    ClosureEmailKind,
    MailDeliveryFailed,
    closure_email_message_id,
)
from interface.adapters.email import FolderTransport, OutboxMailer, SmtpTransport
from tests.support.logs import captured_logs, events_named

SENDER = "Ledger <no-reply@ledger.local>"
NAME = "Zelda Quintessa-Pemberton"
ADDRESS = "zelda.quintessa@example.org"
CONFIRMATION_NUMBER = "CLA-7QK2M-X9D4B"
STARTED_AT = datetime(2025, 11, 3, 9, 30, tzinfo=UTC)
COMPLETED_AT = datetime(2025, 11, 7, 16, 45, tzinfo=UTC)
# A bound on waiting for something that must happen, not a measure of speed.
WAIT_S = 30.0


class CollectingHandler:
    """Keeps every message the server accepts. While `gate` is set, holds the
    reply to DATA until the gate opens: a delivery in progress."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self.data_received = threading.Event()
        self.gate: threading.Event | None = None
        self.refused_recipient_reply: str | None = None

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.refused_recipient_reply is not None:
            return self.refused_recipient_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.data_received.set()
        if self.gate is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.gate.wait, WAIT_S)
        content = envelope.original_content or b""
        message = message_from_bytes(content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


class SmtpServer:
    def __init__(self, port: int, **smtp_parameters: Any) -> None:
        self.port = port
        self.handler = CollectingHandler()
        self._controller = Controller(
            self.handler, hostname="127.0.0.1", port=port, **smtp_parameters
        )

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def __enter__(self) -> SmtpServer:
        self._controller.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._controller.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(autouse=True)
def _quiet_test_server() -> None:
    # The test server logs every sender and recipient at INFO: its log, not
    # the service's, and it would hide what the service itself writes.
    logging.getLogger("mail.log").setLevel(logging.WARNING)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    with SmtpServer(free_port()) as server:
        yield server


def started_email(
    closure_id: UUID | None = None,
    name: str = NAME,
    address: str = ADDRESS,
) -> ClosureEmail:
    closure_id = closure_id or uuid4()
    return ClosureEmail(
        message_id=closure_email_message_id(closure_id, ClosureEmailKind.STARTED),
        kind=ClosureEmailKind.STARTED,
        recipient_name=name,
        recipient_address=address,
        funded_account_id=uuid4(),
        confirmation_number=CONFIRMATION_NUMBER,
        at=STARTED_AT,
    )


def completed_email(amount_paid_minor: int) -> ClosureEmail:
    closure_id = uuid4()
    return ClosureEmail(
        message_id=closure_email_message_id(closure_id, ClosureEmailKind.COMPLETED),
        kind=ClosureEmailKind.COMPLETED,
        recipient_name=NAME,
        recipient_address=ADDRESS,
        funded_account_id=uuid4(),
        confirmation_number=CONFIRMATION_NUMBER,
        at=COMPLETED_AT,
        amount_paid_minor=amount_paid_minor,
    )


def html_of(message: EmailMessage) -> str:
    body = message.get_body(("html",))
    assert body is not None
    return str(body.get_content())


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def outbox_row(database_url: str, message_id: str) -> dict[str, Any]:
    with psycopg.connect(database_url) as connection:
        cursor = connection.execute(
            "SELECT kind, recipient_address, sent_at, attempts, last_error "
            "FROM email_outbox WHERE message_id = %s",
            (message_id,),
        )
        row = cursor.fetchone()
        assert row is not None
        assert cursor.description is not None
        return dict(zip([column.name for column in cursor.description], row, strict=True))


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        time.sleep(0.01)


def test_a_started_email_is_delivered_once_with_the_name_and_confirmation_number(
    database_url: str, smtp_server: SmtpServer
) -> None:
    mailer = OutboxMailer(database_url, SmtpTransport(smtp_server.url), sender=SENDER)
    email = started_email()

    assert mailer.send(email) is True

    [(recipients, message)] = smtp_server.handler.messages
    assert recipients == [ADDRESS]
    assert CONFIRMATION_NUMBER in str(message["Subject"])
    assert message["From"] == SENDER
    assert message.get_content_type() == "multipart/alternative"
    for body in (html_of(message), text_of(message)):
        assert NAME in body
        assert CONFIRMATION_NUMBER in body
        assert str(email.funded_account_id) in body
        assert "3 November 2025 at 09:30 UTC" in body
    row = outbox_row(database_url, email.message_id)
    assert row["kind"] == "closure_started"
    assert row["sent_at"] is not None
    assert row["attempts"] == 1
    assert row["last_error"] is None


def test_a_completed_email_shows_the_total_paid_out(
    database_url: str, smtp_server: SmtpServer
) -> None:
    mailer = OutboxMailer(database_url, SmtpTransport(smtp_server.url), sender=SENDER)

    assert mailer.send(completed_email(amount_paid_minor=18_000_000)) is True

    [(_, message)] = smtp_server.handler.messages
    assert "$180,000.00" in html_of(message)
    assert "$180,000.00" in text_of(message)
    assert "7 November 2025 at 16:45 UTC" in text_of(message)


def test_sending_a_message_id_again_delivers_nothing_more(
    database_url: str, smtp_server: SmtpServer
) -> None:
    email = started_email()
    mailer = OutboxMailer(database_url, SmtpTransport(smtp_server.url), sender=SENDER)
    assert mailer.send(email) is True

    assert mailer.send(email) is False
    # Another process, with its own mailer, finds it sent too.
    restarted = OutboxMailer(database_url, SmtpTransport(smtp_server.url), sender=SENDER)
    assert restarted.send(email) is False

    assert len(smtp_server.handler.messages) == 1
    assert outbox_row(database_url, email.message_id)["attempts"] == 1


def test_the_message_id_header_is_the_same_on_every_attempt(
    database_url: str, smtp_server: SmtpServer
) -> None:
    """A receiver can recognise a copy sent again after a crash by it."""
    email = started_email()
    mailer = OutboxMailer(database_url, SmtpTransport(smtp_server.url), sender=SENDER)
    mailer.send(email)

    [(_, message)] = smtp_server.handler.messages
    # Folded onto a line of its own when long, as RFC 5322 allows.
    assert str(message["Message-ID"]).strip() == f"<{email.message_id}@ledger.local>"


@pytest.mark.parametrize("queued_before", [False, True], ids=["new", "after_a_failed_attempt"])
def test_two_senders_of_one_message_at_once_deliver_it_once(
    database_url: str, smtp_server: SmtpServer, queued_before: bool
) -> None:
    email = started_email()
    if queued_before:
        down = OutboxMailer(
            database_url, SmtpTransport(f"smtp://127.0.0.1:{free_port()}"), sender=SENDER
        )
        with pytest.raises(MailDeliveryFailed):
            down.send(email)
    gate = threading.Event()
    smtp_server.handler.gate = gate
    results: list[bool] = []

    def send() -> None:
        with ConnectionPool(
            database_url, min_size=1, max_size=1, kwargs={"autocommit": True}
        ) as pool:
            mailer = OutboxMailer(pool, SmtpTransport(smtp_server.url), sender=SENDER)
            results.append(mailer.send(email))

    senders = [threading.Thread(target=send) for _ in range(2)]
    for sender in senders:
        sender.start()
    try:
        # One sender is delivering (held at DATA) while the other waits for
        # the row: had both been let through, neither would be waiting.
        wait_until(smtp_server.handler.data_received.is_set, "a delivery started")
        wait_until(lambda: _sessions_waiting_for_a_lock(database_url) == 1, "a sender waits")
    finally:
        gate.set()
        for sender in senders:
            sender.join(WAIT_S)

    assert sorted(results) == [False, True]
    assert len(smtp_server.handler.messages) == 1
    assert outbox_row(database_url, email.message_id)["sent_at"] is not None


def _sessions_waiting_for_a_lock(database_url: str) -> int:
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_mail_server_that_is_down_fails_the_send_and_a_later_send_delivers_it(
    database_url: str,
) -> None:
    port = free_port()
    mailer = OutboxMailer(database_url, SmtpTransport(f"smtp://127.0.0.1:{port}"), sender=SENDER)
    email = started_email()

    for attempt in (1, 2):
        with pytest.raises(MailDeliveryFailed) as failed:
            mailer.send(email)
        assert failed.value.message_id == email.message_id
        assert failed.value.attempts == attempt
    row = outbox_row(database_url, email.message_id)
    assert row["sent_at"] is None
    assert row["attempts"] == 2
    assert "ConnectionRefusedError" in row["last_error"]

    with SmtpServer(port) as server:
        assert mailer.send(email) is True

    assert len(server.handler.messages) == 1
    row = outbox_row(database_url, email.message_id)
    assert row["sent_at"] is not None
    assert row["attempts"] == 3
    assert row["last_error"] is None


def test_a_refused_recipient_is_recorded_by_its_reply_code_without_the_address(
    database_url: str, smtp_server: SmtpServer
) -> None:
    smtp_server.handler.refused_recipient_reply = f"550 5.1.1 <{ADDRESS}>: no such user"
    mailer = OutboxMailer(database_url, SmtpTransport(smtp_server.url), sender=SENDER)
    email = started_email()

    with pytest.raises(MailDeliveryFailed) as failed:
        mailer.send(email)

    row = outbox_row(database_url, email.message_id)
    assert row["last_error"] == "SMTPRecipientsRefused: [550]"
    assert ADDRESS not in str(failed.value)
    assert smtp_server.handler.messages == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_credentials_in_the_smtp_url_log_in(database_url: str) -> None:
    logins: list[LoginPassword] = []

    def authenticator(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        logins.append(auth_data)
        return AuthResult(success=auth_data == LoginPassword(b"ledger", b"p@ss:word"))

    with SmtpServer(
        free_port(), authenticator=authenticator, auth_require_tls=False, auth_required=True
    ) as server:
        transport = SmtpTransport(f"smtp://ledger:p%40ss%3Aword@127.0.0.1:{server.port}")
        mailer = OutboxMailer(database_url, transport, sender=SENDER)

        assert mailer.send(started_email()) is True

    assert logins == [LoginPassword(b"ledger", b"p@ss:word")]
    assert len(server.handler.messages) == 1
    assert "p@ss" not in repr(transport)


def test_the_smtp_url_chooses_port_and_encryption() -> None:
    assert (SmtpTransport("smtp://mail.test").port, SmtpTransport("smtps://mail.test").port) == (
        25,
        465,
    )
    submission = SmtpTransport("smtp://mail.test:587?starttls=true")
    assert (submission.port, submission.starttls, submission.implicit_tls) == (587, True, False)
    assert SmtpTransport("smtps://mail.test").implicit_tls is True
    for wrong in ("http://mail.test", "smtp://", "smtp://mail.test?starttls=yes"):
        with pytest.raises(ValueError):
            SmtpTransport(wrong)


def test_the_folder_transport_writes_exactly_one_eml_per_message_id(
    database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "outbox"
    transport = FolderTransport(folder)
    mailer = OutboxMailer(database_url, transport, sender=SENDER)
    started, completed = started_email(), completed_email(amount_paid_minor=5_000_000)

    assert mailer.send(started) is True
    assert mailer.send(completed) is True
    assert mailer.send(started) is False

    files = sorted(path.name for path in folder.iterdir())
    assert files == sorted([f"{started.message_id}.eml", f"{completed.message_id}.eml"])
    written = message_from_bytes(
        (folder / f"{completed.message_id}.eml").read_bytes(), policy=policy.default
    )
    assert isinstance(written, EmailMessage)
    assert written.get_content_type() == "multipart/alternative"
    assert written["To"].addresses[0].addr_spec == ADDRESS
    assert "$50,000.00" in html_of(written)
    assert "$50,000.00" in text_of(written)


def test_the_folder_transport_replaces_a_message_delivered_twice(tmp_path: Path) -> None:
    message = EmailMessage()
    message["Subject"] = "first"
    message.set_content("first")
    transport = FolderTransport(tmp_path)

    transport.deliver("one", message)
    message.replace_header("Subject", "second")
    transport.deliver("one", message)

    assert [path.name for path in tmp_path.iterdir()] == ["one.eml"]
    assert b"Subject: second" in (tmp_path / "one.eml").read_bytes()


def test_a_name_holding_markup_is_shown_as_text_in_the_html(
    database_url: str, smtp_server: SmtpServer
) -> None:
    mailer = OutboxMailer(database_url, SmtpTransport(smtp_server.url), sender=SENDER)

    mailer.send(started_email(name="<script>alert('x')</script> & Co"))

    [(_, message)] = smtp_server.handler.messages
    html = html_of(message)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co" in html
    assert "<script>alert('x')</script> & Co" in text_of(message)


def test_the_log_names_message_and_kind_but_never_the_recipient(
    database_url: str, smtp_server: SmtpServer
) -> None:
    email = started_email()
    mailer = OutboxMailer(database_url, SmtpTransport(smtp_server.url), sender=SENDER)
    down = OutboxMailer(
        database_url, SmtpTransport(f"smtp://127.0.0.1:{free_port()}"), sender=SENDER
    )
    failing = started_email()

    with captured_logs() as logs:
        mailer.send(email)
        mailer.send(email)
        with pytest.raises(MailDeliveryFailed):
            down.send(failing)

    for event, message_id in (
        ("email_sent", email.message_id),
        ("email_already_sent", email.message_id),
        ("email_delivery_failed", failing.message_id),
    ):
        [record] = events_named(logs, event)
        assert record["message_id"] == message_id
        assert record["kind"] == "closure_started"
    output = logs.getvalue()
    assert ADDRESS not in output
    assert NAME not in output
    assert ADDRESS.split("@", maxsplit=1)[0] not in output
