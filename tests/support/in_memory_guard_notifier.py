"""A GuardNotifier kept in memory, for tests of the guards.

It keeps the port's promises as FileGuardNotifier does (tests/contract holds
both to them): each notification id is delivered once, ever, and while the
owner cannot be reached a delivery raises GuardNotificationFailed and is
delivered by a later try.
"""

from __future__ import annotations

import threading

from application.ports.guard_notifier import GuardNotification, GuardNotificationFailed


class InMemoryGuardNotifier:
    def __init__(self) -> None:
        self.delivered: list[GuardNotification] = []
        # While True, every delivery fails, as a channel that is down would.
        self.unreachable = False
        self._lock = threading.Lock()

    def notify(self, notification: GuardNotification) -> bool:
        with self._lock:
            if any(
                delivered.notification_id == notification.notification_id
                for delivered in self.delivered
            ):
                return False
            if self.unreachable:
                raise GuardNotificationFailed(notification.notification_id, "unreachable")
            self.delivered.append(notification)
            return True
