"""HParamsLogger: one row per fit in TensorBoard's HParams tab.

LightningCLI injects the optimizer and the callbacks, so ``save_hyperparameters`` sees only
the model's and the data's arguments, and a logger with ``default_hp_metric=False`` writes
no HParams row at all. This callback collects what a braking run is compared by (the
optimizer's settings, GoalBrake's settings, the brake step and L₀) and hands them with the
run's results to ``logger.log_hyperparams(params, metrics)``, Lightning's public logger API.

This module imports no Lightning: :class:`HParamsLoggerBase` works through duck typing on
the ``trainer`` its hooks receive; :mod:`goalbrake.callbacks` binds it to ``Callback``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from goalbrake.callbacks.goal_brake import GoalBrakeBase

__all__ = ["BRAKE_KEYS", "CONFIG_SOURCE", "OPTIMIZER_KEYS", "HParamsLoggerBase"]

HParam = float | int | str | bool
NAN = math.nan

#: The optimizer hparams, always all of them (TensorBoard takes the HParams columns from the
#: first run it reads, so every run writes the same keys; what does not apply is NaN or "").
OPTIMIZER_KEYS: tuple[str, ...] = (
    "optimizer",
    "lr",
    "momentum",
    "mass",
    "friction",
    "scheme",
    "friction_on",
    "kinetic",
    "weight_decay",
)
#: GoalBrake's hparams (NaN or "" without a GoalBrake). A clock trigger's step is
#: ``brake_step`` with ``mode="at_step"``: no ``at_step`` column takes one of the five
#: columns TensorBoard shows by default (the first five names, alphabetically); for the
#: same reason the goal's origin is ``goal_source``, not ``brake/goal_source`` ("/" sorts
#: before "_" and would push ``goal`` out of those five).
BRAKE_KEYS: tuple[str, ...] = (
    "goal",
    "goal_source",
    "factor",
    "mode",
    "brake_step",
    "reference_loss",
)
#: ``goal_source`` of a goal given as a number (``goal=`` or ``stages=``, from Python, YAML,
#: the CLI or a sweep's trial setting).
CONFIG_SOURCE = "config"
_STRINGS = {"optimizer", "scheme", "friction_on", "kinetic", "mode", "goal_source"}


def _value(value: object) -> HParam:
    """A number, string or bool TensorBoard can show (a 0-d tensor read once, at fit start)."""
    if isinstance(value, Tensor) and value.numel() == 1:
        return float(value)
    if isinstance(value, bool | int | float | str):
        return value
    name = getattr(value, "name", None)  # a KineticEnergy object
    return name if isinstance(name, str) else str(value)


def optimizer_hparams(optimizer: object | None) -> dict[str, HParam]:
    """:data:`OPTIMIZER_KEYS` of the first param group of ``optimizer``.

    ``momentum`` is μ of p⁺ = μ p − b g: SGD's ``momentum``, and for PHS its
    ``momentum_factor()`` (e^(−αγ/m) for ``conformal`` with velocity friction), so PHS and
    SGD runs share one column.
    """
    out: dict[str, HParam] = {k: ("" if k in _STRINGS else NAN) for k in OPTIMIZER_KEYS}
    if optimizer is None:
        return out
    out["optimizer"] = type(optimizer).__name__
    group = optimizer.param_groups[0]  # type: ignore[attr-defined]
    for key in OPTIMIZER_KEYS[1:]:
        if key in group and key != "momentum":
            value = group[key]
            out[key] = _value(value) if not isinstance(value, list) else "per-parameter"
    momentum_factor = getattr(optimizer, "momentum_factor", None)
    if callable(momentum_factor):
        out["momentum"] = _value(momentum_factor(0))
    elif "momentum" in group:
        out["momentum"] = _value(group["momentum"])
    return out


def brake_hparams(brake: GoalBrakeBase | None) -> dict[str, HParam]:
    """:data:`BRAKE_KEYS` of ``brake``; ``goal`` and ``factor`` are its first stage's.

    ``goal_source`` says where the goal came from: the earlier run and the rule for a
    ``goal_from`` goal (``GoalBrake.goal_source``, the text of its ``brake/events`` line),
    :data:`CONFIG_SOURCE` for a goal given as a number, ``""`` for the clock trigger.
    """
    out: dict[str, HParam] = {k: ("" if k in _STRINGS else NAN) for k in BRAKE_KEYS}
    if brake is None:
        return out
    goal, factor = brake.stages[0]
    out["goal"] = NAN if goal is None else float(goal)
    if goal is not None:
        out["goal_source"] = brake.goal_source or CONFIG_SOURCE
    out["factor"] = float(factor)
    out["mode"] = "at_step" if brake.at_step is not None else brake.mode
    out["brake_step"] = NAN if brake.braked_step is None else brake.braked_step
    out["reference_loss"] = NAN if brake.reference_loss is None else brake.reference_loss
    return out


def _takes_metrics(logger: object) -> bool:
    """Whether ``logger.log_hyperparams`` accepts metrics (TensorBoard's does; CSV's not)."""
    try:
        return "metrics" in inspect.signature(logger.log_hyperparams).parameters  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return False


class HParamsLoggerBase:
    r"""Log a fit's settings as hparams with its results as ``hp/*`` metrics.

    Hyperparameters (one value each; every run writes every key, NaN or ``""`` where a
    setting does not apply, because TensorBoard's HParams tab takes its columns from the
    first run it reads):

    * the optimizer's first param group, read at fit start: ``optimizer`` (class name),
      ``lr``, ``momentum`` (μ: SGD's ``momentum``, PHS's ``momentum_factor()``), ``mass``,
      ``friction``, ``scheme``, ``friction_on``, ``kinetic``, ``weight_decay``;
    * the first :class:`~goalbrake.callbacks.GoalBrake` of the Trainer: ``goal`` and
      ``factor`` (its first stage), ``goal_source`` (where the goal came from: for
      ``goal_from=`` the earlier run and the rule, e.g. ``"L/L₀ 0.1122 at step 18759 of
      runs/…/version_0 × margin 1.1"``; ``"config"`` for a goal given as a number; ``""``
      for the clock trigger), ``mode (``"at_step"`` for the clock trigger, whose
      ``at_step`` is the ``brake_step`` once it fired), and at the end ``brake_step`` (the step the
      first stage fired, NaN if it never did) and ``reference_loss`` (L₀);
    * the ``params`` given to the constructor (e.g. a sweep's trial number or a data
      setting to compare by). The module's and the datamodule's ``save_hyperparameters``
      stay in ``hparams.yaml`` and out of the table, where a dozen data options (``download``,
      ``drop_last``, …) would push the settings above off screen.

    Metrics: ``hp/<monitor>_best`` and ``hp/<monitor>_final`` (with "/" read as "_": for
    the default ``monitor="val/acc"``, ``hp/val_acc_best`` and ``hp/val_acc_final``) over the
    fit's validations, and ``hp/test_acc`` (``test_metric``) after ``trainer.test``; NaN
    until known. They are written at the end of training (``on_train_end``, or on an
    exception, so an interrupted or pruned fit keeps its row) and again at the end of
    testing, at the Trainer's global step; the HParams tab shows the last value. Checkpoints
    hold the best and final value, so a resumed fit's best is over the whole run. A subclass
    adds metrics of its own by overriding :meth:`more_metrics` (a sweep: ``hp/epochs``).

    A logger whose ``log_hyperparams`` takes ``metrics`` (``TensorBoardLogger``) gets
    ``log_hyperparams(params, metrics, step=...)``; any other logger (CSV, W&B, MLflow)
    ``log_hyperparams(params)`` and ``log_metrics(metrics, step)``. TensorBoard keeps the
    hparams of the first write of a run, so all of them are known by then.

    Args:
        monitor: the validation metric whose best and final value are logged.
        mode: ``"max"`` or ``"min"``: which value of ``monitor`` is the best.
        test_metric: the test metric logged after ``trainer.test``.
        params: more hyperparameters to log with the run's (they win over the collected
            ones on a name clash).

    Raises:
        ValueError: ``mode`` is not ``"max"`` or ``"min"``; a ``params`` value is not a
            number, string or bool.

    Example:
        >>> from goalbrake.callbacks import HParamsLogger  # doctest: +SKIP
        >>> trainer = Trainer(callbacks=[GoalBrake(goal=0.15), HParamsLogger()])  # doctest: +SKIP
    """

    #: Reads no logged train/loss mid-epoch (goalbrake.module.reads_loss_between_logs).
    reads_loss_between_logs = False

    MODES: tuple[str, ...] = ("max", "min")

    def __init__(
        self,
        monitor: str = "val/acc",
        mode: str = "max",
        test_metric: str = "test/acc",
        params: Mapping[str, HParam] | None = None,
    ) -> None:
        if mode not in self.MODES:
            raise ValueError(f"Invalid mode value: {mode!r} (must be one of 'max', 'min')")
        for key, value in (params or {}).items():
            if not isinstance(value, bool | int | float | str):
                raise ValueError(
                    f"Invalid params value: {key}={value!r} (must be a number, string or bool)"
                )
        self.monitor = monitor
        self.mode = mode
        self.test_metric = test_metric
        self.params: dict[str, HParam] = dict(params or {})
        self.best: float | None = None
        self.final: float | None = None
        self.test: float | None = None
        self._optimizer: dict[str, HParam] = optimizer_hparams(None)
        self._written: set[int] = set()  # id() of the loggers written to

    @property
    def metric_names(self) -> tuple[str, str, str]:
        """The ``hp/*`` tags: best and final of ``monitor``, and ``test_metric``."""
        stem = self.monitor.replace("/", "_")
        return (f"hp/{stem}_best", f"hp/{stem}_final", f"hp/{self.test_metric.replace('/', '_')}")

    # ------------------------------------------------------------------------------ hooks
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage == "fit":  # before Lightning restores a checkpoint's state (load_state_dict)
            self.best = self.final = None

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        # Before a brake, and before Lightning restores a checkpoint's optimizer state.
        optimizers = list(getattr(trainer, "optimizers", ()) or ())
        self._optimizer = optimizer_hparams(optimizers[0] if optimizers else None)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if getattr(trainer, "sanity_checking", False):
            return
        value = _metric(trainer, self.monitor)
        if value is None or math.isnan(value):
            return
        self.final = value
        if self.best is None or (value > self.best if self.mode == "max" else value < self.best):
            self.best = value

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self.write(trainer)

    def on_test_end(self, trainer: Any, pl_module: Any) -> None:
        self.test = _metric(trainer, self.test_metric)
        self.write(trainer)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self.write(trainer)

    def state_dict(self) -> dict[str, float | None]:
        """The best and final ``monitor`` so far: a resumed fit keeps its best."""
        return {"best": self.best, "final": self.final}

    def load_state_dict(self, state_dict: dict[str, float | None]) -> None:
        self.best, self.final = state_dict.get("best"), state_dict.get("final")

    # ---------------------------------------------------------------------------- writing
    def hparams(self, trainer: Any) -> dict[str, HParam]:
        """The hyperparameters as they are now (see the class docstring)."""
        return {**self._optimizer, **brake_hparams(_goal_brake(trainer)), **self.params}

    def metrics(self, known_only: bool = False) -> dict[str, float]:
        """The ``hp/*`` metrics, NaN where not known (yet), or (``known_only``) left out."""
        values = zip(self.metric_names, (self.best, self.final, self.test), strict=True)
        if known_only:
            return {name: v for name, v in values if v is not None}
        return {name: NAN if v is None else v for name, v in values}

    def more_metrics(self, trainer: Any) -> dict[str, float]:
        """Metrics a subclass adds to every write (e.g. a sweep's ``hp/epochs``); none here."""
        return {}

    def write(self, trainer: Any) -> None:
        """Hand :meth:`hparams` and :meth:`metrics` to every logger of the Trainer.

        A logger's first write has every metric (NaN where not known), so TensorBoard's
        HParams tab lists them all; later writes have only the known ones, so a test after
        the fit does not overwrite the fit's values.
        """
        if not getattr(trainer, "is_global_zero", True):
            return
        params = self.hparams(trainer)
        step = int(getattr(trainer, "global_step", 0))
        for logger in getattr(trainer, "loggers", ()):
            metrics = self.metrics(known_only=id(logger) in self._written)
            metrics.update(self.more_metrics(trainer))
            self._written.add(id(logger))
            if _takes_metrics(logger):
                logger.log_hyperparams(params, metrics=metrics, step=step)
            else:
                logger.log_hyperparams(params)
                logger.log_metrics(metrics, step=step)


def _metric(trainer: Any, name: str) -> float | None:
    value = (getattr(trainer, "callback_metrics", None) or {}).get(name)
    return None if value is None else float(value)


def _goal_brake(trainer: Any) -> GoalBrakeBase | None:
    return next(
        (c for c in getattr(trainer, "callbacks", ()) if isinstance(c, GoalBrakeBase)), None
    )
