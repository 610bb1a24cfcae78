"""``brake.goal: {from_trials: ...}``: the goal measured on the study's own earlier trials.

The rule's one-line errors, the quantile over the COMPLETE trials at a fraction of their
budget, the startup goal, a retry keeping its original's goal, and a real sweep that is
SIGKILLed and resumed giving the same goals to the same trials.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import yaml
from optuna.trial import TrialState

from goalbrake.sweep.attrs import CONFIG, GOAL, LOSS_RATIO
from goalbrake.sweep.define import SweepSpecError, load_spec
from goalbrake.sweep.define.params import GoalFromTrials
from goalbrake.sweep.run.goal_from_trials import (
    goal_for_trial,
    loss_ratio_record,
    measure_goal,
    ratio_at,
)
from goalbrake.sweep.run.recovery import retried_from, retry
from tests.sweep.helpers import (
    explain,
    journal_study,
    run_sweep,
    start_sweep,
    tiny_base,
    wait_for,
)

RULE = {"from_trials": {"quantile": 0.5, "at": 0.5, "startup": 8, "startup_goal": 0.15}}


def _rule_sweep(rule: object, **extra: Any) -> dict[str, Any]:
    space = {"optimizer.lr": {"low": 0.05, "high": 0.2}, "brake.goal": rule}
    return {"sampler": "random", **extra, "space": {**space, **extra.pop("space", {})}}


# ----------------------------------------------------------------- the sweep file
def test_the_benchmark_spelling(make_sweep: Callable[..., Path]) -> None:
    spec = load_spec(make_sweep(_rule_sweep(RULE)))
    assert spec.goal_rule == GoalFromTrials(startup=8, startup_goal=0.15, quantile=0.5, at=0.5)
    assert "brake.goal" not in spec.space  # not sampled
    assert spec.fixed["brake.mode"] == "remaining"
    assert spec.param_names() == ["optimizer.lr", "brake.goal"]
    # Its default quantile is the median, its default point the final epoch.
    short = {"from_trials": {"startup": 1, "startup_goal": 0.3}}
    spec = load_spec(make_sweep(_rule_sweep(short)))
    assert spec.goal_rule == GoalFromTrials(startup=1, startup_goal=0.3, quantile=0.5, at=1.0)


def _rule(**kwargs: object) -> dict[str, dict[str, object]]:
    return {"from_trials": {**RULE["from_trials"], **kwargs}}


BAD = [
    (_rule(quantile=1.0), "invalid quantile 1.0 for brake.goal: from_trials (must be in (0, 1))"),
    (_rule(quantile=0), "invalid quantile 0.0 for brake.goal: from_trials (must be in (0, 1))"),
    (
        _rule(at=0),
        "invalid at 0.0 for brake.goal: from_trials (must be in (0, 1], 1: the final epoch)",
    ),
    (
        _rule(at=1.5),
        "invalid at 1.5 for brake.goal: from_trials (must be in (0, 1], 1: the final epoch)",
    ),
    (
        _rule(startup=0),
        "invalid startup 0 for brake.goal: from_trials (must be an integer >= 1)",
    ),
    (
        _rule(startup=2.5),
        "invalid startup 2.5 for brake.goal: from_trials (must be an integer >= 1)",
    ),
    (
        _rule(startup_goal=1.0),
        "invalid startup_goal 1.0 for brake.goal: from_trials (must be in (0, 1), a remaining "
        "fraction of L₀)",
    ),
    (
        _rule(startup_goal=0),
        "invalid startup_goal 0.0 for brake.goal: from_trials (must be in (0, 1), a remaining "
        "fraction of L₀)",
    ),
    (
        _rule(quantile="half"),
        "invalid quantile 'half' for brake.goal: from_trials (must be a number)",
    ),
    (
        _rule(margin=1.1),
        "unknown key 'margin' for brake.goal: from_trials (allowed: quantile, at, startup, "
        "startup_goal)",
    ),
    (
        {"from_trials": {"quantile": 0.5, "startup_goal": 0.15}},
        "brake.goal: from_trials needs startup (the goal of the first trials)",
    ),
    (
        {"from_trials": [0.5]},
        "invalid from_trials [0.5] for brake.goal (a mapping of quantile, at, startup, "
        "startup_goal)",
    ),
    ({**RULE, "low": 0.1}, "unknown key 'low' for brake.goal (from_trials alone)"),
]


@pytest.mark.parametrize(("rule", "message"), BAD, ids=[m.split(" (")[0][:48] for _, m in BAD])
def test_bad_rule(make_sweep: Callable[..., Path], rule: object, message: str) -> None:
    path = make_sweep(_rule_sweep(rule))
    with pytest.raises(SweepSpecError) as info:
        load_spec(path)
    assert str(info.value) == f"{path}: {message}"


BAD_SWEEP = [
    (
        {"sampler": "random", "space": {"optimizer.lr": RULE}},
        "from_trials is a rule for brake.goal, not for optimizer.lr",
    ),
    (
        {"sampler": "grid", "space": {"optimizer.lr": [0.1], "brake.goal": RULE}},
        "brake.goal: from_trials needs sampler tpe or random (a grid's points are fixed "
        "before any trial)",
    ),
    (
        _rule_sweep(RULE, space={"brake.mode": ["remaining", "reduction"]}),
        "brake.goal: from_trials gives a remaining fraction of L₀: brake.mode must be "
        "remaining (got searched; drop it)",
    ),
    (
        _rule_sweep(RULE, fixed={"brake.mode": "reduction"}),
        "brake.goal: from_trials gives a remaining fraction of L₀: brake.mode must be "
        "remaining (got reduction; drop it)",
    ),
    (
        _rule_sweep(RULE, fixed={"brake.goal": 0.2}),
        "parameter brake.goal is given twice",
    ),
]


@pytest.mark.parametrize(
    ("sweep", "message"), BAD_SWEEP, ids=[m.split(" (")[0][:48] for _, m in BAD_SWEEP]
)
def test_bad_sweep_with_a_rule(make_sweep: Callable[..., Path], sweep: dict, message: str) -> None:
    path = make_sweep(sweep)
    with pytest.raises(SweepSpecError) as info:
        load_spec(path)
    assert str(info.value) == f"{path}: {message}"


@pytest.mark.parametrize(
    ("key", "value"), [("goal_from", "runs/earlier"), ("at_step", 100), ("stages", [[0.5, 10]])]
)
def test_a_base_goal_set_another_way_is_refused(
    make_sweep: Callable[..., Path], tmp_path: Path, key: str, value: object
) -> None:
    path = make_sweep(_rule_sweep(RULE))
    base = yaml.safe_load((tmp_path / "base.yaml").read_text())
    base["trainer"]["callbacks"][0]["init_args"][key] = value
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    with pytest.raises(SweepSpecError) as info:
        load_spec(path)
    assert str(info.value) == (
        f"{path}: brake.goal: from_trials and brake.{key}={value!r} (base base.yaml) both set "
        f"the goal (drop brake.{key})"
    )


def test_a_base_without_goal_brake_is_refused(make_sweep: Callable[..., Path]) -> None:
    path = make_sweep(_rule_sweep(RULE), brake=False)
    with pytest.raises(SweepSpecError, match=r"space: .*brake\.goal") as info:
        load_spec(path)
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------- the ratios and the rule
def test_loss_ratio_record_divides_by_the_reference_loss() -> None:
    curve = {
        "epoch": [0, 1, 2, 3],
        "brake/smoothed_loss": [1.0, None, 0.5, 0.25],
        "brake/reference_loss": [None, 2.0, 2.0, 2.0],
        "val/acc": [0.1, 0.2, 0.3, 0.4],
    }
    record = loss_ratio_record(curve, budget=4)
    assert record == {"epoch": [0, 2, 3], "ratio": [0.5, 0.25, 0.125], "budget": 4}
    assert loss_ratio_record({"epoch": [0], "val/acc": [0.1]}, budget=1) is None


@pytest.mark.parametrize(
    ("at", "expected"),
    [(1.0, 0.125), (0.75, 0.25), (0.5, 0.5), (0.25, 0.5), (0.1, 0.5)],
)
def test_ratio_at_the_fraction_of_the_budget(at: float, expected: float) -> None:
    # Epoch e counts as e + 1 epochs: at 0.5 of 4 epochs is the end of epoch 1 (index 1),
    # which has no ratio, so epoch 0's; below one epoch the first recorded one.
    record = {"epoch": [0, 2, 3], "ratio": [0.5, 0.25, 0.125], "budget": 4}
    assert ratio_at(record, at) == expected
    assert ratio_at(None, at) is None


def _complete(study: optuna.Study, ratios: list[float], budget: int = 2) -> None:
    for ratio in ratios:
        study.add_trial(
            optuna.trial.create_trial(
                value=0.5,
                user_attrs={
                    LOSS_RATIO: {"epoch": [0, 1], "ratio": [ratio, ratio / 2], "budget": budget}
                },
            )
        )


def test_the_quantile_of_the_complete_trials_after_the_startup() -> None:
    study = optuna.create_study()
    rule = GoalFromTrials(startup=3, startup_goal=0.15, quantile=0.25, at=0.5)
    _complete(study, [0.4, 0.2])
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))
    study.add_trial(optuna.trial.create_trial(value=0.1))  # no GoalBrake: left out
    first = measure_goal(rule, study.trials)
    assert first.goal == 0.15 and first.trials == (0, 1)
    assert first.how == "startup goal (2 of 3 trials complete)"
    _complete(study, [0.6, 0.8])
    goal = measure_goal(rule, study.trials)
    assert goal.trials == (0, 1, 4, 5) and goal.ratios == (0.4, 0.2, 0.6, 0.8)
    assert goal.goal == pytest.approx(float(np.quantile([0.2, 0.4, 0.6, 0.8], 0.25)))
    assert goal.how == "q0.25 of L/L₀ at 0.5 of the budget over 4 trials"
    final = measure_goal(GoalFromTrials(startup=3, startup_goal=0.15, at=1.0), study.trials)
    assert final.goal == pytest.approx(float(np.median([0.2, 0.1, 0.3, 0.4])))


def test_a_quantile_outside_0_1_falls_back_to_the_startup_goal() -> None:
    study = optuna.create_study()
    _complete(study, [1.2, 1.4])  # losses above L₀: a goal >= 1 would brake at once
    goal = measure_goal(GoalFromTrials(startup=1, startup_goal=0.15, at=0.5), study.trials)
    assert goal.goal == 0.15
    assert goal.how == (
        "startup goal (q0.5 of L/L₀ at 0.5 of the budget over 2 trials gave 1.3, not in (0, 1))"
    )


def test_a_retry_keeps_its_originals_goal() -> None:
    study = optuna.create_study()
    rule = GoalFromTrials(startup=1, startup_goal=0.15, quantile=0.5, at=0.5)
    _complete(study, [0.4])
    original = study.ask()
    assert goal_for_trial(original, rule).goal == pytest.approx(0.4)
    study.tell(original, state=TrialState.FAIL)
    assert retry(study, study.trials[original.number], max_retry=2)
    _complete(study, [0.2, 0.1])  # finished while the retry waited
    again = study.ask()
    assert retried_from(study.trials[again.number]) == original.number
    goal = goal_for_trial(again, rule)
    assert goal.goal == pytest.approx(0.4) and goal.trials == (0,)
    assert (
        study.trials[again.number].user_attrs[GOAL]
        == study.trials[original.number].user_attrs[GOAL]
    )
    fresh = study.ask()
    assert goal_for_trial(fresh, rule).trials == (0, 3, 4)


# ----------------------------------------------------------------- a real sweep, SIGKILLed
def _write(root: Path, fm_dir: Path, n_trials: int, gate: Path) -> Path:
    base = tiny_base(fm_dir, epochs=2, batches=4, gate=gate)
    # A short half-life and L₀ over two batches: the smoothed loss follows the steps.
    base["trainer"]["callbacks"][0]["init_args"].update(half_life=1.0, reference_batches=2)
    (root / "base.yaml").write_text(yaml.safe_dump(base))
    sweep = {
        "base": "base.yaml",
        "study": "measured",
        "sampler": "random",
        "n_trials": n_trials,
        "seed": 0,
        "space": {
            "optimizer.lr": {"low": 0.15, "high": 0.25},
            "brake.goal": {
                "from_trials": {"quantile": 0.5, "at": 1.0, "startup": 2, "startup_goal": 0.3}
            },
        },
    }
    path = root / "measured.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return path


def rule_of(path: Path) -> GoalFromTrials:
    rule = load_spec(path).goal_rule
    assert rule is not None
    return rule


def _held(journal: Path) -> list[optuna.trial.FrozenTrial]:
    """The RUNNING trials past their first epoch (held there by the gate)."""
    if not journal.exists():
        return []
    study = journal_study(journal, "measured")
    return [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if isinstance(t.user_attrs.get("worker"), dict)
        and (t.user_attrs.get("curve") or {}).get("epoch")
    ]


def _kill_sweep(proc: Any, held: list[optuna.trial.FrozenTrial]) -> None:
    """SIGKILL the supervisor first (it cannot react), then its workers."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    for t in held:
        os.kill(t.user_attrs["worker"]["pid"], signal.SIGKILL)


@pytest.mark.slow
def test_a_killed_and_resumed_sweep_gives_the_same_goals(tmp_path: Path, fm_dir: Path) -> None:
    gate = tmp_path / "gate"
    gate.touch()  # the first three trials run through: 2 startup, 1 measured
    journal = tmp_path / "runs" / "measured" / "study.journal"
    path = _write(tmp_path, fm_dir, 3, gate)
    first = run_sweep("--config", str(path), "--runs-dir", "runs", cwd=tmp_path)
    assert first.returncode == 0, explain(first)

    # Two more trials, two workers, held after their first epoch, then everything killed.
    gate.unlink()
    path = _write(tmp_path, fm_dir, 5, gate)
    log = tmp_path / "killed.log"
    args = ("--config", str(path), "--runs-dir", "runs")
    proc = start_sweep(*args, "--workers", "2", cwd=tmp_path, log=log)
    try:
        held = wait_for(
            lambda: (lambda h: h if len(h) == 2 else None)(_held(journal)),
            200,
            "two trials past their first epoch",
            proc=proc,
            log=log,
        )
        _kill_sweep(proc, held)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed = {t.number: t.user_attrs[GOAL] for t in held}
    assert sorted(killed) == [3, 4]
    assert all(g["trials"] == [0, 1, 2] for g in killed.values())

    # Resumed with one worker: the retry of 3 completes before the retry of 4 starts, which
    # would measure over 0, 1, 2 and that retry, but keeps trial 4's goal.
    gate.touch()
    again = run_sweep(*args, "--workers", "1", cwd=tmp_path)
    assert again.returncode == 0, explain(again)
    study = journal_study(journal, "measured")
    trials = study.get_trials()
    for number, goal in killed.items():
        assert trials[number].state == TrialState.FAIL
        (retried,) = [t for t in trials if retried_from(t) == number]
        assert retried.state == TrialState.COMPLETE
        assert retried.user_attrs[GOAL] == goal
        assert retried.user_attrs[CONFIG]["brake.goal"] == goal["goal"]
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == 5
    # The retry of 4 started after the retry of 3 had completed: re-measured, its goal
    # would have come from four trials.
    (last,) = [t for t in trials if retried_from(t) == 4]
    before = [t for t in trials if t.number < last.number]
    assert len(measure_goal(rule_of(path), before).trials) == 4
    rule = rule_of(path)
    for t in trials[:3]:
        assert t.user_attrs[CONFIG]["brake.goal"] == t.user_attrs[GOAL]["goal"]
        assert t.user_attrs[GOAL]["trials"] == list(range(t.number))
        # Measured from the records the storage keeps: recomputed, the same goal.
        assert measure_goal(rule, trials[: t.number]).record() == t.user_attrs[GOAL]
    assert [t.user_attrs[GOAL]["goal"] for t in trials[:2]] == [0.3, 0.3]
    ratios = [ratio_at(trials[n].user_attrs[LOSS_RATIO], 1.0) for n in (0, 1)]
    # Four steps of tiny data leave L/L₀ near 1, on either side: the median where it is a
    # goal, else the startup goal (both rules have their own tests above).
    median = float(np.median(ratios))
    assert trials[2].user_attrs[GOAL]["trials"] == [0, 1]
    assert trials[2].user_attrs[GOAL]["goal"] == pytest.approx(median if median < 1 else 0.3)
