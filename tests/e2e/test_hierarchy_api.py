"""The hierarchy, lineage and performance routes over real forks and trades."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from uuid import UUID
from xml.etree import ElementTree

import pytest
from fastapi.testclient import TestClient

from application.clock import SettableClock
from domain.positions import PositionSide
from interface.adapters.broker.simulated_broker import SimulatedBroker
from interface.adapters.persistence.api_keys import Role
from interface.api.app import create_app
from interface.bootstrap import Ledger
from tests.support.api_keys import bearer
from tests.support.http_api import assert_error
from tests.support.withdrawals import profitable_funded_account

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def client(ledger: Ledger) -> Iterator[TestClient]:
    with TestClient(create_app(ledger=ledger)) as test_client:
        yield test_client


def _headers(ledger: Ledger, role: Role, owner: str | None = None) -> dict[str, str]:
    return bearer(ledger.api_keys.create(role, owner_id=owner)[1])


def _trade(ledger: Ledger, account_id: UUID, pnl_minor: int, clock: SettableClock) -> None:
    """A day later, one round trip of 4 units with this P&L."""
    clock.advance(timedelta(days=1))
    broker = ledger.broker
    assert isinstance(broker, SimulatedBroker)
    entry = 200_00
    broker.set_price("PERF", bid_minor=entry, ask_minor=entry)
    opened = ledger.funded_accounts.open_position(account_id, "PERF", PositionSide.LONG, 4)
    exit_minor = entry + pnl_minor // 4
    broker.set_price("PERF", bid_minor=exit_minor, ask_minor=exit_minor)
    ledger.funded_accounts.close_position(account_id, opened.position_id)


@pytest.fixture
def family(ledger: Ledger, clock: SettableClock) -> tuple[UUID, UUID]:
    """A Gen parent ($120,000) that forked a Rev child, then traded for days."""
    parent = profitable_funded_account(ledger, "trader-1", 110_000_00)
    child = ledger.forks.propose(parent, "service:platform").child
    assert child is not None
    for pnl in (400_00, -200_00, 800_00, -100_00):
        _trade(ledger, parent, pnl, clock)
        _trade(ledger, child.id, pnl * 2, clock)
    return parent, child.id


def test_the_tree_with_balances_and_consolidated_totals(
    ledger: Ledger, client: TestClient, family: tuple[UUID, UUID]
) -> None:
    parent, child = family
    owner = _headers(ledger, Role.USER, "trader-1")
    for account in (parent, child):
        body = client.get(f"/v1/accounts/{account}/hierarchy", headers=owner).json()
        assert body["root_id"] == str(parent)
        tree = body["tree"]
        assert (tree["tier"], tree["children"][0]["tier"]) == ("Gen", "Rev")
        assert tree["children"][0]["funded_account_id"] == str(child)
        balances = [float(tree["balance"]), float(tree["children"][0]["balance"])]
        assert float(tree["totals"]["balance"]) == pytest.approx(sum(balances))
        assert tree["totals"]["accounts"] == 2


def test_lineage_both_ways(ledger: Ledger, client: TestClient, family: tuple[UUID, UUID]) -> None:
    parent, child = family
    admin = _headers(ledger, Role.ADMIN)
    into_child = client.get(f"/v1/accounts/{child}/lineage", headers=admin).json()
    assert into_child["ancestors"] == [str(parent)]
    assert [(f["from_account_id"], f["amount"], f["kind"]) for f in into_child["capital_in"]] == [
        (str(parent), "100000.00", "fork")
    ]
    out_of_parent = client.get(f"/v1/accounts/{parent}/lineage", headers=admin).json()
    assert [f["to_account_id"] for f in out_of_parent["capital_out"]] == [str(child)]


def test_performance_of_an_account_and_its_subtree(
    ledger: Ledger, client: TestClient, family: tuple[UUID, UUID]
) -> None:
    parent, _ = family
    owner = _headers(ledger, Role.USER, "trader-1")
    body = client.get(
        f"/v1/accounts/{parent}/performance", params={"period": "1m"}, headers=owner
    ).json()
    account = body["account"]
    # The $110,000 trade that made the parent, then +400, -200, +800, -100.
    assert account["closed_trades"] == 5
    assert account["win_rate"] == pytest.approx(3 / 5)
    assert account["profit_factor"] == pytest.approx((110_000 + 1_200) / 300)
    for figure in ("total_return", "volatility", "max_drawdown", "var_95", "sharpe", "sortino"):
        assert account[figure] is not None, figure
    # The fork moved capital out: a flow, not a loss.
    assert float(account["net_flow"]) <= 0
    assert body["subtree_accounts"] == 2 and body["subtree"]["closed_trades"] == 9
    compared = client.post(
        "/v1/performance/compare",
        json={"account_ids": [str(parent)], "period": "1m"},
        headers=owner,
    ).json()
    assert compared["items"][0]["account"] == account
    assert_error(
        client.get(f"/v1/accounts/{parent}/performance", params={"period": "5y"}, headers=owner),
        422,
        "invalid_request",
    )


def test_the_chart_as_png_and_svg(
    ledger: Ledger, client: TestClient, family: tuple[UUID, UUID]
) -> None:
    parent, _ = family
    owner = _headers(ledger, Role.USER, "trader-1")
    png = client.get(
        f"/v1/accounts/{parent}/performance/chart",
        params={"format": "png", "period": "1m"},
        headers=owner,
    )
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(PNG_SIGNATURE)
    svg = client.get(
        f"/v1/accounts/{parent}/performance/chart",
        params={"format": "svg", "period": "1m", "scope": "subtree"},
        headers=owner,
    )
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert "subtree" in svg.text
    ElementTree.fromstring(svg.content)


def test_another_owner_sees_nothing(
    ledger: Ledger, client: TestClient, family: tuple[UUID, UUID]
) -> None:
    parent, _ = family
    other = _headers(ledger, Role.USER, "someone-else")
    for path in ("hierarchy", "lineage", "performance", "performance/chart"):
        assert_error(
            client.get(f"/v1/accounts/{parent}/{path}", headers=other),
            404,
            "funded_account_not_found",
        )


def test_an_idle_child_is_a_merge_opportunity(
    ledger: Ledger, client: TestClient, clock: SettableClock, family: tuple[UUID, UUID]
) -> None:
    parent, child = family
    admin = _headers(ledger, Role.ADMIN)
    listed = client.get("/v1/merges/opportunities", headers=admin).json()["items"]
    assert listed == []
    clock.advance(timedelta(days=31))
    listed = client.get("/v1/merges/opportunities", headers=admin).json()["items"]
    assert [
        (item["source_id"], item["parent_id"], item["trigger"], item["urgency"]) for item in listed
    ] == [(str(child), str(parent), "idle_capital", "low")]
