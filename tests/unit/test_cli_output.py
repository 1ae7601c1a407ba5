"""One way to print: `--json` on every command that prints data, JSON that
parses, and progress bars only for a person at a terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest
import typer
from typer.main import get_command

from interface.cli import progress
from interface.cli.main import app
from interface.cli.output import json_text, print_rows

# Every command that prints data, as `ledger ...` spells it.
DATA_COMMANDS = [
    ("db", "upgrade"),
    ("keys", "create"),
    ("keys", "list"),
    ("demo",),
    ("audit", "export"),
    ("audit", "verify"),
    ("audit", "keygen"),
    ("audit", "checkpoint"),
    ("audit", "check-proof"),
    ("projections", "status"),
    ("projections", "rebuild"),
    ("reconcile", "run"),
    ("reconcile", "status"),
    ("reconcile", "resolve"),
    ("closures", "find-stuck"),
    ("closures", "show"),
    ("closures", "resume"),
    ("closures", "tick"),
    ("forks", "scan"),
    ("webhooks", "add"),
    ("webhooks", "list"),
    ("webhooks", "enable"),
    ("webhooks", "disable"),
    ("webhooks", "deliveries"),
]


@pytest.mark.parametrize("path", DATA_COMMANDS, ids=" ".join)
def test_every_command_that_prints_data_takes_json(path: tuple[str, ...]) -> None:
    command = get_command(app)
    context = typer.Context(command)
    for name in path:
        command = command.get_command(context, name)  # type: ignore[attr-defined]
        assert command is not None, path
    options = {option for parameter in command.params for option in parameter.opts}
    assert "--json" in options


def test_json_text_writes_ids_and_times_as_text() -> None:
    identifier = UUID("00000000-0000-0000-0000-000000000007")
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    parsed = json.loads(json_text({"id": identifier, "at": moment}))

    assert parsed == {"id": str(identifier), "at": moment.isoformat()}


def test_a_list_is_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    print_rows([{"a": 1}, {"a": 2, "b": None}], ["a"], as_json=True)

    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line) for line in lines] == [{"a": 1}, {"a": 2, "b": None}]


def test_no_bars_with_json_or_without_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert progress.progress_shown(as_json=False)
    assert not progress.progress_shown(as_json=True)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert not progress.progress_shown(as_json=False)
    with progress.progress_bars("events") as bars:
        # A phase's advance is a no-op: nothing is drawn.
        bars.phase("export", 10)(5, 10)
        bars.finish("export")


def test_keygen_prints_json_that_parses(tmp_path: Path) -> None:
    # No database: the key pair is written to files.
    private_key, public_keys = tmp_path / "signing.pem", tmp_path / "public.pem"
    completed = subprocess.run(
        [
            *(sys.executable, "-c", "from interface.cli.main import main; main()"),
            *("audit", "keygen", "--private-key", str(private_key)),
            *("--public-keys", str(public_keys), "--json"),
        ],
        env={**os.environ, "LEDGER_DATA_DIR": str(tmp_path), "LEDGER_LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    made = json.loads(completed.stdout)
    assert (made["private_key"], made["public_keys"]) == (str(private_key), str(public_keys))
    assert made["key_id"] and private_key.exists() and public_keys.exists()
