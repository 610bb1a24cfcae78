"""Lightning callbacks a sweep adds to every trial: the epoch record, the NaN guard, and
the stop check.

:class:`TrialRecorder` keeps the per-epoch validation metrics in the trial's user attrs
(``curve``), so ``goalbrake report`` needs nothing but the storage, and computes the
objective (the best epoch's value). :class:`NonFiniteLossPruner` prunes a trial whose
training loss turns NaN/inf, with the reason in the user attr ``prune_reason``.
:class:`StopCheck` ends the fit at the next batch once the worker was asked to stop.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import lightning.pytorch as pl
import optuna
import torch

from goalbrake.app import FirstNonFinite
from goalbrake.sweep.attrs import CURVE, NONFINITE, PRUNE_REASON

__all__ = ["NonFiniteLossPruner", "StopCheck", "StopRequested", "TrialRecorder"]

#: Metric name prefixes the recorder keeps per epoch (besides the objective metric).
RECORDED_PREFIXES = ("val/", "brake/")
RECORDED_NAMES = ("train/loss",)


def _scalar(value: object) -> float | None:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            return None
        value = value.item()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


class TrialRecorder(pl.Callback):
    """Record the validation metrics of each epoch into ``trial.user_attrs["curve"]``.

    ``curve`` maps ``"epoch"`` and every recorded metric name to a list, one entry per
    validation run (NaN where a metric was missing). ``best`` and ``final`` are the best and
    the last value of ``metric``. An objective logged in training (``train/...``, e.g. a
    refit without a validation split) is recorded once per training epoch instead, after
    ``LightningModule.on_train_epoch_end`` has logged it.

    Args:
        trial: the running trial.
        metric: the objective metric (e.g. ``val/acc``).
        direction: ``maximize`` or ``minimize``.
    """

    #: Reads train/loss at each validation (at an epoch's end) and each epoch's end.
    reads_loss_between_logs = False

    def __init__(self, trial: optuna.Trial, metric: str, direction: str) -> None:
        self.trial = trial
        self.metric = metric
        self.direction = direction
        self.curve: dict[str, list[float]] = {"epoch": []}
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.final: float | None = None
        self._per_train_epoch = metric.startswith("train/")
        self._pending: int | None = None  # a training epoch whose metrics are not yet recorded

    def _record(self, trainer: pl.Trainer, epoch: int | None = None) -> None:
        metrics = {
            name: _scalar(value)
            for name, value in trainer.callback_metrics.items()
            if name == self.metric or name in RECORDED_NAMES or name.startswith(RECORDED_PREFIXES)
        }
        epoch = trainer.current_epoch if epoch is None else epoch
        n = len(self.curve["epoch"])
        self.curve["epoch"].append(epoch)
        for name, value in metrics.items():
            column = self.curve.setdefault(name, [math.nan] * n)
            column.append(math.nan if value is None else value)
        for column in self.curve.values():
            if len(column) == n:
                column.append(math.nan)
        value = metrics.get(self.metric)
        if value is not None and math.isfinite(value):
            self.final = value
            better = (
                self.best is None
                or (self.direction == "maximize" and value > self.best)
                or (self.direction == "minimize" and value < self.best)
            )
            if better:
                self.best, self.best_epoch = value, epoch
        # JSON has no NaN; the storage keeps None.
        self.trial.set_user_attr(
            CURVE,
            {
                k: [None if isinstance(v, float) and not math.isfinite(v) else v for v in col]
                for k, col in self.curve.items()
            },
        )

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or self._per_train_epoch:
            return
        self._record(trainer)

    # Callbacks' on_train_epoch_end runs before the LightningModule's, where train/acc is
    # logged, so a training epoch is recorded when the next one starts or the fit ends.
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._per_train_epoch and trainer.is_global_zero:
            self._pending = trainer.current_epoch

    def _flush(self, trainer: pl.Trainer) -> None:
        if self._pending is not None:
            epoch, self._pending = self._pending, None
            self._record(trainer, epoch)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._flush(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._flush(trainer)


class NonFiniteLossPruner(pl.Callback):
    """Prune the trial once the training loss is NaN or infinite.

    The check stays on the device and syncs every ``check_every`` batches and at each
    epoch's end, so a healthy run pays no per-step host sync. The reason goes to the user
    attr ``prune_reason``, and the trial ends as PRUNED (``optuna.TrialPruned``).

    Args:
        trial: the running trial.
        check_every: batches between host syncs.
    """

    #: Reads no logged train/loss mid-epoch (goalbrake.module.reads_loss_between_logs).
    reads_loss_between_logs = False

    def __init__(self, trial: optuna.Trial, check_every: int = 16) -> None:
        self.trial = trial
        self.check_every = check_every
        self._watch = FirstNonFinite()  # the fit's guard reads divergence the same way

    def _prune(self, trainer: pl.Trainer, what: str, value: float) -> None:
        reason = (
            f"non-finite {what} ({value}) at epoch {trainer.current_epoch}, "
            f"step {trainer.global_step}"
        )
        self.trial.set_user_attr(PRUNE_REASON, reason)
        self.trial.set_user_attr(NONFINITE, True)
        raise optuna.TrialPruned(reason)

    def _check(self, trainer: pl.Trainer) -> None:
        bad = self._watch.found()
        if bad is not None:
            self._prune(trainer, "train/loss", bad[1])

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):
            return
        self._watch.update(loss, trainer.global_step)
        if (batch_idx + 1) % self.check_every == 0:
            self._check(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._check(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._check(trainer)
        val_loss = _scalar(trainer.callback_metrics.get("val/loss"))
        if val_loss is not None and not math.isfinite(val_loss):
            self._prune(trainer, "val/loss", val_loss)


class StopRequested(Exception):
    """The worker was asked to stop (SIGINT/SIGTERM); raised at a batch boundary."""


class StopCheck(pl.Callback):
    """End the fit at the next batch boundary once ``stop`` is set.

    A signal handler only sets the event: a ``KeyboardInterrupt`` raised at an arbitrary
    point can land inside TensorBoard's writer queue and deadlock its final flush, while an
    exception raised here lets Lightning tear down and close the loggers normally.

    Args:
        stop: the worker's stop event.
    """

    #: It reads no metric; the trial it stops (should_stop) is re-queued, not recorded.
    reads_loss_between_logs = False

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop

    def _check(self) -> None:
        if self.stop.is_set():
            raise StopRequested("the worker was asked to stop")

    def on_train_batch_start(self, *args: Any, **kwargs: Any) -> None:
        self._check()

    def on_validation_batch_start(self, *args: Any, **kwargs: Any) -> None:
        self._check()

    def on_train_start(self, *args: Any, **kwargs: Any) -> None:
        self._check()
