"""Refuse at the edge: each rule of docs/api.md#limits-on-what-a-request-holds,
through the HTTP API, with the refused request leaving nothing behind."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from application.clock import SettableClock
from interface.adapters.persistence.api_keys import Role
from interface.api.app import create_app
from interface.bootstrap import Ledger, build_ledger
from interface.settings import Settings
from tests.support.api_keys import bearer
from tests.support.http_api import assert_error, balances, open_account, transfer_body

MEBIBYTE = 1024 * 1024
JSON = {"content-type": "application/json"}


def _error_details(response: Any, status: int, code: str) -> dict[str, Any]:
    details: dict[str, Any] = assert_error(response, status, code)["error"]["details"]
    return details


def _owners_accounts(client: TestClient, owner_id: str) -> list[dict[str, Any]]:
    response = client.get("/v1/accounts", params={"owner_id": owner_id})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_a_nul_in_owner_id_is_refused_naming_the_field_and_nothing_is_stored(
    client: TestClient,
) -> None:
    before = client.get("/v1/accounts").json()["items"]
    response = client.post("/v1/accounts", json={"currency": "USD", "owner_id": "a\x00b"})

    details = _error_details(response, 422, "invalid_string")
    assert details == {
        "field": "owner_id",
        "reason": "control_character",
        "character": "U+0000",
        "position": 1,
    }
    assert client.get("/v1/accounts").json()["items"] == before


def test_a_lone_surrogate_escape_in_metadata_is_refused_naming_its_path(
    client: TestClient,
) -> None:
    cash, bob = open_account(client, kind="cash"), open_account(client)
    body = json.dumps(transfer_body(cash["id"], bob["id"], "1.00", metadata={"note": "x"}))
    spoiled = body.replace('"note": "x"', '"note": "\\ud800"').encode()

    response = client.post("/v1/transfers", content=spoiled, headers=JSON)

    details = _error_details(response, 422, "invalid_string")
    assert (details["field"], details["reason"]) == ("metadata.note", "unpaired_surrogate")
    assert balances(client, bob["id"])["posted"] == "0.00"


def test_a_batch_names_the_item_whose_string_is_refused(client: TestClient) -> None:
    cash, bob = open_account(client, kind="cash"), open_account(client)
    items = [
        transfer_body(cash["id"], bob["id"], "1.00"),
        transfer_body(cash["id"], bob["id"], "1.00", metadata={"note": "tab\there"}),
    ]
    response = client.post("/v1/transfers/batch", json={"transfers": items})

    assert _error_details(response, 422, "invalid_string")["field"] == "transfers.1.metadata.note"
    assert balances(client, bob["id"])["posted"] == "0.00"


def test_a_string_past_the_length_limit_is_refused_as_too_long(client: TestClient) -> None:
    response = client.post("/v1/accounts", json={"currency": "USD", "owner_id": "o" * 2049})

    details = _error_details(response, 422, "invalid_string")
    assert details == {"field": "owner_id", "reason": "too_long", "length_max": 2048}


def test_a_control_character_in_a_path_or_query_value_is_refused_naming_it(
    client: TestClient,
) -> None:
    in_path = client.get("/v1/funded-accounts/fa%00x")
    assert _error_details(in_path, 422, "invalid_string")["field"] == "funded_account_id"
    in_query = client.get("/v1/accounts", params={"owner_id": "owner\x1b[31m"})
    assert _error_details(in_query, 422, "invalid_string")["field"] == "owner_id"


def test_a_ten_megabyte_body_is_refused_with_413_before_it_is_parsed(client: TestClient) -> None:
    body = b'{"currency": "USD", "owner_id": "' + b"x" * (10 * MEBIBYTE) + b'"}'

    declared = client.post("/v1/accounts", content=body, headers=JSON)
    # Without Content-Length (streamed in chunks), the bytes are counted.
    streamed = client.post(
        "/v1/accounts", content=iter([body[:MEBIBYTE], body[MEBIBYTE:]]), headers=JSON
    )

    for response in (declared, streamed):
        assert _error_details(response, 413, "request_too_large") == {"bytes_max": MEBIBYTE}
    assert _owners_accounts(client, "x") == []


def test_a_body_within_the_limit_is_read_whatever_its_chunks(client: TestClient) -> None:
    body = json.dumps({"currency": "USD", "owner_id": "chunked"}).encode()
    chunks = iter([body[:5], body[5:17], body[17:]])

    response = client.post("/v1/accounts", content=chunks, headers=JSON)

    assert response.status_code == 201, response.text
    assert [account["owner_id"] for account in _owners_accounts(client, "chunked")] == ["chunked"]


def test_metadata_with_too_many_keys_is_refused_naming_the_limit(client: TestClient) -> None:
    metadata = {f"k{index}": "v" for index in range(17)}
    response = client.post(
        "/v1/accounts", json={"currency": "USD", "owner_id": "meta", "metadata": metadata}
    )

    details = _error_details(response, 422, "invalid_metadata")
    assert details == {"field": "metadata", "limit": "metadata_keys_max", "limit_value": 16}
    assert _owners_accounts(client, "meta") == []


@pytest.mark.parametrize(
    ("metadata", "limit"),
    [
        ({"k": {"nested": "v"}}, "metadata_depth_max"),
        ({f"k{index}": "v" * 512 for index in range(16)}, "metadata_bytes_max"),
    ],
)
def test_metadata_too_deep_or_too_big_is_refused_naming_the_limit(
    client: TestClient, metadata: dict[str, Any], limit: str
) -> None:
    cash, bob = open_account(client, kind="cash"), open_account(client)
    body = transfer_body(cash["id"], bob["id"], "1.00", metadata=metadata)

    refused = client.post("/v1/transfers", json=body)

    assert _error_details(refused, 422, "invalid_metadata")["limit"] == limit
    assert balances(client, bob["id"])["posted"] == "0.00"


def test_an_amount_of_ten_to_the_thirty_is_refused_with_422(client: TestClient) -> None:
    cash, bob = open_account(client, kind="cash"), open_account(client)
    body = transfer_body(cash["id"], bob["id"], "1" + "0" * 30)

    assert_error(client.post("/v1/transfers", json=body), 422, "amount_too_large")
    assert balances(client, bob["id"])["posted"] == "0.00"


def test_an_unknown_query_parameter_is_refused_naming_it(client: TestClient) -> None:
    response = client.get("/v1/accounts", params={"limit": 5, "ownerid": "x", "sort": "desc"})

    details = _error_details(response, 422, "unknown_query_parameter")
    assert details == {
        "parameters": ["ownerid", "sort"],
        "accepted": [
            "currency",
            "cursor",
            "from",
            "kind",
            "limit",
            "min_position",
            "owner_id",
            "state",
            "to",
        ],
    }


def test_a_route_without_query_parameters_refuses_any(client: TestClient) -> None:
    response = client.get("/healthz", params={"verbose": "1"})

    assert _error_details(response, 422, "unknown_query_parameter")["accepted"] == []


def test_a_key_given_twice_is_refused_not_resolved_to_the_last(client: TestClient) -> None:
    body = b'{"currency": "USD", "owner_id": "first", "owner_id": "second"}'
    response = client.post("/v1/accounts", content=body, headers=JSON)

    assert _error_details(response, 422, "duplicate_key") == {"field": "owner_id"}
    assert _owners_accounts(client, "second") == []


@pytest.fixture
def tight_client(database_url: str, tmp_path: Path, clock: SettableClock) -> Iterator[TestClient]:
    """A service whose limits are set lower than the defaults."""
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        string_length_max=64,
        metadata_keys_max=2,
        request_body_bytes_max=2048,
    )
    ledger: Ledger = build_ledger(settings, clock=clock)
    try:
        _, key = ledger.api_keys.create(Role.SERVICE, label="tight")
        with TestClient(create_app(ledger=ledger), headers=bearer(key)) as test_client:
            yield test_client
    finally:
        ledger.close()


def test_each_limit_follows_its_setting(tight_client: TestClient) -> None:
    long_owner = tight_client.post("/v1/accounts", json={"currency": "USD", "owner_id": "o" * 65})
    assert _error_details(long_owner, 422, "invalid_string")["length_max"] == 64
    three_keys = {"currency": "USD", "owner_id": "o", "metadata": {"a": "1", "b": "2", "c": "3"}}
    many_keys = tight_client.post("/v1/accounts", json=three_keys)
    assert _error_details(many_keys, 422, "invalid_metadata")["limit_value"] == 2
    padded = json.dumps({"currency": "USD", "owner_id": "o"}) + " " * 2048
    too_large = tight_client.post("/v1/accounts", content=padded, headers=JSON)
    assert _error_details(too_large, 413, "request_too_large") == {"bytes_max": 2048}
    within = tight_client.post("/v1/accounts", json={"currency": "USD", "owner_id": "o" * 64})
    assert within.status_code == 201, within.text
