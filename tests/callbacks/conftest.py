"""Shared helpers for the callback tests: tiny LightningModules, fast Trainers, logged series.

Tests use them through the fixtures at the bottom (``make_module``, ``make_trainer``,
``read_csv_metrics``, ``brake_lines``); a script (e.g. the DDP test's worker) may import
this file by path.

* ``build_module("regression", ...)``: a linear regression on 64 fixed samples (8 batches of
  8 per epoch); logs ``train/loss`` per step and ``val/loss`` per epoch.
* ``build_module("scripted", losses=[...], val_losses=[...])``: the same model and
  gradients, but the *value* of the training loss at global step t is ``losses[t]`` (and the
  k-th validation's loss is ``val_losses[k]``): loss = real + (scripted − real.detach()).
  A callback that reads losses then sees exactly the script, and the optimizer still moves.

Either kind is built on ``lightning.pytorch`` or, with ``lightning="pytorch_lightning"``,
on the standalone distribution. ``shuffle=True`` shuffles with a generator seeded
``shuffle_seed`` (None: torch's global RNG). The optimizer comes from ``optimizer(params)``
(default: a :class:`goalbrake.PHS`).
"""

from __future__ import annotations

import csv
import functools
import importlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from goalbrake import PHS

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
N_SAMPLES, BATCH_SIZE, FEATURES = 64, 8, 4


def phs(
    lr: float = 0.1, mass: float = 1.0, friction: float = 0.5, **kwargs: Any
) -> OptimizerFactory:
    """A factory for a :class:`goalbrake.PHS` with these settings."""
    return lambda params: PHS(params, lr=lr, mass=mass, friction=friction, **kwargs)


def regression_data(n: int = N_SAMPLES, seed: int = 1) -> TensorDataset:
    """y = x·w* + noise with fixed x, w* (4 features)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, FEATURES, generator=g)
    w = torch.tensor([[1.5], [-2.0], [1.0], [0.5]])
    y = x @ w + 0.1 * torch.randn(n, 1, generator=g)
    return TensorDataset(x, y)


@functools.cache
def _module_class(lightning: str) -> type:
    pl = importlib.import_module(lightning)

    class RegressionModule(pl.LightningModule):
        """Linear regression on fixed data; optionally a scripted loss value."""

        def __init__(
            self,
            optimizer: OptimizerFactory | None = None,
            losses: Sequence[float] | None = None,
            val_losses: Sequence[float] | None = None,
            n_samples: int = N_SAMPLES,
            batch_size: int = BATCH_SIZE,
            shuffle: bool = False,
            shuffle_seed: int | None = 2,
        ) -> None:
            super().__init__()
            self.net = nn.Linear(FEATURES, 1)
            self.optimizer_factory = optimizer or phs()
            self.losses = None if losses is None else torch.tensor(losses, dtype=torch.float32)
            self.val_losses = val_losses
            self.data = regression_data(n_samples)
            self.batch_size = batch_size
            self.shuffle = shuffle
            self.shuffle_seed = shuffle_seed
            self._validations = 0

        def forward(self, x: Tensor) -> Tensor:
            return self.net(x)

        def _loss(self, batch: Any) -> Tensor:
            x, y = batch
            return nn.functional.mse_loss(self(x), y)

        def training_step(self, batch: Any, batch_idx: int) -> Tensor:
            loss = self._loss(batch)
            if self.losses is not None:
                scripted = self.losses[self.trainer.global_step].to(loss.device)
                loss = loss + (scripted - loss.detach())
            self.log("train/loss", loss, on_step=True, on_epoch=False)
            return loss

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            loss = self._loss(batch)
            if self.val_losses is not None:
                loss = torch.tensor(float(self.val_losses[self._validations]))
            self.log("val/loss", loss, on_step=False, on_epoch=True)

        def on_validation_epoch_end(self) -> None:
            if not self.trainer.sanity_checking:
                self._validations += 1

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return self.optimizer_factory(self.parameters())

        def train_dataloader(self) -> DataLoader:
            seed = self.shuffle_seed if self.shuffle else None
            g = None if seed is None else torch.Generator().manual_seed(seed)
            return DataLoader(
                self.data, batch_size=self.batch_size, shuffle=self.shuffle, generator=g
            )

        def val_dataloader(self) -> DataLoader:
            return DataLoader(self.data, batch_size=N_SAMPLES)

    RegressionModule.__qualname__ = RegressionModule.__name__
    return RegressionModule


def build_module(
    kind: str = "regression",
    *,
    lightning: str = "lightning.pytorch",
    optimizer: OptimizerFactory | None = None,
    losses: Sequence[float] | None = None,
    val_losses: Sequence[float] | None = None,
    **kwargs: Any,
) -> Any:
    """A tiny LightningModule: ``kind`` is ``"regression"`` or ``"scripted"`` (needs losses)."""
    if kind not in ("regression", "scripted"):
        raise ValueError(f"Invalid kind value: {kind!r} (must be one of regression, scripted)")
    if kind == "scripted" and losses is None:
        raise ValueError("A scripted module needs losses=[...] (one per training step)")
    return _module_class(lightning)(
        optimizer=optimizer,
        losses=losses if kind == "scripted" else None,
        val_losses=val_losses,
        **kwargs,
    )


def build_trainer(root: Path, *, lightning: str = "lightning.pytorch", **kwargs: Any) -> Any:
    """A quiet single-process CPU Trainer logging every step to ``root``'s CSV logger."""
    pl = importlib.import_module(lightning)
    options: dict[str, Any] = dict(
        default_root_dir=str(root),
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=pl.loggers.CSVLogger(str(root), name="csv"),
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    options.update(kwargs)
    return pl.Trainer(**options)


def csv_metrics(trainer_or_dir: Any) -> dict[str, dict[int, float]]:
    """``{name: {step: value}}`` from a CSVLogger's metrics.csv (a Trainer or its log dir)."""
    log_dir = getattr(getattr(trainer_or_dir, "logger", None), "log_dir", trainer_or_dir)
    series: dict[str, dict[int, float]] = {}
    with open(Path(log_dir) / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            step = int(row["step"])
            for name, value in row.items():
                if name not in ("step", "epoch") and value != "":
                    series.setdefault(name, {})[step] = float(value)
    return series


@pytest.fixture
def brake_lines() -> Iterator[list[logging.LogRecord]]:
    """The records GoalBrake's logger (``goalbrake.callbacks.goal_brake``) emits meanwhile."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("goalbrake.callbacks.goal_brake")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def make_module() -> Callable[..., Any]:
    """``make_module(kind="regression", *, lightning=..., optimizer=..., losses=...)``."""
    return build_module


@pytest.fixture
def make_trainer(tmp_path: Path) -> Callable[..., Any]:
    """``make_trainer(**trainer_kwargs)``: :func:`build_trainer` rooted in ``tmp_path``."""
    return functools.partial(build_trainer, tmp_path)


@pytest.fixture
def read_csv_metrics() -> Callable[[Any], dict[str, dict[int, float]]]:
    """``read_csv_metrics(trainer)``: the logged series by name and step."""
    return csv_metrics
