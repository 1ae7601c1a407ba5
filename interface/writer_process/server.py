"""The writer process's socket: submissions in, receipts out.

A ROUTER socket bound to `LEDGER_WRITER_ENDPOINT` takes submissions from any
number of client processes (each a DEALER) and queues them on the one
LedgerWriter, whose group commit puts the submissions of every process that
arrived together in one batch. Receipts come back on the writer's thread (a
future's callback); they are handed to the socket's thread through a queue
and a wake-up message, because a ZeroMQ socket belongs to one thread.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from concurrent.futures import Future
from typing import Any, Final

import structlog
import zmq

from application.ports.writer import Writer
from application.writer import WriteReceipt
from interface.writer_process import wire
from interface.writer_process.curve import CurveKeys, serve_curve
from interface.writer_process.metrics import WriterProcessMetrics
from interface.writer_process.wakeup import Wakeup, drain

log = structlog.get_logger(__name__)

# How often the serving loop looks at its stop signal while idle.
STOP_CHECK_INTERVAL_MS: Final[int] = 100
# Messages taken from the socket per turn before answering what is ready, so
# a flood of submissions never starves the answers.
RECEIVED_PER_TURN_MAX: Final[int] = 1024
# Answers and submissions queued in ZeroMQ per peer before it refuses more:
# above the writer's own queue bound, which is what sheds load.
SOCKET_HIGH_WATER_MARK: Final[int] = 1_000_000
# How long the last answers may take to leave once the socket closes.
CLOSING_LINGER_MS: Final[int] = 2000


class WriterServer:
    """Serves one running LedgerWriter on a ZeroMQ endpoint."""

    def __init__(
        self,
        writer: Writer,
        endpoint: str,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        metrics: WriterProcessMetrics | None = None,
        curve: CurveKeys | None = None,
    ) -> None:
        self._writer = writer
        self._curve = curve
        self._metrics = metrics
        self._endpoint = endpoint
        self._context = context or zmq.Context.instance()
        self._incarnation = uuid.uuid4().hex
        # Answers ready to send: (client identity, request id, the settled
        # submission's future, or a status or failure already encoded).
        self._answers: deque[tuple[bytes, bytes, Future[WriteReceipt] | _Encoded]] = deque()
        self._wakeup = Wakeup(self._context)

    @property
    def answers_waiting(self) -> int:
        """Receipts ready but not yet sent (a gauge, read from another thread)."""
        return len(self._answers)

    def serve(self, stop: threading.Event, bound: threading.Event | None = None) -> None:
        """Answer until `stop` is set, on the calling thread; `bound` is set
        once the endpoint takes connections. Then the writer stops, finishing
        what it has queued, and those answers go out before the socket closes."""
        router = self._context.socket(zmq.ROUTER)
        wake_receiver = self._wakeup.open()
        authenticator = (
            serve_curve(router, self._curve, self._context) if self._curve is not None else None
        )
        try:
            router.setsockopt(zmq.LINGER, CLOSING_LINGER_MS)
            router.setsockopt(zmq.SNDHWM, SOCKET_HIGH_WATER_MARK)
            router.setsockopt(zmq.RCVHWM, SOCKET_HIGH_WATER_MARK)
            # A client that has gone: its answers are dropped, not queued.
            router.setsockopt(zmq.ROUTER_MANDATORY, 0)
            router.bind(self._endpoint)
            log.info("writer_serving", endpoint=self._endpoint, incarnation=self._incarnation)
            if bound is not None:
                bound.set()
            self._loop(router, wake_receiver, stop)
        finally:
            self._wakeup.close()
            wake_receiver.close()
            router.close()
            if authenticator is not None:
                authenticator.stop()

    def _loop(
        self, router: zmq.Socket[bytes], wake_receiver: zmq.Socket[bytes], stop: threading.Event
    ) -> None:
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(wake_receiver, zmq.POLLIN)
        while not stop.is_set():
            ready = dict(poller.poll(STOP_CHECK_INTERVAL_MS))
            if wake_receiver in ready:
                drain(wake_receiver)
            if router in ready:
                for _ in range(RECEIVED_PER_TURN_MAX):
                    try:
                        frames = router.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self._take(frames)
            self._send_answers(router)
        # Queued submissions are decided before the writer stops, and answered.
        self._writer.stop()
        self._send_answers(router)

    def _send_answers(self, router: zmq.Socket[bytes]) -> None:
        # Before the queue is read: an answer queued after this sends its own
        # wake-up (see _answer).
        self._wakeup.taken()
        while self._answers:
            identity, request_id, answer = self._answers.popleft()
            kind, body = answer if isinstance(answer, tuple) else _encoded(answer)
            try:
                router.send_multipart([identity, kind, request_id, body], zmq.NOBLOCK)
            except zmq.Again:
                log.warning("writer_answer_dropped", reason="client queue full")

    def _take(self, frames: list[bytes]) -> None:
        if len(frames) != 4:
            log.warning("writer_message_malformed", frames=len(frames))
            return
        identity, kind, request_id, body = frames
        if kind == wire.STATUS_QUERY:
            self._answers.append((identity, request_id, (wire.STATUS, self._status())))
            return
        if kind != wire.SUBMIT:
            log.warning("writer_message_unknown", kind=kind.hex())
            return
        commands: list[Any] = []
        try:
            commands, changes = wire.decode_submission(body)
            future = self._writer.submit(commands, changes)
        except Exception as error:  # noqa: BLE001 - the client raises it
            # Refused at once (overloaded, stopped, not a valid submission).
            if self._metrics is not None:
                self._metrics.submission_refused(len(commands))
            self._answers.append((identity, request_id, (wire.FAILURE, wire.encode_failure(error))))
            return
        if self._metrics is not None:
            self._metrics.submission_taken(len(commands))
        future.add_done_callback(
            lambda done: self._answer(identity, request_id, done),
        )

    def _answer(self, identity: bytes, request_id: bytes, future: Future[WriteReceipt]) -> None:
        """On the writer's thread (or this one, if already done): queue the
        answer. It is encoded on the socket's thread, off the writer's path."""
        if future.cancelled():
            return
        self._answers.append((identity, request_id, future))
        self._wakeup.wake()

    def _status(self) -> bytes:
        writer = self._writer
        return wire.encode_status(
            wire.WriterStatus(
                incarnation=self._incarnation,
                running=writer.is_running,
                last_position=writer.last_position,
                queued_commands=writer.queued_commands,
                statistics=writer.statistics,
                limits=writer.limits,
            )
        )


# An answer's kind and body, ready to send.
_Encoded = tuple[bytes, bytes]


def _encoded(future: Future[WriteReceipt]) -> _Encoded:
    error = future.exception()
    if error is None:
        return wire.RECEIPT, wire.encode_receipt(future.result())
    return wire.FAILURE, wire.encode_failure(error)
