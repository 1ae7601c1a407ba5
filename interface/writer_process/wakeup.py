"""Waking a ZeroMQ socket's thread from other threads.

A ZeroMQ socket belongs to one thread, which waits in a poll. Work queued
for it by another thread (a submission to send, an answer to return) comes
with a wake-up: an empty message on an in-process PUSH/PULL pair whose
receiving end that poll watches. At most one wake-up waits at a time: the
socket's thread calls `taken` before it reads its queue, so whatever is
queued after that sends a wake-up of its own.
"""

from __future__ import annotations

import contextlib
import threading
import uuid

import zmq


class Wakeup:
    def __init__(self, context: zmq.Context[zmq.Socket[bytes]]) -> None:
        self._context = context
        self._address = f"inproc://ledger-wakeup-{uuid.uuid4().hex}"
        self._pending = False
        self._lock = threading.Lock()
        self._sender: zmq.Socket[bytes] | None = None

    def open(self) -> zmq.Socket[bytes]:
        """The receiving end, for the socket thread's poll (it closes it)."""
        receiver = self._context.socket(zmq.PULL)
        receiver.setsockopt(zmq.LINGER, 0)
        receiver.bind(self._address)
        sender = self._context.socket(zmq.PUSH)
        sender.setsockopt(zmq.LINGER, 0)
        sender.connect(self._address)
        with self._lock:
            self._sender = sender
        return receiver

    def wake(self) -> None:
        """From any thread, after queueing work."""
        if self._pending:
            return
        self._pending = True
        with self._lock:
            if self._sender is not None:
                # Full means a wake-up is already waiting.
                with contextlib.suppress(zmq.Again):
                    self._sender.send(b"", zmq.NOBLOCK)

    def taken(self) -> None:
        """On the socket's thread, before it reads its queue."""
        self._pending = False

    def close(self) -> None:
        """No more wake-ups (the sending end closes)."""
        with self._lock:
            if self._sender is not None:
                self._sender.close()
                self._sender = None


def drain(receiver: zmq.Socket[bytes]) -> None:
    """Take every wake-up (or message) waiting on a socket, without waiting."""
    while True:
        try:
            receiver.recv(zmq.NOBLOCK)
        except zmq.Again:
            return
