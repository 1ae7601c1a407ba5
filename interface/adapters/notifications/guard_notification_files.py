"""The default GuardNotifier: each notification a JSON file, written once.

Where the closure emails go through an outbox to SMTP, the guards' messages
cannot: a funded account knows its owner only by `owner_id`, and no email
address (or any other contact) is kept for that owner anywhere in the
ledger, so there is nobody to address an email to. Until a contact channel
exists, each notification is written to `LEDGER_DATA_DIR/notifications` as
`<notification id>.json` (a stand-in for the user-facing channel, as the
`outbox` folder is for email transports) and logged. A channel that can
reach the owner implements the same port and replaces this one in
interface/bootstrap.py.

Once: the file is written aside and then hard-linked to its name, which
fails if the name exists, so of two processes sending the same notification
one writes it and the other finds it there. A notification already written
is not written again, even if its content would now differ.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

import structlog

from application.ports.guard_notifier import (
    GuardNotification,
    GuardNotificationFailed,
)

log = structlog.get_logger(__name__)

GUARD_NOTIFICATIONS_FOLDER: Final[str] = "notifications"
# Shown beside the exact fraction, for people: percent with this many decimals.
PERCENT_DECIMALS: Final[int] = 2


class FileGuardNotifier:
    """Writes each notification id once, as `<folder>/<id>.json`."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)

    def notify(self, notification: GuardNotification) -> bool:
        target = self.folder / f"{notification.notification_id}.json"
        if target.exists():
            log.info(
                "guard_notification_already_sent",
                notification_id=notification.notification_id,
                kind=notification.kind.value,
            )
            return False
        body = json.dumps(notification_document(notification), indent=2, sort_keys=True)
        try:
            written = self._write_once(target, body.encode())
        except OSError as error:
            raise GuardNotificationFailed(
                notification.notification_id, f"{type(error).__name__}: {error.strerror}"
            ) from error
        if not written:
            log.info(
                "guard_notification_already_sent",
                notification_id=notification.notification_id,
                kind=notification.kind.value,
            )
            return False
        log.warning(
            "guard_notification_sent",
            notification_id=notification.notification_id,
            kind=notification.kind.value,
            funded_account_id=str(notification.funded_account_id),
            owner_id=notification.owner_id,
            drawdown_percent=_percent(notification.drawdown),
            equity_minor=notification.equity_minor,
            peak_equity_minor=notification.peak_equity_minor,
            positions=[held.position_id for held in notification.positions],
            liquidation_due_at=(
                None
                if notification.liquidation_due_at is None
                else notification.liquidation_due_at.isoformat()
            ),
        )
        return True

    def _write_once(self, target: Path, body: bytes) -> bool:
        """Write the file whole under its name unless the name exists; False then."""
        self.folder.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(body)
                file.flush()
                os.fsync(file.fileno())
            try:
                os.link(temporary, target)
            except FileExistsError:
                return False
            return True
        finally:
            Path(temporary).unlink(missing_ok=True)


def notification_document(notification: GuardNotification) -> dict[str, Any]:
    """The notification as the JSON file holds it: exact values, and the
    drawdown in percent for a person to read."""
    return {
        "notification_id": notification.notification_id,
        "kind": notification.kind.value,
        "funded_account_id": str(notification.funded_account_id),
        "owner_id": notification.owner_id,
        "drawdown": str(notification.drawdown),
        "drawdown_percent": _percent(notification.drawdown),
        "equity_minor": notification.equity_minor,
        "peak_equity_minor": notification.peak_equity_minor,
        "minimum_equity_minor": notification.minimum_equity_minor,
        "currency": notification.currency,
        "positions": [
            {
                "position_id": held.position_id,
                "symbol": held.symbol,
                "side": held.side,
                "quantity": held.quantity,
            }
            for held in notification.positions
        ],
        "liquidation_due_at": (
            None
            if notification.liquidation_due_at is None
            else notification.liquidation_due_at.isoformat()
        ),
        "failed": dict(notification.failed),
        "at": notification.at.isoformat(),
    }


def _percent(ratio: Fraction) -> str:
    """The ratio in percent, rounded half up to PERCENT_DECIMALS: for display only."""
    scale = 10**PERCENT_DECIMALS
    rounded = math.floor(ratio * 100 * scale + Fraction(1, 2))
    sign = "-" if rounded < 0 else ""
    whole, part = divmod(abs(rounded), scale)
    return f"{sign}{whole}.{part:0{PERCENT_DECIMALS}d}"
