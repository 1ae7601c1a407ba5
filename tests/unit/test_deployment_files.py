"""The Dockerfile and compose.yaml say what docs/deployment.md says: a slim,
non-root image with a health check and no secret in it; compose runs
PostgreSQL, Redis, a one-shot migration, the writer, the API and the worker as
separate services, each ledger service a `ledger` command that exists, each
started after what it needs is healthy (or, for the migration, done)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml  # type: ignore[import-untyped]  # PyYAML ships no types

from interface.cli.main import app as cli_app

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = ROOT / "compose.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"

LEDGER_SERVICES = ("migrate", "writer", "api", "worker")
# Names of variables that hold secrets: never given a value in these files.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$|API_KEY|SIGNING_KEY", re.IGNORECASE)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, _, arguments = stripped.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def test_the_image_is_slim_python_3_11() -> None:
    froms = [arguments for keyword, arguments in dockerfile_instructions() if keyword == "FROM"]
    assert froms == ["python:3.11-slim"]


def test_the_image_runs_as_a_user_that_is_not_root() -> None:
    users = [arguments for keyword, arguments in dockerfile_instructions() if keyword == "USER"]
    assert users, "the Dockerfile never leaves root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}


def test_the_image_checks_its_health_on_healthz() -> None:
    checks = [a for keyword, a in dockerfile_instructions() if keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    assert "/healthz" in checks[0]


def test_the_image_installs_the_lock_then_the_package_alone() -> None:
    runs = [a for keyword, a in dockerfile_instructions() if keyword == "RUN"]
    lock = next(i for i, run in enumerate(runs) if "requirements/runtime.txt" in run)
    package = next(i for i, run in enumerate(runs) if "--no-deps" in run)
    assert lock < package


def test_the_image_bakes_in_no_secret() -> None:
    for keyword, arguments in dockerfile_instructions():
        if keyword in {"ENV", "ARG"}:
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", arguments) or [arguments.split()[0]]
            assert not [name for name in names if SECRET_NAME.search(name)], arguments
        if keyword in {"COPY", "ADD"}:
            assert not re.search(r"\.env|\.pem|secrets", arguments), arguments


def test_the_build_context_leaves_out_local_state_and_secrets() -> None:
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    assert {".git", ".venv", ".ledger", "secrets", ".env", "*.pem"} <= ignored


def test_compose_runs_every_part_as_its_own_service() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", *LEDGER_SERVICES}


def _cli_command(words: list[str]) -> Any:
    """The `ledger` subcommand those words name (a command, or a group with
    `commands`), or None."""
    command: Any = typer.main.get_command(cli_app)
    for word in words:
        subcommands: dict[str, Any] | None = getattr(command, "commands", None)
        if subcommands is None or word not in subcommands:
            return None
        command = subcommands[word]
    return command


@pytest.mark.parametrize("service", LEDGER_SERVICES)
def test_each_ledger_service_runs_a_command_the_cli_has(service: str) -> None:
    words = compose()["services"][service]["command"]
    command = _cli_command(words)
    assert command is not None, f"`ledger {' '.join(words)}` is not a command of the CLI"
    assert not hasattr(command, "commands"), f"`ledger {' '.join(words)}` is a group"


def test_the_services_run_the_contracted_commands() -> None:
    services = compose()["services"]
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["writer"]["command"] == ["writer"]
    assert services["api"]["command"] == ["http"]
    assert services["worker"]["command"] == ["worker"]


def test_each_long_running_service_has_a_health_check() -> None:
    services = compose()["services"]
    for name in ("postgres", "redis", "writer", "api", "worker"):
        check = services[name].get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), name
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])
    worker = services["worker"]
    port = worker["environment"]["LEDGER_WORKER_METRICS_PORT"]
    assert f"127.0.0.1:{port}/metrics" in " ".join(worker["healthcheck"]["test"])


def test_services_start_after_what_they_need() -> None:
    services = compose()["services"]
    conditions = {
        name: {needed: rule["condition"] for needed, rule in service["depends_on"].items()}
        for name, service in services.items()
        if "depends_on" in service
    }
    assert conditions["migrate"] == {"postgres": "service_healthy"}
    for name in ("writer", "api", "worker"):
        assert conditions[name]["migrate"] == "service_completed_successfully", name
    for name in ("api", "worker"):
        assert conditions[name]["writer"] == "service_healthy", name
        assert conditions[name]["redis"] == "service_healthy", name


def test_compose_writes_down_no_secret() -> None:
    """Every secret-named variable is an interpolation from the environment
    or a path to a mounted secret, never a value."""
    for name, service in compose()["services"].items():
        environment: dict[str, Any] = service.get("environment") or {}
        for variable, value in environment.items():
            if SECRET_NAME.search(variable):
                text = str(value)
                assert text.startswith(("${", "/run/secrets/")), (name, variable)
    for name, secret in compose()["secrets"].items():
        assert set(secret) == {"file"}, name
