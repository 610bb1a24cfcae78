"""The ``goalbrake`` command.

``goalbrake fit|validate|test|predict`` is LightningCLI around
:class:`~goalbrake.module.ImageClassifier` and any LightningDataModule (YAML configs in
configs/), built by :func:`goalbrake.app.build`;
``goalbrake sweep`` runs an Optuna study and ``goalbrake report`` summarizes one.

Examples::

    goalbrake fit --config configs/fashionmnist/goal.yaml
    goalbrake fit --config configs/fashionmnist/phs.yaml --optimizer.friction 0.2
    goalbrake fit --print_config --config configs/cifar10/goal.yaml

Errors in the configuration, the data or a checkpoint file, and a fit whose training loss
turns NaN or infinite, end the command with one line on stderr and exit status 1 (2 for an
argument the parser rejects); ``GOALBRAKE_DEBUG=1`` shows the traceback. An error raised
inside a dependency, not by goalbrake, keeps its traceback: it is a bug to report. Nothing
inside the package imports this module.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from jsonargparse import ArgumentError
from lightning.fabric.utilities.exceptions import MisconfigurationException

from goalbrake.app import NonFiniteLossError, build, close_process_group, quiet_dependency_warnings
from goalbrake.sweep.report.command import main as report_main
from goalbrake.sweep.run.command import main as sweep_main

__all__ = ["close_process_group", "main"]

_NOISE = (
    "Expected a path",
    "Does not validate",
    "Subtypes:",
    "Errors:",
    "Given value type",
    "Expected a <class 'NoneType'>",
)


_PACKAGE = Path(__file__).resolve().parent  # the goalbrake package


def _one_line(err: BaseException) -> str:
    """The message of an error on one line, without jsonargparse's nested noise.

    Where jsonargparse wraps one of goalbrake's own checks (``Invalid goal value: ...``),
    that line alone is the message.
    """
    lines = [line.strip(" -") for line in str(err).splitlines()]
    kept = [line for line in lines if line and not line.startswith(_NOISE)]
    for line in kept:
        start = line.find("Invalid ")
        if start >= 0 and " value: " in line:
            # jsonargparse appends its subclass help and the whole namespace to the line.
            return line[start:].split(" Not a valid subclass")[0]
    return " ".join(kept) or type(err).__name__


def _raised_by_goalbrake(err: BaseException) -> bool:
    """Whether the innermost frame of ``err``'s traceback is goalbrake's own code."""
    frames = traceback.extract_tb(err.__traceback__)
    return bool(frames) and Path(frames[-1].filename).resolve().is_relative_to(_PACKAGE)


def _fail(message: str, status: int) -> int:
    print(f"goalbrake: error: {message}", file=sys.stderr)
    return status


def main(args: Sequence[str] | None = None) -> int:
    """Entry point of the ``goalbrake`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if args is None else args)
    if argv[:1] == ["sweep"]:
        return sweep_main(argv[1:])
    if argv[:1] == ["report"]:
        return report_main(argv[1:])
    quiet_dependency_warnings()
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
    except (ValueError, OSError, MisconfigurationException, NonFiniteLossError) as err:
        if os.environ.get("GOALBRAKE_DEBUG"):
            raise
        return _fail(_one_line(err), 1)
    except (TypeError, RuntimeError) as err:
        # A check of goalbrake's own (GoalBrake's optimizer, EnergyMonitor's logger).
        if os.environ.get("GOALBRAKE_DEBUG") or not _raised_by_goalbrake(err):
            raise
        return _fail(_one_line(err), 1)
    # Only after success: after an error another rank may still wait in a collective.
    close_process_group()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
