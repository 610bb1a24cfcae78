r"""The discrete energy H = L(θ) + φ(p) on a convex quadratic loss L = ½ θᵀAθ.

**Dissipation.** For ``conformal`` (p̃ = e^{−x} p, p⁺ = p̃ − αg, θ⁺ = θ + α v⁺ with
v = ∇φ) and a quadratic L the change of H over one step is exactly

    ΔH = [φ(p̃) − φ(p)] + ½ α² v⁺ᵀA v⁺ − D_φ(p̃, p⁺)

(D_φ the Bregman divergence of φ). The friction term is ≤ −αγ|ṽ|² (friction on the
velocity) or ≤ −(αγ/s_max)|ṽ|² (on the momentum, s_max = ``max_mobility(m)``), up to a
factor e^{−x}; D_φ ≥ |ṽ − v⁺|²/(2L_φ) for an L_φ-smooth φ. With λ = λ_max(A) this makes
ΔH ≤ 0 whenever

    α ≤ min(γ/λ  [velocity] or γ/(λ s_max)  [momentum],  1/√(2 λ L_φ)).

So "a small step" depends on the kinetic energy: for ``normalized`` (L_φ = s_max =
1/(mε)) with friction on the momentum it is α ≤ γmε/λ = 1e-3 here, and a step ten times
that does raise H (tested below). ``stormer_verlet`` has the extra term
(α − 2α/(2+x))⟨g, v⁺⟩ in ΔH and is tested at half the bound, where it dissipates for
every energy; at the full bound it does not for ``normalized`` (x = αγ/(mε) ≈ 22).

**Conservation.** With γ = 0 both schemes are symplectic Euler, whose positions are those
of Störmer–Verlet (leapfrog) and whose stored momentum is the half-step momentum
p_{k+1/2}. H(θ_k, p_k) is therefore conserved to O(α) only; H at the synchronized
momentum p_k − (α/2)∇L(θ_k) (leapfrog's p_k) is conserved to O(α²).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from phs_helpers import DT

from goalbrake.optim import KINETIC_NAMES, PHS, get_kinetic

LAMBDA_MIN, LAMBDA_MAX, DIM = 0.1, 1.0, 6
FRICTION, MASS = 1.0, 1.0
#: Smoothness L_φ of each default kinetic energy (the largest Hessian eigenvalue).
SMOOTHNESS = {
    "quadratic": 1.0 / MASS,
    "relativistic": 1.0 / MASS,
    "normalized": 1.0 / (MASS * 1e-3),  # eps = 1e-3
    "soft_clip": 1.0 / MASS,
    "logsumexp": 1.0 / (MASS * 1.0),  # temperature = 1
    "pnorm": (4.0 - 1.0) / MASS,  # ½‖p‖_q²/m is (q − 1)/m-smooth, q = 4
}


def dissipative_step(kinetic: str, friction_on: str) -> float:
    """The step below which ``conformal`` provably does not raise H (module docstring)."""
    s_max = get_kinetic(kinetic).max_mobility(MASS)
    friction_bound = FRICTION / LAMBDA_MAX
    if friction_on == "momentum":
        friction_bound /= s_max
    return min(friction_bound, 1.0 / math.sqrt(2.0 * LAMBDA_MAX * SMOOTHNESS[kinetic]))


def quadratic_loss(seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(DIM, DIM, generator=gen, dtype=DT))
    return q @ torch.diag(torch.linspace(LAMBDA_MIN, LAMBDA_MAX, DIM, dtype=DT)) @ q.T


def energies(
    scheme: str,
    kinetic: str,
    friction_on: str,
    lr: float,
    steps: int,
    *,
    friction: float = FRICTION,
    scale: float = 1.0,
    seed: int = 0,
    synchronized: bool = False,
) -> torch.Tensor:
    """H(θ_k, p_k) for k = 0 … steps − 1 under full-batch gradients g = Aθ."""
    a = quadratic_loss(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    theta = torch.nn.Parameter(scale * torch.randn(DIM, generator=gen, dtype=DT))
    opt = PHS(
        [theta],
        lr=lr,
        mass=MASS,
        friction=friction,
        scheme=scheme,
        kinetic=kinetic,
        friction_on=friction_on,
    )
    phi = get_kinetic(kinetic)
    out = []
    p = torch.zeros(DIM, dtype=DT)
    for _ in range(steps):
        with torch.no_grad():
            theta.grad = a @ theta
            if synchronized:  # leapfrog's integer-time momentum
                p = p - 0.5 * lr * theta.grad
            h = 0.5 * theta @ a @ theta + phi.value([p], MASS)
        out.append(h)
        opt.step()
        p = opt.state[theta]["momentum"]
    return torch.stack(out)


def max_relative_rise(h: torch.Tensor) -> float:
    """max_k (H_{k+1} − H_k)/H_k: ≤ 0 when H never increases."""
    return float(((h[1:] - h[:-1]) / h[:-1]).max())


@pytest.mark.parametrize("friction_on", ["velocity", "momentum"])
@pytest.mark.parametrize("kinetic", KINETIC_NAMES)
@pytest.mark.parametrize(("scheme", "fraction"), [("conformal", 1.0), ("stormer_verlet", 0.5)])
def test_energy_never_increases_at_a_small_step(
    scheme: str, fraction: float, kinetic: str, friction_on: str
) -> None:
    lr = fraction * dissipative_step(kinetic, friction_on)
    steps = min(2000, max(200, round(10 / lr)))  # at least a time of 10 where the step allows
    for scale in (1.0, 100.0):  # small and large momenta (quadratic vs saturated regimes)
        for seed in (0, 1):
            h = energies(scheme, kinetic, friction_on, lr, steps, scale=scale, seed=seed)
            assert max_relative_rise(h) <= 1e-12, (scale, seed)
            assert h[-1] < h[0]


def test_normalized_with_momentum_friction_needs_a_step_below_gamma_m_eps() -> None:
    # Ten times the bound (α = 0.01 > γmε/λ = 1e-3): near p = 0 the effective mass is mε,
    # friction γp is too weak against the O(α²) error of the symplectic step, H rises.
    lr = 10 * dissipative_step("normalized", "momentum")
    h = energies("conformal", "normalized", "momentum", lr, 3000)
    assert max_relative_rise(h) > 1e-3


def _drift(lr: float, synchronized: bool, time: float = 20.0) -> float:
    steps = round(time / lr)
    h = energies(
        "stormer_verlet",
        "quadratic",
        "velocity",
        lr,
        steps,
        friction=0.0,
        synchronized=synchronized,
    )
    return float((h - h[0]).abs().max())


def test_without_friction_synchronized_energy_is_conserved_to_second_order() -> None:
    errors = [_drift(lr, synchronized=True) for lr in (0.1, 0.05, 0.025)]
    assert errors[0] < 1e-2
    for coarse, fine in itertools.pairwise(errors):
        assert 3.6 < coarse / fine < 4.4, errors  # O(α²): halving α quarters the error


def test_without_friction_stored_momentum_energy_is_conserved_to_first_order() -> None:
    # H(θ_k, p_k) with the stored half-step momentum: first order, as symplectic Euler.
    errors = [_drift(lr, synchronized=False) for lr in (0.1, 0.05, 0.025)]
    for coarse, fine in itertools.pairwise(errors):
        assert 1.8 < coarse / fine < 2.2, errors
