r"""The braking controller: when to multiply the friction, and by how much.

Pure Python/torch, no Lightning: :class:`~goalbrake.callbacks.GoalBrake` is a thin adapter
around it, and a hand-written loop can drive it directly. The controller sees the reference
loss L₀ (the mean training loss of the initial weights) and the stream of batch losses; it
smooths them (an EMA by default) and decides. It never touches an optimizer: it returns
:mod:`decisions <goalbrake.braking.decisions>` that an adapter carries out.

A stage (goal, factor) fires the first time the monitored loss L(t) ≤ target, with

======================  ===========================  =====================================
mode                    target                       goal
======================  ===========================  =====================================
``remaining``           goal · L₀                    in (0, 1): the loss has fallen *to*
``reduction``           (1 − goal) · L₀              in (0, 1): the loss has fallen *by*
``absolute``            goal                         > 0: a loss value
======================  ===========================  =====================================

The paper's "braking at 0.15" does not say which of the first two it meant; goalbrake
expresses both and defaults to ``remaining`` (docs/design.md, section "Braking").

Several stages fire in order; a stage whose goal is not met within ``patience`` steps of
the previous brake (or of the start) fires anyway, optionally after restoring the weights
of the lowest smoothed loss seen so far; after the last stage, ``release_after`` steps
without a new lowest smoothed loss restore the friction from before the first brake
(optionally kicking the momentum); and ``overfit_patience`` validation losses in a row
that rose fire the next stage.

The clock trigger, ``at_step=N``, fires the same brake at step N instead, whatever the
loss: the event trigger's ablation. It replaces the goal (no L₀ is needed, and ``goal``,
``stages``, ``patience`` and ``overfit_patience`` are refused with it).

Hooks are thin: each check hands the current value to a pure ``_evaluate_…`` function
returning ``(decision, reason)``, in the manner of Lightning's ``EarlyStopping``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor

from goalbrake.braking.decisions import Brake, Decision, NewBest, Release, RestoreBest
from goalbrake.braking.smoothing import SMOOTHINGS, Scalar, Smoother, as_loss, make_smoother

__all__ = [
    "DEFAULT_FACTOR",
    "DEFAULT_GOAL",
    "DEFAULT_MODE",
    "MODES",
    "BrakeController",
    "goal_target",
]

#: How a goal turns into a target loss (see the module docstring).
MODES: tuple[str, ...] = ("remaining", "reduction", "absolute")

_GOAL_RANGES = {"remaining": "in (0, 1)", "reduction": "in (0, 1)", "absolute": "> 0"}
#: The goal and factor of the single stage when neither ``goal`` nor ``stages`` is given
#: (the paper's "braking at 0.15 with factor 50"), and the default goal reading.
DEFAULT_GOAL = 0.15
DEFAULT_FACTOR = 50.0
DEFAULT_MODE = "remaining"

#: Turns one rank's decision into the decision of all (a DDP reduction).
Agree = Callable[[bool], bool]
Stage = tuple[float | None, float]  # (goal, factor); goal None: the clock trigger's stage


# ----------------------------------------------------------------------------- validation
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_mode(mode: Any) -> None:
    if mode not in MODES:
        raise ValueError(f"Invalid mode value: {mode!r} (must be one of {', '.join(MODES)})")


def _check_goal(goal: Any, mode: str, where: str = "") -> None:
    ok = _is_number(goal) and math.isfinite(goal)
    if ok and mode in ("remaining", "reduction"):
        ok = 0.0 < goal < 1.0
    elif ok:
        ok = goal > 0.0
    if not ok:
        raise ValueError(
            f"Invalid goal value: {goal!r} for mode {mode!r} (must be {_GOAL_RANGES[mode]}){where}"
        )


def _check_factor(factor: Any, where: str = "") -> None:
    if not (_is_number(factor) and math.isfinite(factor) and factor > 0):
        raise ValueError(f"Invalid factor value: {factor!r} (must be > 0){where}")


def _check_steps(name: str, value: Any, *, optional: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        allowed = "an integer >= 1 or None" if optional else "an integer >= 1"
        raise ValueError(f"Invalid {name} value: {value!r} (must be {allowed})")


def _check_extensions(
    at_step: int | None,
    patience: int | None,
    restore_best: Any,
    release_after: int | None,
    kick: Any,
    overfit_patience: int | None,
) -> None:
    """The combinations of the paper's extensions and the clock trigger that make sense."""
    if not isinstance(restore_best, bool):
        raise ValueError(f"Invalid restore_best value: {restore_best!r} (must be True or False)")
    if restore_best and patience is None:
        raise ValueError(
            "Invalid restore_best value: True without patience (the best weights are "
            "restored before a patience brake; set patience=<steps>)"
        )
    for name, value in (("patience", patience), ("overfit_patience", overfit_patience)):
        if at_step is not None and value is not None:
            raise ValueError(
                f"Invalid at_step value: {at_step!r} with {name}={value!r} (the clock "
                f"trigger fires on its own; drop {name})"
            )
    if not (_is_number(kick) and math.isfinite(kick) and kick >= 0):
        raise ValueError(f"Invalid kick value: {kick!r} (must be >= 0)")
    if kick != 1.0 and release_after is None:
        raise ValueError(
            f"Invalid kick value: {kick!r} without release_after (the momentum is kicked "
            "at the release; set release_after=<steps> or kick=1.0)"
        )


def _check_reference(value: Any, mode: str) -> None:
    ok = _is_number(value) and math.isfinite(value)
    if ok and mode != "absolute":
        ok = value > 0
    if not ok:
        allowed = "a finite number" if mode == "absolute" else f"> 0 for mode {mode!r}"
        raise ValueError(f"Invalid reference_loss value: {value!r} (must be {allowed})")


def _normalize_stages(
    goal: Any, factor: Any, mode: str, stages: Sequence[Sequence[float]] | None, at_step: Any
) -> tuple[Stage, ...]:
    """((goal, factor), …) in firing order, each checked; targets strictly decreasing.

    The clock trigger (``at_step``) has the one stage (None, factor).
    """
    if at_step is not None:
        _check_steps("at_step", at_step, optional=False)
        for name, value in (("goal", goal), ("stages", stages)):
            if value is not None:
                raise ValueError(
                    f"Invalid at_step value: {at_step!r} with {name}={value!r} (the clock "
                    "trigger replaces the goal; pass either at_step or goal/stages)"
                )
        factor = DEFAULT_FACTOR if factor is None else factor
        _check_factor(factor)
        return ((None, float(factor)),)
    if stages is None:
        goal = DEFAULT_GOAL if goal is None else goal
        factor = DEFAULT_FACTOR if factor is None else factor
        _check_goal(goal, mode)
        _check_factor(factor)
        return ((float(goal), float(factor)),)
    given = ", ".join(
        f"{k}={v!r}" for k, v in (("goal", goal), ("factor", factor)) if v is not None
    )
    if given:
        raise ValueError(
            f"Invalid stages value: pass either goal and factor or stages, not both (got "
            f"{given} and stages={stages!r})"
        )
    return _checked_stages(stages, mode)


def _checked_stages(stages: Any, mode: str) -> tuple[Stage, ...]:
    if isinstance(stages, (str, bytes)) or not isinstance(stages, Sequence) or not stages:
        raise ValueError(
            f"Invalid stages value: {stages!r} (must be a non-empty list of (goal, factor) pairs)"
        )
    out = []
    for i, stage in enumerate(stages):
        if isinstance(stage, (str, bytes)) or not isinstance(stage, Sequence) or len(stage) != 2:
            raise ValueError(
                f"Invalid stages value: {stage!r} in stages[{i}] (must be a (goal, factor) pair)"
            )
        g, f = stage
        _check_goal(g, mode, f" in stages[{i}]")
        _check_factor(f, f" in stages[{i}]")
        out.append((float(g), float(f)))
    # Each stage asks for a lower loss: goals fall (remaining, absolute) or rise (reduction).
    keys = [-g if mode == "reduction" else g for g, _ in out]
    if any(b >= a for a, b in itertools.pairwise(keys)):
        order = "increasing" if mode == "reduction" else "decreasing"
        raise ValueError(
            f"Invalid stages value: goals {[g for g, _ in out]} for mode {mode!r} "
            f"(each stage must target a lower loss than the one before: goals strictly {order})"
        )
    return tuple(out)


def goal_target(goal: float, mode: str, reference_loss: float | None) -> float:
    """The loss at which a goal is reached (see the table in the module docstring).

    Raises:
        ValueError: an unknown mode.
        RuntimeError: a relative mode without a reference loss.
    """
    _check_mode(mode)
    if mode == "absolute":
        return goal
    if reference_loss is None:
        raise RuntimeError(
            f"No reference loss yet: mode {mode!r} needs L₀; call set_reference(loss) first "
            "(or use mode='absolute')"
        )
    return goal * reference_loss if mode == "remaining" else (1.0 - goal) * reference_loss


# ------------------------------------------------------------------- pure decision rules
def _evaluate_goal(current: float, target: float) -> tuple[bool, str | None]:
    """Fire when the monitored loss has reached the target (a NaN never does)."""
    if current <= target:
        return True, f"smoothed loss {current:.4g} <= goal {target:.4g}"
    return False, None


def _evaluate_clock(step: int, at_step: int | None) -> tuple[bool, str | None]:
    """Fire at the first check at or after step ``at_step`` (the clock trigger)."""
    if at_step is not None and step >= at_step:
        return True, f"step {step} >= at_step {at_step}"
    return False, None


def _evaluate_patience(
    steps: int, patience: int | None, current: float, target: float
) -> tuple[bool, str | None]:
    """Fire when ``patience`` steps passed since the stage began without reaching its goal."""
    if patience is not None and steps >= patience:
        return True, (
            f"goal {target:.4g} not reached within {patience} steps (smoothed loss {current:.4g})"
        )
    return False, None


def _evaluate_release(
    steps_without_improvement: int, release_after: int | None, best: float
) -> tuple[bool, str | None]:
    """Release when the smoothed loss has not set a new minimum for ``release_after`` steps."""
    if release_after is not None and steps_without_improvement >= release_after:
        return True, (
            f"smoothed loss did not improve on {best:.4g} for {steps_without_improvement} steps"
        )
    return False, None


def _evaluate_overfit(
    rises: int, overfit_patience: int | None, current: float
) -> tuple[bool, str | None]:
    """Fire when the validation loss rose at ``overfit_patience`` validations in a row."""
    if overfit_patience is not None and rises >= overfit_patience:
        return True, f"validation loss rose {rises} times in a row (to {current:.4g})"
    return False, None


def _agreed(decision: bool, agree: Agree | None) -> bool:
    """The decision after ``agree`` (e.g. reduced over DDP ranks); itself without one."""
    return decision if agree is None else bool(agree(decision))


# ------------------------------------------------------------------------- the controller
class BrakeController:
    r"""Decides when to brake (multiply the friction) from a stream of batch losses.

    Steps count the losses fed to :meth:`observe` / :meth:`update`. A stage fires at the
    first check where the monitored loss L(t) ≤ target (checks run every
    ``check_every_n_steps`` steps); if one check finds several stages reached, all of them
    fire, in order. Decisions are returned, never carried out: see
    :func:`~goalbrake.braking.apply_decisions` for a loop that acts on them.

    Args:
        goal: the goal of the single stage, read according to ``mode`` (default
            :data:`DEFAULT_GOAL` when neither ``goal`` nor ``stages`` is given).
        factor: the friction factor of the single stage (> 0; SGD: μ → μ^factor; default
            :data:`DEFAULT_FACTOR`).
        mode: ``"remaining"`` (target = goal·L₀), ``"reduction"`` (target = (1 − goal)·L₀)
            or ``"absolute"`` (target = goal).
        stages: instead of ``goal``/``factor``, several ``(goal, factor)`` pairs fired in
            order; each must target a lower loss than the one before.
        at_step: the clock trigger: fire the single stage (``factor``) at the first check
            at or after this step, whatever the loss; excludes ``goal`` and ``stages``.
        reference_loss: L₀, or None to set it later with :meth:`set_reference`.
        smoothing: ``"ema"`` (default), ``"window"`` (mean of the last ``window`` losses)
            or ``"none"`` (the raw batch loss).
        half_life: EMA half-life in steps (``smoothing="ema"``).
        window: window length in steps (``smoothing="window"``).
        patience: fire a stage anyway once this many steps passed since the previous brake
            (or the start) without reaching its goal.
        restore_best: with ``patience``: before a patience brake, restore the weights at
            the lowest smoothed loss seen so far (emits :class:`NewBest` at each new
            minimum so that the adapter can snapshot them).
        release_after: after the last stage, restore the friction from before the first
            brake once the smoothed loss has not set a new minimum for this many steps.
        kick: with ``release_after``: multiply the momentum by this at the release.
        overfit_patience: fire the next stage after the validation loss rose at this many
            validations in a row (:meth:`observe_validation`).
        check_every_n_steps: evaluate at every n-th step (each check reads the device once).

    Raises:
        ValueError: a value out of range, an unknown name, or an inconsistent combination;
            the message names the value and what is allowed.

    Example:
        >>> ctrl = BrakeController(goal=0.5, factor=10.0, reference_loss=2.0, smoothing="none")
        >>> ctrl.update(1.5)
        []
        >>> ctrl.update(0.9)[0].reason
        'smoothed loss 0.9 <= goal 1'
    """

    MODES = MODES
    SMOOTHINGS = SMOOTHINGS

    def __init__(
        self,
        goal: float | None = None,
        factor: float | None = None,
        *,
        mode: str = DEFAULT_MODE,
        stages: Sequence[Sequence[float]] | None = None,
        at_step: int | None = None,
        reference_loss: float | None = None,
        smoothing: str = "ema",
        half_life: float = 10.0,
        window: int = 10,
        patience: int | None = None,
        restore_best: bool = False,
        release_after: int | None = None,
        kick: float = 1.0,
        overfit_patience: int | None = None,
        check_every_n_steps: int = 1,
    ) -> None:
        _check_mode(mode)
        self.mode = mode
        self.stages = _normalize_stages(goal, factor, mode, stages, at_step)
        self.at_step: int | None = at_step
        self.smoothing = smoothing
        self._smoother: Smoother = make_smoother(smoothing, half_life=half_life, window=window)
        _check_steps("patience", patience, optional=True)
        _check_steps("release_after", release_after, optional=True)
        _check_steps("overfit_patience", overfit_patience, optional=True)
        _check_steps("check_every_n_steps", check_every_n_steps, optional=False)
        _check_extensions(at_step, patience, restore_best, release_after, kick, overfit_patience)
        self.patience = patience
        self.restore_best = restore_best
        self.release_after = release_after
        self.kick = float(kick)
        self.overfit_patience = overfit_patience
        self.check_every_n_steps = check_every_n_steps
        self._reset()
        if reference_loss is not None:
            self.set_reference(reference_loss)

    def _reset(self) -> None:
        self.reference_loss: float | None = None
        self.step = 0
        self.stage = 0  # number of stages fired
        self.braked_step: int | None = None  # step of the first brake
        self.released_step: int | None = None
        self._stage_start = 0  # where the pending stage's patience began
        self._best_loss = math.inf  # lowest smoothed loss before the last stage
        self._best_step: int | None = None
        self._settle_best = math.inf  # lowest smoothed loss since the last stage (release)
        self._settle_step = 0
        self._val_last: float | None = None
        self._val_rises = 0

    # ------------------------------------------------------------------------ reading
    @property
    def num_stages(self) -> int:
        return len(self.stages)

    @property
    def braked(self) -> bool:
        """Whether the friction is braked now (a stage fired, and no release since)."""
        return self.stage > 0 and self.released_step is None

    @property
    def factor(self) -> float:
        """The friction factor in force now: the product of the fired stages' factors."""
        if not self.braked:
            return 1.0
        return math.prod(f for _, f in self.stages[: self.stage])

    @property
    def trigger(self) -> str:
        """``"step"`` for the clock trigger (``at_step``), else ``"goal"``."""
        return "goal" if self.at_step is None else "step"

    @property
    def needs_reference(self) -> bool:
        """Whether the targets need L₀ (a relative mode with goals; not the clock)."""
        return self.at_step is None and self.mode != "absolute"

    @property
    def targets(self) -> tuple[float | None, ...]:
        """The target loss of each stage (needs L₀ except in ``absolute`` mode; None for
        the clock trigger's stage)."""
        return tuple(self._target(g) for g, _ in self.stages)

    @property
    def target(self) -> float | None:
        """The pending stage's target, or the last stage's once all have fired."""
        g, _ = self.stages[min(self.stage, self.num_stages - 1)]
        return self._target(g)

    def _target(self, goal: float | None) -> float | None:
        return None if goal is None else goal_target(goal, self.mode, self.reference_loss)

    def smoothed(self) -> Scalar | None:
        """The monitored loss: a float for CPU losses, a 0-d tensor on the losses' device
        otherwise (reading neither syncs)."""
        return self._smoother.value()

    # ------------------------------------------------------------------------ feeding
    def set_reference(self, loss: float | Tensor) -> None:
        """Set L₀, the mean training loss of the initial weights.

        Raises:
            ValueError: not finite, or not > 0 in a relative mode.
        """
        value = float(loss) if isinstance(loss, Tensor) else loss
        _check_reference(value, self.mode)
        self.reference_loss = float(value)

    def observe(self, loss: float | Tensor) -> None:
        """Feed one batch loss; never reads the device."""
        self._smoother.update(as_loss(loss))
        self.step += 1

    def update(self, loss: float | Tensor, *, agree: Agree | None = None) -> list[Decision]:
        """:meth:`observe` the loss, then :meth:`evaluate` (with ``agree``) at a check."""
        self.observe(loss)
        if self.step % self.check_every_n_steps:
            return []
        return self.evaluate(agree=agree)

    def sync_smoothing(self, reduce: Any) -> None:
        """Replace the smoothing state by ``reduce(state)``, e.g. its mean over DDP ranks.

        The state is linear in the losses, so the mean of the ranks' EMAs is the EMA of the
        ranks' mean loss: after a sync every rank monitors the same value.
        """
        buffer = self._smoother.buffer
        if buffer is not None:
            self._smoother.load_buffer(reduce(buffer.clone()))

    # ----------------------------------------------------------------------- deciding
    def evaluate(
        self, current: float | None = None, *, agree: Agree | None = None
    ) -> list[Decision]:
        """Check the monitored loss (read from the smoother unless given) and decide.

        Args:
            current: the monitored loss; None reads the smoother.
            agree: every fire/release decision passes through it before it is taken, e.g.
                ``trainer.strategy.reduce_boolean_decision`` so that all DDP ranks take the
                same one (it is called the same number of times on every rank, as long as
                it returns the same on every rank).

        Raises:
            RuntimeError: a relative mode and no reference loss yet.
        """
        if current is None:
            value = self._smoother.value()
            if value is None:
                return []
            current = float(value)  # the one host sync of a check
        if self.stage < self.num_stages:
            return self._evaluate_stages(current, agree)
        if self.released_step is None and self.release_after is not None:
            return self._evaluate_settling(current, agree)
        return []

    def _evaluate_stages(self, current: float, agree: Agree | None) -> list[Decision]:
        """Before the last stage: the clock, or the goals and then the patience."""
        decisions: list[Decision] = []
        if current < self._best_loss:
            self._best_loss, self._best_step = current, self.step
            if self.restore_best:
                decisions.append(NewBest(loss=current, step=self.step))
        if self.at_step is not None:
            fire, reason = _evaluate_clock(self.step, self.at_step)
            if _agreed(fire, agree):
                decisions.append(self._fire("step", reason, current))
            return decisions
        targets = self.targets
        while self.stage < self.num_stages:
            fire, reason = _evaluate_goal(current, targets[self.stage])
            if not _agreed(fire, agree):
                break
            decisions.append(self._fire("goal", reason, current))
        if self.stage < self.num_stages and self.patience is not None:
            fire, reason = _evaluate_patience(
                self.step - self._stage_start, self.patience, current, targets[self.stage]
            )
            if _agreed(fire, agree):
                if self.restore_best and self._best_step is not None:
                    decisions.append(
                        RestoreBest(loss=self._best_loss, step=self._best_step, reason=reason)
                    )
                decisions.append(self._fire("patience", reason, current))
        return decisions

    def _evaluate_settling(self, current: float, agree: Agree | None) -> list[Decision]:
        """After the last stage: release once the loss stopped setting new minima."""
        if current < self._settle_best:
            self._settle_best, self._settle_step = current, self.step
        release, reason = _evaluate_release(
            self.step - self._settle_step, self.release_after, self._settle_best
        )
        if not _agreed(release, agree):
            return []
        self.released_step = self.step
        return [Release(kick=self.kick, reason=reason, step=self.step)]

    def observe_validation(
        self, val_loss: float | Tensor, *, agree: Agree | None = None
    ) -> list[Decision]:
        """Feed one validation loss; fires the next stage after ``overfit_patience`` rises.

        ``agree`` as in :meth:`evaluate`.
        """
        value = float(val_loss)
        rose = self._val_last is not None and value > self._val_last
        self._val_rises = self._val_rises + 1 if rose else 0
        self._val_last = value
        if self.stage >= self.num_stages or self.overfit_patience is None:
            return []
        fire, reason = _evaluate_overfit(self._val_rises, self.overfit_patience, value)
        if not _agreed(fire, agree):
            return []
        self._val_rises = 0
        smoothed = self._smoother.value()
        current = math.nan if smoothed is None else float(smoothed)
        return [self._fire("overfit", reason, current)]

    def _fire(self, trigger: str, reason: str | None, current: float) -> Brake:
        index = self.stage
        _, factor = self.stages[index]
        target = self.targets[index]
        self.stage += 1
        if self.braked_step is None:
            self.braked_step = self.step
        self._stage_start = self.step
        if self.stage == self.num_stages:
            self._settle_best, self._settle_step = current, self.step
        return Brake(
            factor=factor,
            stage=index,
            trigger=trigger,
            reason=reason or f"{trigger} (decided on another rank)",
            step=self.step,
            smoothed_loss=current,
            target=target,
        )

    # -------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Flat state of plain numbers (reads the device once for the smoothed loss)."""
        return {
            "mode": self.mode,
            "smoothing": self.smoothing,
            "num_stages": self.num_stages,
            "at_step": self.at_step,
            "reference_loss": self.reference_loss,
            "step": self.step,
            "stage": self.stage,
            "braked_step": self.braked_step,
            "released_step": self.released_step,
            "stage_start": self._stage_start,
            "best_loss": self._best_loss,
            "best_step": self._best_step,
            "settle_best": self._settle_best,
            "settle_step": self._settle_step,
            "val_last": self._val_last,
            "val_rises": self._val_rises,
            **self._smoother.state_dict(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; later decisions equal an uninterrupted run's.

        The goals, factors and ``at_step`` are this controller's own, so a state loaded into
        a controller with edited settings keeps its history (L₀, steps, stages fired) and the
        new settings apply to the stages that have not fired.

        Raises:
            ValueError: the state was written with another mode, smoothing or trigger (a
                goal, or the clock), or fired more stages than this controller has.
        """
        for key in ("mode", "smoothing"):
            if state_dict[key] != getattr(self, key):
                raise ValueError(
                    f"Invalid state: {key} {state_dict[key]!r} in the state, "
                    f"{getattr(self, key)!r} here (construct the controller with "
                    f"{key}={state_dict[key]!r})"
                )
        # States from before the clock trigger have no at_step. Another step is fine (it
        # applies on top of the history), another kind of trigger is not.
        saved = "goal" if state_dict.get("at_step") is None else "step"
        if saved != self.trigger:
            raise ValueError(
                f"Invalid state: trigger {saved!r} in the state, {self.trigger!r} here (a "
                "resumed run keeps its trigger: the clock with at_step, or a goal)"
            )
        if state_dict["stage"] > self.num_stages:
            raise ValueError(
                f"Invalid state: {state_dict['stage']} stages fired, but this controller has "
                f"{self.num_stages} (construct it with the stages of the run that wrote the state)"
            )
        self._reset()
        if state_dict["reference_loss"] is not None:
            self.set_reference(state_dict["reference_loss"])
        self.step = int(state_dict["step"])
        self.stage = int(state_dict["stage"])
        self.braked_step = state_dict["braked_step"]
        self.released_step = state_dict["released_step"]
        self._stage_start = int(state_dict["stage_start"])
        self._best_loss = float(state_dict["best_loss"])
        self._best_step = state_dict["best_step"]
        self._settle_best = float(state_dict["settle_best"])
        self._settle_step = int(state_dict["settle_step"])
        self._val_last = state_dict["val_last"]
        self._val_rises = int(state_dict["val_rises"])
        self._smoother.load_state_dict(state_dict)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(mode={self.mode!r}, stages={list(self.stages)!r}, "
            f"reference_loss={self.reference_loss!r}, step={self.step}, stage={self.stage})"
        )
