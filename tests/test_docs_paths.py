"""Every goalbrake import path that README.md, docs/ and the configs name resolves.

A dotted name ``goalbrake.a.b.C`` in the prose, a ``from goalbrake.x import y`` in a code
block, and every ``class_path`` of a shipped config or study must import; a rename that
forgets the docs fails here.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
CONFIGS = sorted(
    p
    for root in ("configs", "sweeps", "experiments")
    for p in (REPO / root).rglob("*.yaml")
    if "experiments/configs" not in p.as_posix()
)
DOTTED = re.compile(r"\bgoalbrake(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
FROM_IMPORT = re.compile(r"^\s*from (goalbrake[\w.]*) import ([\w, ]+)$", re.M)


def resolves(dotted: str) -> bool:
    """Whether ``dotted`` is a module, or an attribute chain of one."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            node = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(node, attr):
                return False
            node = getattr(node, attr)
        return True
    return False


def _names_in_docs() -> list[str]:
    names: set[str] = set()
    for path in DOCS:
        text = path.read_text()
        names.update(DOTTED.findall(text))
        for module, imported in FROM_IMPORT.findall(text):
            names.update(f"{module}.{n.strip()}" for n in imported.split(",") if n.strip())
    return sorted(names)


def _class_paths(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["class_path"]] if isinstance(node.get("class_path"), str) else []
        return found + [c for v in node.values() for c in _class_paths(v)]
    if isinstance(node, list):
        return [c for v in node for c in _class_paths(v)]
    return []


def _names_in_configs() -> list[str]:
    names: set[str] = set()
    for path in CONFIGS:
        names.update(_class_paths(yaml.safe_load(path.read_text())))
    return sorted(names)


@pytest.mark.parametrize("name", _names_in_docs())
def test_a_goalbrake_name_in_the_docs_imports(name: str) -> None:
    assert resolves(name), f"{name} (named in README.md or docs/) does not import"


@pytest.mark.parametrize("class_path", _names_in_configs())
def test_every_class_path_of_a_config_or_study_imports(class_path: str) -> None:
    assert resolves(class_path), f"class_path {class_path} does not import"


def test_resolves_tells_a_missing_name() -> None:
    assert resolves("goalbrake.optim.PHS")
    assert not resolves("goalbrake.optim.NoSuchThing")
    assert not resolves("goalbrake.no_such_module.X")
