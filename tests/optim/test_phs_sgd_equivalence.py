"""PHS with the quadratic energy is torch SGD with momentum under p = −α·buf.

A scheme whose momentum update reads p⁺ = μ p − α g and whose position update is
θ⁺ = θ + (α/m) p⁺ is ``SGD(lr=α²/m, momentum=μ, dampening=0)``:

- ``symplectic_euler``: μ = 1 − x,
- ``conformal``: μ = e^(−x),
- ``nesterov``: μ = e^(−x) and ``nesterov=True``,

with x = αγ/m (friction on the velocity) or x = αγ (friction on the momentum, where the
mass only scales the step). Both follow the same trajectory for 100 steps of a smooth
non-convex loss, in float64, with weight decay and maximize too, on every path (foreach,
for-loop, and fused beside torch's fused SGD).
"""

from __future__ import annotations

import math

import pytest
import torch
from phs_helpers import clone_params, make_params, momenta, rel_err, set_grads, smooth_loss

from goalbrake.optim import PHS

ALPHA, MASS, FRICTION = 0.1, 0.5, 2.0  # x = αγ/m = 0.4 (velocity), αγ = 0.2 (momentum)

# scheme, friction_on, SGD momentum μ, nesterov
CASES = [
    ("symplectic_euler", "velocity", 1.0 - ALPHA * FRICTION / MASS, False),
    ("conformal", "velocity", math.exp(-ALPHA * FRICTION / MASS), False),
    ("nesterov", "velocity", math.exp(-ALPHA * FRICTION / MASS), True),
    ("symplectic_euler", "momentum", 1.0 - ALPHA * FRICTION, False),
    ("conformal", "momentum", math.exp(-ALPHA * FRICTION), False),
    ("nesterov", "momentum", math.exp(-ALPHA * FRICTION), True),
]
OPTIONS = [  # weight_decay, maximize
    (0.0, False),
    (0.05, False),
    (0.0, True),
    (0.05, True),
]


#: The PHS path, and the torch SGD path it is compared with.
PATHS = {
    "foreach": ({"foreach": True}, {"foreach": True}),
    "for-loop": ({"foreach": False}, {"foreach": False}),
    "fused": ({"fused": True}, {"fused": True}),
}


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize(("weight_decay", "maximize"), OPTIONS, ids=lambda v: str(v))
@pytest.mark.parametrize(
    ("scheme", "friction_on", "mu", "nesterov"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES]
)
def test_equals_sgd_step_for_step(
    scheme: str,
    friction_on: str,
    mu: float,
    nesterov: bool,
    weight_decay: float,
    maximize: bool,
    path: str,
) -> None:
    ours_path, their_path = PATHS[path]
    ours = make_params()
    theirs = clone_params(ours)
    phs = PHS(
        ours,
        lr=ALPHA,
        mass=MASS,
        friction=FRICTION,
        scheme=scheme,
        friction_on=friction_on,
        weight_decay=weight_decay,
        maximize=maximize,
        **ours_path,
    )
    sgd = torch.optim.SGD(
        theirs,
        lr=ALPHA**2 / MASS,
        momentum=mu,
        dampening=0.0,
        nesterov=nesterov,
        weight_decay=weight_decay,
        maximize=maximize,
        **their_path,
    )
    # Maximizing the loss runs away; a small loss scale keeps the trajectory bounded.
    sign = -0.01 if maximize else 1.0
    for step in range(100):
        set_grads(ours, lambda ps: sign * smooth_loss(ps))
        set_grads(theirs, lambda ps: sign * smooth_loss(ps))
        phs.step()
        sgd.step()
        assert rel_err(ours, theirs) <= 1e-6, f"θ differs at step {step}"
        bufs = [-ALPHA * sgd.state[p]["momentum_buffer"] for p in theirs]
        assert rel_err(momenta(phs, ours), bufs) <= 1e-6, f"p differs at step {step}"


@pytest.mark.parametrize("mass", [0.25, 4.0])
@pytest.mark.parametrize("scheme", ["symplectic_euler", "conformal"])
def test_momentum_friction_mass_only_scales_the_step(scheme: str, mass: float) -> None:
    # friction_on="momentum": μ = 1 − αγ or e^(−αγ) whatever the mass; SGD's lr is α²/m.
    mu = 1.0 - ALPHA * FRICTION if scheme == "symplectic_euler" else math.exp(-ALPHA * FRICTION)
    ours = make_params()
    theirs = clone_params(ours)
    phs = PHS(ours, lr=ALPHA, mass=mass, friction=FRICTION, scheme=scheme, friction_on="momentum")
    sgd = torch.optim.SGD(theirs, lr=ALPHA**2 / mass, momentum=mu)
    assert float(phs.momentum_factor()) == pytest.approx(mu, rel=1e-12)
    for _ in range(30):
        set_grads(ours)
        set_grads(theirs)
        phs.step()
        sgd.step()
    assert rel_err(ours, theirs) <= 1e-6
