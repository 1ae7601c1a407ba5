"""Webhook signatures (Stripe's shape), the address check, and the catalogue
as docs/events.md shows it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from interface.adapters.webhooks.signing import signature_header, verify
from interface.adapters.webhooks.url_safety import UrlRefused, require_callable_url
from projections.integration_catalogue import CATALOGUE

NOW = 1_767_323_045
DOCS = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def test_a_signature_checks_only_with_its_secret_body_and_a_recent_time() -> None:
    body = b'{"id":"1"}'
    header = signature_header("whsec_a", body, NOW)
    assert re.fullmatch(r"t=1767323045,v1=[0-9a-f]{64}", header)
    assert verify(header, body, "whsec_a", NOW + 10)
    assert not verify(header, body, "whsec_b", NOW)
    assert not verify(header, body + b" ", "whsec_a", NOW)
    assert not verify(header, body, "whsec_a", NOW + 301)
    assert not verify("v1=" + header.split("v1=")[1], body, "whsec_a", NOW)


def test_the_docs_snippet_accepts_what_the_service_signs(monkeypatch: pytest.MonkeyPatch) -> None:
    snippet = DOCS.read_text().split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, object] = {}
    exec(snippet, namespace)
    monkeypatch.setattr("time.time", lambda: float(NOW))
    check = namespace["verify"]
    body = b'{"id":"2"}'
    assert check(signature_header("whsec_x", body, NOW), body, "whsec_x")  # type: ignore[operator]
    assert not check(signature_header("whsec_x", body, NOW), body, "whsec_y")  # type: ignore[operator]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8080/hook",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://172.16.5.4/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "http://100.64.0.1/",
    ],
)
def test_a_url_to_a_non_public_address_is_refused(url: str) -> None:
    with pytest.raises(UrlRefused, match="not a public address"):
        require_callable_url(url, allow_private=False)
    require_callable_url(url, allow_private=True)


@pytest.mark.parametrize(
    "url", ["ftp://93.184.216.34/", "http:///path", "https://user:pw@93.184.216.34/", "x" * 3000]
)
def test_a_url_of_the_wrong_shape_is_refused_even_when_private_ones_are_allowed(url: str) -> None:
    with pytest.raises(UrlRefused):
        require_callable_url(url, allow_private=True)


def test_a_url_to_a_public_address_is_accepted() -> None:
    require_callable_url("https://93.184.216.34:8443/hooks?token=t", allow_private=False)


def test_the_docs_show_every_event_type_with_its_version_and_payload() -> None:
    text = DOCS.read_text()
    for entry in CATALOGUE:
        fields = ", ".join(f"`{name}`" for name in entry.payload_fields)
        row = f"| `{entry.name}` | {entry.version} | {entry.description} | {fields} |"
        assert row in text, entry.name
