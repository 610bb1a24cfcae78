"""The ``goalbrake`` command.

``goalbrake fit|validate|test`` is LightningCLI around :class:`~goalbrake.module.ImageClassifier`
and any LightningDataModule (YAML configs in configs/); ``goalbrake sweep`` runs an Optuna
study and ``goalbrake report`` summarizes one.

Examples::

    goalbrake fit --config configs/fashionmnist/goal.yaml
    goalbrake fit --config configs/fashionmnist/phs.yaml --optimizer.friction 0.2
    goalbrake fit --print_config --config configs/cifar10/goal.yaml

Errors in the configuration or the data end the command with one line on stderr and exit
status 1 (2 for an argument the parser rejects); ``GOALBRAKE_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from goalbrake.module import ImageClassifier

__all__ = ["GoalbrakeCLI", "build", "main"]

#: Where TensorBoard runs and checkpoints go unless a config says otherwise.
RUNS_DIR = "runs"


def checkpoint_callback() -> ModelCheckpoint:
    """The checkpoint of the best validation accuracy (and the last one, for resuming)."""
    return ModelCheckpoint(
        monitor="val/acc",
        mode="max",
        filename="best-epoch{epoch:02d}-step{step}",
        auto_insert_metric_name=False,
        save_last=True,
    )


def trainer_defaults() -> dict[str, Any]:
    """TensorBoard logs under runs/ and the best-val-acc checkpoint, for every run."""
    return {
        "logger": {
            "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
            "init_args": {"save_dir": RUNS_DIR, "name": "goalbrake", "default_hp_metric": False},
        },
        "callbacks": [checkpoint_callback()],
    }


class GoalbrakeCLI(LightningCLI):
    """LightningCLI for the app: ``--model`` is an ImageClassifier, ``--data`` any DataModule."""

    def add_arguments_to_parser(self, parser: Any) -> None:
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
        configured = config.get("callbacks") or []
        configured = configured if isinstance(configured, list) else [configured]
        defaults = self.trainer_defaults
        default_callbacks = defaults.get("callbacks") or []
        default_callbacks = (
            default_callbacks if isinstance(default_callbacks, list) else [default_callbacks]
        )
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

    The CLI, the sweep objective and the tests all build a run through this function,
    so there is one path from a configuration to a Trainer.

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


_NOISE = (
    "Expected a path",
    "Does not validate",
    "Subtypes:",
    "Errors:",
    "Given value type",
    "Expected a <class 'NoneType'>",
)


def _one_line(err: BaseException) -> str:
    """The message of an error on one line, without jsonargparse's nested noise."""
    lines = [line.strip(" -") for line in str(err).splitlines()]
    kept = [line for line in lines if line and not line.startswith(_NOISE)]
    return " ".join(kept) or type(err).__name__


def quiet_dependency_warnings() -> None:
    """Silence what our dependencies warn each other about, which is no news for a user.

    Lightning's CLI, not the user, calls jsonargparse APIs deprecated in 4.49, and Lightning
    2.6 uses a torch pytree check that torch 2.14 deprecates.
    """
    os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")
    warnings.filterwarnings("ignore", r".*isinstance\(treespec, LeafSpec\)", FutureWarning)


def main(args: Sequence[str] | None = None) -> int:
    """Entry point of the ``goalbrake`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if args is None else args)
    if argv[:1] == ["sweep"]:
        from goalbrake.sweep.command import main as sweep_main

        return sweep_main(argv[1:])
    if argv[:1] == ["report"]:
        from goalbrake.sweep.report import main as report_main

        return report_main(argv[1:])
    quiet_dependency_warnings()
    from jsonargparse import ArgumentError

    try:
        # Parser errors raise (exit_on_error=False) so they can be said in one line.
        build(None if args is None else argv, run=True, parser_kwargs={"exit_on_error": False})
    except ArgumentError as err:
        if os.environ.get("GOALBRAKE_DEBUG"):
            raise
        sub = argv[0] if argv and not argv[0].startswith("-") else ""
        print(
            f"goalbrake: error: {_one_line(err)} (see: goalbrake {sub} --help)".replace("  ", " "),
            file=sys.stderr,
        )
        return 2
    except (ValueError, OSError, MisconfigurationException) as err:
        if os.environ.get("GOALBRAKE_DEBUG"):
            raise
        print(f"goalbrake: error: {_one_line(err)}", file=sys.stderr)
        return 1
    # Only after success: after an error another rank may still wait in a collective.
    close_process_group()
    return 0


def close_process_group() -> None:
    """Destroy torch.distributed's default process group if a DDP run left one open.

    Lightning leaves it alive after ``fit``; a gloo group still alive when the interpreter
    exits can abort the process ("terminate called without an active exception", exit -6)
    after the run itself succeeded.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
