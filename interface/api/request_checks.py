"""Refuse at the edge: every route's first dependency checks what it was sent.

Installed on the app (`create_app`), so it runs on every route before the
route's own dependencies (which may read the database with a path value) and
before anything is written. It refuses, with 422 and the field named:

- a query parameter the route does not declare (`unknown_query_parameter`),
  rather than ignoring it: a misspelt filter would otherwise answer a list
  the client did not ask for;
- a path, query or declared header value, or any string or key of a JSON
  body, that input_checks.py does not accept (`invalid_string`);
- a JSON body with a key given twice (`duplicate_key`);
- a `metadata` object outside its limits (`invalid_metadata`).

The framework has already read the body (its size bounded further out, by
BodySizeLimitMiddleware) and parsed it, or refused it as not JSON; this
parses it once more with a hook that notices duplicate keys, which the
framework's parser silently resolves to the last.
"""

from __future__ import annotations

import email.message
from typing import Final

from fastapi import Request, params
from fastapi.dependencies.utils import get_flat_params
from fastapi.routing import APIRoute

from interface.api.errors import ApiError
from interface.api.input_checks import (
    check_json_document,
    check_string,
    limits_in_force,
    parse_json_body,
)
from interface.text_rules import printable

UNKNOWN_QUERY_PARAMETER: Final[str] = "unknown_query_parameter"


async def check_request(request: Request) -> None:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    limits = limits_in_force(request.app)
    query_parameters, headers = _declared_parameters(route)
    # Most requests have no query string: nothing to parse, nothing to refuse.
    has_query = bool(request.scope.get("query_string"))
    if has_query:
        _refuse_unknown_query_parameters(request, query_parameters)
    for name, value in request.path_params.items():
        # Converted values (a UUID) were checked by their converter.
        if isinstance(value, str):
            check_string(value, name, limits.string_length_max)
    if has_query:
        for name, value in request.query_params.multi_items():
            check_string(value, name, limits.string_length_max)
    for header in headers:
        for value in request.headers.getlist(header):
            check_string(value, header, limits.string_length_max)
    if route.dependant.body_params and _is_json(request):
        body = await request.body()
        if body:
            check_json_document(parse_json_body(body), limits)


# Where a route keeps its declared parameters once walked: on the route
# itself, so they live and die with it (an app built per test leaves nothing).
_DECLARED_PARAMETERS_ATTRIBUTE: Final[str] = "_ledger_declared_parameters"


def _declared_parameters(route: APIRoute) -> tuple[frozenset[str], tuple[str, ...]]:
    """The names of the route's query parameters and headers, its
    dependencies' included. Walked once per route: the walk is a few nodes,
    but it was a twentieth of a read's time on every request."""
    declared: tuple[frozenset[str], tuple[str, ...]] | None = getattr(
        route, _DECLARED_PARAMETERS_ATTRIBUTE, None
    )
    if declared is None:
        fields = get_flat_params(route.dependant)
        query = frozenset(
            field.alias for field in fields if isinstance(field.field_info, params.Query)
        )
        headers = tuple(
            field.alias.lower() for field in fields if isinstance(field.field_info, params.Header)
        )
        declared = (query, headers)
        setattr(route, _DECLARED_PARAMETERS_ATTRIBUTE, declared)
    return declared


def _refuse_unknown_query_parameters(request: Request, declared: frozenset[str]) -> None:
    unknown = sorted({name for name in request.query_params if name not in declared})
    if not unknown:
        return
    names = [printable(name) for name in unknown]
    raise ApiError(
        422,
        UNKNOWN_QUERY_PARAMETER,
        f"this route takes no query parameter {', '.join(names)}"
        + (f"; it takes {', '.join(sorted(declared))}" if declared else ""),
        {"parameters": names, "accepted": sorted(declared)},
    )


def _is_json(request: Request) -> bool:
    """As the framework decides whether to parse a body as JSON; any other
    body it refuses itself (every body this API takes is JSON)."""
    content_type = request.headers.get("content-type")
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )
