"""Configuration problems as one line that names the setting and the fix.

A wrong LEDGER_* variable or a database that does not answer is the
operator's to fix, not a bug: `ledger` prints one line on stderr saying
which setting, what is wrong and what to do, and exits with its own status
(interface/cli/exit_codes.py). `ledger --debug ...` shows the traceback
instead. Values of settings that may hold a secret (keys, URLs, which can
carry a password) are never echoed.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, Final

import annotated_types
import typer
from pydantic import AliasChoices, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import SettingsError
from typer.core import TyperGroup

from interface.cli import exit_codes
from interface.settings import Settings

SETTINGS_DOC: Final[str] = "docs/configuration.md"
# A variable whose name holds one of these may hold a secret: its value is not shown.
SECRET_NAME_PARTS: Final[tuple[str, ...]] = ("KEY", "SECRET", "PASSWORD", "TOKEN", "URL")
# Refusals of a connection the URL decides (PostgreSQL's SQLSTATE codes): its
# user or password (class 28), its database name (3D000). A query's error on
# a live connection (a timeout, a lost lock) is not a configuration problem.
CONNECTION_REFUSED_SQLSTATES: Final[tuple[str, ...]] = ("28", "3D000")
# Longer values are cut when echoed.
SHOWN_VALUE_LENGTH_MAX: Final[int] = 40


def _field_named(variable: str) -> tuple[str, FieldInfo] | None:
    """The setting read from environment variable `variable`."""
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names = alias.choices if isinstance(alias, AliasChoices) else [alias]
        if variable in names or variable == name:
            return name, field
    return None


def _expected(field: FieldInfo) -> str:
    """What a valid value looks like, from the field's type and bounds."""
    annotation = field.annotation
    arguments = [argument for argument in typing.get_args(annotation) if argument is not type(None)]
    if isinstance(annotation, types.UnionType) and len(arguments) == 1:
        annotation = arguments[0]
    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + ", ".join(str(choice) for choice in typing.get_args(annotation))
    kinds: dict[Any, str] = {
        int: "a whole number",
        float: "a number",
        bool: "true or false",
        Path: "a path",
        str: "text",
    }
    described = kinds.get(annotation, "a valid value")
    bounds: list[str] = []
    lowest = next(
        (item.ge for item in field.metadata if isinstance(item, annotated_types.Ge)), None
    )
    highest = next(
        (item.le for item in field.metadata if isinstance(item, annotated_types.Le)), None
    )
    if lowest is not None and highest is not None:
        bounds.append(f"from {lowest} to {highest}")
    for constraint in field.metadata:
        if isinstance(constraint, annotated_types.Ge | annotated_types.Le) and bounds:
            continue
        if isinstance(constraint, annotated_types.Ge):
            bounds.append(f"at least {constraint.ge}")
        elif isinstance(constraint, annotated_types.Gt):
            bounds.append(f"above {constraint.gt}")
        elif isinstance(constraint, annotated_types.Le):
            bounds.append(f"at most {constraint.le}")
        elif isinstance(constraint, annotated_types.Lt):
            bounds.append(f"below {constraint.lt}")
        elif isinstance(constraint, annotated_types.MinLen):
            bounds.append(f"at least {constraint.min_length} characters")
        elif isinstance(constraint, annotated_types.MaxLen):
            bounds.append(f"at most {constraint.max_length} characters")
    return described + (f", {' and '.join(bounds)}" if bounds else "")


def _shown(variable: str, value: object) -> str:
    if any(part in variable.upper() for part in SECRET_NAME_PARTS):
        return variable
    text = str(value)
    if len(text) > SHOWN_VALUE_LENGTH_MAX:
        text = text[:SHOWN_VALUE_LENGTH_MAX] + "..."
    return f"{variable}={text!r}"


def describe_settings_error(error: ValidationError) -> str:
    """One line for every wrong setting, each with the fix."""
    parts: list[str] = []
    for problem in error.errors():
        location = problem["loc"]
        message = str(problem["msg"]).removeprefix("Value error, ")
        if message[1:2].islower():
            message = message[:1].lower() + message[1:]
        if not location:
            parts.append(f"{message}: change one of the settings it names")
            continue
        variable = str(location[0])
        found = _field_named(variable)
        if found is None:
            parts.append(f"{variable}: {message}")
            continue
        _, field = found
        default = field.default
        unset = (
            "or unset it to use the default"
            if default is None
            else f"or unset it for the default ({default})"
        )
        parts.append(
            f"{_shown(variable, problem.get('input', ''))} is not valid ({message}): "
            f"set {variable} to {_expected(field)}, {unset}"
        )
    return "configuration error: " + "; ".join(parts) + f" (see {SETTINGS_DOC})"


def _database_named() -> str:
    """Which database the command tried: the URL's host, port and name (never
    its password), or the embedded server's directory."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        settings = Settings()
    except ValidationError:
        return "the database"
    if settings.database_url is None:
        return f"the embedded PostgreSQL (LEDGER_DATA_DIR={settings.data_dir})"
    parts = conninfo_to_dict(settings.database_url)
    where = f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"
    return f"the database at {where} (LEDGER_DATABASE_URL)"


def _url_parses() -> bool:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        url = Settings().database_url
        if url is not None:
            conninfo_to_dict(url)
    except (psycopg.ProgrammingError, ValidationError):
        return False
    return True


def configuration_problem(error: BaseException) -> tuple[str, int] | None:
    """The one line and exit status for a configuration problem; None for
    anything else (a bug, which keeps its traceback)."""
    import psycopg
    import psycopg_pool

    if isinstance(error, ValidationError) and error.title == Settings.__name__:
        return describe_settings_error(error), exit_codes.CONFIGURATION
    if isinstance(error, SettingsError):
        return f"configuration error: {error} (see {SETTINGS_DOC})", exit_codes.CONFIGURATION
    if isinstance(error, psycopg.ProgrammingError) and not _url_parses():
        return (
            "configuration error: LEDGER_DATABASE_URL is not a PostgreSQL URL: set it like "
            "postgresql://user:password@host:5432/ledger, or unset it to use the embedded "
            f"PostgreSQL (see {SETTINGS_DOC})",
            exit_codes.CONFIGURATION,
        )
    if isinstance(error, psycopg_pool.PoolTimeout) or (
        isinstance(error, psycopg.OperationalError)
        and (error.sqlstate is None or error.sqlstate.startswith(CONNECTION_REFUSED_SQLSTATES))
    ):
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return (
            f"cannot reach {_database_named()}: {reason}; check that PostgreSQL runs there "
            "and that LEDGER_DATABASE_URL names it, or unset LEDGER_DATABASE_URL to use "
            f"the embedded PostgreSQL (see {SETTINGS_DOC})",
            exit_codes.DATABASE_UNAVAILABLE,
        )
    return None


class LedgerGroup(TyperGroup):
    """The `ledger` group: a configuration problem raised anywhere below it
    becomes one line and its exit status, unless `--debug` was given."""

    def invoke(self, ctx: Any) -> Any:  # Typer's own Click context type is private
        try:
            return super().invoke(ctx)
        except Exception as error:
            if ctx.params.get("debug"):
                raise
            found = configuration_problem(error)
            if found is None:
                raise
            line, status = found
            typer.echo(f"ledger: {line}", err=True)
            raise typer.Exit(status) from None
