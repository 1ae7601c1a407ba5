"""The ledger's use cases as the interface layer calls them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from uuid import UUID

from application.event_log import LedgerApplication
from application.ports.writer import Writer
from application.writer import WriteReceipt
from domain.account import Account
from domain.commands import Command
from domain.transfer import Transfer


class LedgerService:
    def __init__(self, app: LedgerApplication, writer: Writer) -> None:
        self._app = app
        self._writer = writer

    def execute(self, commands: Sequence[Command]) -> WriteReceipt:
        """Run commands through the writer; they land in one batch together."""
        return self._writer.execute(commands)

    async def execute_async(self, commands: Sequence[Command]) -> WriteReceipt:
        """The same, awaited on an event loop: no thread waits for the writer."""
        future = self._writer.submit(commands)
        try:
            return await asyncio.wait_for(
                asyncio.wrap_future(future), self._writer.limits.submit_timeout_s
            )
        except TimeoutError:
            if future.done() and not future.cancelled():
                raise
            raise self._writer.timed_out() from None

    def account(self, account_id: UUID) -> Account | None:
        return self._app.load_account(account_id)

    def transfer(self, transfer_id: UUID) -> Transfer | None:
        return self._app.load_transfers([transfer_id]).get(transfer_id)
