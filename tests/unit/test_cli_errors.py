"""The `ledger` command's global options and configuration problems, with no
database: `--version`, a wrong setting or an unreachable database as one
line naming the setting and the fix with its own exit status, the traceback
only with `--debug`."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version

import psycopg
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from interface.cli import exit_codes
from interface.cli.main import app

# Wide enough that nothing wraps the one line.
WIDE = {"COLUMNS": "300"}
COMMAND_TIMEOUT_S = 60
RUN_LEDGER = "from interface.cli.main import main; main()"


def test_version_comes_from_the_package_metadata() -> None:
    result = CliRunner().invoke(app, ["--version"])

    assert result.exit_code == 0
    assert result.stdout == f"ledger {version('ledger')}\n"


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("LEDGER_PORT", "abc", "set LEDGER_PORT to a whole number, from 1 to 65535"),
        ("LEDGER_ENVIRONMENT", "staging", "set LEDGER_ENVIRONMENT to one of local, production"),
        ("LEDGER_READ_WAIT_S_MAX", "0", "set LEDGER_READ_WAIT_S_MAX to a number, above 0"),
    ],
)
def test_a_wrong_setting_is_one_line_naming_it_and_the_fix(
    variable: str, value: str, named: str
) -> None:
    result = CliRunner(env={**WIDE, variable: value}).invoke(app, ["keys", "list"])

    assert result.exit_code == exit_codes.CONFIGURATION
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"ledger: configuration error: {variable}=")
    assert named in lines[0]
    assert "docs/configuration.md" in lines[0]
    assert "Traceback" not in result.stderr


def test_a_setting_that_may_hold_a_secret_is_named_not_shown() -> None:
    result = CliRunner(env={**WIDE, "LEDGER_DATABASE_URL": "secret-in-a-malformed-url"}).invoke(
        app, ["keys", "list"]
    )

    assert result.exit_code == exit_codes.CONFIGURATION
    assert "LEDGER_DATABASE_URL is not a PostgreSQL URL" in result.stderr
    assert "secret" not in result.stderr


def test_a_setting_read_while_parsing_is_reported_the_same_way() -> None:
    # --label's check reads the text limits from the settings during parsing.
    result = CliRunner(env={**WIDE, "LEDGER_PORT": "abc"}).invoke(
        app, ["keys", "create", "--role", "admin", "--label", "x"]
    )

    assert result.exit_code == exit_codes.CONFIGURATION
    assert result.stderr.startswith("ledger: configuration error: LEDGER_PORT=")


def test_an_unreachable_database_is_one_line_without_its_password() -> None:
    url = "postgresql://ledger:hunter2@127.0.0.1:1/ledger?connect_timeout=2"
    result = CliRunner(env={**WIDE, "LEDGER_DATABASE_URL": url}).invoke(app, ["keys", "list"])

    assert result.exit_code == exit_codes.DATABASE_UNAVAILABLE
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ledger: cannot reach the database at 127.0.0.1:1/ledger")
    assert "LEDGER_DATABASE_URL" in lines[0]
    assert "hunter2" not in result.stderr


def test_debug_gives_the_traceback_instead() -> None:
    runner = CliRunner(env={**WIDE, "LEDGER_PORT": "abc"})

    result = runner.invoke(app, ["--debug", "keys", "list"])

    assert isinstance(result.exception, ValidationError)
    assert "configuration error" not in result.stderr


def test_debug_shows_a_database_error_as_raised() -> None:
    url = "postgresql://ledger@127.0.0.1:1/ledger?connect_timeout=2"
    result = CliRunner(env={**WIDE, "LEDGER_DATABASE_URL": url}).invoke(
        app, ["--debug", "keys", "list"]
    )

    assert isinstance(result.exception, psycopg.OperationalError)


def test_debug_prints_the_traceback_in_a_real_process() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", RUN_LEDGER, "--debug", "keys", "list"],
        env={**os.environ, "LEDGER_PORT": "abc"},
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )

    assert completed.returncode == 1
    assert "Traceback" in completed.stderr
    assert "ValidationError" in completed.stderr
