"""Tiny twins of the shipped YAML configs: same structure, tiny data in the real formats.

Every config under configs/ is run through its twin (tests/test_configs.py), and the CLI
tests run twins in a real ``goalbrake fit`` subprocess, so the YAML users run is the YAML
the tests run, with only the sizes changed.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from tests.fakedata import write_cifar10, write_fashion_mnist

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").rglob("*.yaml"))


def fake_data(config: dict[str, Any], root: Path) -> Path:
    """Write the tiny dataset a config's data module reads; return its directory."""
    if "CIFAR10" in config["data"]["class_path"]:
        return write_cifar10(root / "cifar10", n_train=500, n_test=100)
    return write_fashion_mnist(root / "fashionmnist", n_train=600, n_test=100)


def tiny_twin(
    path: Path, tmp: Path, *, max_steps: int = 6, fast_optimizer: bool = False
) -> dict[str, Any]:
    """The config at ``path`` with tiny data, a short budget and outputs under ``tmp``.

    ``fast_optimizer`` raises the PHS step so that a goal is reached within a few dozen
    steps (the paper's mass 10-100 needs thousands of steps to build up speed).
    """
    config = yaml.safe_load(path.read_text())
    twin = copy.deepcopy(config)
    data = twin["data"].setdefault("init_args", {})
    # A config without a validation split (val_size: 0, a refit) keeps none.
    data.update(
        data_dir=str(fake_data(config, tmp)),
        download=False,
        val_size=100 if data.get("val_size", 1) else 0,
        batch_size=32,
        eval_batch_size=100,
    )
    trainer = twin["trainer"]
    trainer.update(
        max_steps=max_steps,
        max_epochs=None,
        log_every_n_steps=2,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp),
    )
    trainer["logger"]["init_args"]["save_dir"] = str(tmp / "runs")
    backbone = twin["model"]["backbone"]
    if backbone["class_path"].endswith("VGG"):
        backbone["init_args"]["width"] = 0.125
    for callback in trainer.get("callbacks", []):
        if callback["class_path"].endswith("EnergyMonitor"):
            callback.setdefault("init_args", {})["logging_interval"] = 2
        if callback["class_path"].endswith("GoalBrake"):
            callback["init_args"]["reference_batches"] = 2
    if fast_optimizer and twin["optimizer"]["class_path"].endswith("PHS"):
        twin["optimizer"]["init_args"].update(lr=0.2, mass=1.0, friction=1.0)
    return twin


def write_twin(twin: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(twin, sort_keys=False))
    return path
