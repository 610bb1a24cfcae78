"""The app's one builder: a configuration in, a LightningCLI (model, data, Trainer) out.

``goalbrake fit|validate|test`` (:mod:`goalbrake.cli`), every sweep trial
(:mod:`goalbrake.sweep.run.objective`), the sweep's config check and the tests build a run
through :func:`build`, so there is one path from a configuration to a Trainer. This module
also holds the one checkpoint and logger policy (:func:`checkpoint_config`,
:func:`logger_config`) and the one test of "is this a GoalBrake callback entry"
(:func:`is_goal_brake`). See docs/design.md, "The app and its builder".

Example:
    >>> cli = build({"config": ["configs/fashionmnist/goal.yaml"]})  # doctest: +SKIP
    >>> cli.trainer.fit(cli.model, datamodule=cli.datamodule)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch.distributed as dist
from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from goalbrake.callbacks import GoalBrake
from goalbrake.module import ImageClassifier

__all__ = [
    "RUNS_DIR",
    "GoalbrakeCLI",
    "build",
    "build_config",
    "callback_name",
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


def checkpoint_callback() -> ModelCheckpoint:
    """``goalbrake fit``'s checkpoint: the best validation accuracy, and the last one."""
    return ModelCheckpoint(**checkpoint_config(save_last=True)["init_args"])


def logger_config(save_dir: str, name: str, version: str | None = None) -> dict[str, Any]:
    """The TensorBoard logger of a run, as a ``trainer.logger`` config."""
    init_args: dict[str, Any] = {"save_dir": save_dir, "name": name, "default_hp_metric": False}
    if version is not None:
        init_args["version"] = version
    return {"class_path": _LOGGER_CLASS, "init_args": init_args}


def trainer_defaults() -> dict[str, Any]:
    """TensorBoard logs under runs/ and the best-val-acc checkpoint, for every run."""
    return {
        "logger": logger_config(RUNS_DIR, "goalbrake"),
        "callbacks": [checkpoint_callback()],
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


class GoalbrakeCLI(LightningCLI):
    """LightningCLI for the app: ``--model`` is an ImageClassifier, ``--data`` any DataModule."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # The classifier's head follows the dataset.
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The Trainer, with the default best-val checkpoint only where the config has none.

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
        if own or config.get("enable_checkpointing") is False:
            kept = [c for c in default_callbacks if not isinstance(c, Checkpoint)]
            self.trainer_defaults = {**defaults, "callbacks": kept}
        try:
            return super().instantiate_trainer(**kwargs)
        finally:
            self.trainer_defaults = defaults


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
