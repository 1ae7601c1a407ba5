"""Sending closure emails once: an outbox table in front of a transport.

`OutboxMailer.send` renders the email, queues it in `email_outbox` under its
message id (a second queueing of the same id changes nothing), then, holding
the row's lock, delivers it if it has not been sent and records that it was.
Two processes sending one message at once meet at the lock: the second waits,
finds it sent, and sends nothing.

The one gap no outbox can close: a process that dies after the mail server
accepted the message but before `sent_at` was committed sends it again on the
next try. The Message-ID header is the same every time, so the receiving side
can tell the copies apart.

Transports: `SmtpTransport` (SMTP_URL set) and `FolderTransport` (otherwise:
each message a `.eml` file in a folder). Recipients' addresses and names are
personal data: they are never logged and never written to `last_error`.
"""

from __future__ import annotations

import os
import smtplib
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Final, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import psycopg
import structlog
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from application.ports.closure_mailer import ClosureEmail, MailDeliveryFailed
from interface.adapters.email.rendering import render_closure_email

log = structlog.get_logger(__name__)

SMTP_TIMEOUT_S: Final[float] = 30.0
SMTP_PORT: Final[int] = 25
SMTPS_PORT: Final[int] = 465
# Enough to tell one failure from another, short enough to read in a row.
LAST_ERROR_LENGTH_MAX: Final[int] = 500

_QUEUE: Final = """
INSERT INTO email_outbox
    (message_id, kind, recipient_address, subject, html, text_body, queued_at)
VALUES (%(message_id)s, %(kind)s, %(recipient_address)s, %(subject)s, %(html)s,
    %(text_body)s, now())
ON CONFLICT (message_id) DO NOTHING
"""

# The stored message, not the one just rendered: a retry sends what was queued.
_LOCK: Final = """
SELECT recipient_address, subject, html, text_body, queued_at, sent_at, attempts
FROM email_outbox WHERE message_id = %s FOR UPDATE
"""

_SENT: Final = """
UPDATE email_outbox SET sent_at = now(), attempts = attempts + 1, last_error = NULL
WHERE message_id = %s
"""

_FAILED: Final = """
UPDATE email_outbox SET attempts = attempts + 1, last_error = %s
WHERE message_id = %s RETURNING attempts
"""


class MailTransport(Protocol):
    def deliver(self, message_id: str, message: EmailMessage) -> None:
        """Hand the message on; raises OSError (smtplib's errors are OSErrors)
        when it could not be, so that the outbox tries again later."""
        ...


class OutboxMailer:
    """The Mailer: each message id is delivered once, ever."""

    def __init__(
        self, database: ConnectionPool | str, transport: MailTransport, *, sender: str
    ) -> None:
        """`database` is the service's pool or a database URL (a connection per
        send); `sender` is the From header, e.g. "Ledger <no-reply@ledger.local>"."""
        sender_address = parseaddr(sender)[1]
        if "@" not in sender_address:
            raise ValueError(f"sender {sender!r} must hold an address")
        self._database = database
        self._transport = transport
        self._sender = sender
        # Message-ID headers are made in the sender's domain.
        self._domain = sender_address.rpartition("@")[2]

    def send(self, email: ClosureEmail) -> bool:
        rendered = render_closure_email(email)
        failure: str | None = None
        attempts = 0
        with self._connection() as connection, connection.transaction():
            connection.execute(
                _QUEUE,
                {
                    "message_id": email.message_id,
                    "kind": email.kind.value,
                    "recipient_address": email.recipient_address,
                    "subject": rendered.subject,
                    "html": rendered.html,
                    "text_body": rendered.text,
                },
            )
            row = connection.execute(_LOCK, (email.message_id,)).fetchone()
            assert row is not None, "the row was queued in this transaction or before it"
            address, subject, html, text_body, queued_at, sent_at, attempts = row
            if sent_at is not None:
                log.info("email_already_sent", message_id=email.message_id, kind=email.kind)
                return False
            message = self._message(email, address, subject, html, text_body, queued_at)
            try:
                self._transport.deliver(email.message_id, message)
            except OSError as error:
                failure = describe_failure(error)
                failed = connection.execute(_FAILED, (failure, email.message_id)).fetchone()
                assert failed is not None
                attempts = int(failed[0])
            else:
                connection.execute(_SENT, (email.message_id,))
                attempts += 1
        if failure is not None:
            log.warning(
                "email_delivery_failed",
                message_id=email.message_id,
                kind=email.kind,
                attempts=attempts,
                error=failure,
            )
            raise MailDeliveryFailed(email.message_id, attempts, failure)
        log.info("email_sent", message_id=email.message_id, kind=email.kind, attempts=attempts)
        return True

    def _message(
        self,
        email: ClosureEmail,
        address: str,
        subject: str,
        html: str,
        text_body: str,
        queued_at: datetime,
    ) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = self._sender
        message["To"] = Address(display_name=email.recipient_name, addr_spec=address)
        message["Date"] = format_datetime(queued_at)
        message["Message-ID"] = f"<{email.message_id}@{self._domain}>"
        message.set_content(text_body)
        message.add_alternative(html, subtype="html")
        return message

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[TupleRow]]:
        if isinstance(self._database, str):
            with psycopg.connect(self._database, autocommit=True) as connection:
                yield connection
        else:
            with self._database.connection() as connection:
                yield connection


def describe_failure(error: OSError) -> str:
    """What went wrong, without what the error may quote of the message.

    A refusal's text often repeats the recipient's address ("550 <bob@...>:
    no such user"), so of an SMTP reply only its code is kept; of any other
    error, its type and the operating system's description."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = sorted({code for code, _ in error.recipients.values()})
        description = f"SMTPRecipientsRefused: {codes}"
    elif isinstance(error, smtplib.SMTPResponseException):
        description = f"{type(error).__name__}: {error.smtp_code}"
    elif isinstance(error, smtplib.SMTPException):
        description = type(error).__name__
    elif error.strerror:
        description = f"{type(error).__name__}: {error.strerror}"
    else:
        description = type(error).__name__
    return description[:LAST_ERROR_LENGTH_MAX]


class SmtpTransport:
    """Delivers through an SMTP server named by a URL:
    `smtp://[user:password@]host[:port][?starttls=true]` or `smtps://...`."""

    def __init__(self, smtp_url: str, *, timeout_s: float = SMTP_TIMEOUT_S) -> None:
        parts = urlsplit(smtp_url)
        if parts.scheme not in {"smtp", "smtps"}:
            raise ValueError("SMTP URL must start with smtp:// or smtps://")
        if not parts.hostname:
            raise ValueError("SMTP URL must name a host")
        starttls = parse_qs(parts.query).get("starttls", ["false"])[-1].lower()
        if starttls not in {"true", "false"}:
            raise ValueError("starttls must be true or false")
        self.host = parts.hostname
        self.implicit_tls = parts.scheme == "smtps"
        self.port = parts.port or (SMTPS_PORT if self.implicit_tls else SMTP_PORT)
        self.starttls = starttls == "true"
        if self.implicit_tls and self.starttls:
            raise ValueError("smtps:// is already encrypted: starttls does not apply")
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password or "")
        self.timeout_s = timeout_s

    def __repr__(self) -> str:
        # Without the credentials.
        scheme = "smtps" if self.implicit_tls else "smtp"
        return f"SmtpTransport({scheme}://{self.host}:{self.port})"

    def deliver(self, message_id: str, message: EmailMessage) -> None:
        client: smtplib.SMTP
        if self.implicit_tls:
            client = smtplib.SMTP_SSL(
                self.host,
                self.port,
                timeout=self.timeout_s,
                context=ssl.create_default_context(),
            )
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
        with client:
            if self.starttls:
                client.starttls(context=ssl.create_default_context())
            if self._username is not None:
                client.login(self._username, self._password)
            client.send_message(message)


class FolderTransport:
    """Writes each message, whole, to `<folder>/<message_id>.eml`.

    A file appears complete or not at all (written aside, then renamed), and
    delivering the same message again replaces its file: one per message id.
    Files are readable by their owner only: they hold personal data."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)

    def deliver(self, message_id: str, message: EmailMessage) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / f"{message_id}.eml"
        descriptor, temporary = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(message.as_bytes(policy=SMTP))
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
