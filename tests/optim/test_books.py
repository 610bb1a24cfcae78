"""PHS and PHSFlow are siblings over one module of shared books (optim/base.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import goalbrake.optim as optim
from goalbrake.optim import PHS, PHSBase, PHSFlow

OPTIM = Path(optim.__file__).parent


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}


def test_phs_and_phsflow_are_siblings() -> None:
    assert not issubclass(PHSFlow, PHS) and not issubclass(PHS, PHSFlow)
    assert issubclass(PHS, PHSBase) and issubclass(PHSFlow, PHSBase)
    # Neither reaches into the other's module: what both need lives in base.py.
    assert "goalbrake.optim.phs" not in _imported_modules(OPTIM / "flow.py")
    assert "goalbrake.optim.flow" not in _imported_modules(OPTIM / "phs.py")


@pytest.mark.parametrize("cls", [PHS, PHSFlow])
def test_shared_books_validate_the_same_way(cls: type[PHSBase]) -> None:
    params = [torch.nn.Parameter(torch.zeros(3))]
    with pytest.raises(ValueError, match=r"^Invalid friction value: -0\.1 \(must be >= 0\)$"):
        cls(params, lr=0.1, friction=-0.1)
    with pytest.raises(ValueError, match=r"^Invalid learning rate value: 0\.0 \(must be > 0\)$"):
        cls(params, lr=0.0)
    opt = cls(params, lr=0.1, friction=2.0)
    assert float(opt.momentum_factor()) == pytest.approx(torch.exp(torch.tensor(-0.2)).item())
    assert float(opt.kinetic_energy()) == 0.0
