"""Helpers of the sweep tests: a tiny base config, running ``goalbrake sweep`` as a real
process, and reading a study back as a new process would."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

REPO = Path(__file__).resolve().parents[2]
#: Per-command limit of the end-to-end tests (a hung sweep fails instead of blocking CI).
COMMAND_TIMEOUT_S = 240


def tiny_base(
    data_dir: Path,
    *,
    epochs: int = 2,
    batches: int = 3,
    brake: bool = True,
    gate: Path | None = None,
    ema_decay: float | None = None,
) -> dict:
    """A LeNet/PHS fit on the tiny FashionMNIST that learns within a few steps.

    With ``gate``, every trial holds after its first epoch until that file exists
    (:class:`tests.sweep.gate.Gate`); with ``ema_decay``, Lightning's EMAWeightAveraging
    averages the weights (validation and checkpoints see the average).
    """
    callbacks = (
        [
            {
                "class_path": "goalbrake.GoalBrake",
                "init_args": {
                    "goal": 0.5,
                    "factor": 10.0,
                    "mode": "remaining",
                    "reference_batches": 1,
                },
            }
        ]
        if brake
        else []
    )
    if gate is not None:
        callbacks.append({"class_path": "tests.sweep.gate.Gate", "init_args": {"path": str(gate)}})
    if ema_decay is not None:
        callbacks.append(
            {
                "class_path": "lightning.pytorch.callbacks.EMAWeightAveraging",
                "init_args": {"decay": ema_decay},
            }
        )
    return {
        "seed_everything": 0,
        "trainer": {
            "max_epochs": epochs,
            "limit_train_batches": batches,
            "limit_val_batches": 1,
            "log_every_n_steps": 1,
            "accelerator": "cpu",
            "num_sanity_val_steps": 0,
            "callbacks": callbacks,
        },
        "model": {
            "backbone": {
                "class_path": "goalbrake.models.LeNet",
                "init_args": {"in_channels": 1, "image_size": 28},
            }
        },
        "data": {
            "class_path": "goalbrake.data.FashionMNISTDataModule",
            "init_args": {
                "data_dir": str(data_dir),
                "batch_size": 32,
                "val_size": 64,
                "eval_batch_size": 64,
            },
        },
        # x = αγ/m = 1 (momentum e^-1), SGD-equivalent step α²/m = 0.1 at α = 0.1.
        "optimizer": {
            "class_path": "goalbrake.PHS",
            "init_args": {"lr": 0.1, "mass": 0.1, "friction": 1.0},
        },
    }


def sweep_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "goalbrake.cli", "sweep", *args]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.setdefault("CUDA_VISIBLE_DEVICES", "")
    return env


def run_sweep(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``goalbrake sweep`` to the end in a real process."""
    return subprocess.run(
        sweep_command(*args),
        cwd=cwd,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )


def start_sweep(*args: str, cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start ``goalbrake sweep`` in the background (output to ``log``)."""
    with log.open("w") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            sweep_command(*args), cwd=cwd, env=child_env(), stdout=handle, stderr=subprocess.STDOUT
        )


def journal_study(path: Path, name: str) -> optuna.Study:
    """Open a journal study from scratch, as a new process would."""
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    return optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(path))))


def wait_for(
    predicate: Callable[[], Any],
    timeout: float,
    what: str,
    every: float = 0.25,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> Any:
    """Poll ``predicate`` until it is truthy; fail early (with the log's tail) if ``proc`` ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-4000:] if log is not None and log.exists() else ""
            raise AssertionError(
                f"the sweep exited ({proc.returncode}) before {what}\n--- log tail ---\n{tail}"
            )
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def trained_trial(study_path: Path, name: str) -> optuna.trial.FrozenTrial | None:
    """A RUNNING trial that is past its first epoch (so it is mid-training)."""
    if not study_path.exists():
        return None
    try:
        study = journal_study(study_path, name)
    except KeyError:
        return None
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if isinstance(t.user_attrs.get("worker"), dict) and (t.user_attrs.get("curve") or {}).get(
            "epoch"
        ):
            return t
    return None


def explain(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stderr tail ---\n{proc.stderr[-4000:]}"
