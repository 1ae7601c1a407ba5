"""The edge's rules on strings, JSON bodies and metadata (interface/api/input_checks.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from interface.api.errors import ApiError
from interface.api.input_checks import (
    check_json_document,
    check_metadata,
    check_string,
    parse_json_body,
)
from interface.settings import Settings
from interface.text_rules import printable

DEFAULTS = Settings.model_construct()


def refusal(document: Any, limits: Settings = DEFAULTS) -> ApiError:
    with pytest.raises(ApiError) as refused:
        check_json_document(document, limits)
    return refused.value


def refusal_of_body(body: bytes) -> ApiError:
    with pytest.raises(ApiError) as refused:
        check_json_document(parse_json_body(body), DEFAULTS)
    return refused.value


@pytest.mark.parametrize(
    ("value", "reason", "character"),
    [
        ("a\x00b", "control_character", "U+0000"),
        ("line\nbreak", "control_character", "U+000A"),
        ("tab\there", "control_character", "U+0009"),
        ("carriage\r", "control_character", "U+000D"),
        ("delete\x7f", "control_character", "U+007F"),
        ("next line \x85", "control_character", "U+0085"),
        ("c1 \x9f", "control_character", "U+009F"),
        ("\ud800", "unpaired_surrogate", "U+D800"),
        ("low \udfff alone", "unpaired_surrogate", "U+DFFF"),
    ],
)
def test_a_forbidden_character_is_refused_naming_it_and_where(
    value: str, reason: str, character: str
) -> None:
    with pytest.raises(ApiError) as refused:
        check_string(value, "owner_id", 100)
    assert (refused.value.status, refused.value.code) == (422, "invalid_string")
    assert refused.value.details == {
        "field": "owner_id",
        "reason": reason,
        "character": character,
        "position": value.index(chr(int(character[2:], 16))),
    }


@pytest.mark.parametrize(
    "value", ["", "plain", "Ünïcödé ✓", "emoji 😀 and 𝄞", "\xa0no-break space", "\u2028", "x" * 100]
)
def test_printable_text_of_any_plane_within_the_length_passes(value: str) -> None:
    check_string(value, "field", 100)


def test_a_string_one_past_the_length_is_refused_as_too_long() -> None:
    check_string("x" * 10, "note", 10)
    with pytest.raises(ApiError) as refused:
        check_string("x" * 11, "note", 10)
    assert refused.value.details == {"field": "note", "reason": "too_long", "length_max": 10}


def test_every_string_and_key_of_a_document_is_checked_and_named_by_its_path() -> None:
    document = {"transfers": [{"metadata": {"ok": "fine"}}, {"metadata": {"note": "a\x00"}}]}
    assert refusal(document).details["field"] == "transfers.1.metadata.note"
    assert refusal({"metadata": {"k\x00": "v"}}).details["field"] == "metadata.k\\u0000"
    assert refusal({"owner_id": "x" * 2049}).details["reason"] == "too_long"


def test_a_body_that_is_a_bare_string_is_named_body() -> None:
    assert refusal("a\x00").details["field"] == "body"


def test_the_first_fault_in_document_order_is_the_one_named() -> None:
    document = {"a": "bad\x01", "b": ["bad\x02"], "c": "bad\x03"}
    assert refusal(document).details["field"] == "a"


def test_a_duplicate_key_is_refused_at_any_depth_with_its_path() -> None:
    top = refusal_of_body(b'{"owner_id": "x", "owner_id": "y"}')
    assert (top.code, top.details) == ("duplicate_key", {"field": "owner_id"})
    nested = refusal_of_body(b'{"transfers": [{"metadata": {"k": "1", "k": "2"}}]}')
    assert nested.details == {"field": "transfers.0.metadata.k"}


def test_json_escapes_of_control_characters_and_lone_surrogates_are_caught() -> None:
    assert refusal_of_body(b'{"owner_id": "\\u0000"}').details["reason"] == "control_character"
    assert refusal_of_body(b'{"owner_id": "\\ud83d"}').details["reason"] == "unpaired_surrogate"
    # A pair of surrogate escapes is one character of the astral planes: fine.
    check_json_document(parse_json_body(b'{"owner_id": "\\ud83d\\ude00"}'), DEFAULTS)


def test_a_body_too_deep_for_the_parser_is_malformed_not_a_crash() -> None:
    with pytest.raises(ApiError) as refused:
        parse_json_body(b"[" * 200_000 + b"]" * 200_000)
    assert (refused.value.status, refused.value.code) == (400, "malformed_body")


def test_a_deep_document_is_walked_without_exhausting_the_stack() -> None:
    deep: Any = "end\x00"
    for _ in range(5_000):
        deep = [deep]
    assert refusal(deep).details["reason"] == "control_character"


def test_a_hostile_name_is_escaped_and_cut_before_it_is_answered() -> None:
    assert printable("a\x00b\ud800") == "a\\u0000b\\ud800"
    assert printable("n" * 100) == "n" * 64 + "..."
    # What an answer holds must encode as UTF-8.
    json.dumps(printable("\udfff" * 10)).encode()


def metadata_refusal(metadata: dict[str, Any], **limits: Any) -> dict[str, Any]:
    with pytest.raises(ApiError) as refused:
        check_metadata(metadata, "metadata", Settings.model_construct(**limits))
    assert (refused.value.status, refused.value.code) == (422, "invalid_metadata")
    return refused.value.details


def test_metadata_within_every_limit_passes() -> None:
    check_metadata({f"k{index}": "v" * 400 for index in range(16)}, "metadata", DEFAULTS)


@pytest.mark.parametrize(
    ("metadata", "limit"),
    [
        ({f"k{index}": "v" for index in range(17)}, "metadata_keys_max"),
        ({"k" * 65: "v"}, "metadata_key_length_max"),
        ({"k": "v" * 513}, "metadata_value_length_max"),
        ({"k": {"nested": "v"}}, "metadata_depth_max"),
        ({"k": ["v"]}, "metadata_depth_max"),
        ({f"k{index}": "v" * 512 for index in range(16)}, "metadata_bytes_max"),
    ],
)
def test_metadata_past_a_default_limit_is_refused_naming_it(
    metadata: dict[str, Any], limit: str
) -> None:
    details = metadata_refusal(metadata)
    assert details["limit"] == limit
    assert details["limit_value"] == getattr(DEFAULTS, limit)


def test_each_metadata_limit_follows_its_setting() -> None:
    assert metadata_refusal({"a": "1", "b": "2"}, metadata_keys_max=1)["limit_value"] == 1
    assert metadata_refusal({"abc": "1"}, metadata_key_length_max=2)["field"] == "metadata.abc"
    assert metadata_refusal({"a": "123"}, metadata_value_length_max=2)["limit_value"] == 2
    check_metadata({"a": {"b": "c"}}, "metadata", Settings.model_construct(metadata_depth_max=2))
    # {"a":"12345"} is 13 bytes; "é" is two bytes of UTF-8.
    check_metadata({"a": "12345"}, "metadata", Settings.model_construct(metadata_bytes_max=13))
    assert metadata_refusal({"a": "1234é"}, metadata_bytes_max=13)["limit"] == "metadata_bytes_max"


def test_only_objects_named_metadata_are_held_to_its_limits() -> None:
    many = {f"k{index}": "v" for index in range(20)}
    check_json_document({"labels": many}, DEFAULTS)
    assert refusal({"transfers": [{"metadata": many}]}).details["field"] == "transfers.0.metadata"
