"""Addresses of fit arguments: canonical names, config keys, and one-line errors."""

from __future__ import annotations

import pytest

from goalbrake.sweep.define.addressing import AddressError, assign, resolve

BASE = {
    "trainer": {
        "max_epochs": 3,
        "callbacks": [
            {"class_path": "goalbrake.GoalBrake", "init_args": {"goal": 0.15, "factor": 50.0}},
            {"class_path": "goalbrake.EnergyMonitor"},
        ],
    },
    "model": {
        "backbone": {"class_path": "goalbrake.models.LeNet", "init_args": {"in_channels": 1}}
    },
    "data": {
        "class_path": "goalbrake.data.FashionMNISTDataModule",
        "init_args": {"batch_size": 64},
    },
    "optimizer": {"class_path": "goalbrake.PHS", "init_args": {"lr": 0.1}},
}


@pytest.mark.parametrize(
    ("path", "name", "keys"),
    [
        ("optimizer.lr", "optimizer.lr", ("optimizer", "init_args", "lr")),
        ("optimizer.init_args.mass", "optimizer.mass", ("optimizer", "init_args", "mass")),
        ("optimizer.class_path", "optimizer.class_path", ("optimizer", "class_path")),
        ("data.train_subset", "data.train_subset", ("data", "init_args", "train_subset")),
        (
            "model.backbone.layout",
            "model.backbone.layout",
            ("model", "backbone", "init_args", "layout"),
        ),
        ("model.num_classes", "model.num_classes", ("model", "num_classes")),
        ("trainer.max_epochs", "trainer.max_epochs", ("trainer", "max_epochs")),
        (
            "trainer.gradient_clip_val",
            "trainer.gradient_clip_val",
            ("trainer", "gradient_clip_val"),
        ),
        ("brake.goal", "brake.goal", ("trainer", "callbacks", 0, "init_args", "goal")),
        ("brake.init_args.mode", "brake.mode", ("trainer", "callbacks", 0, "init_args", "mode")),
        (
            "callbacks.GoalBrake.factor",
            "brake.factor",
            ("trainer", "callbacks", 0, "init_args", "factor"),
        ),
        (
            "callbacks.EnergyMonitor.logging_interval",
            "callbacks.EnergyMonitor.logging_interval",
            ("trainer", "callbacks", 1, "init_args", "logging_interval"),
        ),
    ],
)
def test_resolve(path: str, name: str, keys: tuple) -> None:
    address = resolve(path, BASE)
    assert (address.name, address.keys) == (name, keys)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("optimizer.lrr", "unknown parameter 'optimizer.lrr': PHS takes lr, mass, friction"),
        ("brake.gaol", "unknown parameter 'brake.gaol': GoalBrake takes goal, factor, mode"),
        (
            "callbacks.EarlyStopping.patience",
            "the base config has no EarlyStopping in trainer.callbacks",
        ),
        ("trainer.max_epoch", "unknown parameter 'trainer.max_epoch': Trainer takes"),
        ("lr", "unknown parameter 'lr': a path starts with one of trainer, model, data"),
        ("trainer.callbacks", "cannot be varied by a sweep"),
        ("seed_everything", "use the sweep's seed: and seeds: keys"),
        ("optimizer..lr", "invalid parameter path 'optimizer..lr'"),
        ("lr_scheduler.gamma", "the base config has no lr_scheduler.class_path"),
    ],
)
def test_resolve_errors(path: str, message: str) -> None:
    with pytest.raises(AddressError) as info:
        resolve(path, BASE)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_brake_on_a_config_without_goalbrake() -> None:
    config = {"trainer": {"callbacks": [{"class_path": "goalbrake.EnergyMonitor"}]}}
    with pytest.raises(
        AddressError, match=r"has no GoalBrake in trainer.callbacks \(it has: EnergyMonitor\)"
    ):
        resolve("brake.goal", config)


def test_assign_creates_init_args() -> None:
    config = {"optimizer": {"class_path": "goalbrake.PHS"}, "trainer": {}}
    assign(config, resolve("optimizer.weight_decay", config), 0.01)
    assign(config, resolve("trainer.max_epochs", config), 7)
    assert config == {
        "optimizer": {"class_path": "goalbrake.PHS", "init_args": {"weight_decay": 0.01}},
        "trainer": {"max_epochs": 7},
    }
