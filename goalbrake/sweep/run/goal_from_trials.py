"""The goal from the study's own earlier trials: "the reduction of the loss obtained in
previous trials", at the sweep level.

A sweep with ``brake.goal: {from_trials: {quantile: q, at: a, startup: N, startup_goal:
g0}}`` (:class:`~goalbrake.sweep.define.params.GoalFromTrials`) gives each trial, when it
starts (under the study's ask lock), the goal

.. math::

    \\text{goal} = Q_q\\big(\\{\\, L_k(a)/L_{0,k} : k \\text{ COMPLETE} \\,\\}\\big)

the q-quantile (linear interpolation, :func:`numpy.quantile`) of the smoothed loss over L₀
that the trials COMPLETE at that moment reached at the fraction ``a`` of their epoch
budget, a remaining fraction of L₀; while fewer than N trials are complete, or if the
quantile is not in (0, 1) (it would brake at once, or never), the goal is g0.

Each finished GoalBrake trial stores its ratio per epoch (:func:`loss_ratio_record`, user
attr ``loss_ratio``) and each trial the goal it used (user attr ``goal``: the value, how it
was found, and the numbers and ratios of the trials it came from). A retried trial (a
killed trial re-queued by :mod:`goalbrake.sweep.run.recovery`) keeps its original's
``goal``, so a resumed study gives the same goals to the same trials. See docs/sweeps.md,
"The sweep file", and docs/braking.md, "The goal from the study's earlier trials".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from goalbrake.callbacks.goal_from_run import REFERENCE, SMOOTHED
from goalbrake.sweep.attrs import GOAL, LOSS_RATIO
from goalbrake.sweep.define.params import GoalFromTrials
from goalbrake.sweep.run.recovery import retried_from

__all__ = [
    "MeasuredGoal",
    "goal_for_trial",
    "loss_ratio_record",
    "measure_goal",
    "ratio_at",
]

#: Slack of "epoch e is within a × budget" (a × budget is rarely an exact float).
_EPS = 1e-9


@dataclass(frozen=True)
class MeasuredGoal:
    """The goal of one trial, how it was found, and the trials (with their L/L₀) behind it."""

    goal: float
    how: str
    trials: tuple[int, ...] = ()
    ratios: tuple[float, ...] = ()

    def record(self) -> dict[str, Any]:
        """The ``goal`` user attr."""
        return {
            "goal": self.goal,
            "how": self.how,
            "trials": list(self.trials),
            "ratios": list(self.ratios),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> MeasuredGoal:
        return cls(
            goal=float(record["goal"]),
            how=str(record["how"]),
            trials=tuple(int(n) for n in record.get("trials") or ()),
            ratios=tuple(float(r) for r in record.get("ratios") or ()),
        )


def _finite(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def loss_ratio_record(curve: Mapping[str, Sequence[object]], budget: int) -> dict[str, Any] | None:
    """The ``loss_ratio`` user attr from a trial's per-epoch ``curve``, or None without one.

    L₀ is the first finite ``brake/reference_loss``; each epoch with a finite
    ``brake/smoothed_loss`` gets its ratio.

    Args:
        curve: ``{"epoch": [...], "brake/smoothed_loss": [...], ...}`` as the trial's
            recorder keeps it.
        budget: the trial's epoch budget (its ``max_epochs``).
    """
    epochs = list(curve.get("epoch") or ())
    smoothed = list(curve.get(SMOOTHED) or ())
    references = [_finite(v) for v in curve.get(REFERENCE) or ()]
    l0 = next((v for v in references if v is not None and v > 0), None)
    if l0 is None or not smoothed:
        return None
    out: dict[str, Any] = {"epoch": [], "ratio": [], "budget": int(budget)}
    for epoch, value in zip(epochs, smoothed, strict=False):
        loss = _finite(value)
        if loss is not None:
            out["epoch"].append(int(epoch))  # type: ignore[call-overload]
            out["ratio"].append(loss / l0)
    return out if out["epoch"] else None


def ratio_at(record: Mapping[str, Any] | None, at: float) -> float | None:
    """L/L₀ at the last recorded epoch within ``at`` × budget epochs (epoch e counts e + 1).

    Below one epoch's worth the first recorded epoch counts; None without a record.
    """
    if not record or not record.get("epoch"):
        return None
    target = at * float(record["budget"]) + _EPS
    pairs = list(zip(record["epoch"], record["ratio"], strict=True))
    within = [ratio for epoch, ratio in pairs if epoch + 1 <= target]
    value = within[-1] if within else pairs[0][1]
    return _finite(value)


def measure_goal(rule: GoalFromTrials, complete: Iterable[FrozenTrial]) -> MeasuredGoal:
    """The goal of a trial that starts while ``complete`` are the study's COMPLETE trials.

    Trials without a ratio at ``rule.at`` (no GoalBrake, nothing logged) are left out.
    """
    used = sorted(
        (t.number, ratio)
        for t in complete
        if t.state == TrialState.COMPLETE
        and (ratio := ratio_at(t.user_attrs.get(LOSS_RATIO), rule.at)) is not None
    )
    numbers = tuple(n for n, _ in used)
    ratios = tuple(r for _, r in used)
    if len(used) < rule.startup:
        how = f"startup goal ({len(used)} of {rule.startup} trials complete)"
        return MeasuredGoal(rule.startup_goal, how, numbers, ratios)
    goal = float(np.quantile(np.asarray(ratios, dtype=np.float64), rule.quantile))
    how = f"q{rule.quantile:g} of L/L₀ at {rule.at:g} of the budget over {len(used)} trials"
    if not 0 < goal < 1:
        how = f"startup goal ({how} gave {goal:.4g}, not in (0, 1))"
        return MeasuredGoal(rule.startup_goal, how, numbers, ratios)
    return MeasuredGoal(goal, how, numbers, ratios)


def _original_goal(trial: optuna.Trial) -> MeasuredGoal | None:
    """The goal a retried trial's original recorded (it inherited its user attrs)."""
    # optuna.Trial has no system attrs; the stored trial has them.
    frozen = trial.study._storage.get_trial(trial._trial_id)
    if retried_from(frozen) is None:
        return None
    record = frozen.user_attrs.get(GOAL)
    return MeasuredGoal.from_record(record) if isinstance(record, Mapping) else None


def goal_for_trial(trial: optuna.Trial, rule: GoalFromTrials) -> MeasuredGoal:
    """The goal of the starting ``trial``: its original's when it is a retry, else measured
    on the trials COMPLETE now. It is recorded in the trial's ``goal`` user attr.

    Call it under the study's ask lock, so "the trials complete now" is one moment.
    """
    goal = _original_goal(trial)
    if goal is None:
        complete = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        goal = measure_goal(rule, complete)
    trial.set_user_attr(GOAL, goal.record())
    return goal
