"""Which webhook URLs the service will call (server-side request forgery).

An endpoint's URL is chosen by an admin, but a URL pointing inside the
network (the database, a metadata service, localhost) would let whoever sets
it make this service call there. So every address the host name resolves to
must be public, checked when the endpoint is saved and again before each
delivery (a name may resolve elsewhere later). LEDGER_WEBHOOKS_ALLOW_PRIVATE_URLS
lifts the check, for tests and private deployments.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Final
from urllib.parse import urlsplit

URL_LENGTH_MAX: Final[int] = 2048
SCHEMES: Final[frozenset[str]] = frozenset({"http", "https"})


class UrlRefused(ValueError):
    """The URL may not be called; the message says why (never a secret)."""


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def require_valid_url(url: str) -> tuple[str, int]:
    """The URL's host and port, if its shape is acceptable."""
    if len(url) > URL_LENGTH_MAX:
        raise UrlRefused(f"the URL is longer than {URL_LENGTH_MAX} characters")
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise UrlRefused("the URL must be http:// or https:// with a host")
    if parts.username or parts.password:
        raise UrlRefused("the URL may not carry a user name or password")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UrlRefused("the URL's port is not a number from 1 to 65535") from None
    return parts.hostname, port


def require_callable_url(url: str, *, allow_private: bool) -> None:
    """Refuse a URL of the wrong shape or, unless allowed, one whose host
    resolves to any address that is not public."""
    host, port = require_valid_url(url)
    if allow_private:
        return
    try:
        resolved = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise UrlRefused(f"the host {host!r} does not resolve") from None
    for *_, address in resolved:
        if not _is_public(str(address[0])):
            raise UrlRefused(
                f"the host {host!r} resolves to {address[0]}, which is not a public address;"
                " set LEDGER_WEBHOOKS_ALLOW_PRIVATE_URLS=true to allow it"
            )
