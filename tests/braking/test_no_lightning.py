"""goalbrake.braking is pure decision logic: no file of it imports Lightning, nor does
importing it load Lightning through what it imports (goalbrake.optim)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import goalbrake.braking

LIGHTNING = {"lightning", "lightning_fabric", "pytorch_lightning"}
FILES = sorted(Path(goalbrake.braking.__file__).parent.glob("*.py"))


def imported_roots(path: Path) -> set[str]:
    """The top-level package of every import statement in ``path`` (relative ones too)."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            roots.add("." if node.level else (node.module or "").split(".")[0])
    return roots


def test_the_package_has_its_files() -> None:
    names = {p.name for p in FILES}
    assert {"__init__.py", "adapters.py", "controller.py", "decisions.py"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_file_imports_lightning(path: Path) -> None:
    roots = imported_roots(path)
    assert not roots & LIGHTNING, f"{path.name} imports {sorted(roots & LIGHTNING)}"
    assert "." not in roots  # absolute imports only, so the check above sees every one


def test_importing_the_package_loads_no_lightning() -> None:
    code = (
        "import sys, goalbrake.braking, goalbrake.optim.sgd\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(LIGHTNING)!r}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"
