"""One trial = one Lightning fit, built by the same builder as ``goalbrake fit``.

:class:`Objective` samples the trial's setting (:meth:`SweepSpec.suggest`), builds the fit
config (base config + fixed values + sampled values + seed), builds the run with
:func:`goalbrake.app.build_config` and fits it with three callbacks added:

* :class:`~goalbrake.sweep.run.trial_callbacks.NonFiniteLossPruner`: NaN/inf loss → PRUNED,
  reason in the user attr ``prune_reason``;
* :class:`~goalbrake.sweep.run.trial_callbacks.TrialRecorder`: per-epoch metrics in the user
  attr ``curve``;
* optuna-integration's ``PyTorchLightningPruningCallback`` on the objective metric, with
  ``check_pruned()`` after fit as its documentation asks for distributed training.

The objective value is the best validation value over the epochs (the epoch a
checkpoint selected on validation would keep); the last epoch's value is the user attr
``final_value``. Only ``trainer.fit`` runs, so the test set is never touched by a search;
a reproduction (a grid that selects nothing) may set ``test: true``, and a COMPLETE trial
is then tested after its fit: the final weights, and the best-val checkpoint when
``checkpoint: true``, in the user attr ``test`` (``{"final": {"test/acc": ..,
"test/loss": ..}, "best": {..}}``; docs/design.md, "Sweeps", asks for both).
The TensorBoard run of trial n is ``<runs>/<study>/trial_<n>``, with one record in the
HPARAMS tab (:class:`TrialHParams`, which replaces the config's HParamsLogger): the
HParamsLogger's hparams and metrics (optimizer, GoalBrake, brake step, L₀,
``hp/val_acc_best``, ``hp/val_acc_final``, ``hp/test_acc`` when tested) with the trial's
own (``trial``, ``outcome``, its ``config`` record; ``hp/objective``, ``hp/final``,
``hp/epochs``).

With ``brake.goal: {from_trials: ...}`` the trial's goal is measured on the study's
COMPLETE trials when it starts, under the ask lock
(:mod:`goalbrake.sweep.run.goal_from_trials`, user attr ``goal``; a retry keeps its
original's), and every finished GoalBrake trial stores its smoothed L/L₀ per epoch (user
attr ``loss_ratio``) for the trials after it; its HPARAMS ``goal`` is the measured goal
and ``goal_source`` the rule and the trials it came from (:func:`goal_source`).

The user attrs a trial writes are those of :mod:`goalbrake.sweep.attrs`.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerStatus
from optuna_integration import PyTorchLightningPruningCallback

from goalbrake.app import GoalbrakeCLI, build_config
from goalbrake.callbacks import HParamsLogger
from goalbrake.callbacks.hparams import HParam, HParamsLoggerBase
from goalbrake.sweep.attrs import (
    ATTEMPT_ATTRS,
    BEST_EPOCH,
    CONFIG,
    DURATION_S,
    EPOCHS,
    FAIL_REASON,
    FINAL_VALUE,
    GOAL,
    LOSS_RATIO,
    PRUNE_REASON,
    TENSORBOARD,
    TEST,
    WORKER,
)
from goalbrake.sweep.define import SweepSpec
from goalbrake.sweep.define.spec import Config, TrialSetting, fit_config, trial_dir
from goalbrake.sweep.run.goal_from_trials import goal_for_trial, loss_ratio_record
from goalbrake.sweep.run.storage import AskLock
from goalbrake.sweep.run.trial_callbacks import (
    NonFiniteLossPruner,
    StopCheck,
    StopRequested,
    TrialRecorder,
)

__all__ = ["Interrupted", "Objective", "TrialHParams", "Worker", "goal_source"]

INTERRUPTED = "interrupted"
#: Who runs a trial: host, pid, index (and the GPUs it sees), as the ``worker`` user attr.
Worker = dict[str, str | int | None]


class Interrupted(KeyboardInterrupt):
    """The worker was asked to stop (SIGINT/SIGTERM) while a trial ran."""


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


def goal_source(goal: Mapping[str, Any]) -> str:
    """The ``goal_source`` hparam of a ``from_trials`` goal (a trial's ``goal`` user attr):
    how it was found and the COMPLETE trials it was measured on, e.g. ``"q0.5 of L/L₀ at 1
    of the budget over 2 trials; trials 0, 1"`` or ``"startup goal (0 of 2 trials
    complete)"``."""
    trials = ", ".join(str(n) for n in goal.get("trials") or ())
    return f"{goal.get('how')}; trials {trials}" if trials else str(goal.get("how"))


def trial_params(trial: optuna.Trial) -> dict[str, HParam]:
    """The trial's own hparams: its ``config`` record (the tuned values, base, method, seed),
    ``trial``, ``outcome`` (set when it is written) and, for a ``from_trials`` goal,
    ``goal_source``."""
    record = trial.user_attrs.get(CONFIG) or {}
    params: dict[str, HParam] = {k: v for k, v in record.items() if v is not None}
    params.update(trial=trial.number, outcome="")
    goal = trial.user_attrs.get(GOAL)
    if isinstance(goal, Mapping):
        params["goal_source"] = goal_source(goal)
    return params


def _outcome(exception: BaseException) -> str:
    if isinstance(exception, optuna.TrialPruned):
        return "pruned"
    if isinstance(exception, StopRequested | KeyboardInterrupt):
        return INTERRUPTED
    return "error"


class TrialHParams(HParamsLogger):
    """The one HParams record of a trial: an :class:`~goalbrake.callbacks.HParamsLogger`
    (the optimizer, GoalBrake, the brake step, L₀, ``hp/val_acc_best``/``_final``,
    ``hp/test_acc`` after a test) with the trial's own keys (:func:`trial_params`; they win
    on a clash) and the metrics ``hp/objective``, ``hp/final`` and ``hp/epochs`` of
    ``recorder``. TensorBoard shows a run's first hparams write, so ``outcome`` is set
    before it: ``complete`` at the end of training, ``pruned``, ``interrupted`` or
    ``error`` on the exception that ended the fit.

    Args:
        recorder: the trial's epoch record.
        params: the trial's hparams.
        like: the HParamsLogger of the trial's config it replaces (its ``monitor``,
            ``mode``, ``test_metric`` and ``params`` are kept).
    """

    @property
    def state_key(self) -> str:
        # Saved under HParamsLogger's key: a trial's checkpoint then loads into any
        # goalbrake Trainer (`goalbrake test --ckpt_path`), whose default is HParamsLogger.
        return HParamsLogger.__qualname__

    def __init__(
        self,
        recorder: TrialRecorder,
        params: Mapping[str, HParam],
        like: HParamsLoggerBase | None = None,
    ) -> None:
        own = like or HParamsLoggerBase()
        super().__init__(own.monitor, own.mode, own.test_metric, {**own.params, **params})
        self.recorder = recorder

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.params["outcome"] = "complete"
        super().on_train_end(trainer, pl_module)

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        self.params["outcome"] = _outcome(exception)
        super().on_exception(trainer, pl_module, exception)

    def more_metrics(self, trainer: Trainer) -> dict[str, float]:
        best, final = self.recorder.best, self.recorder.final
        return {
            "hp/objective": math.nan if best is None else best,
            "hp/final": math.nan if final is None else final,
            "hp/epochs": float(len(self.recorder.curve["epoch"])),
        }


def _with_trial_hparams(
    callbacks: list[Callback], recorder: TrialRecorder, params: Mapping[str, HParam]
) -> None:
    """Replace the config's HParamsLogger (if any) by the trial's, last in ``callbacks``
    (after ``recorder``, whose record of the last epoch its first write reads)."""
    configured = [c for c in callbacks if isinstance(c, HParamsLoggerBase)]
    for callback in configured:
        callbacks.remove(callback)
    callbacks.append(TrialHParams(recorder, params, configured[0] if configured else None))


class Objective:
    """The objective of a sweep's trials (see the module docstring).

    Args:
        spec: the validated sweep.
        runs_dir: where runs/<study>/trial_<n> go.
        worker: who runs the trials (stored in the ``worker`` user attr).
        lock: the study's ask lock, held by the caller while the trial starts; released
            once the trial has its worker and parameters.
        stop: set by the worker's signal handler; the running fit ends at its next batch
            and the trial is FAIL with ``fail_reason: interrupted``.
    """

    def __init__(
        self,
        spec: SweepSpec,
        runs_dir: str | Path,
        worker: Worker | None = None,
        lock: AskLock | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.spec = spec
        self.stop = stop or threading.Event()
        self.runs_dir = Path(runs_dir)
        self.worker: Worker = worker or {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "index": 0,
        }
        self.lock = lock
        #: The last trial's end: "complete", "pruned", "interrupted" or "error".
        self.last_outcome: str | None = None

    def _start(self, trial: optuna.Trial) -> tuple[TrialSetting, Config]:
        trial.set_user_attr(WORKER, self.worker)
        inherited = trial.user_attrs
        for key in ATTEMPT_ATTRS:
            if inherited.get(key) is not None:
                trial.set_user_attr(key, None)
        setting = self.spec.suggest(trial)
        if self.spec.goal_rule is not None:
            measured = goal_for_trial(trial, self.spec.goal_rule)
            setting = self.spec.with_goal(setting, measured.goal)
        config = fit_config(self.spec, setting, self.runs_dir, trial.number)
        trial.set_user_attr(CONFIG, self.spec.describe(setting, config))
        # Relative to the runs directory: the storage may move to another machine.
        trial.set_user_attr(TENSORBOARD, trial_dir("", self.spec.study, trial.number).as_posix())
        return setting, config

    def __call__(self, trial: optuna.Trial) -> float:
        self.last_outcome = "error"
        try:
            try:
                _, config = self._start(trial)
            finally:
                if self.lock is not None:
                    self.lock.release()
            if self.stop.is_set():
                raise StopRequested("the worker was asked to stop")
            return self._fit(trial, config)
        except optuna.TrialPruned:
            self.last_outcome = "pruned"
            raise
        except (StopRequested, KeyboardInterrupt, SystemExit) as err:
            self.last_outcome = INTERRUPTED
            trial.set_user_attr(FAIL_REASON, f"{INTERRUPTED}: the worker was stopped")
            raise Interrupted() from err
        except Exception as err:
            reason = trial.user_attrs.get(FAIL_REASON) or f"error: {_first_line(err)}"
            trial.set_user_attr(FAIL_REASON, reason)
            raise

    def _fit(self, trial: optuna.Trial, config: Config) -> float:
        start = time.perf_counter()
        try:
            cli = build_config(config)
        except SystemExit as err:  # pragma: no cover - exit_on_error=False prevents it
            raise ValueError(f"the trial's fit config does not parse (exit {err.code})") from None
        trainer = cli.trainer
        guard = NonFiniteLossPruner(trial)
        recorder = TrialRecorder(trial, self.spec.metric, self.spec.direction)
        pruning = PyTorchLightningPruningCallback(trial, monitor=self.spec.metric)
        pruning.reads_loss_between_logs = False  # type: ignore[attr-defined]  # at validation
        trainer.callbacks.extend([StopCheck(self.stop), guard, recorder, pruning])
        _with_trial_hparams(trainer.callbacks, recorder, trial_params(trial))
        outcome = "complete"
        try:
            trainer.fit(cli.model, datamodule=cli.datamodule)
            if trainer.state.status == TrainerStatus.INTERRUPTED:
                raise KeyboardInterrupt
            # Under DDP the pruning decision travels through the storage (RDB only).
            pruning.check_pruned()
            if self.spec.test and recorder.best is not None:
                trial.set_user_attr(TEST, self._test(trainer, cli))
        except optuna.TrialPruned as err:
            outcome = "pruned"
            if not trial.user_attrs.get(PRUNE_REASON):
                trial.set_user_attr(PRUNE_REASON, f"{self.spec.pruner} pruner: {err}")
            raise
        finally:
            if outcome == "pruned" or recorder.best is not None:
                self._finish(trial, trainer, recorder, outcome, time.perf_counter() - start)
        if recorder.best is None:
            logged = sorted(trainer.callback_metrics)
            raise ValueError(
                f"the objective metric {self.spec.metric!r} was never logged "
                f"(logged: {', '.join(logged) or 'nothing'}; is validation on?)"
            )
        self.last_outcome = "complete"
        return recorder.best

    def _test(self, trainer: Trainer, cli: GoalbrakeCLI) -> dict[str, dict[str, float]]:
        """Test the final weights, then the best-val checkpoint (if one was kept)."""

        def run() -> dict[str, float]:
            (metrics,) = trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
            return {name: float(value) for name, value in metrics.items()}

        out = {"final": run()}
        if self.spec.checkpoint:
            # The checkpoint's state_dict holds the weights validation scored, which with
            # Lightning's WeightAveraging (EMA, SWA) are the averaged ones. Restoring it
            # through this Trainer (ckpt_path="best") would let that callback load its
            # raw current_model_state instead, so the weights are loaded here.
            path = trainer.checkpoint_callback.best_model_path
            checkpoint = torch.load(path, map_location=cli.model.device, weights_only=False)
            cli.model.load_state_dict(checkpoint["state_dict"])
            out["best"] = run()
        return out

    def _finish(
        self,
        trial: optuna.Trial,
        trainer: Trainer,
        recorder: TrialRecorder,
        outcome: str,
        seconds: float,
    ) -> None:
        epochs = len(recorder.curve["epoch"])
        trial.set_user_attr(BEST_EPOCH, recorder.best_epoch)
        trial.set_user_attr(FINAL_VALUE, recorder.final)
        trial.set_user_attr(EPOCHS, epochs)
        trial.set_user_attr(DURATION_S, round(seconds, 3))
        budget = trainer.max_epochs if (trainer.max_epochs or -1) > 0 else epochs
        ratios = loss_ratio_record(recorder.curve, budget)
        if ratios is not None:
            trial.set_user_attr(LOSS_RATIO, ratios)
        # The trial's hparams went out with TrialHParams' writes; a test's writes reopen the
        # writer the fit closed, so it is closed again.
        if trainer.logger is not None:
            trainer.logger.finalize("success" if outcome == "complete" else "failed")
