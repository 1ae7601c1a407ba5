"""Examples in the OpenAPI document: one request and one answer per operation.

Request bodies are written by hand, one per operation that takes a body
(REQUEST_EXAMPLES, by operation id): a generated client's user copies them.
Answers are written by hand for the operations a new client meets first
(RESPONSE_EXAMPLES) and made from the answer's schema for the rest
(`example_of`): every property filled, each value from the schema's own
`examples`, or from VALUES_BY_FIELD for its name, or from its type. A test
(tests/e2e/test_openapi_docs.py) checks that every example matches its
schema.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

# Ids in examples: fixed, so the document is the same on every build.
_NAMESPACE: Final[uuid.UUID] = uuid.UUID("6f1c9a52-3c1e-4d36-9c57-0d8e3b1f0a11")
TIME: Final[str] = "2026-12-07T09:30:00Z"
# Deeper than this, a schema is shown without its nested examples (none is
# this deep; the bound only keeps a recursive schema from looping).
NESTING_MAX: Final[int] = 12
# From this depth on, a list is shown empty (an account tree shows its root
# and a child, not every level).
RECURSIVE_DEPTH_MAX: Final[int] = 4


def example_id(name: str) -> str:
    """A fixed UUID per name: the same id wherever the same thing appears."""
    return str(uuid.uuid5(_NAMESPACE, name))


CASH_ACCOUNT: Final[str] = example_id("cash account")
ALICE_ACCOUNT: Final[str] = example_id("alice account")
TRANSFER: Final[str] = example_id("transfer")
FUNDED_ACCOUNT: Final[str] = example_id("funded account")

# Values for properties by name, where the type alone would say little or a
# pattern must be met.
VALUES_BY_FIELD: Final[dict[str, Any]] = {
    # money, as decimal strings in the currency's major units
    "amount": "100.00",
    "balance": "25000.00",
    "available": "250.00",
    "posted": "250.00",
    "debits_posted": "100.00",
    "credits_posted": "350.00",
    "debits_pending": "0.00",
    "credits_pending": "0.00",
    "starting_balance": "25000.00",
    "start_value": "25000.00",
    "end_value": "26000.00",
    "realized_pnl": "320.00",
    "net_flow": "100.00",
    "moved": "100.00",
    "total_paid": "0.00",
    "threshold": "30000.00",
    "executable_from": "55000.00",
    "expected": "1250.00",
    "actual": "1250.00",
    # prices
    "bid": "189.20",
    "ask": "189.30",
    "price": "189.25",
    "open": "188.90",
    "last": "189.25",
    "last_close": "188.10",
    # names and states
    "currency": "USD",
    "owner_id": "alice",
    "kind": "user",
    "state": "active",
    "account_state": "active",
    "band": "safe",
    "tier": "Gen",
    "period": "1m",
    "entry_type": "posted",
    "event_type": "transfer.posted",
    "symbol": "AAPL",
    "position_id": "pos_7f3a",
    "payout_gateway": "stripe",
    "payout_id": "po_1Q2w3E",
    "secret": "whsec_5f1d9c0b7a",
    "fingerprint": "sha256:9f86d081884c7d65",
    "code": "insufficient_funds",
    "quantity": 10,
    "weight": "0.25",
    "value": "0.05",
    # people and their words
    "reason": "requested by the account holder",
    "note": "matched by hand against the bank statement",
    "resolved_by": "ops@example.com",
    "approved_by": "admin:ops",
    "started_by": "admin:ops",
    "requested_by": "user:alice",
    "actor": "admin:ops",
    "recipient_name": "Alice Example",
    "recipient_email": "alice@example.com",
    "url": "https://hooks.example.com/ledger",
    "description": "Payments team",
    "label": "payments",
    "next_action": "pay out the next tranche",
    # keys and references
    "idempotency_key": "order-4711",
    "client_order_id": "stray-1",
    "assessment_id": "assessment-0042",
    "confirmation_number": "CL-2026-0001",
    "request_id": "req_5c2b8f0e",
    "cursor": "cDE6MTIz",
    "metadata": {"order": "4711"},
    # A page's: the last page's (a list of events always gives one).
    "next_cursor": None,
    "has_more": False,
}


def _transfer_answer(*, status: str = "posted", pending: bool = False) -> dict[str, Any]:
    return {
        "id": TRANSFER,
        "idempotency_key": "order-4711",
        "status": status,
        "pending": pending,
        "postings": [
            {"account_id": CASH_ACCOUNT, "side": "debit", "amount": "100.00", "currency": "USD"},
            {"account_id": ALICE_ACCOUNT, "side": "credit", "amount": "100.00", "currency": "USD"},
        ],
        "metadata": {"order": "4711"},
    }


# Bodies of requests, by operation id: every operation that takes one.
REQUEST_EXAMPLES: Final[dict[str, Any]] = {
    "openAccount": {
        "currency": "USD",
        "owner_id": "alice",
        "kind": "user",
        "idempotency_key": "open-alice-usd",
        "metadata": {"segment": "retail"},
    },
    "createTransfer": {
        "idempotency_key": "order-4711",
        "debit_account_id": CASH_ACCOUNT,
        "credit_account_id": ALICE_ACCOUNT,
        "amount": "100.00",
        "currency": "USD",
        "metadata": {"order": "4711"},
    },
    "createTransferBatch": {
        "transfers": [
            {
                "idempotency_key": "payroll-2026-12-alice",
                "debit_account_id": CASH_ACCOUNT,
                "credit_account_id": ALICE_ACCOUNT,
                "amount": "2500.00",
                "currency": "USD",
            }
        ]
    },
    "postPendingTransfer": {"amount": "80.00"},
    "reverseTransfer": {"metadata": {"reason": "duplicate charge"}},
    "activateFundedAccount": {
        "assessment_id": "assessment-0042",
        "assessment_status": "passed",
        "owner_id": "alice",
        "tier": "Gen",
        "profit_split": "0.80",
        "completed_at": TIME,
    },
    "changeFundedAccountState": {"state": "suspended", "reason": "compliance review"},
    "openPosition": {"symbol": "AAPL", "side": "long", "quantity": 10},
    "setSimulatedPrice": {"bid": "189.20", "ask": "189.30", "volume": 1000000},
    "advanceClock": {"seconds": 3600},
    "openStrayPosition": {
        "symbol": "AAPL",
        "side": "long",
        "quantity": 5,
        "client_order_id": "stray-1",
    },
    "closeStrayPosition": {"client_order_id": "stray-1-close"},
    "requestWithdrawal": {"amount": "500.00", "idempotency_key": "withdrawal-2026-12-07"},
    "rejectWithdrawal": {"reason": "the payout details could not be verified"},
    "initiateClosure": {
        "recipient_name": "Alice Example",
        "recipient_email": "alice@example.com",
        "reason": "moving to another provider",
    },
    "resumeClosure": {"dry_run": True},
    "proposeFork": {"funded_account_id": FUNDED_ACCOUNT},
    "proposeMerge": {
        "source_id": FUNDED_ACCOUNT,
        "target_kind": "parent",
        "reason": "consolidate idle capital",
    },
    "comparePerformance": {"account_ids": [ALICE_ACCOUNT, CASH_ACCOUNT], "period": "1m"},
    "startReconciliationRun": {"type": "manual"},
    "resolveReconciliationException": {
        "resolved_by": "ops@example.com",
        "note": "matched by hand against the bank statement",
    },
    "closeGuardedPosition": {"reason": "manual risk reduction"},
    "createWebhookEndpoint": {
        "url": "https://hooks.example.com/ledger",
        "event_types": ["transfer.posted"],
        "description": "Payments team",
    },
    "updateWebhookEndpoint": {"enabled": False},
}

# Requests whose example is shown in the operation's description, not as
# its body's `example`: a contract tester grows a body example to the
# schema's largest array (8,190 transfers of a batch), more than a test waits.
EXAMPLE_IN_DESCRIPTION: Final[frozenset[str]] = frozenset({"createTransferBatch"})

# Answers written by hand (the success answer), by operation id: these
# properties are set over the example made from the schema.
RESPONSE_EXAMPLES: Final[dict[str, Any]] = {
    "checkReadiness": {
        "status": "ready",
        "checks": {
            "database": "ok",
            "migrations": "current",
            "redis": "not configured",
            "writer": "running",
            "projections": "running",
            "views": "ok",
        },
        "failing": [],
    },
    "createTransfer": _transfer_answer(),
    "getTransfer": _transfer_answer(),
    "voidPendingTransfer": _transfer_answer(status="voided", pending=True),
}

REQUEST_ID: Final[str] = example_id("request")
# The codes an error example shows, the first of them an answer can have
# (else its first code, which says its code), with their messages.
ERROR_MESSAGES: Final[dict[str, str]] = {
    "insufficient_funds": "account 5c1070ce-6b42-56b0-8d29-bc968bf23015 has 190.00 USD "
    "available; this transfer needs 1000.00 USD",
    "account_not_found": "no account 5c1070ce-6b42-56b0-8d29-bc968bf23015",
    "invalid_amount": "amount: 10.001 has more decimals than USD allows (2)",
    "unauthenticated": "send an API key as the header Authorization: Bearer <key>",
    "forbidden": "this key's role may not do this",
    "invalid_request": "the request is not valid: query.limit: Input should be less than "
    "or equal to 200",
    "malformed_body": "the body is not valid JSON",
    "request_too_large": "the body is larger than the limit",
    "rate_limited": "too many requests: wait for the time Retry-After says",
}

# Answers that are not JSON, by operation id and media type. Binary answers
# (a PNG chart) have none: the docs cannot show one.
MEDIA_EXAMPLES: Final[dict[str, dict[str, str]]] = {
    "getMetrics": {
        "text/plain; version=1.0.0; charset=utf-8": (
            "# HELP ledger_http_requests_total HTTP requests answered.\n"
            "# TYPE ledger_http_requests_total counter\n"
            'ledger_http_requests_total{method="POST",route="/v1/transfers",status="201"} 42.0\n'
        )
    },
    "exportAuditEvents": {
        "application/x-ndjson": (
            '{"position": 1, "topic": "domain.account:Account.Opened", "...": "..."}\n'
            '{"position": 2, "topic": "domain.transfer:Transfer.Recorded", "...": "..."}\n'
        )
    },
    "streamClosureEvents": {
        "text/event-stream": 'event: progress\ndata: {"phase": "liquidating", "...": "..."}\n\n'
    },
    "getAccountPerformanceChart": {"image/svg+xml": '<svg xmlns="http://www.w3.org/2000/svg"/>'},
}


def error_example(schema: dict[str, Any], components: dict[str, Any]) -> Any:
    """An error answer's example: its first code, with the message, field
    and doc_url that go with it (docs/api.md#request-ids-rate-limits-errors)."""
    made = example_of(schema, components)
    error = made.get("error") if isinstance(made, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("code"), str):
        return made
    codes = (
        schema.get("properties", {})
        .get("error", {})
        .get("properties", {})
        .get("code", {})
        .get("enum", [])
    )
    code = next((known for known in ERROR_MESSAGES if known in codes), error["code"])
    error.update(
        code=code,
        message=ERROR_MESSAGES.get(code, f"refused: {code.replace('_', ' ')}"),
        field=None,
        details={},
        request_id=REQUEST_ID,
        doc_url=f"docs/api.md#{code}",
    )
    return made


def answer_example(operation_id: str, schema: dict[str, Any], components: dict[str, Any]) -> Any:
    """The success answer's example: made from its schema, with the
    hand-written properties set over it."""
    made = example_of(schema, components)
    written = RESPONSE_EXAMPLES.get(operation_id)
    if isinstance(made, dict) and isinstance(written, dict):
        return made | written
    return made if written is None else written


def _reference(schema: dict[str, Any]) -> str | None:
    reference = schema.get("$ref")
    return None if reference is None else str(reference).rsplit("/", 1)[-1]


def example_of(
    schema: dict[str, Any], components: dict[str, Any], name: str | None = None, depth: int = 0
) -> Any:
    """A value that matches `schema` (components resolve its references),
    for a property called `name`."""
    while (reference := _reference(schema)) is not None:
        schema = components[reference]
    if depth > NESTING_MAX:
        return None
    for key in ("const", "example"):
        if key in schema:
            return schema[key]
    if schema.get("examples"):
        return schema["examples"][0]
    if "enum" in schema:
        return schema["enum"][0]
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    if alternatives:
        chosen = [option for option in alternatives if option.get("type") != "null"]
        if len(chosen) < len(alternatives) and VALUES_BY_FIELD.get(name or "") is None:
            return None  # an optional value: most answers leave it out
        return example_of(chosen[0] if chosen else alternatives[0], components, name, depth + 1)
    if name in VALUES_BY_FIELD and _fits(VALUES_BY_FIELD[name], schema):
        return VALUES_BY_FIELD[name]
    if "allOf" in schema:
        return example_of(schema["allOf"][0], components, name, depth + 1)
    return _typed_example(schema, components, name, depth)


def _typed_example(
    schema: dict[str, Any], components: dict[str, Any], name: str | None, depth: int
) -> Any:
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        made = {
            key: example_of(value, components, key, depth + 1) for key, value in properties.items()
        }
        extra = schema.get("additionalProperties")
        if not properties and isinstance(extra, dict):
            made["key"] = example_of(extra, components, None, depth + 1)
        return made
    if kind == "array":
        if depth >= RECURSIVE_DEPTH_MAX and not schema.get("minItems"):
            return []  # a tree's children: show the top levels only
        item = example_of(schema.get("items", {}), components, _singular(name), depth + 1)
        return [item] * max(1, schema.get("minItems", 1))
    if kind == "string":
        return _string_example(schema, name)
    if kind == "integer":
        return max(schema.get("minimum", 1), min(1, schema.get("maximum", 1)))
    if kind == "number":
        return max(schema.get("minimum", 0.5), min(0.5, schema.get("maximum", 0.5)))
    if kind == "boolean":
        return False
    return None


_JSON_TYPES: Final[dict[type, str]] = {
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    dict: "object",
    list: "array",
}


def _fits(value: Any, schema: dict[str, Any]) -> bool:
    """Whether a value from VALUES_BY_FIELD has the schema's type (a name
    such as `expected` is money in one answer and a count in another)."""
    kind = schema.get("type")
    return value is not None and (kind is None or _JSON_TYPES.get(type(value)) == kind)


def _singular(name: str | None) -> str | None:
    return name[:-1] if name and name.endswith("s") else name


def _string_example(schema: dict[str, Any], name: str | None) -> str:
    formats = {
        "date-time": TIME,
        "date": TIME[:10],
        "uuid": example_id(name or "id"),
        "uri": "https://hooks.example.com/ledger",
        "email": "alice@example.com",
    }
    if schema.get("format") in formats:
        return formats[schema["format"]]
    if name and (name == "id" or name.endswith("_id")):
        return example_id(name)
    if name and (name.endswith("_at") or name in ("at", "now", "as_of")):
        return TIME
    text = name or "text"
    return text.ljust(schema.get("minLength", 0), "x")[: schema.get("maxLength", len(text))]
