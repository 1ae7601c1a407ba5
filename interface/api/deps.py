"""Route dependencies, as `Annotated` aliases, in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from application.ledger_service import LedgerService
from interface.bootstrap import Ledger


def get_ledger(request: Request) -> Ledger:
    ledger: Ledger = request.app.state.ledger
    return ledger


def get_service(request: Request) -> LedgerService:
    return get_ledger(request).service


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling. Authentication (API keys, roles, ownership) plugs in here."""

    id: str
    role: str


def current_principal() -> Principal:
    # Until API keys exist every caller acts as the platform's back end.
    return Principal(id="anonymous", role="service")


LedgerDep = Annotated[Ledger, Depends(get_ledger)]
ServiceDep = Annotated[LedgerService, Depends(get_service)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]
