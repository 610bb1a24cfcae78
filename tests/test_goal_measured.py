"""experiments/benchmark/goal_measured.py on small synthetic journals: the trials of arm 6
(goal searched) and arm 8 (goal from earlier trials) written with the attrs the sweep
writes, counted as docs/benchmark.md's Deviations says, tabulated and drawn."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState, create_trial

from goalbrake.sweep.attrs import CONFIG, FAIL_REASON, GOAL, WORKER
from goalbrake.sweep.run.goal_from_trials import MeasuredGoal

REPO = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location(
    "goal_measured", REPO / "experiments" / "benchmark" / "goal_measured.py"
)
assert SPEC is not None and SPEC.loader is not None
goal_measured = importlib.util.module_from_spec(SPEC)
sys.modules[SPEC.name] = goal_measured  # its dataclasses look their module up there
SPEC.loader.exec_module(goal_measured)

LR = FloatDistribution(0.01, 0.5, log=True)
GOAL_D = FloatDistribution(0.05, 0.7)
MODE_D = CategoricalDistribution(["remaining", "reduction"])
WORKER_ATTR = {"host": "h", "pid": 1, "index": 0}


def _journal(path: Path, name: str) -> optuna.Study:
    storage = JournalStorage(JournalFileBackend(str(path)))
    return optuna.create_study(study_name=name, storage=storage, direction="maximize")


def _trial(
    state: TrialState = TrialState.COMPLETE,
    value: float | None = None,
    params: dict[str, Any] | None = None,
    user: dict[str, Any] | None = None,
    system: dict[str, Any] | None = None,
) -> optuna.trial.FrozenTrial:
    params = params or {"optimizer.lr": 0.1}
    dists = {"optimizer.lr": LR, "brake.goal": GOAL_D, "brake.mode": MODE_D}
    config = {"base": "configs/fashionmnist_phs_goal.yaml", "method": "goal", **params, "seed": 0}
    return create_trial(
        state=state,
        value=value,
        params=params,
        distributions={k: dists[k] for k in params},
        user_attrs={WORKER: WORKER_ATTR, CONFIG: config, **(user or {})},
        system_attrs=system or {},
    )


# Arm 6: 19 trials; trial 3 stopped by the operator and retried as trial 10 (the best);
# trial 5 pruned; trial 18 still running.
SEARCHED_VALUES = [0.80, 0.82, 0.70, None, 0.81, None, 0.84, 0.60, 0.83, 0.85]
SEARCHED_VALUES += [0.95, 0.86, 0.87, 0.70, 0.88, 0.71, 0.72, 0.90]


def searched_journal(path: Path) -> Path:
    study = _journal(path, "benchmark_fashionmnist_phs_goal")
    for number, value in enumerate(SEARCHED_VALUES):
        mode = "reduction" if number % 2 else "remaining"
        params = {"optimizer.lr": 0.1, "brake.goal": 0.1 + 0.01 * number, "brake.mode": mode}
        if number == 3:
            stopped = {FAIL_REASON: "interrupted: the worker was stopped"}
            study.add_trial(_trial(TrialState.FAIL, params=params, user=stopped))
        elif number == 5:
            study.add_trial(_trial(TrialState.PRUNED, params=params))
        elif number == 10:
            retry = {"failed_trial": 3, "retry_history": [3]}
            study.add_trial(_trial(value=value, params=params, system=retry))
        else:
            study.add_trial(_trial(value=value, params=params))
    study.add_trial(_trial(TrialState.RUNNING, params={"optimizer.lr": 0.2}))
    return path


def measured_journal(path: Path) -> Path:
    """Arm 8: 8 trials, the first 4 at the startup goal, then measured goals."""
    study = _journal(path, "benchmark_fashionmnist_phs_goal_measured")
    for number in range(8):
        if number < 4:
            goal = MeasuredGoal(0.15, f"startup goal ({number} of 4 trials complete)")
        else:
            ratios = tuple(0.3 + 0.01 * k for k in range(number))
            goal = MeasuredGoal(
                0.3 + 0.005 * number,
                f"q0.5 of L/L₀ at 0.5 of the budget over {number} trials",
                tuple(range(number)),
                ratios,
            )
        study.add_trial(_trial(value=0.8 + 0.01 * number, user={GOAL: goal.record()}))
    return path


def test_the_trials_are_counted_with_the_retry_in_the_stopped_trials_place(
    tmp_path: Path,
) -> None:
    arm = goal_measured.load_arm(searched_journal(tmp_path / "a6.journal"), "arm 6")
    numbers = [t.number for t in arm.trials]
    assert numbers == [0, 1, 2, 10, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18]
    best = goal_measured.best_after(arm.trials, 8)
    assert (best.number, best.value) == (10, 0.95)  # the retry counts among the first 8
    assert goal_measured.best_after(arm.trials, 24) == "17 of 24 finished"
    assert goal_measured.best_after(arm.trials[:2], 2).number == 1


def test_the_goal_of_a_trial_is_a_remaining_fraction() -> None:
    sampled = _trial(value=0.9, params={"brake.goal": 0.2, "brake.mode": "reduction"})
    assert goal_measured.goal_of(sampled) == (pytest.approx(0.8), "reduction")
    remaining = _trial(value=0.9, params={"brake.goal": 0.2, "brake.mode": "remaining"})
    assert goal_measured.goal_of(remaining) == (0.2, "remaining")
    measured = MeasuredGoal(0.31, "q0.5 of L/L₀ at 0.5 of the budget over 9 trials", (0,), (0.3,))
    assert goal_measured.goal_of(_trial(value=0.9, user={GOAL: measured.record()})) == (
        0.31,
        "measured",
    )
    startup = MeasuredGoal(0.15, "startup goal (2 of 8 trials complete)")
    assert goal_measured.goal_of(_trial(value=0.9, user={GOAL: startup.record()})) == (
        0.15,
        "startup",
    )
    assert goal_measured.goal_of(_trial(value=0.9)) is None


def test_main_prints_the_table_and_draws_both_panels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    searched = searched_journal(tmp_path / "a6.journal")
    measured = measured_journal(tmp_path / "a8.journal")
    figure = tmp_path / "img" / "goal_from_trials.png"
    args = ["--searched", str(searched), "--measured", str(measured), "--figure", str(figure)]
    assert goal_measured.main(args) == 0
    out = capsys.readouterr().out.splitlines()
    label6 = "arm 6, phs_goal (goal searched)"
    label8 = "arm 8, phs_goal_measured (goal from earlier trials)"
    rows = {line.split("  ")[0]: line.split("  ", 1)[1].split() for line in out[1:3]}
    assert rows[label6] == [
        "0.9500",
        "(#10)",
        "0.9500",
        "(#10)",
        "not",
        "yet",
        "(17",
        "of",
        "24",
        "finished)",
    ]
    assert rows[label8] == [
        "0.8700",
        "(#7)",
        "not",
        "yet",
        "(8",
        "of",
        "16",
        "finished)",
        "not",
        "yet",
        "(8",
        "of",
        "24",
        "finished)",
    ]
    assert out[-1] == f"figure: {figure}"
    assert figure.stat().st_size > 10_000

    arms = [
        goal_measured.load_arm(searched, label6),
        goal_measured.load_arm(measured, label8),
    ]
    fig = goal_measured.goals_figure(arms)
    top, bottom = fig.axes
    best6, best8 = (line for line in top.get_lines() if line.get_drawstyle() == "steps-post")
    assert list(best8.get_ydata()) == pytest.approx([0.8 + 0.01 * n for n in range(8)])
    assert max(best6.get_ydata()) == 0.95 and len(best6.get_xdata()) == 17  # 18th running
    goals = {
        (line.get_color(), line.get_label()): list(zip(*line.get_data(), strict=True))
        for line in bottom.get_lines()
        if line.get_label() in goal_measured.GOAL_LABELS
    }
    red, blue = (color for color, _ in goal_measured.STYLES)
    # Arm 6 at position 4 is trial 10 (remaining, 0.2); at 2 trial 1 (reduction 0.11: 0.89).
    assert (4, pytest.approx(0.2)) in goals[red, "remaining"]
    assert (2, pytest.approx(0.89)) in goals[red, "reduction"]
    assert len(goals[red, "remaining"]) + len(goals[red, "reduction"]) == 17  # 18th: no goal
    assert goals[blue, "startup"] == [(n, 0.15) for n in range(1, 5)]
    assert goals[blue, "measured"] == [(n + 1, pytest.approx(0.3 + 0.005 * n)) for n in range(4, 8)]


def test_an_arm_not_started_yet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    searched = searched_journal(tmp_path / "a6.journal")
    missing = tmp_path / "a8.journal"
    figure = tmp_path / "g.png"
    args = ["--searched", str(searched), "--measured", str(missing), "--figure", str(figure)]
    assert goal_measured.main(args) == 0
    out = capsys.readouterr().out
    assert "arm 8, phs_goal_measured (goal from earlier trials)  not started" in out
    assert not missing.exists() and figure.is_file()  # the journal is only read
