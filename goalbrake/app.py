"""The app's one builder: a configuration in, a LightningCLI (model, data, Trainer) out.

``goalbrake fit|validate|test`` (:mod:`goalbrake.cli`), every sweep trial
(:mod:`goalbrake.sweep.run.objective`), the sweep's config check and the tests build a run
through :func:`build`, so there is one path from a configuration to a Trainer. This module
also holds the one checkpoint and logger policy (:func:`checkpoint_config`,
:func:`logger_config`) and the one test of "is this a GoalBrake callback entry"
(:func:`is_goal_brake`), the checkpoint that keeps the best and the last state
(:class:`BestAndLastCheckpoint`), and the guard that stops a diverging fit
(:class:`StopOnNonFiniteLoss`). See docs/design.md, "The app and its builder".

Example:
    >>> cli = build({"config": ["configs/fashionmnist/goal.yaml"]})  # doctest: +SKIP
    >>> cli.trainer.fit(cli.model, datamodule=cli.datamodule)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import os
import sys
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import Callback, Checkpoint, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from goalbrake.callbacks import GoalBrake, HParamsLogger
from goalbrake.module import ImageClassifier

__all__ = [
    "RUNS_DIR",
    "BestAndLastCheckpoint",
    "FirstNonFinite",
    "GoalbrakeCLI",
    "NonFiniteLossError",
    "StopOnNonFiniteLoss",
    "build",
    "build_config",
    "callback_name",
    "check_checkpoint_file",
    "checkpoint_callback",
    "checkpoint_config",
    "close_process_group",
    "is_goal_brake",
    "logger_config",
    "quiet_dependency_warnings",
    "trainer_defaults",
]

#: Where TensorBoard runs and checkpoints go unless a config says otherwise.
RUNS_DIR = "runs"
#: The best checkpoint's file name, for ``goalbrake fit`` and sweep trials alike.
BEST_CHECKPOINT = "best-epoch{epoch:02d}"
_CHECKPOINT_CLASS = "lightning.pytorch.callbacks.ModelCheckpoint"
_LOGGER_CLASS = "lightning.pytorch.loggers.TensorBoardLogger"


# ----------------------------------------------------------------------------- policy
def checkpoint_config(
    monitor: str = "val/acc", mode: str = "max", *, save_last: bool = False
) -> dict[str, Any]:
    """The checkpoint of the best ``monitor`` value, as a ``trainer.callbacks`` entry.

    The file is ``best-epochNN.ckpt``; ``save_last`` adds ``last.ckpt`` (for resuming).
    """
    init_args: dict[str, Any] = {
        "monitor": monitor,
        "mode": mode,
        "filename": BEST_CHECKPOINT,
        "auto_insert_metric_name": False,
    }
    if save_last:
        init_args["save_last"] = True
    return {"class_path": _CHECKPOINT_CLASS, "init_args": init_args}


class BestAndLastCheckpoint(ModelCheckpoint):
    """The best ``monitor`` checkpoint, and ``last.ckpt`` rewritten at every epoch's end.

    Lightning's ``save_last`` rewrites last.ckpt only when a best checkpoint is saved, so
    after an epoch that does not improve ``monitor`` it holds an older state than the run
    reached. This one saves the last state after every validation (or every training
    epoch's end when there is none) and at the end of fit, whether or not it improved.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("save_last", True)
        super().__init__(**kwargs)

    def _save_last_state(self, trainer: Trainer) -> None:
        # Skipped when this step is saved already (best and last both written just now).
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_state(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_state(trainer)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self._save_last_state(trainer)  # a fit stopped by max_steps mid-epoch


def checkpoint_callback() -> BestAndLastCheckpoint:
    """``goalbrake fit``'s checkpoint: the best validation accuracy, and the last state."""
    return BestAndLastCheckpoint(**checkpoint_config(save_last=True)["init_args"])


def check_checkpoint_file(path: str | os.PathLike[str] | None) -> None:
    """Refuse a ``ckpt_path`` file that is no complete checkpoint, in one line.

    A file ``torch.save`` wrote is a zip archive; a truncated or foreign file is not, and
    torch would report it as an unpickling problem whose advice (``weights_only=False``)
    is wrong here. Names Lightning resolves (``last``, ``best``) and missing files pass.

    Raises:
        ValueError: for a file that is not a zip archive.
    """
    if path is None or not Path(path).is_file() or zipfile.is_zipfile(path):
        return
    raise ValueError(
        f"Invalid ckpt_path value: '{path}' (not a complete checkpoint: the file is "
        "truncated or was not written by torch.save)"
    )


# ----------------------------------------------------------------------------- guards
class NonFiniteLossError(FloatingPointError):
    """A fit stopped because its training loss became NaN or infinite."""


class FirstNonFinite:
    """The first non-finite value of a loss series, kept on the loss's device.

    :meth:`update` costs no host sync; :meth:`found` syncs once. The sweep's pruner and
    the fit's guard read divergence the same way through this class.

    Example:
        >>> watch = FirstNonFinite()
        >>> for step, loss in enumerate([1.0, float("nan"), float("inf")]):
        ...     watch.update(torch.tensor(loss), step)
        >>> watch.found()
        (1, nan)
    """

    def __init__(self) -> None:
        self._ok: torch.Tensor | None = None  # every value so far finite
        self._value: torch.Tensor | None = None
        self._step: torch.Tensor | None = None

    def update(self, loss: torch.Tensor, step: int) -> None:
        """Record ``loss`` (its mean) as the value at ``step``."""
        loss = loss.detach().float().mean()
        bad = ~torch.isfinite(loss)
        if self._ok is None or self._value is None or self._step is None:
            self._ok = torch.ones_like(bad)
            self._value = torch.zeros_like(loss)
            self._step = torch.zeros_like(loss, dtype=torch.long)
        first = self._ok & bad
        self._value = torch.where(first, loss, self._value)
        self._step = torch.where(first, torch.full_like(self._step, step), self._step)
        self._ok = self._ok & ~bad

    def found(self) -> tuple[int, float] | None:
        """The step and value of the first non-finite loss, or None if all were finite."""
        if self._ok is None or self._value is None or self._step is None or bool(self._ok):
            return None
        return int(self._step), float(self._value)


#: The optimizer settings the divergence line names, where a param group has them.
_HYPERPARAMETERS = ("lr", "mass", "friction", "momentum")


def _hyperparameters(trainer: Trainer) -> dict[str, Any]:
    """The first param group's lr/mass/friction/momentum as they are: no conversion, so a
    0-d device tensor costs no host sync on the per-batch path."""
    if not trainer.optimizers:
        return {}
    group = trainer.optimizers[0].param_groups[0]
    return {k: group[k] for k in _HYPERPARAMETERS if k in group}


def _describe(settings: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={float(v):g}" for k, v in settings.items())


class StopOnNonFiniteLoss(Callback):
    """Stop a fit at its first NaN or infinite training loss, before any checkpoint holds it.

    The loss is checked on the device every step and read on the host every
    ``check_every`` batches, before each validation and at the end of each epoch and of
    fit, so the checkpoints (saved after validation) never hold diverged weights. The
    error names the step, the value and the optimizer's lr/mass/friction at that step.

    Raises:
        NonFiniteLossError: ``Training diverged at step 12: train/loss is nan (lr=50,
            mass=10, friction=0.1); the checkpoints keep the last finite state``.
    """

    #: Reads no logged train/loss mid-epoch (goalbrake.module.reads_loss_between_logs).
    reads_loss_between_logs = False

    def __init__(self, check_every: int = 16) -> None:
        if check_every < 1:
            raise ValueError(f"Invalid check_every value: {check_every} (must be >= 1)")
        self.check_every = check_every
        self._watch = FirstNonFinite()
        # step -> lr/mass/friction, since the last check (formatted only for the error)
        self._settings: dict[int, dict[str, Any]] = {}
        self._step = 0

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._step = trainer.global_step
        self._settings[self._step] = _hyperparameters(trainer)

    def on_train_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if isinstance(loss, torch.Tensor):
            self._watch.update(loss, self._step)
        if (batch_idx + 1) % self.check_every == 0:
            self._check(trainer)

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._check(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._check(trainer)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._check(trainer)

    def _check(self, trainer: Trainer) -> None:
        found = self._watch.found()
        diverged = found is not None
        # Every rank stops, or none: no rank waits alone in the next collective.
        diverged = trainer.strategy.reduce_boolean_decision(diverged, all=False)
        if not diverged:
            self._settings.clear()
            return
        if found is None:
            raise NonFiniteLossError("Training diverged on another rank: train/loss is not finite")
        step, value = found
        settings = _describe(self._settings.get(step, {}))
        raise NonFiniteLossError(
            f"Training diverged at step {step}: train/loss is {value}"
            + (f" ({settings})" if settings else "")
            + "; the checkpoints keep the last finite state"
        )


def logger_config(save_dir: str, name: str, version: str | None = None) -> dict[str, Any]:
    """The TensorBoard logger of a run, as a ``trainer.logger`` config."""
    init_args: dict[str, Any] = {"save_dir": save_dir, "name": name, "default_hp_metric": False}
    if version is not None:
        init_args["version"] = version
    return {"class_path": _LOGGER_CLASS, "init_args": init_args}


def trainer_defaults() -> dict[str, Any]:
    """TensorBoard logs under runs/, the best-val-acc and last checkpoints, the NaN guard,
    and the run's settings and results for TensorBoard's HParams tab."""
    return {
        "logger": logger_config(RUNS_DIR, "goalbrake"),
        "callbacks": [checkpoint_callback(), StopOnNonFiniteLoss(), HParamsLogger()],
    }


def callback_name(entry: object) -> str | None:
    """The class name of a ``trainer.callbacks`` entry (``{class_path: ...}``), else None."""
    if not isinstance(entry, Mapping) or "class_path" not in entry:
        return None
    return str(entry["class_path"]).rpartition(".")[2]


def is_goal_brake(entry: object) -> bool:
    """Whether a ``trainer.callbacks`` entry configures :class:`~goalbrake.GoalBrake`."""
    return callback_name(entry) == GoalBrake.__name__


# ----------------------------------------------------------------------------- the CLI
def _as_list(value: object) -> list[Any]:
    if not value:
        return []
    return list(value) if isinstance(value, list) else [value]


#: Subcommands :mod:`goalbrake.cli` runs itself, listed in ``goalbrake --help``.
OWN_SUBCOMMANDS = {
    "sweep": "Run an Optuna study from a sweep file (goalbrake sweep --help).",
    "report": "Summarize a study: tables, statistics, plots (goalbrake report --help).",
}
#: Process start methods whose copies lose the ``configure_optimizers`` LightningCLI attaches.
_LOSES_OPTIMIZER = ("spawn", "forkserver")


def _strategy_name(strategy: object) -> str:
    if isinstance(strategy, str):
        return strategy
    return callback_name(strategy) or type(strategy).__name__


class GoalbrakeCLI(LightningCLI):
    """LightningCLI for the app: ``--model`` is an ImageClassifier, ``--data`` any DataModule.

    Besides LightningCLI's own: ``goalbrake --help`` lists ``sweep`` and ``report``; a
    ``ckpt_path`` that is no checkpoint and a strategy that spawns processes are refused in
    one line; ``fit`` ends by printing the best and the last checkpoint's paths.
    """

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # The classifier's head follows the dataset.
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")

    def _add_subcommands(self, parser: LightningArgumentParser, **kwargs: Any) -> None:
        super()._add_subcommands(parser, **kwargs)
        # Listed for --help only: goalbrake.cli dispatches these before this parser runs.
        subcommands = parser._subcommands_action
        assert subcommands is not None
        for name, description in OWN_SUBCOMMANDS.items():
            subparser = LightningArgumentParser(description=description)
            subcommands.add_subcommand(name, subparser, help=description)

    def _parse_ckpt_path(self) -> None:
        # LightningCLI reads the checkpoint's hyperparameters first thing: check it before.
        if self.config.get("subcommand"):
            check_checkpoint_file(self.config[self.config.subcommand].get("ckpt_path"))
        super()._parse_ckpt_path()

    def after_fit(self) -> None:
        """Print where the best and the last checkpoint are (rank zero)."""
        callback = self.trainer.checkpoint_callback
        if not self.trainer.is_global_zero or not isinstance(callback, ModelCheckpoint):
            return
        if callback.best_model_path:
            score = callback.best_model_score
            value = f" ({callback.monitor} {float(score):.4f})" if score is not None else ""
            print(f"Best checkpoint: {callback.best_model_path}{value}")
        if callback.last_model_path:
            print(f"Last checkpoint: {callback.last_model_path}")

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The Trainer, with each default callback only where the config has none of its kind.

        A config that lists its own ``Checkpoint`` callback (as every sweep trial's saved
        ``config.yaml`` does) or sets ``enable_checkpointing: false`` replaces the default:
        Lightning refuses two ModelCheckpoints with one state key, and a checkpoint
        callback with checkpointing off.
        """
        config = self._get(self.config_init, "trainer", default={}) or {}
        configured = _as_list(config.get("callbacks"))
        defaults = self.trainer_defaults
        default_callbacks = _as_list(defaults.get("callbacks"))
        own = any(isinstance(c, Checkpoint) for c in configured)
        drop_checkpoint = own or config.get("enable_checkpointing") is False
        # A default the config lists itself (an HParamsLogger of its own) is not added twice:
        # Lightning refuses two callbacks with one state key.
        kept = [
            c
            for c in default_callbacks
            if not (drop_checkpoint and isinstance(c, Checkpoint))
            and not any(type(c) is type(o) for o in configured)
        ]
        if kept != default_callbacks:
            self.trainer_defaults = {**defaults, "callbacks": kept}
        try:
            trainer = super().instantiate_trainer(**kwargs)
        finally:
            self.trainer_defaults = defaults
        if getattr(trainer.strategy, "_start_method", None) in _LOSES_OPTIMIZER:
            name = _strategy_name(config.get("strategy"))
            raise ValueError(
                f"Invalid trainer.strategy value: '{name}' (its spawned processes lose the "
                "--optimizer that LightningCLI attaches to the model; use --trainer.strategy ddp)"
            )
        return trainer


def build(
    args: Sequence[str] | dict[str, Any] | None, *, run: bool = False, **kwargs: Any
) -> GoalbrakeCLI:
    """Build (and with ``run=True`` run) the app from command-line words or a config dict.

    Args:
        args: the words after ``goalbrake`` (``["fit", "--config", ...]``), or, with
            ``run=False``, a config dict (``{"config": [...], "trainer": {...}}``); None
            reads ``sys.argv``.
        run: run the subcommand in ``args``.
        kwargs: further LightningCLI arguments (e.g. ``trainer_defaults``).
    """
    kwargs.setdefault("trainer_defaults", trainer_defaults())
    kwargs.setdefault("save_config_kwargs", {"overwrite": True})
    return GoalbrakeCLI(
        ImageClassifier,
        LightningDataModule,
        subclass_mode_data=True,
        args=args,  # type: ignore[arg-type]
        run=run,
        **kwargs,
    )


def build_config(config: Mapping[str, Any]) -> GoalbrakeCLI:
    """Build (not run) a complete fit config, which brings its own logger and callbacks.

    Parser errors raise instead of exiting; no default checkpoint is added.
    """
    # LightningCLI warns when sys.argv carries words besides a dict config; a sweep's
    # argv (goalbrake sweep --config ...) is not for the trial's parser.
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        return build(
            copy.deepcopy(dict(config)),
            run=False,
            parser_kwargs={"exit_on_error": False},
            trainer_defaults={"callbacks": []},
        )
    finally:
        sys.argv = argv


# ----------------------------------------------------------------------------- process
def quiet_dependency_warnings() -> None:
    """Silence what our dependencies warn each other about, which is no news for a user.

    Lightning's CLI, not the user, calls jsonargparse APIs deprecated in 4.49, and Lightning
    2.6 uses a torch pytree check that torch 2.14 deprecates.
    """
    os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")
    warnings.filterwarnings("ignore", r".*isinstance\(treespec, LeafSpec\)", FutureWarning)


def close_process_group() -> None:
    """Destroy torch.distributed's default process group if a DDP run left one open.

    Lightning leaves it alive after ``fit``; a gloo group still alive when the interpreter
    exits can abort the process ("terminate called without an active exception", exit -6)
    after the run itself succeeded.
    """
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
