"""The interactive docs work offline, and the OpenAPI document is one a
client generator makes a good client from: hand-chosen operation ids, tags,
and an example that matches its schema on every request and answer."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any, Final

import jsonschema_rs
import pytest
from fastapi.testclient import TestClient

from interface.api.openapi import JSON, OPERATION_IDS, TAGS, operations
from interface.api.openapi_examples import EXAMPLE_IN_DESCRIPTION, REQUEST_EXAMPLES

# Answers no example can show in the docs.
BINARY_MEDIA_TYPES: Final[frozenset[str]] = frozenset({"image/png"})
OPERATION_ID_PATTERN: Final = re.compile(r"[a-z]+(?:[A-Z][a-z]+)+|[a-z]+")


class _AssetLinks(HTMLParser):
    """Every URL a page loads: script and image sources, stylesheet and
    icon links, and the OpenAPI document it reads."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and name in ("src", "href", "spec-url"):
                self.urls.append(value)


def _asset_urls(html: str) -> list[str]:
    parser = _AssetLinks()
    parser.feed(html)
    # Swagger UI names its document inside a script, not in an attribute.
    parser.urls += re.findall(r"url: '([^']+)'", html)
    return parser.urls


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_only_assets_the_service_serves(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    urls = _asset_urls(response.text)
    assert any(url.endswith(".js") for url in urls), urls
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), f"{page} loads {url} from outside"
        served = client.get(url)
        assert served.status_code == 200, url
        assert len(served.content) > 0, url
    assert not re.search(r"https?://", response.text), "no page names another host"


def test_every_operation_has_its_hand_chosen_id_once(document: dict[str, Any]) -> None:
    found = {
        f"{method.upper()} {path}": operation["operationId"]
        for method, path, operation in operations(document)
    }
    assert found == OPERATION_IDS
    assert len(set(found.values())) == len(found), "operation ids are unique"
    for operation_id in found.values():
        assert OPERATION_ID_PATTERN.fullmatch(operation_id), operation_id


def test_every_operation_has_a_described_tag(document: dict[str, Any]) -> None:
    described = {tag["name"] for tag in TAGS}
    assert {tag["name"] for tag in document["tags"]} == described
    for _, _, operation in operations(document):
        assert operation.get("tags"), operation["operationId"]
        assert set(operation["tags"]) <= described, operation["operationId"]


def _examples(operation: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(where, media type, media) of the request body and every answer."""
    places = []
    body = operation.get("requestBody")
    if body is not None:
        places += [("request", kind, media) for kind, media in body["content"].items()]
    for status, answer in operation["responses"].items():
        places += [(status, kind, media) for kind, media in answer.get("content", {}).items()]
    return places


def test_every_request_and_answer_has_an_example_that_matches_its_schema(
    document: dict[str, Any],
) -> None:
    components = document["components"]
    for _, _, operation in operations(document):
        operation_id = operation["operationId"]
        places = _examples(operation)
        for where, media_type, media in places:
            if media_type in BINARY_MEDIA_TYPES:
                continue
            if where == "request" and operation_id in EXAMPLE_IN_DESCRIPTION:
                assert "Example body" in operation["description"], operation_id
                continue
            assert "example" in media, f"{operation_id} {where} {media_type} has no example"
            if media_type != JSON:
                continue
            validator = jsonschema_rs.Draft202012Validator(
                {**media["schema"], "components": components}
            )
            errors = [str(error) for error in validator.iter_errors(media["example"])]
            assert not errors, f"{operation_id} {where}: {errors[:2]}"
            if not where.startswith("2") and where != "request":
                error = media["example"]["error"]
                assert error["doc_url"] == f"docs/api.md#{error['code']}", operation_id
        assert any("example" in media for _, _, media in places) or not places, operation_id


def test_request_examples_are_written_for_every_operation_with_a_body(
    document: dict[str, Any],
) -> None:
    with_body = {
        operation["operationId"]
        for _, _, operation in operations(document)
        if operation.get("requestBody")
    }
    assert with_body <= set(REQUEST_EXAMPLES), sorted(with_body - set(REQUEST_EXAMPLES))
