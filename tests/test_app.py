"""The app's policy on real Trainers: best and last checkpoints, the NaN guard, refusals."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.strategies import SingleDeviceStrategy
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from goalbrake.app import (
    FirstNonFinite,
    NonFiniteLossError,
    StopOnNonFiniteLoss,
    build,
    check_checkpoint_file,
    checkpoint_callback,
)
from tests.twins import REPO, tiny_twin

BATCHES = 4  # training batches per epoch


class Scripted(pl.LightningModule):
    """A linear model whose logged val/acc per epoch, and optionally train loss, are scripted.

    ``nan_at``: the global step from which the training loss is NaN (and so are the weights).
    """

    def __init__(self, val_acc: list[float], nan_at: int | None = None) -> None:
        super().__init__()
        self.layer = nn.Linear(2, 1)
        self.val_acc = val_acc
        self.nan_at = nan_at

    def training_step(self, batch: list[Tensor], batch_idx: int) -> Tensor:
        loss = self.layer(batch[0]).pow(2).mean()
        if self.nan_at is not None and self.global_step >= self.nan_at:
            loss = loss * float("nan")
        return loss

    def validation_step(self, batch: list[Tensor], batch_idx: int) -> None:
        self.log("val/acc", self.val_acc[self.current_epoch])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(torch.randn(BATCHES * 2, 2)), batch_size=2)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(torch.randn(2, 2)), batch_size=2)


def fit(
    tmp_path: Path, model: Scripted, epochs: int, *callbacks: pl.Callback, **kwargs: object
) -> pl.Trainer:
    trainer = pl.Trainer(
        **kwargs,
        default_root_dir=tmp_path,
        max_epochs=epochs,
        logger=False,
        callbacks=[checkpoint_callback(), *callbacks],
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(model)
    return trainer


def epoch_of(path: str | Path) -> int:
    return torch.load(path, weights_only=True)["epoch"]


def test_last_checkpoint_is_the_last_epoch_even_when_val_acc_did_not_improve(
    tmp_path: Path,
) -> None:
    # val/acc is best in epoch 1; epochs 2 and 3 do not improve it.
    trainer = fit(tmp_path, Scripted([0.5, 0.9, 0.7, 0.8]), 4)
    callback = trainer.checkpoint_callback
    assert Path(callback.best_model_path).name == "best-epoch01.ckpt"
    assert Path(callback.last_model_path).name == "last.ckpt"
    assert epoch_of(callback.best_model_path) == 1
    assert epoch_of(callback.last_model_path) == 3  # Lightning's save_last alone: 1
    assert trainer.checkpoint_callback.monitor == "val/acc"


def test_last_checkpoint_holds_the_state_where_max_steps_stopped_mid_epoch(
    tmp_path: Path,
) -> None:
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        max_steps=BATCHES + 2,
        logger=False,
        callbacks=[checkpoint_callback()],
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(Scripted([0.5, 0.9]))
    saved = torch.load(trainer.checkpoint_callback.last_model_path, weights_only=True)
    assert saved["global_step"] == BATCHES + 2


def test_first_non_finite_keeps_the_first_bad_step_and_value() -> None:
    watch = FirstNonFinite()
    assert watch.found() is None
    for step, loss in enumerate([1.0, 0.5, math.inf, math.nan, 2.0]):
        watch.update(torch.tensor([loss, loss]), step)
    assert watch.found() == (2, math.inf)
    clean = FirstNonFinite()
    clean.update(torch.tensor(1.0), 0)
    assert clean.found() is None


def test_a_diverging_fit_stops_at_the_first_nan_and_keeps_the_best_checkpoint(
    tmp_path: Path,
) -> None:
    model = Scripted([0.5, 0.9, 0.95], nan_at=BATCHES + 1)  # the 2nd batch of epoch 1
    with pytest.raises(
        NonFiniteLossError,
        match=re.escape(
            f"Training diverged at step {BATCHES + 1}: train/loss is nan (lr=0.1, "
            "momentum=0.9); the checkpoints keep the last finite state"
        ),
    ):
        fit(tmp_path, model, 3, StopOnNonFiniteLoss())
    checkpoints = tmp_path / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best-epoch00.ckpt", "last.ckpt"]
    for path in checkpoints.iterdir():
        saved = torch.load(path, weights_only=True)
        assert saved["epoch"] == 0
        assert all(torch.isfinite(t).all() for t in saved["state_dict"].values())


def test_the_guard_checks_every_n_batches_and_rejects_a_bad_interval(tmp_path: Path) -> None:
    guard = StopOnNonFiniteLoss(check_every=2)
    with pytest.raises(NonFiniteLossError, match=r"^Training diverged at step 1: "):
        fit(tmp_path, Scripted([0.5], nan_at=1), 1, guard)
    with pytest.raises(ValueError, match=re.escape("Invalid check_every value: 0 (must be >= 1)")):
        StopOnNonFiniteLoss(check_every=0)


class OtherRankDiverged(SingleDeviceStrategy):
    """One device, but "another rank" reports a non-finite loss from global step ``at``."""

    def __init__(self, at: int) -> None:
        super().__init__(device=torch.device("cpu"))
        self.at = at
        self.asked: list[tuple[bool, bool]] = []

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:
        self.asked.append((decision, all))
        return decision or self.lightning_module.trainer.global_step >= self.at


def test_the_guard_stops_every_rank_when_any_rank_diverged(tmp_path: Path) -> None:
    strategy = OtherRankDiverged(at=BATCHES + 1)
    with pytest.raises(
        NonFiniteLossError,
        match=re.escape("Training diverged on another rank: train/loss is not finite"),
    ):
        fit(tmp_path, Scripted([0.5, 0.9]), 2, StopOnNonFiniteLoss(), strategy=strategy)
    assert strategy.asked and all(not local and not every for local, every in strategy.asked)
    # Epoch 0 ended (and was checkpointed) before the other rank's NaN was heard of.
    assert epoch_of(tmp_path / "checkpoints" / "last.ckpt") == 0


def test_goalbrake_fit_has_the_guard_and_the_best_and_last_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["goalbrake"])
    cli = build(tiny_twin(REPO / "configs/fashionmnist/goal.yaml", tmp_path), run=False)
    kinds = [type(c).__name__ for c in cli.trainer.callbacks]
    assert "StopOnNonFiniteLoss" in kinds and "BestAndLastCheckpoint" in kinds


@pytest.mark.parametrize(
    "content", [b"\x00" * 0, b"PK\x03\x04 truncated zip", bytes(range(256)) * 4]
)
def test_a_file_that_is_no_checkpoint_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.ckpt"
    path.write_bytes(content)
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"Invalid ckpt_path value: '{path}' (not a complete checkpoint: the file is "
            "truncated or was not written by torch.save)"
        ),
    ):
        check_checkpoint_file(path)


def test_a_real_checkpoint_and_lightning_s_names_pass(tmp_path: Path) -> None:
    torch.save({"epoch": 0}, tmp_path / "good.ckpt")
    for path in (tmp_path / "good.ckpt", "last", "best", None, tmp_path / "missing.ckpt"):
        check_checkpoint_file(path)


@pytest.mark.parametrize("strategy", ["ddp_spawn", "ddp_spawn_find_unused_parameters_true"])
def test_a_spawning_strategy_is_refused_in_one_line_naming_ddp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strategy: str
) -> None:
    monkeypatch.setattr(sys, "argv", ["goalbrake"])
    twin = tiny_twin(REPO / "configs/fashionmnist/goal.yaml", tmp_path)
    twin["trainer"].update(strategy=strategy, accelerator="cpu", devices=2)
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"Invalid trainer.strategy value: '{strategy}' (its spawned processes lose the "
            "--optimizer that LightningCLI attaches to the model; use --trainer.strategy ddp)"
        ),
    ):
        build(twin, run=False)
