"""What any JSON body and `metadata` object must be to enter the ledger.

Checked at the edge (request_checks.py), before a route runs, so a value that
could not be stored, projected or printed faithfully never reaches the writer
(docs/api.md#limits-on-what-a-request-holds):

- every string and every key of an object as interface/text_rules.py says
  (no control character, no unpaired surrogate, at most `string_length_max`
  characters);
- no object with the same key twice (which one would count is up to a parser);
- every `metadata` object within its limits: keys, key and value lengths,
  nesting depth and size as compact UTF-8 JSON.

Each refusal is an ApiError (422) naming the field, as `transfers.3.metadata`.
A body is walked once without keeping paths (a batch of 8190 transfers is
50,000 strings); only a body that fails is walked again, to name the field.
"""

from __future__ import annotations

import json
from typing import Any, Final

from interface.api.errors import ApiError
from interface.settings import Settings
from interface.text_rules import FORBIDDEN_CHARACTER, describe_fault, printable, text_fault

INVALID_STRING: Final[str] = "invalid_string"
DUPLICATE_KEY: Final[str] = "duplicate_key"
# The ledger's own code for metadata outside its limits (domain.account).
INVALID_METADATA: Final[str] = "invalid_metadata"
MALFORMED_BODY: Final[str] = "malformed_body"

METADATA_FIELD: Final[str] = "metadata"

# Before the lifespan has built the ledger (a test's bare app), the defaults.
_DEFAULT_LIMITS: Final[Settings] = Settings.model_construct()


def limits_in_force(app: Any) -> Settings:
    """The running ledger's settings: every limit here is one of them."""
    ledger = getattr(app.state, "ledger", None)
    return ledger.settings if ledger is not None else _DEFAULT_LIMITS


def check_string(value: str, field: str, length_max: int) -> None:
    fault = text_fault(value, length_max)
    if fault is not None:
        quoted = printable(field)
        raise ApiError(
            422, INVALID_STRING, describe_fault(quoted, fault), {"field": quoted, **fault}
        )


class _JsonObject(dict[str, Any]):
    """An object as parsed, remembering a key it was given more than once."""

    duplicate_key: str | None = None


def _object_of(pairs: list[tuple[str, Any]]) -> _JsonObject:
    parsed = _JsonObject(pairs)
    if len(parsed) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                parsed.duplicate_key = key
                break
            seen.add(key)
    return parsed


def parse_json_body(body: bytes) -> Any:
    """The body as JSON, objects remembering a duplicate key; the same parser
    as the framework's, so what it read this reads too."""
    try:
        return json.loads(body, object_pairs_hook=_object_of)
    except (ValueError, RecursionError) as error:
        # Nested deeper than this stack allows: not a body any route takes.
        raise ApiError(400, MALFORMED_BODY, "the body is not JSON this API can read") from error


def check_json_document(document: Any, limits: Settings) -> None:
    """Every string and key of the document, every object's keys distinct,
    every `metadata` object within its limits; raises on the first fault."""
    if not _is_clean(document, limits):
        _refuse_first_fault(document, limits)


def _is_clean(document: Any, limits: Settings) -> bool:
    """The rules of check_json_document, without a path in sight, and as few
    calls per value as Python allows."""
    length_max = limits.string_length_max
    search = FORBIDDEN_CHARACTER.search
    pending = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if len(value) > length_max or search(value):
                return False
        elif isinstance(value, dict):
            if getattr(value, "duplicate_key", None) is not None:
                return False
            for key, item in value.items():
                if len(key) > length_max or search(key):
                    return False
                is_metadata = key == METADATA_FIELD and isinstance(item, dict)
                if is_metadata and _metadata_fault(item, limits) is not None:
                    return False
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return True


def _field(parent: str, part: str | int) -> str:
    return f"{parent}.{part}" if parent else str(part)


def _refuse_first_fault(document: Any, limits: Settings) -> None:
    """Walk in document order, keeping paths, and raise at the first fault."""
    pending: list[tuple[str, str | int | None, Any]] = [("", None, document)]
    while pending:
        field, name, value = pending.pop()
        if isinstance(value, str):
            # A body that is a bare string is named as the framework names it.
            check_string(value, field or "body", limits.string_length_max)
            continue
        if isinstance(value, dict):
            for key in value:
                check_string(key, _field(field, key), limits.string_length_max)
            duplicate_key = getattr(value, "duplicate_key", None)
            if duplicate_key is not None:
                quoted = printable(_field(field, duplicate_key))
                raise ApiError(
                    422, DUPLICATE_KEY, f"{quoted} is given more than once", {"field": quoted}
                )
            if name == METADATA_FIELD:
                check_metadata(value, field, limits)
            children: list[tuple[str | int, Any]] = list(value.items())
        elif isinstance(value, list):
            children = list(enumerate(value))
        else:
            continue
        pending.extend((_field(field, part), part, item) for part, item in reversed(children))


def _depth(value: Any) -> int:
    """1 for an object of plain values, one more per level of nesting."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        current, depth = pending.pop()
        if isinstance(current, dict | list):
            deepest = max(deepest, depth + 1)
            items = current.values() if isinstance(current, dict) else current
            pending.extend((item, depth + 1) for item in items)
    return deepest


# Compact JSON spends at most this many bytes on one character (a \u0000
# escape), and this many on each pair besides (quotes, a colon, a comma).
_JSON_BYTES_PER_CHARACTER_MAX: Final[int] = 6
_JSON_BYTES_PER_PAIR: Final[int] = 6


def _metadata_fault(metadata: dict[str, Any], limits: Settings) -> tuple[str, str | None] | None:
    """The limit the object passes, and the key where it does, if any."""
    if len(metadata) > limits.metadata_keys_max:
        return "metadata_keys_max", None
    characters = 0
    flat = True
    for key, value in metadata.items():
        if len(key) > limits.metadata_key_length_max:
            return "metadata_key_length_max", key
        if isinstance(value, str):
            if len(value) > limits.metadata_value_length_max:
                return "metadata_value_length_max", key
            characters += len(key) + len(value)
        else:
            flat = False
    if not flat and _depth(metadata) > limits.metadata_depth_max:
        return "metadata_depth_max", None
    # Measured exactly only when the bound says it could matter (once per
    # transfer of a batch otherwise).
    bound = _JSON_BYTES_PER_CHARACTER_MAX * characters + _JSON_BYTES_PER_PAIR * len(metadata) + 2
    if flat and bound <= limits.metadata_bytes_max:
        return None
    # surrogatepass: measured before its strings are known to be clean.
    compact = json.dumps(metadata, ensure_ascii=False, separators=(",", ":"))
    if len(compact.encode("utf-8", "surrogatepass")) > limits.metadata_bytes_max:
        return "metadata_bytes_max", None
    return None


_METADATA_LIMITS: Final[dict[str, str]] = {
    "metadata_keys_max": "at most {} keys",
    "metadata_key_length_max": "keys of at most {} characters",
    "metadata_value_length_max": "values of at most {} characters",
    "metadata_depth_max": "nested at most {} deep",
    "metadata_bytes_max": "at most {} bytes as compact UTF-8 JSON",
}


def check_metadata(metadata: dict[str, Any], field: str, limits: Settings) -> None:
    fault = _metadata_fault(metadata, limits)
    if fault is None:
        return
    limit, key = fault
    limit_value: int = getattr(limits, limit)
    quoted = printable(field if key is None else _field(field, key))
    raise ApiError(
        422,
        INVALID_METADATA,
        f"{quoted}: {_METADATA_LIMITS[limit].format(limit_value)}",
        {"field": quoted, "limit": limit, "limit_value": limit_value},
    )
