"""A process's handle on the writer process: the `Writer` port over ZeroMQ.

Submissions go out on a DEALER socket owned by one I/O thread (a ZeroMQ
socket belongs to one thread); callers on any thread, or on an event loop,
get a concurrent future answered when the writer's receipt comes back.

The client fails fast rather than wait for a writer that is not there:
- until the writer has answered a status query on the current connection,
  and from the moment the connection drops (the writer died, or restarts),
  `submit` raises `WriterStopped` (503 with Retry-After), and every
  submission still waiting is failed with it: not acknowledged, so a retry
  with the same idempotency key finds what the writer did or does it;
- a status query goes out every `HEARTBEAT_INTERVAL_S`; a writer silent for
  `SILENCE_MAX_S` (hung, or its machine gone without closing the
  connection) is treated as gone the same way;
- ZeroMQ reconnects by itself; the first status answer on the new connection
  makes the client available again.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Final

import structlog
import zmq
from zmq.utils.monitor import recv_monitor_message

from application.writer import (
    AggregateChanges,
    WriteReceipt,
    WriterLimits,
    WriterOverloaded,
    WriterStatistics,
    WriterStopped,
    WriterTimeout,
    receipt_within,
    writer_timeout,
)
from domain.commands import Command
from interface.writer_process import wire
from interface.writer_process.curve import CurveKeys, connect_curve
from interface.writer_process.wakeup import Wakeup, drain

log = structlog.get_logger(__name__)

HEARTBEAT_INTERVAL_S: Final[float] = 0.5
# Longer than any pause of a healthy writer's socket thread (it answers
# status queries while the writer thread commits).
SILENCE_MAX_S: Final[float] = 5.0
# How long `start` waits for a first answer before letting the process go on
# unavailable (it becomes available when the writer answers).
FIRST_CONTACT_WAIT_S: Final[float] = 5.0
# ZeroMQ's reconnection attempts: at once, then backing off to this.
RECONNECT_INTERVAL_MS: Final[int] = 100
RECONNECT_INTERVAL_MAX_MS: Final[int] = 1000
SOCKET_HIGH_WATER_MARK: Final[int] = 1_000_000
# Messages taken from the socket per turn before sending what is queued.
RECEIVED_PER_TURN_MAX: Final[int] = 1024
_MONITORED_EVENTS: Final[int] = zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED


class RemoteWriter:
    """The `Writer` port (application/ports/writer.py) for a writer in
    another process, at `endpoint`."""

    def __init__(
        self,
        endpoint: str,
        limits: WriterLimits,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        curve: CurveKeys | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._curve = curve
        self.limits = limits
        self.statistics = WriterStatistics()
        self._context = context or zmq.Context.instance()
        self._last_position = 0
        self._writer_queued_commands = 0
        self._incarnation: str | None = None
        self._available = False
        self._lock = threading.Lock()
        # Submissions sent or about to be, by request id: (future, weight).
        self._waiting: dict[bytes, tuple[Future[WriteReceipt], int]] = {}
        self._waiting_weight = 0
        self._outbox: deque[tuple[bytes, bytes, bytes]] = deque()
        self._request_ids = itertools.count(1)
        self._wakeup = Wakeup(self._context)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._first_contact = threading.Event()

    # Lifecycle ---------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        wake_receiver = self._wakeup.open()
        self._thread = threading.Thread(
            target=self._run, args=(wake_receiver,), name="ledger-writer-client", daemon=True
        )
        self._thread.start()
        if not self._first_contact.wait(FIRST_CONTACT_WAIT_S):
            log.warning("writer_unreachable", endpoint=self.endpoint)

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stopping.set()
        self._wakeup.wake()
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
        self._thread = None
        self._wakeup.close()
        self._fail_waiting(WriterStopped("the writer client stopped"))

    # The Writer port -----------------------------------------------------

    @property
    def is_running(self) -> bool:
        return self._available

    @property
    def last_position(self) -> int:
        return self._last_position

    @property
    def queued_commands(self) -> int:
        return self._writer_queued_commands

    @property
    def incarnation(self) -> str | None:
        """The id the writer process chose at its start, as last heard: a
        new one means another writer (or the same, restarted) answers now."""
        return self._incarnation

    def submit(
        self, commands: Sequence[Command], changes: AggregateChanges | None = None
    ) -> Future[WriteReceipt]:
        if not commands and changes is None:
            raise ValueError("nothing to submit")
        if len(commands) > self.limits.batch_size_max:
            raise ValueError(f"at most {self.limits.batch_size_max} commands go in one batch")
        if not self._available:
            raise WriterStopped(f"the writer at {self.endpoint} is unavailable; retry shortly")
        body = wire.encode_submission(commands, changes)
        weight = max(1, len(commands))
        future: Future[WriteReceipt] = Future()
        request_id = next(self._request_ids).to_bytes(8, "big")
        with self._lock:
            if self._waiting_weight + weight > self.limits.queued_commands_max:
                raise WriterOverloaded("the writer's queue is full; retry shortly")
            self._waiting[request_id] = (future, weight)
            self._waiting_weight += weight
            self._outbox.append((wire.SUBMIT, request_id, body))
        self._wakeup.wake()
        return future

    def execute(
        self, commands: Sequence[Command], changes: AggregateChanges | None = None
    ) -> WriteReceipt:
        return receipt_within(self.submit(commands, changes), self.limits)

    def timed_out(self) -> WriterTimeout:
        return writer_timeout(self.limits)

    # The I/O thread ------------------------------------------------------

    def _run(self, wake_receiver: zmq.Socket[bytes]) -> None:
        dealer = self._context.socket(zmq.DEALER)
        if self._curve is not None:
            connect_curve(dealer, self._curve)
        dealer.setsockopt(zmq.LINGER, 0)
        # Sends only to a connection that is up: with none, sending fails at
        # once instead of queueing for a writer that may never come back.
        dealer.setsockopt(zmq.IMMEDIATE, 1)
        dealer.setsockopt(zmq.SNDHWM, SOCKET_HIGH_WATER_MARK)
        dealer.setsockopt(zmq.RCVHWM, SOCKET_HIGH_WATER_MARK)
        dealer.setsockopt(zmq.RECONNECT_IVL, RECONNECT_INTERVAL_MS)
        dealer.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_INTERVAL_MAX_MS)
        monitor = dealer.get_monitor_socket(_MONITORED_EVENTS)
        dealer.connect(self.endpoint)
        poller = zmq.Poller()
        poller.register(dealer, zmq.POLLIN)
        poller.register(wake_receiver, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        last_heard = time.monotonic()
        next_query = 0.0
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                if now >= next_query:
                    _send_quietly(dealer, wire.STATUS_QUERY, b"", b"")
                    next_query = now + HEARTBEAT_INTERVAL_S
                if self._available and now - last_heard > SILENCE_MAX_S:
                    self._lose_writer("the writer stopped answering")
                timeout_ms = max(1, int((next_query - now) * 1000))
                ready = dict(poller.poll(timeout_ms))
                if monitor in ready:
                    self._watch_connection(monitor, dealer)
                if wake_receiver in ready:
                    drain(wake_receiver)
                if dealer in ready:
                    for _ in range(RECEIVED_PER_TURN_MAX):
                        try:
                            frames = dealer.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        last_heard = time.monotonic()
                        self._take(frames)
                self._send_outbox(dealer)
        finally:
            dealer.disable_monitor()
            monitor.close()
            dealer.close()
            wake_receiver.close()

    def _watch_connection(self, monitor: zmq.Socket[bytes], dealer: zmq.Socket[bytes]) -> None:
        while True:
            try:
                event = recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            if event["event"] == zmq.EVENT_DISCONNECTED:
                self._lose_writer("the connection to the writer dropped")
            elif event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                # Available once the writer answers on this connection.
                _send_quietly(dealer, wire.STATUS_QUERY, b"", b"")

    def _lose_writer(self, reason: str) -> None:
        if self._available:
            log.warning("writer_lost", endpoint=self.endpoint, reason=reason)
        self._available = False
        self._fail_waiting(WriterStopped(f"{reason}; retry with the same idempotency key"))

    def _fail_waiting(self, error: Exception) -> None:
        with self._lock:
            waiting = list(self._waiting.values())
            self._waiting.clear()
            self._waiting_weight = 0
            self._outbox.clear()
        for future, _ in waiting:
            _settle(future, error=error)

    def _send_outbox(self, dealer: zmq.Socket[bytes]) -> None:
        # Before the outbox is read: a submission queued after this sends
        # its own wake-up.
        self._wakeup.taken()
        while True:
            with self._lock:
                if not self._outbox:
                    return
                kind, request_id, body = self._outbox.popleft()
            if not _send_quietly(dealer, kind, request_id, body):
                self._finish(request_id, error=WriterStopped("the writer is unavailable"))

    def _take(self, frames: list[bytes]) -> None:
        if len(frames) != 3:
            log.warning("writer_answer_malformed", frames=len(frames))
            return
        kind, request_id, body = frames
        try:
            if kind == wire.STATUS:
                self._learn(wire.decode_status(body))
            elif kind == wire.RECEIPT:
                receipt = wire.decode_receipt(body)
                if receipt.position is not None and receipt.position > self._last_position:
                    self._last_position = receipt.position
                self._finish(request_id, receipt=receipt)
            elif kind == wire.FAILURE:
                self._finish(request_id, error=wire.decode_failure(body))
        except Exception as error:
            log.exception("writer_answer_unreadable")
            self._finish(request_id, error=RuntimeError(f"unreadable answer: {error}"))

    def _learn(self, status: wire.WriterStatus) -> None:
        if status.incarnation != self._incarnation:
            log.info("writer_found", endpoint=self.endpoint, incarnation=status.incarnation)
            self._incarnation = status.incarnation
        self._last_position = max(self._last_position, status.last_position)
        self._writer_queued_commands = status.queued_commands
        self.statistics = status.statistics
        self._available = status.running
        self._first_contact.set()

    def _finish(
        self,
        request_id: bytes,
        *,
        receipt: WriteReceipt | None = None,
        error: BaseException | None = None,
    ) -> None:
        with self._lock:
            entry = self._waiting.pop(request_id, None)
            if entry is None:
                return
            future, weight = entry
            self._waiting_weight -= weight
        _settle(future, receipt=receipt, error=error)


def _settle(
    future: Future[WriteReceipt],
    *,
    receipt: WriteReceipt | None = None,
    error: BaseException | None = None,
) -> None:
    # A caller that stopped waiting cancelled its future: nobody to tell.
    if not future.set_running_or_notify_cancel():
        return
    if error is not None:
        future.set_exception(error)
    else:
        assert receipt is not None
        future.set_result(receipt)


def _send_quietly(dealer: zmq.Socket[bytes], kind: bytes, request_id: bytes, body: bytes) -> bool:
    """False when no connection to the writer is up to take it."""
    try:
        dealer.send_multipart([kind, request_id, body], zmq.NOBLOCK)
    except zmq.Again:
        return False
    return True
