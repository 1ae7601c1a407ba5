"""Closure emails: rendered from templates, queued in an outbox, sent once.

`OutboxMailer` implements application.ports.closure_mailer.Mailer over a transport:
`SmtpTransport` when SMTP_URL is set, otherwise `FolderTransport` (an outbox
folder of `.eml` files).
"""

from __future__ import annotations

from interface.adapters.email.outbox_mailer import (
    FolderTransport,
    MailTransport,
    OutboxMailer,
    SmtpTransport,
)
from interface.adapters.email.rendering import RenderedEmail, render_closure_email

__all__ = [
    "FolderTransport",
    "MailTransport",
    "OutboxMailer",
    "RenderedEmail",
    "SmtpTransport",
    "render_closure_email",
]
