"""CURVE on the writer channel: encrypted, and only the deployment's processes.

The channel carries pickles of the application's own types, so a peer that
can send to the writer's socket can make the writer process run code. On
loopback or an ipc path the host (and the file's permissions) keep others
out. Across machines every process of the deployment holds one secret key
(`LEDGER_WRITER_CURVE_SECRET_KEY`, made by `ledger writer --new-key`): the
writer serves CURVE with it, each client connects with it, and the writer's
ZAP handler lets in only clients whose public key is that key's. Anyone
without the secret can neither read the traffic nor be heard.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import zmq
from pydantic import SecretStr
from zmq.auth.thread import ThreadAuthenticator

# Z85 text of a 32-byte CURVE key.
KEY_TEXT_LENGTH: Final[int] = 40
LOOPBACK_NAMES: Final[frozenset[str]] = frozenset({"localhost"})


@dataclass(frozen=True)
class CurveKeys:
    public: bytes
    secret: bytes

    @classmethod
    def from_secret(cls, secret_text: str) -> CurveKeys:
        """The pair from its secret key's Z85 text; ValueError if it is not one."""
        text = secret_text.strip()
        if not text.isascii() or len(text) != KEY_TEXT_LENGTH:
            raise ValueError(f"a CURVE secret key is {KEY_TEXT_LENGTH} characters of Z85 text")
        secret = text.encode("ascii")
        try:
            public = zmq.curve_public(secret)
        except (zmq.ZMQError, ValueError) as error:
            raise ValueError("not a CURVE secret key in Z85 text") from error
        return cls(public=public, secret=secret)


def keys_of(setting: SecretStr | None) -> CurveKeys | None:
    """The pair for LEDGER_WRITER_CURVE_SECRET_KEY; None when it is unset."""
    return None if setting is None else CurveKeys.from_secret(setting.get_secret_value())


def new_secret_key() -> str:
    """A new secret key's Z85 text, for LEDGER_WRITER_CURVE_SECRET_KEY."""
    _, secret = zmq.curve_keypair()
    return secret.decode("ascii")


def needs_curve(endpoint: str) -> bool:
    """A tcp endpoint beyond loopback: other hosts could reach it."""
    if not endpoint.startswith("tcp://"):
        return False
    host = urlsplit(endpoint).hostname or ""
    if host in LOOPBACK_NAMES:
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        # A name, a wildcard (*) or an interface: not known to stay local.
        return True


class _DeploymentKeyOnly:
    """ZAP's credentials provider: the one public key of the deployment."""

    def __init__(self, public: bytes) -> None:
        self._public = public

    def callback(self, domain: str, key: bytes) -> bool:
        return key == self._public


def serve_curve(
    socket: zmq.Socket[bytes], keys: CurveKeys, context: zmq.Context[zmq.Socket[bytes]]
) -> ThreadAuthenticator:
    """Make `socket` (not yet bound) a CURVE server that admits only the
    deployment's key; the authenticator returned must be stopped after it."""
    authenticator = ThreadAuthenticator(context)
    authenticator.start()
    authenticator.configure_curve_callback("*", _DeploymentKeyOnly(keys.public))
    socket.curve_secretkey = keys.secret
    socket.curve_publickey = keys.public
    socket.curve_server = True
    return authenticator


def connect_curve(socket: zmq.Socket[bytes], keys: CurveKeys) -> None:
    """Make `socket` (not yet connected) a CURVE client of the writer."""
    socket.curve_secretkey = keys.secret
    socket.curve_publickey = keys.public
    socket.curve_serverkey = keys.public
