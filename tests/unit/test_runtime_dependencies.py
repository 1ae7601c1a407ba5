"""`make run` installs the runtime lock file alone (requirements/runtime.txt):
every third-party package the product imports when its modules load must be
in it. A package imported only inside a function is an optional one (an
extra, such as confluent-kafka) and is left out. `make test` installs the
dev set too, so without this check a runtime import of a dev-only package
(httpx did it once) passes every test and breaks `make run`."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Final

ROOT: Final[Path] = Path(__file__).resolve().parents[2]
PRODUCT_PACKAGES: Final[tuple[str, ...]] = ("domain", "application", "projections", "interface")
RUNTIME_LOCK: Final[Path] = ROOT / "requirements" / "runtime.txt"


def _module_level_imports(path: Path) -> set[str]:
    """Top-level names imported at module level (not inside a function or a
    TYPE_CHECKING block)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_package_the_product_imports_at_load_is_in_the_runtime_lock() -> None:
    locked = {
        _normalized(line.split("==")[0])
        for line in RUNTIME_LOCK.read_text().splitlines()
        if "==" in line and not line.startswith((" ", "#"))
    }
    distributions = packages_distributions()
    missing: dict[str, set[str]] = {}
    for package in PRODUCT_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for name in _module_level_imports(path):
                if name in sys.stdlib_module_names or name in PRODUCT_PACKAGES:
                    continue
                for distribution in distributions.get(name, [name]):
                    if _normalized(distribution) not in locked:
                        missing.setdefault(distribution, set()).add(str(path.relative_to(ROOT)))
    assert missing == {}, f"imported at load but not in {RUNTIME_LOCK.name}: {missing}"
