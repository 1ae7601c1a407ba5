"""Each request's id: the header that carries it and where the middleware keeps it.

Apart from the request context middleware so that the error handlers, which
the middleware itself depends on, can quote the id without an import cycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

REQUEST_ID_HEADER: Final[str] = "X-Request-ID"
REQUEST_ID_STATE_KEY: Final[str] = "request_id"


def request_id_of(scope: Mapping[str, Any]) -> str | None:
    """The id the middleware gave this request (None outside one)."""
    request_id: str | None = scope.get("state", {}).get(REQUEST_ID_STATE_KEY)
    return request_id
