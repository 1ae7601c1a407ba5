"""Waiting on a LISTEN connection that another thread can cut short.

psycopg's `notifies(timeout=...)` only returns at a notification or at its
timeout, so a thread waiting in it sees a stop request late (a ledger's
close, and every test's, paid that wait). Here the wait is a `select` on the
connection's socket and on one end of a socket pair; `wake` writes a byte to
the other end and the wait returns at once.
"""

from __future__ import annotations

import contextlib
import select
import socket
from typing import Any

import psycopg


class NotificationWait:
    def __init__(self) -> None:
        self._wake_reader, self._wake_writer = socket.socketpair()

    def wait(self, connection: psycopg.Connection[Any], timeout_s: float) -> bool:
        """True when a notification arrived within `timeout_s` (all of those
        that arrived are consumed); False at the timeout or after `wake`."""
        woken = self._wake_reader.fileno()
        readable, _, _ = select.select([connection.fileno(), woken], [], [], timeout_s)
        if woken in readable:
            return False
        # Whatever arrived, without waiting for more.
        return sum(1 for _ in connection.notifies(timeout=0)) > 0

    def wake(self) -> None:
        """Return every `wait`, now and later: the waiter is stopping."""
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"\0")

    def close(self) -> None:
        self._wake_reader.close()
        self._wake_writer.close()
