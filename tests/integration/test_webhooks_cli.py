"""`ledger webhooks`: add (secret shown once, private addresses refused unless
allowed), list, disable, enable, deliveries, remove."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from interface.settings import Settings

REPOSITORY = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT_S = 120


def _run(settings: Settings, *arguments: str, allow_private: bool = False) -> tuple[int, str]:
    environment = {
        "LEDGER_DATABASE_URL": settings.database_url or "",
        "LEDGER_DATA_DIR": str(settings.data_dir),
        "LEDGER_LOG_LEVEL": "WARNING",
        "LEDGER_WEBHOOKS_ALLOW_PRIVATE_URLS": "true" if allow_private else "false",
    }
    completed = subprocess.run(
        [sys.executable, "-c", "from interface.cli.main import main; main()", *arguments],
        cwd=REPOSITORY,
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    return completed.returncode, completed.stdout


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_an_operator_manages_endpoints_from_the_command_line(settings: Settings) -> None:
    code, _ = _run(settings, "webhooks", "add", "http://127.0.0.1:9/hooks")
    assert code == 2
    code, out = _run(
        settings,
        "webhooks",
        "add",
        "http://127.0.0.1:9/hooks",
        "--type",
        "transfer.posted",
        "--json",
        allow_private=True,
    )
    assert code == 0
    [added] = _lines(out)
    assert added["secret"].startswith("whsec_")
    assert added["event_types"] == ["transfer.posted"]

    [listed] = _lines(_run(settings, "webhooks", "list", "--json")[1])
    assert listed["id"] == added["id"]
    assert "secret" not in listed
    [disabled] = _lines(_run(settings, "webhooks", "disable", added["id"], "--json")[1])
    assert disabled["enabled"] is False
    [enabled] = _lines(_run(settings, "webhooks", "enable", added["id"], "--json")[1])
    assert enabled["enabled"] is True
    assert _run(settings, "webhooks", "deliveries", added["id"], "--json") == (0, "")
    assert _run(settings, "webhooks", "remove", added["id"])[0] == 0
    assert _run(settings, "webhooks", "list", "--json") == (0, "")
