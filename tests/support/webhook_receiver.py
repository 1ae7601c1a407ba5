"""A real HTTP receiver of webhooks, on 127.0.0.1 in a thread.

It checks each delivery's signature as a receiver would (with the secret
it is given and the time the test says it is), and keeps every delivery it
answered 2xx, in the order they came. It can be told to fail (answer 500)
or be stopped and started again on the same port, as a receiver that is
down for a while.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from interface.adapters.webhooks.signing import SIGNATURE_HEADER, verify


class _Server(ThreadingHTTPServer):
    # The worker sends a wave of deliveries at once; the default backlog (5)
    # would refuse most of them.
    request_queue_size = 128


@dataclass
class Received:
    event: dict[str, Any]
    signature: str


@dataclass
class WebhookReceiver:
    now: Callable[[], int]
    secret: str = ""
    # Answer 500 to everything while set.
    failing: bool = False
    # Each answer waits this long (a slow receiver).
    delay_s: float = 0.0
    received: list[Received] = field(default_factory=list)
    bad_signatures: int = 0
    refused: int = 0
    _server: ThreadingHTTPServer | None = None
    _port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/hooks?token=receiver-token"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                status = receiver.take(body, self.headers.get(SIGNATURE_HEADER, ""))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = _Server(("127.0.0.1", self._port), Handler)
        self._port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Down: connections are refused until `start` again (same port)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def take(self, body: bytes, signature: str) -> int:
        with self._lock:
            if self.failing:
                self.refused += 1
                return 500
            if not verify(signature, body, self.secret, self.now()):
                self.bad_signatures += 1
                return 400
            self.received.append(Received(json.loads(body), signature))
            return 204

    def event_ids(self) -> list[str]:
        with self._lock:
            return [item.event["id"] for item in self.received]


@contextmanager
def running_receiver(now: Callable[[], int]) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(now=now)
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
