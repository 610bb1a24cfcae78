"""Configs are data: every YAML under configs/ builds and trains through its tiny twin."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from goalbrake.app import build
from tests.twins import CONFIGS, REPO, tiny_twin, write_twin


@pytest.mark.parametrize("path", CONFIGS, ids=[str(p.relative_to(REPO)) for p in CONFIGS])
def test_shipped_config_trains_on_tiny_data(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["goalbrake"])
    twin = tiny_twin(path, tmp_path, max_steps=4)
    twin["trainer"]["limit_train_batches"] = 4  # one short epoch, then validation
    config = write_twin(twin, tmp_path / path.name)
    cli = build(["--config", str(config)], run=False)
    before = [p.detach().clone() for p in cli.model.parameters()]
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.global_step == 4
    assert "val/acc" in cli.trainer.callback_metrics
    moved = [not torch.equal(b, p) for b, p in zip(before, cli.model.parameters(), strict=True)]
    assert any(moved)
    # The classifier's head follows the data module (linked num_classes).
    assert cli.model.num_classes == cli.datamodule.num_classes == 10


def test_configs_name_the_paper_rows() -> None:
    import yaml

    rows = {
        "fashionmnist/goal.yaml": (0.1, 0.1, 10.0, 0.15, 50.0),
        "cifar10/goal.yaml": (0.1, 0.1, 100.0, 0.65, 49.0),
    }
    for name, (lr, friction, mass, goal, factor) in rows.items():
        config = yaml.safe_load((REPO / "configs" / name).read_text())
        opt = config["optimizer"]["init_args"]
        assert (opt["lr"], opt["friction"], opt["mass"]) == (lr, friction, mass)
        (brake,) = [
            c for c in config["trainer"]["callbacks"] if c["class_path"] == "goalbrake.GoalBrake"
        ]
        assert (brake["init_args"]["goal"], brake["init_args"]["factor"]) == (goal, factor)
