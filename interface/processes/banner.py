"""What `ledger serve` prints once the service answers: where it is, how to try it.

Printed when GET /readyz first answers 200, so it comes after the children's
start-up logs rather than lost among them.
"""

from __future__ import annotations

import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Final

# How long to wait for the service to be ready before saying it is not.
READY_WAIT_S: Final[float] = 180.0
READY_POLL_INTERVAL_S: Final[float] = 0.25
READY_REQUEST_TIMEOUT_S: Final[float] = 2.0
# The line that says the service is ready (tests wait for it).
READY_LINE: Final[str] = "Ledger is ready"


@dataclass(frozen=True, slots=True)
class DemoAccess:
    """The demo's keys, and an account the user key may read."""

    admin_key: str
    user_key: str
    user_owner: str
    user_account_id: str


def banner(base_url: str, processes: str, demo: DemoAccess | None) -> str:
    lines = [
        f"{READY_LINE} at {base_url} ({processes})",
        f"  API docs:   {base_url}/docs",
    ]
    if demo is not None:
        lines += [
            f"  admin key:  {demo.admin_key}",
            f"  user key:   {demo.user_key} (owner {demo.user_owner})",
            f"  try:        curl -H 'Authorization: Bearer {demo.user_key}' "
            f"{base_url}/v1/accounts/{demo.user_account_id}/balance",
        ]
    lines.append("  Ctrl-C stops everything, the embedded PostgreSQL included.")
    return "\n".join(lines) + "\n"


def announce_when_ready(
    probe_url: str, text: str, stop: threading.Event, *, wait_s: float = READY_WAIT_S
) -> threading.Thread:
    """Print `text` once `probe_url` + /readyz answers 200 (or say that it
    did not within `wait_s`), from a thread of its own."""

    def watch() -> None:
        deadline = time.monotonic() + wait_s
        while not stop.is_set():
            if _ready(probe_url):
                sys.stdout.write(text)
                sys.stdout.flush()
                return
            if time.monotonic() >= deadline:
                sys.stdout.write(
                    f"Not ready after {wait_s:.0f} s: see {probe_url}/readyz and the logs.\n"
                )
                sys.stdout.flush()
                return
            stop.wait(READY_POLL_INTERVAL_S)

    thread = threading.Thread(target=watch, name="ready-banner", daemon=True)
    thread.start()
    return thread


def _ready(probe_url: str) -> bool:
    try:
        with urllib.request.urlopen(  # noqa: S310 - our own http:// URL
            f"{probe_url}/readyz", timeout=READY_REQUEST_TIMEOUT_S
        ) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
