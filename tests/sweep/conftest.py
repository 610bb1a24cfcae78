"""Fixtures of the sweep tests: tiny FashionMNIST in the real format and sweep files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakedata import write_fashion_mnist
from tests.sweep.helpers import tiny_base


@pytest.fixture(scope="session")
def fm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fashion_mnist(tmp_path_factory.mktemp("fashion-mnist"), n_train=400, n_test=50)


@pytest.fixture
def make_sweep(tmp_path: Path, fm_dir: Path) -> Callable[..., Path]:
    """Write base.yaml and a sweep file into tmp_path; returns the sweep file."""

    def make(spec: dict[str, Any], name: str = "sweep", **base_kwargs: Any) -> Path:
        (tmp_path / "base.yaml").write_text(yaml.safe_dump(tiny_base(fm_dir, **base_kwargs)))
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"base": "base.yaml", **spec}, sort_keys=False))
        return path

    return make
