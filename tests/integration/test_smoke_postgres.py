from __future__ import annotations

from domain.result_codes import ResultCode
from interface.bootstrap import Ledger
from tests.support.ledgers import platform_account, transfer, user_account


def test_a_transfer_written_through_the_writer_is_read_back_from_postgres(ledger: Ledger) -> None:
    cash, alice = platform_account(), user_account()
    ledger.service.execute([cash, alice])
    receipt = ledger.service.execute([transfer(cash.account_id, alice.account_id, 12_345)])
    assert receipt.results[0].code is ResultCode.OK
    assert receipt.position is not None
    account = ledger.service.account(alice.account_id)
    assert account is not None
    assert account.totals.credits_posted == 12_345
