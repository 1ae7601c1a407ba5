"""Where the simulated broker keeps its state so that it outlives the process.

The simulator stands in for a broker, and a broker does not forget its
accounts when the ledger restarts: without this, reconciliation after a
restart raised `broker_account_missing` for every account. So the simulator
writes each change here before it answers, and a new simulator on the same
store starts where the last one stopped.

`PostgresSimulatedBrokerStore` keeps it in the `simulated_broker_*` tables
(migrations/0013): the simulator's state, never the ledger's (no event, no
view reads them). Scripted faults are not kept: they belong to the test
that queued them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol
from uuid import UUID

from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from application.ports.broker import Fill, FillKind
from domain.positions import PositionSide
from interface.adapters.broker.price_path import PriceStep

# An order's request: ("open", symbol, side, quantity) or ("close", position_id).
OrderRequest = tuple[object, ...]


@dataclass(frozen=True, slots=True)
class StoredAccount:
    account_id: UUID
    cash_minor: int
    realized_pnl_minor: int


@dataclass(frozen=True, slots=True)
class StoredPosition:
    position_id: str
    account_id: UUID
    symbol: str
    side: PositionSide
    quantity: int
    entry_price_minor: int
    opened_at: datetime
    closed_by: str | None


@dataclass(frozen=True, slots=True)
class StoredOrder:
    client_order_id: str
    request: OrderRequest
    fill: Fill


@dataclass(frozen=True, slots=True)
class StoredMarket:
    """A fixed quote is one step with every price set (`is_path` false)."""

    symbol: str
    steps: tuple[PriceStep, ...]
    is_path: bool
    # Read as of now (a market still quoting) rather than at its step's time.
    live: bool


@dataclass(frozen=True, slots=True)
class StoredState:
    accounts: tuple[StoredAccount, ...]
    # In the order they were opened.
    positions: tuple[StoredPosition, ...]
    orders: tuple[tuple[UUID, StoredOrder], ...]
    markets: tuple[StoredMarket, ...]


class SimulatedBrokerStore(Protocol):
    def load(self) -> StoredState: ...

    def save_account(self, account: StoredAccount) -> None: ...

    def save_market(self, market: StoredMarket) -> None: ...

    def record_open(self, position: StoredPosition, order: StoredOrder) -> None: ...

    def record_close(
        self, account: StoredAccount, position_id: str, order: StoredOrder
    ) -> None: ...


# PostgreSQL ------------------------------------------------------------------------

_SAVE_ACCOUNT: Final = """
INSERT INTO simulated_broker_accounts (account_id, cash_minor, realized_pnl_minor)
VALUES (%s, %s, %s)
ON CONFLICT (account_id) DO UPDATE SET
    cash_minor = EXCLUDED.cash_minor, realized_pnl_minor = EXCLUDED.realized_pnl_minor
"""

_SAVE_MARKET: Final = """
INSERT INTO simulated_broker_markets (symbol, steps, is_path, live) VALUES (%s, %s, %s, %s)
ON CONFLICT (symbol) DO UPDATE SET
    steps = EXCLUDED.steps, is_path = EXCLUDED.is_path, live = EXCLUDED.live
"""

_INSERT_POSITION: Final = """
INSERT INTO simulated_broker_positions (position_id, account_id, symbol, side, quantity,
    entry_price_minor, opened_at)
VALUES (%s, %s, %s, %s, %s, %s, %s)
"""

_INSERT_ORDER: Final = """
INSERT INTO simulated_broker_orders (account_id, client_order_id, request, fill)
VALUES (%s, %s, %s, %s)
"""


class PostgresSimulatedBrokerStore:
    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def load(self) -> StoredState:
        with self._pool.connection() as connection:
            accounts = connection.execute(
                "SELECT account_id, cash_minor, realized_pnl_minor FROM simulated_broker_accounts"
            ).fetchall()
            positions = connection.execute(
                "SELECT position_id, account_id, symbol, side, quantity, entry_price_minor,"
                " opened_at, closed_by FROM simulated_broker_positions ORDER BY opened_order"
            ).fetchall()
            orders = connection.execute(
                "SELECT account_id, client_order_id, request, fill FROM simulated_broker_orders"
            ).fetchall()
            markets = connection.execute(
                "SELECT symbol, steps, is_path, live FROM simulated_broker_markets"
            ).fetchall()
        return StoredState(
            accounts=tuple(StoredAccount(*row) for row in accounts),
            positions=tuple(
                StoredPosition(
                    position_id=row[0],
                    account_id=row[1],
                    symbol=row[2],
                    side=PositionSide(row[3]),
                    quantity=row[4],
                    entry_price_minor=row[5],
                    opened_at=row[6].astimezone(UTC),
                    closed_by=row[7],
                )
                for row in positions
            ),
            orders=tuple(
                (row[0], StoredOrder(row[1], _request_from_json(row[2]), _fill_from_json(row[3])))
                for row in orders
            ),
            markets=tuple(
                StoredMarket(
                    row[0], tuple(_step_from_json(step) for step in row[1]), row[2], row[3]
                )
                for row in markets
            ),
        )

    def save_account(self, account: StoredAccount) -> None:
        with self._pool.connection() as connection:
            connection.execute(
                _SAVE_ACCOUNT, (account.account_id, account.cash_minor, account.realized_pnl_minor)
            )

    def save_market(self, market: StoredMarket) -> None:
        steps = Jsonb([_step_json(step) for step in market.steps])
        with self._pool.connection() as connection:
            connection.execute(_SAVE_MARKET, (market.symbol, steps, market.is_path, market.live))

    def record_open(self, position: StoredPosition, order: StoredOrder) -> None:
        with self._pool.connection() as connection, connection.transaction():
            connection.execute(
                _INSERT_POSITION,
                (
                    position.position_id,
                    position.account_id,
                    position.symbol,
                    position.side.value,
                    position.quantity,
                    position.entry_price_minor,
                    position.opened_at,
                ),
            )
            self._insert_order(connection, position.account_id, order)

    def record_close(self, account: StoredAccount, position_id: str, order: StoredOrder) -> None:
        with self._pool.connection() as connection, connection.transaction():
            connection.execute(
                _SAVE_ACCOUNT, (account.account_id, account.cash_minor, account.realized_pnl_minor)
            )
            connection.execute(
                "UPDATE simulated_broker_positions SET closed_by = %s WHERE position_id = %s",
                (order.client_order_id, position_id),
            )
            self._insert_order(connection, account.account_id, order)

    @staticmethod
    def _insert_order(connection: Any, account_id: UUID, order: StoredOrder) -> None:
        connection.execute(
            _INSERT_ORDER,
            (
                account_id,
                order.client_order_id,
                Jsonb([str(part) for part in order.request]),
                Jsonb(_fill_json(order.fill)),
            ),
        )


# JSON ------------------------------------------------------------------------------


def _request_from_json(parts: list[str]) -> OrderRequest:
    if parts[0] == "open":
        return ("open", parts[1], PositionSide(parts[2]), int(parts[3]))
    return tuple(parts)


def _fill_json(fill: Fill) -> dict[str, Any]:
    return {
        "client_order_id": fill.client_order_id,
        "kind": fill.kind.value,
        "position_id": fill.position_id,
        "account_id": str(fill.account_id),
        "symbol": fill.symbol,
        "side": fill.side.value,
        "quantity": fill.quantity,
        "price_minor": fill.price_minor,
        "entry_price_minor": fill.entry_price_minor,
        "realized_pnl_minor": fill.realized_pnl_minor,
        "at": fill.at.isoformat(),
    }


def _fill_from_json(data: dict[str, Any]) -> Fill:
    return Fill(
        client_order_id=data["client_order_id"],
        kind=FillKind(data["kind"]),
        position_id=data["position_id"],
        account_id=UUID(data["account_id"]),
        symbol=data["symbol"],
        side=PositionSide(data["side"]),
        quantity=data["quantity"],
        price_minor=data["price_minor"],
        entry_price_minor=data["entry_price_minor"],
        realized_pnl_minor=data["realized_pnl_minor"],
        at=datetime.fromisoformat(data["at"]),
    )


def _step_json(step: PriceStep) -> dict[str, Any]:
    return {
        "at": step.at.isoformat(),
        "bid_minor": step.bid_minor,
        "ask_minor": step.ask_minor,
        "last_minor": step.last_minor,
        "open_minor": step.open_minor,
        "last_close_minor": step.last_close_minor,
        "volume": step.volume,
    }


def _step_from_json(data: dict[str, Any]) -> PriceStep:
    return PriceStep(**{**data, "at": datetime.fromisoformat(data["at"])})
