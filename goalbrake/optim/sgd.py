r"""Torch SGD as a PHS scheme: the one reading of ``torch.optim.SGD`` that goalbrake uses.

``torch.optim.SGD(lr=η, momentum=μ, dampening=0)`` steps

.. math::

    b^+ = μ\,b + g, \qquad θ^+ = θ - η\,b^+ .

With the quadratic kinetic energy φ(p) = ‖p‖²/2m, a step α and the momentum p = −α·b,
this is p⁺ = μ p − α g, θ⁺ = θ + α ∇φ(p⁺): the PHS momentum step with η = α²/m. goalbrake
reads μ as the **conformal** scheme's factor

.. math::

    μ = e^{-x}, \qquad x = αγ/m \ (\text{friction on the velocity}), \quad
    x = αγ \ (\text{on the momentum}),

so that SGD is ``PHS(scheme="conformal")`` (``nesterov=True``: ``scheme="nesterov"``).
The symplectic Euler scheme, μ = 1 − x, has the same update and differs only in how μ
depends on γ; goalbrake takes the conformal reading because the friction adapter brakes
SGD with it: a brake γ → kγ is x → kx, i.e. **μ → μᵏ**, which stays in (0, 1) for every
k > 0 (under μ = 1 − x the same brake, μ → 1 − k(1 − μ), turns negative for k > 1/x).

What SGD identifies:

* the friction rate per step x = −ln μ (:func:`sgd_friction_rate`), logged by
  :class:`~goalbrake.callbacks.GoalBrake` as ``brake/friction`` for SGD;
* the kinetic energy φ(p) = ‖p‖²/2m = (η/2)‖b‖², whatever α and m lie behind η
  (:func:`sgd_kinetic_energy`), logged by :class:`~goalbrake.callbacks.EnergyMonitor`;
* not γ itself, nor the dissipation power γ‖p‖²/m², which need α on its own.

:func:`phs_to_sgd` gives the SGD hyperparameters of a conformal PHS. The derivation is in
docs/design.md, section "Torch SGD as a PHS scheme".

Example:
    >>> lr, momentum = phs_to_sgd(lr=0.1, mass=1.0, friction=0.5)
    >>> round(lr, 6), round(momentum, 6)
    (0.01, 0.951229)
    >>> round(sgd_friction_rate(sgd_braked_momentum(momentum, 50.0)), 6)  # x = 0.05 → 2.5
    2.5
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "SGD_SCHEME",
    "is_phs_form",
    "phs_to_sgd",
    "sgd_braked_momentum",
    "sgd_friction_rate",
    "sgd_kinetic_energy",
]

#: The PHS scheme torch SGD with momentum is read as (``nesterov=True``: "nesterov").
SGD_SCHEME = "conformal"

Scalar = float | Tensor


def phs_to_sgd(
    lr: float, mass: float, friction: float, friction_on: str = "velocity"
) -> tuple[float, float]:
    """``(lr, momentum)`` of the torch SGD that steps like ``PHS(scheme="conformal")``.

    η = α²/m and μ = e^(−x), with x = αγ/m (``friction_on="velocity"``) or αγ
    (``"momentum"``).

    Raises:
        ValueError: ``friction_on`` is neither ``"velocity"`` nor ``"momentum"``.
    """
    if friction_on not in ("velocity", "momentum"):
        raise ValueError(
            f"Invalid friction_on value: {friction_on!r} (must be one of velocity, momentum)"
        )
    rate = lr * friction / mass if friction_on == "velocity" else lr * friction
    return lr * lr / mass, math.exp(-rate)


def sgd_friction_rate(momentum: Scalar) -> Scalar:
    """x = −ln μ, the friction rate per step of SGD's momentum μ (inf for μ = 0; no sync)."""
    if isinstance(momentum, Tensor):
        return -torch.log(momentum)
    return -math.log(momentum) if momentum > 0 else math.inf


def sgd_braked_momentum(momentum: Scalar, factor: float) -> Scalar:
    """μᵏ: SGD's momentum after a brake γ → kγ (x → kx); a tensor stays a tensor."""
    return momentum**factor


def is_phs_form(group: Mapping[str, Any]) -> bool:
    """Whether an SGD param group is a PHS momentum step (momentum > 0, dampening = 0)."""
    return float(group.get("momentum", 0.0)) > 0 and float(group.get("dampening", 0.0)) == 0


def sgd_kinetic_energy(lr: Scalar, buffers: Sequence[Tensor]) -> Scalar:
    """φ(p) = (η/2)·Σ‖b‖² of an SGD group's momentum buffers (a 0-d tensor; no sync).

    Returns 0.0 before the first step (no buffers).
    """
    if not buffers:
        return 0.0
    device = buffers[0].device
    squares = torch.stack([b.detach().square().sum().to(device) for b in buffers])
    return 0.5 * lr * squares.sum()
