"""A client generated from the served OpenAPI document works: OpenAPI
Generator (its Python client) builds one from `/openapi.json` of a running
`ledger serve`, and a short script with it opens two accounts, posts a
transfer and reads the balance.

Generation is offline: the generator ships in the `openapi-generator-cli`
package (a dev dependency) and runs on the machine's Java; without Java the
test is skipped and says so."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final

import httpx
import pytest

from tests.support.service_process import ServiceProcess

GENERATOR: Final[Path] = Path(sys.executable).with_name("openapi-generator-cli")
PACKAGE: Final[str] = "ledger_client"
# The generator's own checks of the document are on: a document it would
# refuse fails the test. Tests and docs of the client are not generated.
GENERATOR_ARGUMENTS: Final[tuple[str, ...]] = (
    "generate",
    "--generator-name",
    "python",
    "--package-name",
    PACKAGE,
    "--global-property",
    "apiTests=false,modelTests=false,apiDocs=false,modelDocs=false",
)
GENERATION_TIMEOUT_S: Final[float] = 300.0
SCRIPT_TIMEOUT_S: Final[float] = 120.0

# A Java generator and a service process: about 20 s on a quiet machine.
pytestmark = pytest.mark.slow

# What a new client developer writes first, with the generated client only.
QUICKSTART: Final[str] = """
import os

import ledger_client
from ledger_client.api.accounts_api import AccountsApi
from ledger_client.api.transfers_api import TransfersApi

configuration = ledger_client.Configuration(
    host=os.environ["LEDGER_URL"], access_token=os.environ["LEDGER_KEY"]
)
with ledger_client.ApiClient(configuration) as client:
    accounts = AccountsApi(client)
    transfers = TransfersApi(client)
    cash = accounts.open_account(
        ledger_client.OpenAccountRequest(
            currency="USD", owner_id="platform", kind="cash", idempotency_key="quickstart-cash"
        )
    )
    alice = accounts.open_account(
        ledger_client.OpenAccountRequest(
            currency="USD", owner_id="alice", idempotency_key="quickstart-alice"
        )
    )
    transfer = transfers.create_transfer(
        ledger_client.TransferRequest(
            idempotency_key="quickstart-1",
            debit_account_id=cash.id,
            credit_account_id=alice.id,
            amount="100.00",
            currency="USD",
        )
    )
    assert transfer.status == "posted", transfer
    listed = accounts.list_accounts(owner_id="alice", currency="USD", limit=10)
    assert [account.id for account in listed.items] == [alice.id], listed
    assert listed.has_more is False
    balance = accounts.get_account_balance(alice.id)
    print(balance.balances.posted, balance.currency)
"""


def _generate(document: Path, output: Path) -> None:
    if shutil.which("java") is None:
        pytest.skip("OpenAPI Generator needs Java (a JRE 11 or later) on the PATH; none found")
    finished = subprocess.run(
        [
            str(GENERATOR),
            *GENERATOR_ARGUMENTS,
            "--input-spec",
            str(document),
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=GENERATION_TIMEOUT_S,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout[-4000:] + finished.stderr[-4000:]


def test_a_generated_client_opens_accounts_moves_money_and_reads_the_balance(
    service: ServiceProcess, tmp_path: Path
) -> None:
    served = httpx.get(f"{service.base_url}/openapi.json", timeout=30)
    assert served.status_code == 200
    document = tmp_path / "openapi.json"
    document.write_bytes(served.content)
    client_root = tmp_path / "client"
    _generate(document, client_root)

    finished = subprocess.run(
        [sys.executable, "-c", QUICKSTART],
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_S,
        check=False,
        env={
            **os.environ,
            "PYTHONPATH": str(client_root),
            "LEDGER_URL": service.base_url,
            "LEDGER_KEY": service.api_key,
        },
    )
    assert finished.returncode == 0, finished.stderr[-4000:]
    assert finished.stdout.split() == ["100.00", "USD"]
