"""A command-line value the ledger stores is refused, before anything opens,
when it breaks the text rules (interface/text_rules.py)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from interface.cli.main import app

# Exit status of a command-line usage error (click's).
USAGE_ERROR = 2


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["keys", "create", "--role", "admin", "--label", "a\x00b"], "'--label'"),
        (["keys", "create", "--role", "user", "--owner", "o\x1b[2J"], "'--owner'"),
        (["reconcile", "resolve", "x", "--by", "me", "--note", "two\nlines"], "'--note'"),
        (["closures", "resume", "x", "--actor", "op\x85"], "'--actor'"),
        (["webhooks", "add", "https://example.com/\x7f"], "'url'"),
        (
            ["webhooks", "add", "https://example.com/", "--description", "x" * 5000],
            "'--description'",
        ),
    ],
)
def test_a_stored_value_breaking_the_text_rules_is_a_usage_error_naming_it(
    arguments: list[str], named: str
) -> None:
    # No database is set or reached: the refusal comes while parsing.
    # Wide enough that the error box does not wrap the message.
    result = CliRunner(env={"COLUMNS": "300"}).invoke(app, arguments)

    assert result.exit_code == USAGE_ERROR, result.output
    assert f"Invalid value for {named}: the value " in result.output
