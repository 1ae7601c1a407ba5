"""Signatures on webhook bodies, in Stripe's shape.

The header `Ledger-Signature: t=<unix seconds>,v1=<hex>` where the hex is
HMAC-SHA256, keyed with the endpoint's secret, of `<t>.<body>`. The receiver
recomputes it over the raw body, compares in constant time, and refuses a
timestamp too far from its clock (a replayed old delivery). docs/events.md
shows the same check for receivers; `verify` here is what the tests use.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

SIGNATURE_HEADER: Final[str] = "Ledger-Signature"
EVENT_ID_HEADER: Final[str] = "Ledger-Event-Id"
EVENT_TYPE_HEADER: Final[str] = "Ledger-Event-Type"
SECRET_PREFIX: Final[str] = "whsec_"  # noqa: S105 - a prefix, not a secret
SECRET_BYTES: Final[int] = 32
# How far a signature's time may be from the receiver's clock.
TOLERANCE_S_DEFAULT: Final[int] = 300


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int) -> str:
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def verify(
    header: str, body: bytes, secret: str, now: int, tolerance_s: int = TOLERANCE_S_DEFAULT
) -> bool:
    """Whether the header signs this body with this secret, recently enough."""
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1":
            signatures.append(value)
    if timestamp is None or abs(now - timestamp) > tolerance_s:
        return False
    expected = _digest(secret, timestamp, body)
    return any(hmac.compare_digest(expected, signature) for signature in signatures)
