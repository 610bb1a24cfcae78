"""What a :class:`~goalbrake.braking.BrakeController` tells its adapter to do.

Decisions are small frozen dataclasses: the controller decides, an adapter (the
:class:`~goalbrake.callbacks.GoalBrake` callback, or :func:`~goalbrake.braking.apply_decisions`
in a hand-written loop) acts. ``step`` is the controller's step count (the number of batch
losses observed) at the moment of the decision.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TRIGGERS", "Brake", "Decision", "NewBest", "Release", "RestoreBest"]

#: Why a stage fired: its goal was reached, its patience ran out, validation rose, or the
#: clock trigger's step (``at_step``) came.
TRIGGERS: tuple[str, ...] = ("goal", "patience", "overfit", "step")


@dataclass(frozen=True)
class Brake:
    """Multiply the friction of every param group by ``factor`` (SGD: μ → μ^factor).

    Attributes:
        factor: the stage's friction factor.
        stage: index of the stage that fired (0 for the first).
        trigger: one of :data:`TRIGGERS`.
        reason: a human-readable sentence.
        step: controller step at which the stage fired.
        smoothed_loss: the monitored (smoothed) loss at that step.
        target: the stage's goal loss (None for the clock trigger, which has no goal).
    """

    factor: float
    stage: int
    trigger: str
    reason: str
    step: int
    smoothed_loss: float
    target: float | None


@dataclass(frozen=True)
class Release:
    """Restore the friction from before the first brake, then scale the momentum by ``kick``."""

    kick: float
    reason: str
    step: int


@dataclass(frozen=True)
class NewBest:
    """The smoothed loss reached a new minimum: snapshot the weights (``restore_best`` only)."""

    loss: float
    step: int


@dataclass(frozen=True)
class RestoreBest:
    """Load the weights snapshotted at the last :class:`NewBest` (before a patience brake)."""

    loss: float
    step: int
    reason: str


Decision = Brake | Release | NewBest | RestoreBest
