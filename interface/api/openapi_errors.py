"""Each operation's error responses in the OpenAPI document: its codes, as an enum.

`add_error_responses` gives every operation one response per error status it
can answer, whose body's `error.code` is an enum of the codes behind that
status, so a generated client can switch on them. The codes are derived from
the code that answers them, never listed by hand per route:

1. **What the route runs.** From the endpoint and every dependency of the
   route (but the app's own, `check_request`: see 2), the functions of this
   project they call, or pass on to be called (a callback, a `partial`), are
   followed transitively by name through `application/`, `domain/`,
   `interface/` and `projections/`. Every `ResultCode.X` met is a refusal the
   route can answer (with `status_for`'s status); every `ApiError(status,
   code)` with a literal or constant code is one too; every writer error
   (`errors.WRITER_ERRORS`) raised or met means its code. A name defined in
   more than `DEFINITIONS_FOLLOWED_MAX` places (`get`, `run`) is not followed:
   it says nothing about which one runs. One seam has no call in the code:
   the writer's queue, where what is submitted is decided by the ledger batch
   on the writer's thread (`_QUEUE_SEAMS`).
2. **What stands before the route** (the middlewares, by path and method):
   rate limits everywhere; authentication on `/v1`; the `Idempotency-Key`
   header on POSTs under `/v1`; the body's size and JSON on routes that take
   a body; the framework's validation and `check_request` on routes that take
   any input; database faults and the catch-all 500 everywhere.

So a code can be listed that a given request never meets (the derivation
follows every branch), but a code a route answers is not missed unless it
comes through a name too common to follow. tests/unit/test_openapi_errors.py
checks the derivation on routes whose codes are known, and
tests/e2e/test_error_bodies.py checks that the errors actually answered are
in their operation's enum. See docs/api.md#error-codes.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import Any, Final

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from domain.result_codes import ResultCode
from interface.api import routes as routes_package
from interface.api.errors import DATABASE_UNAVAILABLE, MALFORMED_BODY, WRITER_ERRORS, status_for
from interface.api.input_checks import DUPLICATE_KEY, INVALID_METADATA, INVALID_STRING
from interface.api.middleware.authentication import PROTECTED_PREFIX, SIGNED_BY_SENDER_PATHS
from interface.api.middleware.body_size_limit import REQUEST_TOO_LARGE
from interface.api.middleware.idempotency import IDEMPOTENT_METHODS
from interface.api.request_checks import UNKNOWN_QUERY_PARAMETER, check_request

# The packages whose functions are followed (the project's own code).
FOLLOWED_PACKAGES: Final[tuple[str, ...]] = ("application", "domain", "interface", "projections")
# A name defined more often than this is not followed (see the module's docstring).
DEFINITIONS_FOLLOWED_MAX: Final[int] = 3
_PROJECT_ROOT: Final[Path] = Path(__file__).resolve().parents[2]
_CONSTRUCTOR: Final[str] = "__init__"
# Where a call does not show what runs next: commands given to the writer
# (its port, application/ports/writer.py: `submit`, `execute`) are decided on
# its thread by the ledger batch, and may meet any of the writer's own errors.
_WRITER_PORT_METHODS: Final = frozenset({"submit", "execute"})
_DECIDED_BY: Final[tuple[str, str]] = ("domain.ledger_batch", "LedgerBatch")
_DECIDING_METHOD: Final[str] = "execute_all"

# Codes of the middlewares and of the framework, with their statuses: what
# each answers is in its own module (interface/api/middleware/).
RATE_LIMITED: Final[tuple[int, str]] = (429, "rate_limited")
INTERNAL_ERROR: Final[tuple[int, str]] = (500, "internal_error")
AUTHENTICATION: Final[tuple[tuple[int, str], ...]] = (
    (401, "unauthenticated"),
    (401, "invalid_api_key"),
)
INVALID_IDEMPOTENCY_KEY: Final[tuple[int, str]] = (422, "invalid_idempotency_key")
IDEMPOTENCY_HEADER: Final[tuple[tuple[int, str], ...]] = (
    INVALID_IDEMPOTENCY_KEY,
    (422, "idempotency_key_reused"),
    (409, "idempotency_key_in_progress"),
    (413, REQUEST_TOO_LARGE),
    (503, "unavailable"),
)
# `check_request` (request_checks.py), the app's first dependency of every
# route, refuses an undeclared query parameter on any route, a bad string in
# any input, and in a body a key given twice or metadata outside its limits.
# The body size limit (body_size_limit.py) counts the body of every request,
# whether the route takes one or not.
EVERY_REQUEST: Final[tuple[tuple[int, str], ...]] = (
    (422, UNKNOWN_QUERY_PARAMETER),
    (413, REQUEST_TOO_LARGE),
)
BODY: Final[tuple[tuple[int, str], ...]] = (
    (400, MALFORMED_BODY),
    (422, DUPLICATE_KEY),
    (422, INVALID_METADATA),
)
# The framework's validation of path, query, header and body values, and
# check_request's of every string among them.
VALIDATION: Final[tuple[tuple[int, str], ...]] = ((422, "invalid_request"), (422, INVALID_STRING))
# Any `amount` field refused by validation answers invalid_amount (errors.py).
AMOUNT_VALIDATION: Final[tuple[int, str]] = (422, ResultCode.INVALID_AMOUNT.value)
DATABASE: Final[tuple[int, str]] = (503, DATABASE_UNAVAILABLE)
PATH_NOT_MATCHED: Final[tuple[int, str]] = (404, "not_found")

_ERROR_DESCRIPTIONS: Final[dict[int, str]] = {
    400: "The body is not JSON",
    401: "No API key, or an unknown or revoked one",
    403: "The key's role may not use this route",
    404: "Not found",
    409: "Refused by the ledger's current state",
    413: "The body is over its limit",
    422: "The request is not valid",
    429: "Rate limited: retry after `Retry-After` seconds",
    500: "A bug, logged; quote the request id",
    503: "Busy or unavailable: retry after `Retry-After` seconds",
}
_HTTP_METHODS: Final = frozenset({"get", "put", "post", "delete", "patch", "head", "options"})


def add_error_responses(openapi_schema: dict[str, Any]) -> None:
    """Give each operation of the document its error responses, one per
    status, each body's `error.code` an enum of the codes behind it."""
    for path, operations in openapi_schema.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in _HTTP_METHODS:
                continue
            _document(operation, codes_of_operation(path, method.upper()))


@cache
def codes_of_operation(path: str, method: str) -> dict[int, frozenset[str]]:
    """Status -> codes, for the operation at this path template and method."""
    route = _routes_by_operation().get((path, method))
    if route is None:
        raise LookupError(f"{method} {path} is in the document but not a route")
    return operation_error_codes(route, method)


def operation_error_codes(route: APIRoute, method: str) -> dict[int, frozenset[str]]:
    """Status -> the codes the operation can answer with it."""
    found: set[tuple[int, str]] = {RATE_LIMITED, INTERNAL_ERROR, DATABASE, *EVERY_REQUEST}
    path = route.path_format
    if path.startswith(PROTECTED_PREFIX) and method in IDEMPOTENT_METHODS:
        # The header's form is checked before anything else, on every POST
        # under /v1, the sender-signed ones included (they take no key, so
        # nothing further is kept for them).
        found.add(INVALID_IDEMPOTENCY_KEY)
    if path.startswith(PROTECTED_PREFIX) and path not in SIGNED_BY_SENDER_PATHS:
        found.update(AUTHENTICATION)
        if method in IDEMPOTENT_METHODS:
            found.update(IDEMPOTENCY_HEADER)
    if ":" in route.path:
        # A path parameter with a converter ({id:uuid}): a value it does not
        # convert matches no route.
        found.add(PATH_NOT_MATCHED)
    dependant = route.dependant
    if _has_body(dependant):
        found.update(BODY)
    if _takes_input(dependant):
        found.update(VALIDATION)
    if _has_amount_field(route):
        found.add(AMOUNT_VALIDATION)
    for call in _calls_of(dependant):
        if call is not check_request:
            found.update(_codes_reached_from(call))
    by_status: dict[int, set[str]] = {}
    for status, code in found:
        by_status.setdefault(status, set()).add(code)
    return {status: frozenset(codes) for status, codes in sorted(by_status.items())}


def error_body_schema(codes: Iterable[str]) -> dict[str, Any]:
    """The error envelope with `code` held to these codes."""
    return {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "field", "details", "request_id", "doc_url"],
                "properties": {
                    "code": {"type": "string", "enum": sorted(codes)},
                    "message": {"type": "string"},
                    "field": {
                        "anyOf": [{"type": "string"}, {"type": "null"}],
                        "description": "The input at fault (a body field as `transfers.3.amount`, "
                        "a query parameter's name); null when the error is not about one.",
                    },
                    "details": {"type": "object", "additionalProperties": True},
                    "request_id": {
                        "anyOf": [{"type": "string"}, {"type": "null"}],
                        "description": "The request's id, as in its `X-Request-ID` header.",
                    },
                    "doc_url": {
                        "type": "string",
                        "description": "The code's entry in the error table: `docs/api.md#<code>`.",
                    },
                },
            }
        },
    }


def _document(operation: dict[str, Any], codes_by_status: dict[int, frozenset[str]]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status in [status for status in responses if str(status)[:1] in {"4", "5"}]:
        if int(status) not in codes_by_status:
            del responses[status]
    for code_status, codes in codes_by_status.items():
        response = responses.setdefault(str(code_status), {})
        response.setdefault("description", _ERROR_DESCRIPTIONS.get(code_status, "Error"))
        response["content"] = {"application/json": {"schema": error_body_schema(codes)}}


# The routes ---------------------------------------------------------------------


@cache
def _routes_by_operation() -> dict[tuple[str, str], APIRoute]:
    """Every route of every router under interface/api/routes."""
    found: dict[tuple[str, str], APIRoute] = {}
    for module_info in pkgutil.iter_modules(routes_package.__path__):
        module = importlib.import_module(f"{routes_package.__name__}.{module_info.name}")
        router = getattr(module, "router", None)
        for route in getattr(router, "routes", ()):
            if isinstance(route, APIRoute):
                for method in route.methods or ():
                    found[(route.path_format, method)] = route
    return found


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for dependency in dependant.dependencies:
        yield from _dependants(dependency)


def _calls_of(dependant: Dependant) -> list[Any]:
    return [found.call for found in _dependants(dependant) if found.call is not None]


def _has_body(dependant: Dependant) -> bool:
    return any(found.body_params for found in _dependants(dependant))


def _takes_input(dependant: Dependant) -> bool:
    return any(
        found.body_params
        or found.path_params
        or found.query_params
        or found.header_params
        or found.cookie_params
        for found in _dependants(dependant)
    )


def _has_amount_field(route: APIRoute) -> bool:
    body = route.body_field
    if body is None:
        return False
    return "amount" in _field_names(body.field_info.annotation, depth=0)


def _field_names(annotation: Any, depth: int) -> set[str]:
    # Deep enough for a batch's items' postings; models do not nest deeper.
    if depth > 4:
        return set()
    names: set[str] = set()
    fields = getattr(annotation, "model_fields", None)
    if isinstance(fields, dict):
        for name, info in fields.items():
            names.add(name)
            names |= _field_names(info.annotation, depth + 1)
    for argument in getattr(annotation, "__args__", ()) or ():
        names |= _field_names(argument, depth + 1)
    return names


# What the code reaches ---------------------------------------------------------

# Methods of the built-in containers and strings: `items.append(x)` is a
# list's, whatever a class of ours calls `append`.
_BUILT_IN_METHODS: Final = frozenset(
    name for kind in (list, dict, set, str, bytes, tuple) for name in dir(kind)
)


@dataclass(frozen=True, slots=True)
class _Module:
    name: str
    functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef]
    # Class -> its methods.
    classes: dict[str, dict[str, ast.FunctionDef | ast.AsyncFunctionDef]]
    # Local name -> (module, name) for `from module import name [as local]`.
    imported: dict[str, tuple[str, str]]
    # Local name -> module for `import module [as local]`.
    modules: dict[str, str]
    # `Alias = Annotated[Class, ...]`: alias -> the class's name here.
    aliases: dict[str, str]
    # Class -> attribute -> the name of its annotated type here (`forks:
    # ForksService` in the class body, `self._writer = writer` in __init__).
    attribute_types: dict[str, dict[str, str]]


@dataclass(frozen=True, slots=True)
class _Index:
    modules: dict[str, _Module]
    # Method name -> every method of that name, with its module and class.
    methods: dict[str, list[tuple[str, str, ast.FunctionDef | ast.AsyncFunctionDef]]]
    # Module-level string constants, by name: one value, or None if they differ.
    constants: dict[str, str | None]


_Function = ast.FunctionDef | ast.AsyncFunctionDef
# A function to follow: its node, the module it is in and its class, if any.
_Place = tuple[_Function, str, str | None]


@cache
def _index() -> _Index:
    modules: dict[str, _Module] = {}
    methods: dict[str, list[tuple[str, str, _Function]]] = {}
    constants: dict[str, str | None] = {}
    for package in FOLLOWED_PACKAGES:
        for source in sorted((_PROJECT_ROOT / package).rglob("*.py")):
            relative = source.relative_to(_PROJECT_ROOT).with_suffix("")
            parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
            name = ".".join(parts)
            tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
            module = _module_of(name, tree)
            modules[name] = module
            for class_name, class_methods in module.classes.items():
                for method_name, node in class_methods.items():
                    methods.setdefault(method_name, []).append((name, class_name, node))
            for statement in tree.body:
                constant, value = _string_constant(statement)
                if constant is not None:
                    known = constants.get(constant, value)
                    constants[constant] = value if known == value else None
    return _Index(modules, methods, constants)


def _module_of(name: str, tree: ast.Module) -> _Module:
    module = _Module(name, {}, {}, {}, {}, {}, {})
    package = name.rsplit(".", 1)[0]
    for statement in tree.body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
            module.functions[statement.name] = statement
        elif isinstance(statement, ast.ClassDef):
            module.classes[statement.name] = {
                member.name: member
                for member in statement.body
                if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef)
            }
            module.attribute_types[statement.name] = _attribute_types(statement)
        elif isinstance(statement, ast.ImportFrom) and statement.module is not None:
            source = statement.module if statement.level == 0 else f"{package}.{statement.module}"
            for alias in statement.names:
                module.imported[alias.asname or alias.name] = (source, alias.name)
        elif isinstance(statement, ast.Import):
            for alias in statement.names:
                module.modules[alias.asname or alias.name] = alias.name
        elif (
            isinstance(statement, ast.Assign)
            and len(statement.targets) == 1
            and isinstance(statement.targets[0], ast.Name)
            and isinstance(statement.value, ast.Subscript)
            and _name_of(statement.value.value) == "Annotated"
            and isinstance(statement.value.slice, ast.Tuple)
            and isinstance(statement.value.slice.elts[0], ast.Name)
        ):
            module.aliases[statement.targets[0].id] = statement.value.slice.elts[0].id
    return module


def _attribute_types(class_node: ast.ClassDef) -> dict[str, str]:
    types: dict[str, str] = {}
    for member in class_node.body:
        if (
            isinstance(member, ast.AnnAssign)
            and isinstance(member.target, ast.Name)
            and isinstance(member.annotation, ast.Name)
        ):
            types[member.target.id] = member.annotation.id
        if isinstance(member, ast.FunctionDef) and member.name == _CONSTRUCTOR:
            parameters = {
                argument.arg: argument.annotation.id
                for argument in member.args.args
                if isinstance(argument.annotation, ast.Name)
            }
            for statement in ast.walk(member):
                target, value = None, None
                if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
                    target, value = statement.targets[0], statement.value
                if (
                    isinstance(target, ast.Attribute)
                    and isinstance(target.value, ast.Name)
                    and target.value.id == "self"
                    and isinstance(value, ast.Name)
                    and value.id in parameters
                ):
                    types[target.attr] = parameters[value.id]
    return types


def _string_constant(statement: ast.stmt) -> tuple[str | None, str | None]:
    if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
        target, value = statement.target, statement.value
    elif (
        isinstance(statement, ast.Assign)
        and len(statement.targets) == 1
        and isinstance(statement.targets[0], ast.Name)
    ):
        target, value = statement.targets[0], statement.value
    else:
        return None, None
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
        return target.id, value.value
    return None, None


@cache
def _codes_reached_from(call: Any) -> frozenset[tuple[int, str]]:
    place = _place_of(call)
    return frozenset() if place is None else _codes_reached(place)


def _place_of(call: Any) -> _Place | None:
    """The function a dependency or endpoint runs, as parsed here."""
    while isinstance(call, partial):
        call = call.func
    function: Any = call if inspect.isfunction(call) or inspect.ismethod(call) else None
    if function is None and callable(call) and not inspect.isclass(call):
        function = type(call).__call__
    if function is None:
        return None
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):
        return None
    node = ast.parse(source).body[0]
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return None
    qualified = getattr(function, "__qualname__", "")
    owner = qualified.rsplit(".", 2)[-2] if qualified.count(".") else None
    return node, function.__module__, owner if owner != "<locals>" else None


def _codes_reached(start: _Place) -> frozenset[tuple[int, str]]:
    index = _index()
    found: set[tuple[int, str]] = set()
    seen: set[ast.AST] = set()
    pending: list[_Place] = [start]
    while pending:
        place = pending.pop()
        if place[0] in seen:
            continue
        seen.add(place[0])
        codes, next_places = _step(place, index)
        found |= codes
        pending.extend(next_places)
    return frozenset(found)


# Function node -> what it names and what it leads to: many routes walk the
# same functions. Keyed by the node itself (hashed by identity), which it keeps.
_STEPS: dict[ast.AST, tuple[frozenset[tuple[int, str]], tuple[_Place, ...]]] = {}


def _step(place: _Place, index: _Index) -> tuple[frozenset[tuple[int, str]], tuple[_Place, ...]]:
    known = _STEPS.get(place[0])
    if known is not None:
        return known
    codes = set(_codes_named(place[0], index))
    next_places = list(_followed(place, index))
    if _gives_to_writer(place[0]):
        codes.update(_WRITER_ERROR_CODES.values())
        batch = index.modules[_DECIDED_BY[0]].classes[_DECIDED_BY[1]]
        next_places.append((batch[_DECIDING_METHOD], *_DECIDED_BY))
    step = (frozenset(codes), tuple(next_places))
    _STEPS[place[0]] = step
    return step


def _gives_to_writer(node: ast.AST) -> bool:
    """A call of the writer port's methods on something named for it
    (`self._writer.execute(...)`, `writer.submit(...)`)."""
    return any(
        isinstance(child, ast.Call)
        and isinstance(child.func, ast.Attribute)
        and child.func.attr in _WRITER_PORT_METHODS
        and "writer" in ast.unparse(child.func.value).lower()
        for child in ast.walk(node)
    )


def _followed(place: _Place, index: _Index) -> Iterator[_Place]:
    """The functions this one calls, or passes on to be called."""
    node, module_name, class_name = place
    module = index.modules.get(module_name)
    if module is None:
        return
    typed = _parameter_classes(node, module, index)
    for child in ast.walk(node):
        if isinstance(child, ast.Raise) and isinstance(child.exc, ast.Name):
            # `raise InvalidCursor`: the class, constructed.
            yield from _function_named(child.exc.id, module, index)
        if not isinstance(child, ast.Call):
            continue
        yield from _resolved(child.func, module, class_name, typed, index, called=True)
        for argument in (*child.args, *(keyword.value for keyword in child.keywords)):
            yield from _resolved(argument, module, class_name, typed, index, called=False)


def _parameter_classes(
    node: _Function, module: _Module, index: _Index
) -> dict[str, tuple[str, str]]:
    """Parameter -> (module, class) when its annotation names a class of
    ours, directly or through an `Annotated` alias (`service: ServiceDep`)."""
    typed: dict[str, tuple[str, str]] = {}
    for argument in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs):
        if isinstance(argument.annotation, ast.Name):
            found = _class_named(argument.annotation.id, module, index, depth=0)
            if found is not None:
                typed[argument.arg] = found
    return typed


def _class_named(name: str, module: _Module, index: _Index, depth: int) -> tuple[str, str] | None:
    if name in module.classes:
        return module.name, name
    source = module.imported.get(name)
    target = index.modules.get(source[0]) if source is not None else None
    if source is None or target is None or depth > 2:
        return None
    if source[1] in target.classes:
        return target.name, source[1]
    alias = target.aliases.get(source[1])
    return None if alias is None else _class_named(alias, target, index, depth + 1)


def _resolved(
    expression: ast.expr,
    module: _Module,
    class_name: str | None,
    typed: dict[str, tuple[str, str]],
    index: _Index,
    *,
    called: bool,
) -> Iterator[_Place]:
    if isinstance(expression, ast.Name):
        yield from _function_named(expression.id, module, index)
        return
    if not isinstance(expression, ast.Attribute):
        return
    name, owner = expression.attr, expression.value
    if isinstance(owner, ast.Name) and owner.id in {"self", "cls"} and class_name is not None:
        method = module.classes.get(class_name, {}).get(name)
        if method is not None:
            yield method, module.name, class_name
            return
    owner_type = _type_of(owner, module, class_name, typed, index)
    if owner_type is not None:
        owner_module, owner_class = owner_type
        method = index.modules[owner_module].classes[owner_class].get(name)
        if method is not None:
            yield method, owner_module, owner_class
            return
    if isinstance(owner, ast.Name) and owner.id in module.modules:
        target = index.modules.get(module.modules[owner.id])
        if target is not None and name in target.functions:
            yield target.functions[name], target.name, None
        return
    if name in _BUILT_IN_METHODS:
        return
    # A method of an object whose type is not written here, called or passed
    # on (`run_in_threadpool(ledger.forks.propose, ...)`): every method of that
    # name, if they are few enough to say something; passed on, a property
    # is a value, not a callback.
    methods = index.methods.get(name, [])
    if len(methods) <= DEFINITIONS_FOLLOWED_MAX:
        for owner_module, owner_class, node in methods:
            if called or not _is_property(node):
                yield node, owner_module, owner_class


def _type_of(
    expression: ast.expr,
    module: _Module,
    class_name: str | None,
    typed: dict[str, tuple[str, str]],
    index: _Index,
) -> tuple[str, str] | None:
    """The class of `service`, `self`, `ledger.forks` or `self._writer`, when
    annotations say it."""
    if isinstance(expression, ast.Name):
        if expression.id == "self" and class_name is not None:
            return module.name, class_name
        return typed.get(expression.id)
    if not isinstance(expression, ast.Attribute):
        return None
    owner = _type_of(expression.value, module, class_name, typed, index)
    if owner is None:
        return None
    owner_module = index.modules[owner[0]]
    type_name = owner_module.attribute_types.get(owner[1], {}).get(expression.attr)
    if type_name is None:
        return None
    return _class_named(type_name, owner_module, index, depth=0)


def _is_property(node: _Function) -> bool:
    return any(_name_of(decorator) == "property" for decorator in node.decorator_list)


def _function_named(name: str, module: _Module, index: _Index) -> Iterator[_Place]:
    """The function, or the class's constructor, this name is here."""
    target, target_name = module, name
    if name not in module.functions and name not in module.classes:
        source = module.imported.get(name)
        found = index.modules.get(source[0]) if source is not None else None
        if source is None or found is None:
            return
        target, target_name = found, source[1]
    if target_name in target.functions:
        yield target.functions[target_name], target.name, None
    elif target_name in target.classes and _CONSTRUCTOR in target.classes[target_name]:
        yield target.classes[target_name][_CONSTRUCTOR], target.name, target_name


# Enums whose members are ResultCodes under the same names (the funded
# accounts' and the tiers' own refusals; a unit test holds them to it).
REFUSAL_ENUMS: Final[frozenset[str]] = frozenset(
    {"ResultCode", "FundedRefusalReason", "PositionRefusalReason"}
)

_WRITER_ERROR_CODES: Final[dict[str, tuple[int, str]]] = {
    exception_type.__name__: (answer.status, answer.code)
    for exception_type, answer in WRITER_ERRORS.items()
}


def _name_of(expression: ast.expr) -> str | None:
    if isinstance(expression, ast.Name):
        return expression.id
    if isinstance(expression, ast.Attribute):
        return expression.attr
    return None


def _codes_named(node: ast.AST, index: _Index) -> set[tuple[int, str]]:
    found: set[tuple[int, str]] = set()
    for child in ast.walk(node):
        if (
            isinstance(child, ast.Attribute)
            and isinstance(child.value, ast.Name)
            and child.value.id in REFUSAL_ENUMS
            and child.attr in ResultCode.__members__
        ):
            code = ResultCode[child.attr]
            if not code.succeeded:
                found.add((status_for(code), code.value))
        elif isinstance(child, ast.Call):
            name = _name_of(child.func)
            if name == "ApiError":
                answer = _api_error(child, index)
                if answer is not None:
                    found.add(answer)
            elif name in _WRITER_ERROR_CODES:
                found.add(_WRITER_ERROR_CODES[name])
    return found


def _api_error(call: ast.Call, index: _Index) -> tuple[int, str] | None:
    arguments: dict[str, ast.expr] = dict(zip(("status", "code"), call.args, strict=False))
    arguments.update({k.arg: k.value for k in call.keywords if k.arg in {"status", "code"}})
    status, code = arguments.get("status"), arguments.get("code")
    if not (isinstance(status, ast.Constant) and isinstance(status.value, int)):
        return None
    if isinstance(code, ast.Constant) and isinstance(code.value, str):
        return status.value, code.value
    if isinstance(code, ast.Name) and index.constants.get(code.id):
        return status.value, str(index.constants[code.id])
    return None
