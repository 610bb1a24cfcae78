"""Synthetic benchmark journals, made the way ``goalbrake sweep`` makes them, for the tests of
experiments/benchmark/{selection,report}.py (tests/test_benchmark_select.py,
tests/test_benchmark_report.py import these helpers).

A study is created by the sweep's own :func:`~goalbrake.sweep.run.study.load_study` from
the real study file, each trial's setting comes from :meth:`SweepSpec.suggest` (a random
sampler for a tuning study, the grid for a confirmation), its user attrs are those of
:mod:`goalbrake.sweep.attrs`, and an interrupted trial is retried by the sweep's
:func:`~goalbrake.sweep.run.recovery.retry`, so the retry carries ``failed_trial``.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType

import optuna
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

from goalbrake.sweep.attrs import (
    BEST_EPOCH,
    CONFIG,
    CURVE,
    DURATION_S,
    EPOCHS,
    FAIL_REASON,
    FINAL_VALUE,
    NONFINITE,
    PRUNE_REASON,
    TEST,
)
from goalbrake.sweep.define import SweepSpec, load_spec
from goalbrake.sweep.report.results import collect
from goalbrake.sweep.run.recovery import KILLED, retry
from goalbrake.sweep.run.study import load_study

REPO = Path(__file__).resolve().parents[1]
BENCHMARK = REPO / "experiments" / "benchmark"
INTERRUPTED = "interrupted: the worker was stopped"
#: One planned trial: ("complete", value), ("nan",), ("interrupted",), ("error",) or
#: ("running",).
Plan = Sequence[tuple]


def load_script(name: str) -> ModuleType:
    """experiments/benchmark/<name>.py as module ``name`` (report.py imports selection)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCHMARK / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def _storage(path: Path) -> JournalStorage:
    return JournalStorage(JournalFileBackend(str(path)))


def _finish(study: optuna.Study, trial: optuna.Trial, step: tuple, duration: float) -> None:
    kind = step[0]
    trial.set_user_attr(DURATION_S, duration)
    if kind == "complete":
        value = step[1]
        trial.set_user_attr(CURVE, {"epoch": [0, 1], "val/acc": [value - 0.01, value]})
        for key, attr in ((BEST_EPOCH, 1), (FINAL_VALUE, value), (EPOCHS, 2)):
            trial.set_user_attr(key, attr)
        study.tell(trial, value)
    elif kind == "nan":
        trial.set_user_attr(PRUNE_REASON, "non-finite training loss at step 7")
        trial.set_user_attr(NONFINITE, True)
        study.tell(trial, state=TrialState.PRUNED)
    elif kind in ("interrupted", "killed", "error"):
        reason = {"interrupted": INTERRUPTED, "killed": KILLED}.get(
            kind, "error: RuntimeError: boom"
        )
        trial.set_user_attr(FAIL_REASON, reason)
        study.tell(trial, state=TrialState.FAIL)
        if kind != "error":
            assert retry(study, study.trials[trial.number], max_retry=2)
    elif kind != "running":
        raise ValueError(f"unknown plan step {kind!r}")


def tuning_journal(path: Path, dataset: str, arm: str, plan: Plan) -> SweepSpec:
    """A tuning journal of the arm's real study file with the planned trials, in order (an
    interrupted trial's retry is the next trial, and takes the next plan step)."""
    spec = load_spec(BENCHMARK / f"{dataset}_{arm}.yaml")
    sampler = optuna.samplers.RandomSampler(seed=len(plan))
    study = load_study(spec, _storage(path), sampler=sampler, create=True)
    for i, step in enumerate(plan):
        trial = study.ask()
        setting = spec.suggest(trial)
        if spec.goal_rule is not None:
            setting = spec.with_goal(setting, 0.15 + i / 1000)
        trial.set_user_attr(CONFIG, spec.describe(setting, spec.trial_config(setting)))
        _finish(study, trial, step, duration=60.0 * (i + 1))
    return spec


def complete_plan(values: Sequence[float]) -> list[tuple]:
    return [("complete", v) for v in values]


#: seed -> (test/acc final, test/acc best); a missing seed's trial FAILs.
Tests = Mapping[int, tuple[float, float]]


def confirm_journal(
    path: Path, confirm_file: Path, tests: Tests, curve: Callable[[int], list[float]]
) -> SweepSpec:
    """A confirmation journal of ``confirm_file``: every grid trial, tested as the sweep
    records it (``test`` user attr), with the val/acc ``curve(seed)``."""
    spec = load_spec(confirm_file)
    study = load_study(spec, _storage(path), create=True)

    def objective(trial: optuna.Trial) -> float:
        setting = spec.suggest(trial)
        trial.set_user_attr(CONFIG, spec.describe(setting, spec.trial_config(setting)))
        trial.set_user_attr(DURATION_S, 600.0)
        if setting.seed not in tests:
            trial.set_user_attr(FAIL_REASON, "error: RuntimeError: boom")
            raise RuntimeError("boom")
        final, best = tests[setting.seed]
        values = curve(setting.seed)
        trial.set_user_attr(CURVE, {"epoch": list(range(len(values))), "val/acc": values})
        trial.set_user_attr(TEST, {"final": {"test/acc": final}, "best": {"test/acc": best}})
        return max(values)

    # optimize, as a worker does: the grid sampler stops the study when the grid is done
    study.optimize(objective, n_trials=spec.grid_size(), catch=(RuntimeError,))
    return spec


def open_study(path: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=_storage(path))


def test_a_synthetic_tuning_journal_reads_back_like_a_sweeps(tmp_path: Path) -> None:
    """States, the retry's link and the reasons, as the report reads a sweep's journal."""
    plan = [("complete", 0.8), ("interrupted",), ("complete", 0.85), ("nan",), ("running",)]
    spec = tuning_journal(tmp_path / "t.journal", "cifar10", "sgd", plan)
    results = collect(open_study(tmp_path / "t.journal", spec.study))
    states = [(r.number, r.state, r.retry_of) for r in results.rows]
    assert states == [
        (0, "COMPLETE", None),
        (1, "FAIL", None),
        (2, "COMPLETE", 1),
        (3, "PRUNED", None),
        (4, "RUNNING", None),
    ]
    assert results.rows[1].reason == INTERRUPTED
    assert results.rows[2].config["optimizer.lr"] == results.rows[1].config["optimizer.lr"]
    assert results.rows[0].config["method"] == "sgd"
