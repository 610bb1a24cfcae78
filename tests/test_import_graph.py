"""The package's import graph has no back edge and no cycle.

Every module of goalbrake is parsed with ``ast``; every import, at module top or inside a
function, is an edge. The layers, lowest first:

    optim < braking < callbacks < {models, data, module} < app
          < sweep (attrs < define < run < report) < cli

A module may import its own layer or a lower one, never a higher one; the modules of one
package may import each other, but no chain of imports may lead back to where it started.
Package ``__init__`` modules sit in their package's layer; ``goalbrake/__init__.py`` and
``goalbrake/pytorch_lightning.py`` re-export the callbacks and sit in their layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import goalbrake

PACKAGE = Path(goalbrake.__file__).parent

#: (module prefix, rank); the longest matching prefix wins.
LAYERS: tuple[tuple[str, int], ...] = (
    ("goalbrake.optim", 0),
    ("goalbrake.braking", 1),
    ("goalbrake.callbacks", 2),
    ("goalbrake.pytorch_lightning", 2),
    ("goalbrake", 2),  # the root package re-exports PHS and the callbacks
    ("goalbrake.models", 3),
    ("goalbrake.data", 3),
    ("goalbrake.module", 3),
    ("goalbrake.app", 4),
    ("goalbrake.sweep", 5.1),  # the sweep package re-exports define
    ("goalbrake.sweep.attrs", 5.0),
    ("goalbrake.sweep.define", 5.1),
    ("goalbrake.sweep.run", 5.2),
    ("goalbrake.sweep.report", 5.3),
    ("goalbrake.cli", 6),
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


#: Packages whose rank is their ``__init__``'s only: a new module in them needs a layer.
EXACT = {"goalbrake", "goalbrake.sweep"}


def layer(module: str) -> float:
    """The rank of ``module`` (its longest prefix in :data:`LAYERS`)."""
    best, rank = -1, None
    for prefix, value in LAYERS:
        inside = module.startswith(prefix + ".") and prefix not in EXACT
        if (module == prefix or inside) and len(prefix) > best:
            best, rank = len(prefix), value
    assert rank is not None, f"{module} is in no layer: add it to LAYERS"
    return rank


def _target(name: str) -> str | None:
    """The goalbrake module an imported name lives in (a module, or its package)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str) -> dict[str, int]:
    """The goalbrake modules ``module`` imports, each with the line of its first import."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    out: dict[str, int] = {}
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for name in names:
            if name.split(".")[0] != "goalbrake":
                continue
            target = _target(name)
            if target is not None and target != module:
                out.setdefault(target, node.lineno)
    return out


GRAPH = {module: imports(module) for module in MODULES}


def back_edges() -> list[str]:
    out = []
    for module, targets in GRAPH.items():
        for target, line in targets.items():
            if layer(target) > layer(module):
                out.append(
                    f"{module} (line {line}) imports {target}: layer {layer(target)} above "
                    f"{layer(module)}"
                )
    return out


def cycles() -> list[str]:
    """One line per import cycle found by a depth-first search, naming its edges."""
    found: list[str] = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in GRAPH[module]:
            if state.get(target) == 1:
                loop = [*stack[stack.index(target) :], target]
                found.append(" -> ".join(loop))
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in GRAPH:
        if module not in state:
            visit(module)
    return found


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        layer(module)
    with pytest.raises(AssertionError, match=r"goalbrake\.utils is in no layer"):
        layer("goalbrake.utils")
    with pytest.raises(AssertionError, match=r"goalbrake\.sweep\.helpers is in no layer"):
        layer("goalbrake.sweep.helpers")


def test_no_module_imports_a_higher_layer() -> None:
    assert back_edges() == []


def test_no_import_cycle() -> None:
    assert cycles() == []


def test_nothing_in_the_package_imports_the_cli() -> None:
    users = [m for m, targets in GRAPH.items() if "goalbrake.cli" in targets]
    assert users == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import goalbrake.app\n", {"goalbrake.app"}),
        ("from goalbrake.sweep.define import load_spec\n", {"goalbrake.sweep.define"}),
        ("def f():\n    from goalbrake.cli import main\n", {"goalbrake.cli"}),
        ("from goalbrake import cli\n", {"goalbrake", "goalbrake.cli"}),
        ("import torch\n", set()),
    ],
)
def test_the_parser_sees_top_level_and_function_local_imports(
    source: str, expected: set[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "probe.py"
    file.write_text(source)
    monkeypatch.setitem(MODULES, "goalbrake.optim.probe", file)
    assert set(imports("goalbrake.optim.probe")) == expected


def test_a_back_edge_and_a_cycle_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    graph = {
        "goalbrake.optim.phs": {"goalbrake.app": 3},
        "goalbrake.app": {"goalbrake.optim.phs": 1},
    }
    monkeypatch.setattr(f"{__name__}.GRAPH", graph)
    assert back_edges() == ["goalbrake.optim.phs (line 3) imports goalbrake.app: layer 4 above 0"]
    assert cycles() == ["goalbrake.optim.phs -> goalbrake.app -> goalbrake.optim.phs"]
