"""kinetic_energy(), dissipation_power() and momentum_factor(): 0-d tensors, closed forms."""

from __future__ import annotations

import math

import pytest
import torch
from phs_helpers import DT, SHAPES, make_params, momenta, set_grads

from goalbrake.optim import PHS, get_kinetic

LR, FRICTION = 0.1, 0.7


def _stepped(steps: int = 3, **kwargs: object) -> tuple[PHS, list[torch.nn.Parameter]]:
    params = make_params()
    opt = PHS(params, **{"lr": LR, "friction": FRICTION, **kwargs})  # type: ignore[arg-type]
    for _ in range(steps):
        set_grads(params)
        opt.step()
    return opt, params


def _sum_sq(tensors: list[torch.Tensor], weights: list[object] | None = None) -> torch.Tensor:
    weights = weights or [1.0] * len(tensors)
    return sum((w * t.square()).sum() for t, w in zip(tensors, weights, strict=True))  # type: ignore[return-value]


def _check(value: torch.Tensor, expected: torch.Tensor | float) -> None:
    assert isinstance(value, torch.Tensor) and value.dim() == 0
    assert value.dtype == DT
    torch.testing.assert_close(value, torch.as_tensor(expected, dtype=DT), rtol=1e-12, atol=0)


@pytest.mark.parametrize("mass", [0.5, 3.0])
def test_quadratic_closed_forms(mass: float) -> None:
    opt, params = _stepped(mass=mass)
    p = momenta(opt, params)
    _check(opt.kinetic_energy(), _sum_sq(p) / (2 * mass))  # Σp²/2m
    _check(opt.dissipation_power(), FRICTION * _sum_sq(p) / mass**2)  # γΣp²/m² (velocity)
    _check(opt.momentum_factor(), math.exp(-LR * FRICTION / mass))


def test_momentum_friction_dissipation() -> None:
    mass = 2.0
    opt, params = _stepped(mass=mass, friction_on="momentum")
    _check(opt.dissipation_power(), FRICTION * _sum_sq(momenta(opt, params)) / mass)  # γΣp²/m


def test_per_element_mass_closed_forms() -> None:
    gen = torch.Generator().manual_seed(0)
    mass = [torch.rand(s, generator=gen, dtype=DT) + 0.5 for s in SHAPES]
    opt, params = _stepped(mass=mass)
    p = momenta(opt, params)
    _check(opt.kinetic_energy(), 0.5 * _sum_sq(p, [1 / m for m in mass]))
    _check(opt.dissipation_power(), FRICTION * _sum_sq(p, [1 / m**2 for m in mass]))
    # The mean factor over all elements for an element-wise friction rate.
    mean = sum(torch.exp(-LR * FRICTION / m).sum() for m in mass) / sum(m.numel() for m in mass)
    _check(opt.momentum_factor(), mean)


@pytest.mark.parametrize(
    "kinetic", ["relativistic", "normalized", "soft_clip", "logsumexp", "pnorm"]
)
@pytest.mark.parametrize("friction_on", ["velocity", "momentum"])
def test_other_energies(kinetic: str, friction_on: str) -> None:
    opt, params = _stepped(kinetic=kinetic, friction_on=friction_on, friction=0.01)
    p = momenta(opt, params)
    phi = get_kinetic(kinetic)
    _check(opt.kinetic_energy(), phi.value(p, 1.0))
    v = phi.grad(p, 1.0)
    force = v if friction_on == "velocity" else p
    _check(
        opt.dissipation_power(),
        0.01 * sum((vi * fi).sum() for vi, fi in zip(v, force, strict=True)),
    )


def test_before_the_first_step() -> None:
    opt = PHS(make_params(), lr=LR, mass=2.0, friction=FRICTION, scheme="stormer_verlet")
    _check(opt.kinetic_energy(), 0.0)
    _check(opt.dissipation_power(), 0.0)
    x = LR * FRICTION / 2.0
    _check(opt.momentum_factor(), (2 - x) / (2 + x))


def test_groups_sum_and_select() -> None:
    a, b = make_params(0), make_params(1)
    opt = PHS([{"params": a, "mass": 0.5}, {"params": b, "mass": 4.0, "friction": 0.1}], lr=LR)
    for _ in range(2):
        set_grads(a)
        set_grads(b)
        opt.step()
    e_a = _sum_sq(momenta(opt, a)) / (2 * 0.5)
    e_b = _sum_sq(momenta(opt, b)) / (2 * 4.0)
    _check(opt.kinetic_energy(0), e_a)
    _check(opt.kinetic_energy(1), e_b)
    _check(opt.kinetic_energy(), e_a + e_b)
    d_b = 0.1 * _sum_sq(momenta(opt, b)) / 16.0
    _check(opt.dissipation_power(1), d_b)
    _check(opt.momentum_factor(1), math.exp(-LR * 0.1 / 4.0))


def test_a_group_without_state_counts_zero() -> None:
    a, b = make_params(0), make_params(1)
    opt = PHS([{"params": a}, {"params": b}], lr=LR, mass=0.5)
    set_grads(a)  # b never gets a gradient
    opt.step()
    _check(opt.kinetic_energy(), _sum_sq(momenta(opt, a)))
    _check(opt.kinetic_energy(1), 0.0)
    _check(opt.dissipation_power(1), 0.0)


def test_tensor_friction_is_read_at_each_call() -> None:
    opt, params = _stepped(friction=torch.tensor(FRICTION, dtype=DT), mass=1.0)
    opt.param_groups[0]["friction"] = opt.param_groups[0]["friction"] * 10
    _check(opt.dissipation_power(), 10 * FRICTION * _sum_sq(momenta(opt, params)))
    _check(opt.momentum_factor(), math.exp(-LR * FRICTION * 10))
