"""One step of each scheme against its closed form, from random (θ, p, g).

x = αγ/m (friction on the velocity) or αγ (on the momentum); per-element masses make x
element-wise. The closed forms are the ones in docs/design.md ("Discrete schemes") and
the phs module docstring.
"""

from __future__ import annotations

import math

import pytest
import torch
from phs_helpers import DT, SHAPES, make_params

from goalbrake.optim import PHS

ALPHA, FRICTION = 0.1, 3.0


def _state(seed: int) -> tuple[list[torch.nn.Parameter], list[torch.Tensor], list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    params = make_params(seed)
    p0 = [torch.randn(s, generator=gen, dtype=DT) for s in SHAPES]
    g = [torch.randn(s, generator=gen, dtype=DT) for s in SHAPES]
    return params, p0, g


def _one_step(
    scheme: str, mass: object, friction_on: str = "velocity", seed: int = 0
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], object]:
    """(θ, p, g, θ⁺, p⁺) of one step of ``scheme`` from a random state."""
    params, p0, g = _state(seed)
    theta = [p.detach().clone() for p in params]
    opt = PHS(
        params, lr=ALPHA, mass=mass, friction=FRICTION, scheme=scheme, friction_on=friction_on
    )
    for param, p, gi in zip(params, p0, g, strict=True):
        opt.state[param]["momentum"] = p.clone()
        param.grad = gi.clone()
    opt.step()
    new_p = [opt.state[param]["momentum"] for param in params]
    return theta, p0, g, [param.detach() for param in params], new_p


def _masses(kind: str) -> tuple[object, list[torch.Tensor | float]]:
    """A mass as PHS takes it, and as one number or tensor per parameter."""
    if kind == "scalar":
        return 0.7, [0.7] * len(SHAPES)
    gen = torch.Generator().manual_seed(7)
    per = [torch.rand(s, generator=gen, dtype=DT) + 0.5 for s in SHAPES]
    return per, per


MASS_KINDS = ["scalar", "per-element"]


def _close(actual: list[torch.Tensor], expected: list[torch.Tensor]) -> None:
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("friction_on", ["velocity", "momentum"])
@pytest.mark.parametrize("mass_kind", MASS_KINDS)
def test_stormer_verlet_closed_form(mass_kind: str, friction_on: str) -> None:
    mass, m = _masses(mass_kind)
    theta, p, g, new_theta, new_p = _one_step("stormer_verlet", mass, friction_on)
    expected_p, expected_theta = [], []
    for th, pi, gi, mi in zip(theta, p, g, m, strict=True):
        x = ALPHA * FRICTION / mi if friction_on == "velocity" else ALPHA * FRICTION
        p_plus = ((2 - x) * pi - 2 * ALPHA * gi) / (2 + x)  # trapezoidal friction
        expected_p.append(p_plus)
        expected_theta.append(th + ALPHA * p_plus / mi)
    _close(new_p, expected_p)
    _close(new_theta, expected_theta)


@pytest.mark.parametrize("friction_on", ["velocity", "momentum"])
def test_stormer_verlet_with_unit_mass_is_phgf_eq_7(friction_on: str) -> None:
    # Poli, Massaroli et al., "Port-Hamiltonian Gradient Flows", eq. (7) with m = 1 and
    # friction β: p⁺ = ((2 − αβ) p − 2α g) / (2 + αβ), θ⁺ = θ + α p⁺. With m = 1 both
    # friction conventions are the same.
    beta = FRICTION
    theta, p, g, new_theta, new_p = _one_step("stormer_verlet", 1.0, friction_on, seed=3)
    expected_p = [
        ((2 - ALPHA * beta) * pi - 2 * ALPHA * gi) / (2 + ALPHA * beta)
        for pi, gi in zip(p, g, strict=True)
    ]
    _close(new_p, expected_p)
    _close(new_theta, [th + ALPHA * pp for th, pp in zip(theta, expected_p, strict=True)])


@pytest.mark.parametrize("mass_kind", MASS_KINDS)
def test_euler_is_eq_2_read_literally(mass_kind: str) -> None:
    # θ moves with the OLD momentum: θ⁺ = θ + α p/m, p⁺ = p − αγ p/m − α g.
    mass, m = _masses(mass_kind)
    theta, p, g, new_theta, new_p = _one_step("euler", mass, seed=1)
    _close(new_theta, [th + ALPHA * pi / mi for th, pi, mi in zip(theta, p, m, strict=True)])
    _close(
        new_p,
        [pi - ALPHA * FRICTION * pi / mi - ALPHA * gi for pi, gi, mi in zip(p, g, m, strict=True)],
    )


@pytest.mark.parametrize("mass_kind", MASS_KINDS)
def test_symplectic_euler_closed_form(mass_kind: str) -> None:
    # p⁺ = (1 − x) p − α g, θ⁺ = θ + α p⁺/m: θ moves with the NEW momentum.
    mass, m = _masses(mass_kind)
    theta, p, g, new_theta, new_p = _one_step("symplectic_euler", mass, seed=2)
    expected_p = [
        (1 - ALPHA * FRICTION / mi) * pi - ALPHA * gi for pi, gi, mi in zip(p, g, m, strict=True)
    ]
    _close(new_p, expected_p)
    _close(
        new_theta, [th + ALPHA * pp / mi for th, pp, mi in zip(theta, expected_p, m, strict=True)]
    )


@pytest.mark.parametrize("mass_kind", MASS_KINDS)
def test_conformal_closed_form(mass_kind: str) -> None:
    mass, m = _masses(mass_kind)
    theta, p, g, new_theta, new_p = _one_step("conformal", mass, seed=4)
    expected_p = [
        torch.exp(-ALPHA * FRICTION / torch.as_tensor(mi, dtype=DT)) * pi - ALPHA * gi
        for pi, gi, mi in zip(p, g, m, strict=True)
    ]
    _close(new_p, expected_p)
    _close(
        new_theta, [th + ALPHA * pp / mi for th, pp, mi in zip(theta, expected_p, m, strict=True)]
    )


@pytest.mark.parametrize("mass_kind", MASS_KINDS)
def test_nesterov_closed_form(mass_kind: str) -> None:
    # p⁺ = μ p − α g, θ⁺ = θ + (α/m)(μ p⁺ − α g), μ = e^(−x).
    mass, m = _masses(mass_kind)
    theta, p, g, new_theta, new_p = _one_step("nesterov", mass, seed=5)
    mu = [torch.exp(-ALPHA * FRICTION / torch.as_tensor(mi, dtype=DT)) for mi in m]
    expected_p = [u * pi - ALPHA * gi for u, pi, gi in zip(mu, p, g, strict=True)]
    _close(new_p, expected_p)
    _close(
        new_theta,
        [
            th + ALPHA / mi * (u * pp - ALPHA * gi)
            for th, u, pp, gi, mi in zip(theta, mu, expected_p, g, m, strict=True)
        ],
    )


@pytest.mark.parametrize("mass_kind", MASS_KINDS)
def test_conformal_zero_gradient_decays_momentum_by_exp_minus_x(mass_kind: str) -> None:
    mass, m = _masses(mass_kind)
    params, p0, _ = _state(6)
    opt = PHS(params, lr=ALPHA, mass=mass, friction=FRICTION)
    for param, p in zip(params, p0, strict=True):
        opt.state[param]["momentum"] = p.clone()
        param.grad = torch.zeros_like(param)
    factor = [torch.exp(-ALPHA * FRICTION / torch.as_tensor(mi, dtype=DT)) for mi in m]
    expected = p0
    for _ in range(5):
        opt.step()
        expected = [f * e for f, e in zip(factor, expected, strict=True)]
        _close([opt.state[param]["momentum"] for param in params], expected)


# scheme, μ(x) of p⁺ = μ p − b g
FACTORS = [
    ("euler", lambda x: 1 - x),
    ("symplectic_euler", lambda x: 1 - x),
    ("conformal", lambda x: math.exp(-x)),
    ("nesterov", lambda x: math.exp(-x)),
    ("stormer_verlet", lambda x: (2 - x) / (2 + x)),
]


@pytest.mark.parametrize(("scheme", "mu"), FACTORS, ids=[f[0] for f in FACTORS])
@pytest.mark.parametrize("friction_on", ["velocity", "momentum"])
def test_momentum_factor_closed_form(scheme: str, mu: object, friction_on: str) -> None:
    mass = 2.0
    opt = PHS(
        make_params(),
        lr=ALPHA,
        mass=mass,
        friction=FRICTION,
        scheme=scheme,
        friction_on=friction_on,
    )
    x = ALPHA * FRICTION / mass if friction_on == "velocity" else ALPHA * FRICTION
    factor = opt.momentum_factor()
    assert factor.dim() == 0
    assert float(factor) == pytest.approx(mu(x), rel=1e-12)  # type: ignore[operator]


@pytest.mark.parametrize("k", [0.5, 2.0, 50.0, 1000.0])
def test_conformal_braking_by_k_turns_mu_into_mu_to_the_k(k: float) -> None:
    params, p0, _ = _state(8)
    opt = PHS(params, lr=ALPHA, mass=0.5, friction=FRICTION)
    mu = float(opt.momentum_factor())
    opt.param_groups[0]["friction"] *= k
    assert float(opt.momentum_factor()) == pytest.approx(mu**k, rel=1e-12)
    # ... and the next step uses it: with zero gradient p⁺ = μᵏ p (stable for every k).
    for param, p in zip(params, p0, strict=True):
        opt.state[param]["momentum"] = p.clone()
        param.grad = torch.zeros_like(param)
    opt.step()
    _close([opt.state[param]["momentum"] for param in params], [mu**k * p for p in p0])
    assert all(torch.isfinite(param).all() for param in params)
