"""Goal-oriented braking without Lightning: the controller, its decisions, friction adapters.

:class:`BrakeController` decides when to multiply the friction from the reference loss L₀
and the stream of batch losses; :func:`friction_adapter` wraps an optimizer
(:class:`goalbrake.PHS`, or ``torch.optim.SGD`` with momentum) so that
:func:`apply_decisions` can carry the decisions out. The Lightning callback
:class:`goalbrake.callbacks.GoalBrake` is a thin adapter over the same pieces.
"""

from goalbrake.braking.adapters import (
    SUPPORTED,
    BestWeights,
    FrictionAdapter,
    PHSFriction,
    SGDMomentum,
    apply_decisions,
    friction_adapter,
)
from goalbrake.braking.controller import (
    DEFAULT_FACTOR,
    DEFAULT_GOAL,
    DEFAULT_MODE,
    MODES,
    BrakeController,
    goal_target,
)
from goalbrake.braking.decisions import TRIGGERS, Brake, Decision, NewBest, Release, RestoreBest
from goalbrake.braking.smoothing import SMOOTHINGS

__all__ = [
    "DEFAULT_FACTOR",
    "DEFAULT_GOAL",
    "DEFAULT_MODE",
    "MODES",
    "SMOOTHINGS",
    "SUPPORTED",
    "TRIGGERS",
    "BestWeights",
    "Brake",
    "BrakeController",
    "Decision",
    "FrictionAdapter",
    "NewBest",
    "PHSFriction",
    "Release",
    "RestoreBest",
    "SGDMomentum",
    "apply_decisions",
    "friction_adapter",
    "goal_target",
]
