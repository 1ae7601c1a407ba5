"""The OpenAPI document, shaped for the clients generated from it.

FastAPI's own document names operations after the function and path
(`list_accounts_route_v1_accounts_get`), which a generated client turns into
its method names. This builder gives each operation a hand-chosen id
(OPERATION_IDS, camelCase verbs: `createTransfer`, `listAccounts`), which
stays the same however the code is arranged; describes the tags; says which
operations take an API key (a bearer token, as the authentication middleware
asks); adds an example to every request and answer (openapi_examples.py);
and the error codes of every operation (openapi_errors.py).
docs/api.md#openapi-and-clients.
"""

from __future__ import annotations

import json
from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from interface.api.middleware.authentication import PROTECTED_PREFIX, SIGNED_BY_SENDER_PATHS
from interface.api.middleware.idempotency import document_idempotency
from interface.api.openapi_errors import add_error_responses
from interface.api.openapi_examples import (
    EXAMPLE_IN_DESCRIPTION,
    MEDIA_EXAMPLES,
    REQUEST_EXAMPLES,
    answer_example,
    error_example,
    example_of,
)

# "METHOD path" -> operation id. A route missing here fails the build (and
# the tests): each new route gets its id by hand.
OPERATION_IDS: Final[dict[str, str]] = {
    "GET /healthz": "checkHealth",
    "GET /readyz": "checkReadiness",
    "GET /metrics": "getMetrics",
    # accounts
    "POST /v1/accounts": "openAccount",
    "GET /v1/accounts": "listAccounts",
    "GET /v1/accounts/{account_id}": "getAccount",
    "GET /v1/accounts/{account_id}/balance": "getAccountBalance",
    "GET /v1/accounts/{account_id}/statement": "getAccountStatement",
    # transfers
    "POST /v1/transfers": "createTransfer",
    "GET /v1/transfers": "listTransfers",
    "POST /v1/transfers/batch": "createTransferBatch",
    "GET /v1/transfers/{transfer_id}": "getTransfer",
    "POST /v1/transfers/{transfer_id}/post": "postPendingTransfer",
    "POST /v1/transfers/{transfer_id}/void": "voidPendingTransfer",
    "POST /v1/transfers/{transfer_id}/reverse": "reverseTransfer",
    # funded accounts and trading
    "GET /v1/funded-accounts": "listFundedAccounts",
    "POST /v1/funded-accounts": "activateFundedAccount",
    "GET /v1/funded-accounts/{funded_account_id}": "getFundedAccount",
    "POST /v1/funded-accounts/{funded_account_id}/state": "changeFundedAccountState",
    "GET /v1/tiers": "listTiers",
    "POST /v1/funded-accounts/{funded_account_id}/positions": "openPosition",
    "POST /v1/funded-accounts/{funded_account_id}/positions/{position_id}/close": ("closePosition"),
    "GET /v1/market/quotes/{symbol}": "getQuote",
    # simulation (admins, on a settable clock and the simulated broker)
    "PUT /v1/admin/simulated-market/{symbol}": "setSimulatedPrice",
    "GET /v1/admin/clock": "getClock",
    "POST /v1/admin/clock/advance": "advanceClock",
    "POST /v1/admin/simulated-broker/accounts/{account_id}/stray-positions": ("openStrayPosition"),
    "POST /v1/admin/simulated-broker/stray-positions/{position_id}/close": ("closeStrayPosition"),
    # withdrawals
    "POST /v1/funded-accounts/{funded_account_id}/withdrawals": "requestWithdrawal",
    "GET /v1/funded-accounts/{funded_account_id}/withdrawals": "listAccountWithdrawals",
    "GET /v1/withdrawals/{withdrawal_id}": "getWithdrawal",
    "GET /v1/admin/withdrawals": "listWithdrawals",
    "POST /v1/admin/withdrawals/{withdrawal_id}/approve": "approveWithdrawal",
    "POST /v1/admin/withdrawals/{withdrawal_id}/reject": "rejectWithdrawal",
    "POST /v1/admin/withdrawals/{withdrawal_id}/resume-payouts": "resumeWithdrawalPayouts",
    "POST /v1/webhooks/stripe": "receiveStripeWebhook",
    # closures
    "POST /v1/accounts/{account_id}/closure": "initiateClosure",
    "GET /v1/accounts/{account_id}/closure": "getClosure",
    "GET /v1/accounts/{account_id}/closure/events": "streamClosureEvents",
    "GET /v1/closures": "listClosures",
    "POST /v1/closures/{closure_id}/resume": "resumeClosure",
    # forks and merges
    "GET /v1/forks": "listForks",
    "POST /v1/forks": "proposeFork",
    "GET /v1/forks/opportunities": "listForkOpportunities",
    "GET /v1/forks/{fork_id}": "getFork",
    "POST /v1/forks/{fork_id}/execute": "executeFork",
    "POST /v1/forks/{fork_id}/approve": "approveFork",
    "GET /v1/merges/opportunities": "listMergeOpportunities",
    "POST /v1/merges": "proposeMerge",
    "GET /v1/merges/{merge_id}": "getMerge",
    "POST /v1/merges/{merge_id}/approve": "approveMerge",
    # hierarchy and performance
    "GET /v1/accounts/{account_id}/hierarchy": "getAccountHierarchy",
    "GET /v1/accounts/{account_id}/lineage": "getAccountLineage",
    "GET /v1/accounts/{account_id}/performance": "getAccountPerformance",
    "GET /v1/accounts/{account_id}/performance/chart": "getAccountPerformanceChart",
    "POST /v1/performance/compare": "comparePerformance",
    # reconciliation
    "GET /v1/reconciliation/reports": "listReconciliationReports",
    "GET /v1/reconciliation/reports/{run_id}": "getReconciliationReport",
    "GET /v1/reconciliation/exceptions": "listReconciliationExceptions",
    "POST /v1/reconciliation/runs": "startReconciliationRun",
    "POST /v1/reconciliation/exceptions/{exception_id}/resolve": ("resolveReconciliationException"),
    # guards
    "GET /v1/accounts/{account_id}/reconciliation": "getAccountReconciliation",
    "GET /v1/accounts/{account_id}/positions": "listLivePositions",
    "GET /v1/guards": "getGuardsStatus",
    "POST /v1/positions/{position_id}/close": "closeGuardedPosition",
    # audit, events and webhooks
    "GET /v1/audit/events": "exportAuditEvents",
    "GET /v1/events": "listEvents",
    "GET /v1/webhook-endpoints": "listWebhookEndpoints",
    "POST /v1/webhook-endpoints": "createWebhookEndpoint",
    "GET /v1/webhook-endpoints/{endpoint_id}": "getWebhookEndpoint",
    "PATCH /v1/webhook-endpoints/{endpoint_id}": "updateWebhookEndpoint",
    "DELETE /v1/webhook-endpoints/{endpoint_id}": "deleteWebhookEndpoint",
    "GET /v1/webhook-endpoints/{endpoint_id}/deliveries": "listWebhookDeliveries",
    "POST /v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/redeliver": (
        "redeliverWebhookDelivery"
    ),
}

# The tags in the order the docs show them, each with what it groups.
TAGS: Final[list[dict[str, str]]] = [
    {"name": "accounts", "description": "Open accounts; read them, their balances now or then."},
    {
        "name": "transfers",
        "description": "Move money: posted at once or held, then posted, "
        "voided or reversed; batches of linked transfers.",
    },
    {
        "name": "journal",
        "description": "Transfers listed and filtered (`status=pending`: "
        "the open holds), and an account's statement with running balances.",
    },
    {
        "name": "funded accounts",
        "description": "Funded trading accounts, their tiers, state and rule figures.",
    },
    {"name": "trading", "description": "Positions on the broker and market quotes."},
    {
        "name": "withdrawals",
        "description": "Withdrawals from funded accounts, their approval and payout.",
    },
    {"name": "closures", "description": "Multi-day account closures and their progress."},
    {
        "name": "forks and merges",
        "description": "Capital handed to a child account of the next tier, and back.",
    },
    {
        "name": "hierarchy and performance",
        "description": "Account trees, lineage and performance figures.",
    },
    {"name": "reconciliation", "description": "Reconciliation runs, reports and exceptions."},
    {"name": "guards", "description": "Drawdown and market guards over live positions."},
    {"name": "audit", "description": "The whole event log, exported for an auditor."},
    {"name": "events", "description": "Public integration events, a page at a time."},
    {"name": "webhooks", "description": "Webhook endpoints and their delivery log."},
    {
        "name": "simulation",
        "description": "The settable clock and the simulated broker (demo and tests).",
    },
    {"name": "health", "description": "Liveness and readiness."},
    {"name": "operations", "description": "Prometheus metrics."},
]

JSON: Final[str] = "application/json"
# How a generated client sends its key: `Authorization: Bearer ldg_...`.
BEARER_SCHEME: Final[str] = "apiKey"
METRICS_PATH: Final[str] = "/metrics"
SECURITY_SCHEMES: Final[dict[str, Any]] = {
    BEARER_SCHEME: {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (`ldg_...`): docs/api.md#keys-and-roles.",
    }
}


class UnnamedOperation(Exception):
    """A route without an id in OPERATION_IDS: give it one there."""


def install_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` (and so `/openapi.json`, `/docs`, `/redoc`) answer
    this builder's document, built once."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def build_openapi(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=TAGS,
    )
    document.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    components = document["components"].setdefault("schemas", {})
    for method, path, operation in operations(document):
        key = f"{method.upper()} {path}"
        if key not in OPERATION_IDS:
            raise UnnamedOperation(f"{key} has no operation id in interface/api/openapi.py")
        operation["operationId"] = OPERATION_IDS[key]
        if _takes_a_key(path):
            operation["security"] = [{BEARER_SCHEME: []}]
    add_error_responses(document)
    document_idempotency(document)
    for _, _, operation in operations(document):
        _add_examples(operation, components)
    return document


def _takes_a_key(path: str) -> bool:
    """Every route under /v1/ but the payment processor's webhooks (as the
    authentication middleware decides), and the metrics (an operator's)."""
    if path == METRICS_PATH:
        return True
    return path.startswith(PROTECTED_PREFIX) and path not in SIGNED_BY_SENDER_PATHS


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every operation of the document as (method, path, operation)."""
    return [
        (method, path, operation)
        for path, item in document.get("paths", {}).items()
        for method, operation in item.items()
        if method in ("get", "put", "post", "delete", "patch", "head", "options")
    ]


def _add_examples(operation: dict[str, Any], components: dict[str, Any]) -> None:
    operation_id = operation["operationId"]
    body = operation.get("requestBody")
    if operation_id in EXAMPLE_IN_DESCRIPTION:
        written = json.dumps(REQUEST_EXAMPLES[operation_id], indent=2)
        operation["description"] = (
            operation.get("description", "") + f"\n\nExample body:\n\n```json\n{written}\n```"
        )
    elif body is not None and JSON in body.get("content", {}):
        media = body["content"][JSON]
        media["example"] = REQUEST_EXAMPLES.get(operation_id) or example_of(
            media.get("schema", {}), components
        )
    for status, answer in operation.get("responses", {}).items():
        for media_type, media in answer.get("content", {}).items():
            if "example" in media or "examples" in media:
                continue
            if media_type == JSON and "schema" in media and not status.startswith("2"):
                media["example"] = error_example(media["schema"], components)
            elif media_type == JSON and "schema" in media:
                media["example"] = answer_example(operation_id, media["schema"], components)
            elif media_type in MEDIA_EXAMPLES.get(operation_id, {}):
                media["example"] = MEDIA_EXAMPLES[operation_id][media_type]
