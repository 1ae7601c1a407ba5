"""Hostile requests for any operation of an OpenAPI document, as Hypothesis strategies.

What a careless or malicious client sends: control characters and unpaired
surrogates in every string, text from every plane, strings and numbers past
every limit (and past what a parser can hold), wrong types, unknown fields,
keys given twice, bodies nested deeper than a parser's stack, bodies that are
not JSON or not UTF-8, bodies over the size limit (declared or streamed),
unknown query parameters and spoilt headers. Mixed with plausible values (the
schema's enums and examples, ids that exist) so that requests get past the
first check and reach the ledger's rules too.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

from hypothesis import strategies as st

HTTP_METHODS: Final = ("get", "post", "put", "patch", "delete")
# Deeper than any request body of the API; the schema walk stops here.
SCHEMA_DEPTH_MAX: Final[int] = 5
CONTROL_CHARACTERS: Final = tuple(chr(code) for code in (*range(0x20), 0x7F, *range(0x80, 0xA0)))
ODD_TEXTS: Final = (
    "",
    " ",
    " padded ",
    "\u202e",
    "\ufeff",
    "\uffff",
    "\U0010ffff",
    "null",
    "true",
    "-1",
    "1e400",
    "NaN",
    "../../etc/passwd",
    "%00",
    "' OR 1=1 --",
    "<script>",
)
# Numbers as JSON text, as a client may write them: past 64 bits, past a
# double, past the 4300 digits Python will turn into an int.
EXTREME_NUMBER_TEXTS: Final = (
    "1" * 5000,
    "-" + "9" * 400,
    "1e400",
    "-1e400",
    "1E+99999",
    "NaN",
    "Infinity",
    "-Infinity",
    "-0",
    "1e-400",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
)
EXTREME_INTEGERS: Final = (2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**30, -(10**30))
PLAUSIBLE_AMOUNTS: Final = ("1.00", "0.01", "100", "92233720368547758.07", "1" + "0" * 30)
PLAUSIBLE_CURRENCIES: Final = ("USD", "EUR", "JPY", "XXX")
# An Idempotency-Key header asking to be made unique when it is sent.
FRESH_KEY_PREFIX: Final[str] = "hostile-"
PLAUSIBLE_TIMES: Final = ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00", "9999-12-31T23:59:59Z")


@dataclass(frozen=True)
class RawJson:
    """JSON text placed in a document as it is: what Python's encoder will
    not write (a number of 5000 digits)."""

    text: str


class Pairs(list[tuple[str, Any]]):
    """An object written pair by pair, in order: a key may come twice."""


def to_json(value: Any) -> str:
    """Compact JSON; ASCII only, so an unpaired surrogate goes out as its
    `\\ud800` escape, as a hostile client would write it."""
    if isinstance(value, RawJson):
        return value.text
    if isinstance(value, dict):
        value = Pairs(value.items())
    if isinstance(value, Pairs):
        return "{" + ",".join(f"{to_json(key)}:{to_json(item)}" for key, item in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(item) for item in value) + "]"
    return json.dumps(value)


def hostile_text(length_max: int, *, in_url: bool = False) -> st.SearchStrategy[str]:
    """In a URL, a too-long value is only just too long: a URL itself is
    bounded (by clients and servers alike) well before a body is."""
    spoilt = st.tuples(
        st.text(max_size=6),
        st.sampled_from(CONTROL_CHARACTERS) | st.characters(categories=["Cs"]),
        st.text(max_size=6),
    ).map("".join)
    # Every plane, unpaired surrogates included.
    any_code_point = st.text(st.characters(exclude_categories=()), max_size=12)
    units = ["x", "é"] if in_url else ["x", "é", "€", "😀"]
    lengths = [length_max + 1] if in_url else [length_max, length_max + 1, 3 * length_max]
    too_long = st.tuples(st.sampled_from(units), st.sampled_from(lengths)).map(
        lambda unit_times: unit_times[0] * unit_times[1]
    )
    return st.one_of(spoilt, any_code_point, too_long, st.sampled_from(ODD_TEXTS))


def extreme_numbers() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(),
        st.floats(),
        st.sampled_from(EXTREME_INTEGERS),
        st.sampled_from(EXTREME_NUMBER_TEXTS).map(RawJson),
    )


def any_json(length_max: int) -> st.SearchStrategy[Any]:
    leaves = st.none() | st.booleans() | extreme_numbers() | hostile_text(length_max)
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(hostile_text(length_max), children, max_size=3)
        ),
        max_leaves=6,
    )


@dataclass(frozen=True)
class KnownValues:
    """What exists in the ledger under attack: ids a request may name."""

    ids: tuple[str, ...]
    owner_ids: tuple[str, ...]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: Mapping[str, Any] = field(repr=False, compare=False)

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.path}"

    @property
    def streams(self) -> bool:
        """Answers a stream (server-sent events) that lasts as long as it has news."""
        success = self.spec.get("responses", {}).get("200", {})
        return "text/event-stream" in success.get("content", {})


def operations(document: Mapping[str, Any]) -> list[Operation]:
    return [
        Operation(method, path, spec)
        for path, item in document["paths"].items()
        for method, spec in item.items()
        if method in HTTP_METHODS
    ]


@dataclass(frozen=True)
class HostileRequest:
    method: str
    url: str
    headers: dict[str, str | bytes]
    content: bytes | None
    # Sent in chunks without a Content-Length: the server must count.
    streamed: bool = False

    def __repr__(self) -> str:
        shown = (
            self.content
            if self.content is None or len(self.content) < 300
            else (self.content[:300] + b"... (%d bytes)" % len(self.content))
        )
        return (
            f"HostileRequest({self.method} {self.url[:300]!r}, headers={self.headers!r}, "
            f"content={shown!r}, streamed={self.streamed})"
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # What Hypothesis prints for a failing example: the short form.
        printer.text(repr(self))

    def sent_headers(self) -> dict[str, str | bytes]:
        """The headers, a fresh idempotency key in each that asks for one."""
        if self.headers.get("Idempotency-Key") != FRESH_KEY_PREFIX:
            return self.headers
        return {**self.headers, "Idempotency-Key": f"{FRESH_KEY_PREFIX}{uuid.uuid4()}"}

    def body(self) -> bytes | Iterator[bytes] | None:
        if self.content is None or not self.streamed:
            return self.content
        chunk_bytes = 4096
        return iter(
            [
                self.content[start : start + chunk_bytes]
                for start in range(0, len(self.content), chunk_bytes)
            ]
        )


class Generator:
    """Strategies for one OpenAPI document, the ledger's known values and its limits.

    `templates` give, for an operation, bodies that pass its validation (a
    transfer between accounts that exist, say): where the schema alone would
    almost never draw one, they let requests reach the ledger and be written.
    """

    def __init__(
        self,
        document: Mapping[str, Any],
        known: KnownValues,
        *,
        string_length_max: int,
        body_bytes_max: int,
        fixed_query_values: Mapping[str, st.SearchStrategy[str]],
        templates: Mapping[str, st.SearchStrategy[Any]],
    ) -> None:
        self.document = document
        self.known = known
        self.string_length_max = string_length_max
        self.body_bytes_max = body_bytes_max
        self.fixed_query_values = fixed_query_values
        self.templates = templates

    def _resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in schema:
            node: Any = self.document
            for part in schema["$ref"].removeprefix("#/").split("/"):
                node = node[part]
            schema = node
        return schema

    def hostile_values(self) -> st.SearchStrategy[Any]:
        return st.one_of(
            hostile_text(self.string_length_max),
            extreme_numbers(),
            any_json(self.string_length_max),
        )

    def plausible(self, schema: Mapping[str, Any], name: str = "") -> st.SearchStrategy[Any]:
        """A value the schema allows, as wide as it allows: text from every
        plane up to its longest, integers up to their bounds."""
        schema = self._resolve(schema)
        alternatives = schema.get("anyOf") or schema.get("oneOf") or schema.get("allOf")
        if alternatives:
            return st.one_of([self.plausible(each, name) for each in alternatives])
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        kind = schema.get("type")
        if kind == "integer":
            return st.integers(schema.get("minimum", -1000), schema.get("maximum", 1000))
        if kind == "number":
            return st.floats(schema.get("minimum", -1000.0), schema.get("maximum", 1000.0))
        if kind == "boolean":
            return st.booleans()
        if kind == "string":
            return self._plausible_text(schema, name)
        return st.none()

    def _plausible_text(self, schema: Mapping[str, Any], name: str) -> st.SearchStrategy[str]:
        if name == "owner_id":
            return st.sampled_from(self.known.owner_ids) | wide_text(1, 128)
        if schema.get("format") == "uuid" or name.endswith("_id"):
            return st.sampled_from(self.known.ids) | st.uuids().map(str)
        if schema.get("format") in ("date-time", "date"):
            return st.sampled_from(PLAUSIBLE_TIMES)
        if "amount" in name:
            return st.sampled_from(PLAUSIBLE_AMOUNTS)
        if name == "currency":
            return st.sampled_from(PLAUSIBLE_CURRENCIES)
        examples = list(schema.get("examples", ()))
        words = wide_text(int(schema.get("minLength", 1)), int(schema.get("maxLength", 64)))
        return st.sampled_from(examples) | words if examples else words

    def documents(
        self, schema: Mapping[str, Any], name: str = "", depth: int = 0
    ) -> st.SearchStrategy[Any]:
        """A body the schema allows, field by field (rules across fields aside)."""
        schema = self._resolve(schema)
        alternatives = schema.get("anyOf") or schema.get("oneOf") or schema.get("allOf")
        if alternatives:
            return st.one_of([self.documents(each, name, depth) for each in alternatives])
        kind = schema.get("type")
        if depth >= SCHEMA_DEPTH_MAX:
            return self.plausible(schema, name)
        if kind == "array":
            items = self.documents(schema.get("items", {}), name, depth + 1)
            return st.lists(items, max_size=min(int(schema.get("maxItems", 4)), 4))
        if kind != "object" and "properties" not in schema:
            return self.plausible(schema, name)
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            # A map (metadata): keys and values as long and as many as allowed.
            keys = wide_text(1, 64)
            return st.dictionaries(
                keys, self.documents(extra, "", depth + 1), max_size=schema.get("maxProperties", 16)
            )
        properties: Mapping[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", ()))
        fields = {name: self.documents(sub, name, depth + 1) for name, sub in properties.items()}
        return st.fixed_dictionaries(
            {name: field for name, field in fields.items() if name in required},
            optional={name: field for name, field in fields.items() if name not in required},
        )


def wide_text(length_min: int, length_max: int) -> st.SearchStrategy[str]:
    """Text a client may send: any plane, no control character nor lone
    surrogate, no outer space; sometimes exactly as long as allowed."""
    allowed = st.characters(exclude_categories=["Cc", "Cs", "Zs", "Zl", "Zp"])
    short = st.text(allowed, min_size=max(1, length_min), max_size=max(1, min(length_max, 24)))
    longest = st.sampled_from(["x", "é", "€", "😀"]).map(lambda unit: unit * max(1, length_max))
    return short | longest


def _leaf_locations(document: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Where a value or a key sits: a path of keys and indexes, ending with
    ("key", name) for an object's key itself."""
    found: list[tuple[Any, ...]] = [path]
    if isinstance(document, dict):
        for key, item in document.items():
            found.append((*path, ("key", key)))
            found.extend(_leaf_locations(item, (*path, key)))
    elif isinstance(document, list):
        for index, item in enumerate(document):
            found.extend(_leaf_locations(item, (*path, index)))
    return found


def _replaced(document: Any, location: tuple[Any, ...], new: Any) -> Any:
    """A copy of the document with `new` at the location (a key: `new` is the
    new name, the value stays)."""
    if not location:
        return new
    step, rest = location[0], location[1:]
    if isinstance(step, tuple):
        return {new if key == step[1] else key: item for key, item in document.items()}
    copied = dict(document) if isinstance(document, dict) else list(document)
    copied[step] = _replaced(document[step], rest, new)
    return copied


# Whole requests ----------------------------------------------------------------

# A third of the requests are plausible throughout, so they reach the ledger.
REQUEST_KINDS: Final = (
    "plausible",
    "plausible",
    "plausible",
    "spoilt_value",
    "spoilt_value",
    "spoilt_value",
    "spoilt_body",
    "spoilt_url",
    "spoilt_header",
)
SPOILT_BODY_KINDS: Final = ("duplicate", "wrong_type", "oversize", "deep", "garbage", "other_type")
IDEMPOTENCY_KEYS_SPOILT: Final = (b"", b"\x00", b"a\tb", b"\xff\xfe", b"x" * 300)


def _parameters(operation: Operation, where: str) -> list[Mapping[str, Any]]:
    return [
        parameter for parameter in operation.spec.get("parameters", ()) if parameter["in"] == where
    ]


@st.composite
def _urls(draw: st.DrawFn, generator: Generator, operation: Operation, spoilt: bool) -> str:
    path = operation.path
    hostile = hostile_text(generator.string_length_max, in_url=True)
    # A stream lasts as long as its subject: it gets no real id.
    known = st.uuids().map(str) if operation.streams else st.sampled_from(generator.known.ids)
    for parameter in _parameters(operation, "path"):
        segment = draw(known | hostile if spoilt else known)
        path = path.replace("{" + parameter["name"] + "}", _quoted(segment))
    query: list[tuple[str, str]] = []
    for parameter in _parameters(operation, "query"):
        name = parameter["name"]
        if not draw(st.booleans()):
            continue
        if name in generator.fixed_query_values:
            query.append((name, draw(generator.fixed_query_values[name])))
            continue
        plausible = generator.plausible(parameter.get("schema", {}), name).map(_query_text)
        hostile_value = hostile | extreme_numbers().map(_query_text)
        value = draw(plausible | hostile_value if spoilt else plausible)
        if value is not None:
            query.append((name, value))
    if spoilt and draw(st.booleans()):
        unknown = hostile_text(64, in_url=True) | st.sampled_from(["limit_", "sort"])
        query.append((draw(unknown), "1"))
    if not query:
        return path
    return path + "?" + "&".join(f"{_quoted(name)}={_quoted(value)}" for name, value in query)


@st.composite
def _bodies(
    draw: st.DrawFn, generator: Generator, operation: Operation, kind: str
) -> tuple[bytes | None, str, bool]:
    """The body, its content type, and whether it is sent streamed."""
    request_body = operation.spec.get("requestBody")
    if request_body is None:
        return None, "application/json", False
    schema = request_body["content"]["application/json"]["schema"]
    valid = generator.documents(schema)
    template = generator.templates.get(str(operation))
    document = draw(valid if template is None else template | valid)
    if kind == "spoilt_value":
        location = draw(st.sampled_from(_leaf_locations(document)))
        is_key = bool(location) and isinstance(location[-1], tuple)
        hostile = (
            hostile_text(generator.string_length_max) if is_key else generator.hostile_values()
        )
        document = _replaced(document, location, draw(hostile))
    if kind != "spoilt_body":
        return to_json(document).encode(), "application/json", False
    anything = any_json(generator.string_length_max)
    spoilt = draw(st.sampled_from(SPOILT_BODY_KINDS))
    content_type = "application/json"
    streamed = False
    if spoilt == "duplicate":
        text = to_json(_with_a_duplicate(document, draw(anything)))
    elif spoilt == "wrong_type":
        text = to_json(draw(anything))
    elif spoilt == "oversize":
        text = to_json(document)
        text += " " * max(0, generator.body_bytes_max + 1 - len(text.encode()))
        streamed = draw(st.booleans())
    elif spoilt == "deep":
        depth = draw(st.sampled_from([64, 999, 5000]))
        text = "[" * depth + "]" * depth
    elif spoilt == "garbage":
        return draw(st.binary(max_size=64)), content_type, False
    else:
        text = to_json(document)
        content_type = draw(st.sampled_from(["text/plain", "application/xml", ""]))
    return text.encode(), content_type, streamed


@st.composite
def hostile_requests(draw: st.DrawFn, generator: Generator, operation: Operation) -> HostileRequest:
    """One request: plausible throughout, or spoilt in one place (a value or
    a key of the body, the body as a whole, the URL, the idempotency key)."""
    kind = draw(st.sampled_from(REQUEST_KINDS))
    url = draw(_urls(generator, operation, spoilt=kind == "spoilt_url"))
    content, content_type, streamed = draw(_bodies(generator, operation, kind))
    headers: dict[str, str | bytes] = {}
    if content is not None and content_type:
        headers["content-type"] = content_type
    if operation.method == "post":
        # Made unique when sent (FRESH_KEY_PREFIX): drawn ones repeat.
        fresh_key = st.just(FRESH_KEY_PREFIX)
        spoilt_key = st.sampled_from(IDEMPOTENCY_KEYS_SPOILT)
        key = draw(spoilt_key if kind == "spoilt_header" else st.none() | fresh_key)
        if key is not None:
            headers["Idempotency-Key"] = key
    return HostileRequest(operation.method.upper(), url, headers, content, streamed)


def _quoted(value: str) -> str:
    # Percent-encoded bytes: an unpaired surrogate goes as what it would be in UTF-8.
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def _query_text(value: Any) -> str | None:
    """As a query value; None (a null the schema allows) leaves it out."""
    if value is None:
        return None
    if isinstance(value, RawJson):
        return value.text
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _with_a_duplicate(document: Any, other: Any) -> Any:
    """The document with one key given twice: its metadata's if it has one,
    else its own; a document that is not an object is wrapped in one."""
    if not isinstance(document, dict) or not document:
        return Pairs([("value", document), ("value", other)])
    metadata = document.get("metadata")
    if isinstance(metadata, dict) and metadata:
        first_key = next(iter(metadata))
        spoilt = Pairs([*metadata.items(), (first_key, other)])
        return {**document, "metadata": spoilt}
    first_key = next(iter(document))
    return Pairs([*document.items(), (first_key, other)])
