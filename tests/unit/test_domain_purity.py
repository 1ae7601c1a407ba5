"""The domain imports nothing but the standard library and eventsourcing's domain."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

DOMAIN = Path(__file__).resolve().parents[2] / "domain"
ALLOWED_THIRD_PARTY = frozenset({"eventsourcing.domain"})
DOMAIN_MODULES = sorted(DOMAIN.rglob("*.py"))


def imported_modules(path: Path, root: Path = DOMAIN.parent) -> list[str]:
    """Absolute names of every module a file imports, relative imports resolved."""
    package = path.relative_to(root).with_suffix("").parts[:-1]
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1])
                module = ".".join(part for part in (base, node.module) if part)
            else:
                module = node.module or ""
            names.append(module)
    return names


def is_allowed(module: str) -> bool:
    top_level = module.partition(".")[0]
    return (
        top_level in sys.stdlib_module_names
        or top_level in {"__future__", "domain"}
        or module in ALLOWED_THIRD_PARTY
    )


def test_the_domain_package_has_modules_to_check() -> None:
    assert {path.name for path in DOMAIN_MODULES} >= {"money.py", "account.py", "transfer.py"}


@pytest.mark.parametrize("path", DOMAIN_MODULES, ids=lambda path: path.name)
def test_a_domain_module_imports_only_the_standard_library_and_eventsourcing_domain(
    path: Path,
) -> None:
    forbidden = [module for module in imported_modules(path) if not is_allowed(module)]
    assert forbidden == [], f"{path.name} imports {forbidden}"


@pytest.mark.parametrize(
    ("source", "allowed"),
    [
        ("import hashlib", True),
        ("from datetime import datetime", True),
        ("from eventsourcing.domain import Aggregate", True),
        ("from domain.money import parse_amount", True),
        ("from . import money", True),
        ("import eventsourcing", False),
        ("from eventsourcing.persistence import StoredEvent", False),
        ("from eventsourcing.application import Application", False),
        ("import structlog", False),
        ("from application.writer import LedgerWriter", False),
        ("from ..application import writer", False),
    ],
)
def test_the_purity_check_tells_allowed_imports_from_forbidden_ones(
    tmp_path: Path, source: str, allowed: bool
) -> None:
    module = tmp_path / "domain" / "probe.py"
    module.parent.mkdir()
    module.write_text(source + "\n")
    names = imported_modules(module, root=tmp_path)
    assert all(is_allowed(name) for name in names) is allowed
