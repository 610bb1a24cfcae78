"""PHS under a torch lr scheduler: μ = e^(−lr·γ/m) follows lr, unless fixed_momentum keeps it."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch.optim.lr_scheduler import StepLR

from goalbrake import PHS

LR, MASS, FRICTION, GAMMA = 0.2, 2.0, 1.5, 0.1  # StepLR: lr × 0.1 every 2 steps


def problem(seed: int = 0) -> tuple[list[torch.nn.Parameter], torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    params = [
        torch.nn.Parameter(torch.randn(5, 3, generator=g, dtype=torch.float64)),
        torch.nn.Parameter(torch.randn(3, generator=g, dtype=torch.float64)),
    ]
    target = torch.randn(5, 3, generator=g, dtype=torch.float64)
    return params, target


def run(opt: PHS, params: list[torch.nn.Parameter], target: torch.Tensor, steps: int, on_lr=None):
    """Steps with a StepLR; ``on_lr(opt)`` after each scheduler step; μ before each step."""
    scheduler = StepLR(opt, step_size=2, gamma=GAMMA)
    mus = []
    for _ in range(steps):
        opt.zero_grad()
        loss = ((params[0] - target) ** 2).sum() + (params[1] ** 2).sum()
        loss.backward()
        mus.append(float(opt.momentum_factor(0)))
        opt.step()
        scheduler.step()
        if on_lr is not None:
            on_lr(opt)
    return mus


def make(params: list[torch.nn.Parameter], **kwargs: Any) -> PHS:
    return PHS(params, lr=LR, mass=MASS, friction=FRICTION, **kwargs)


def test_by_default_a_shrinking_lr_weakens_the_damping() -> None:
    params, target = problem()
    mus = run(make(params), params, target, steps=5)
    x0 = LR * FRICTION / MASS
    assert mus == pytest.approx([math.exp(-x0 * GAMMA**k) for k in (0, 0, 1, 1, 2)], rel=1e-12)
    assert 1 - mus[-1] < (1 - mus[0]) / 50  # the friction part all but gone


PATHS = [{"foreach": False}, {"foreach": True}, {"fused": True}, {}]


@pytest.mark.parametrize("path", PATHS, ids=["for-loop", "foreach", "fused", "default"])
@pytest.mark.parametrize("friction_on", ["velocity", "momentum"])
def test_fixed_momentum_keeps_mu_and_equals_the_friction_rescaled_by_hand(
    path: dict[str, Any], friction_on: str
) -> None:
    params, target = problem()
    fixed = make(params, fixed_momentum=True, friction_on=friction_on, **path)
    mus = run(fixed, params, target, steps=6)

    ref_params, ref_target = problem()
    ref = make(ref_params, friction_on=friction_on, **path)

    def rescale(opt: PHS) -> None:  # γ·lr₀/lr, the same expression the step applies
        opt.param_groups[0]["friction"] = FRICTION * LR / opt.param_groups[0]["lr"]

    run(ref, ref_params, ref_target, steps=6, on_lr=rescale)
    x0 = LR * FRICTION / (MASS if friction_on == "velocity" else 1.0)
    assert mus == pytest.approx([math.exp(-x0)] * 6, rel=1e-14)
    for p, q in zip(params, ref_params, strict=True):
        assert torch.equal(p, q)
        assert torch.equal(fixed.state[p]["momentum"], ref.state[q]["momentum"])
    assert fixed.param_groups[0]["friction"] == FRICTION  # the setting itself stays
    assert float(fixed.dissipation_power()) == pytest.approx(float(ref.dissipation_power()))


def test_a_brake_still_raises_mu_to_the_factor() -> None:
    params, target = problem()
    opt = make(params, fixed_momentum=True)
    run(opt, params, target, steps=3)  # lr is now 0.1·LR
    mu = float(opt.momentum_factor(0))
    opt.param_groups[0]["friction"] *= 50.0
    assert float(opt.momentum_factor(0)) == pytest.approx(mu**50, rel=1e-12)


def test_tensor_lr_set_in_place_by_the_scheduler() -> None:
    params, target = problem()
    opt = PHS(params, lr=torch.tensor(LR), mass=MASS, friction=FRICTION, fixed_momentum=True)
    mus = run(opt, params, target, steps=4)
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(LR * GAMMA**2)
    assert mus == pytest.approx([math.exp(-LR * FRICTION / MASS)] * 4, rel=1e-6)


def test_friction_lr_is_saved_and_an_old_state_loads_with_the_option_off() -> None:
    params, target = problem()
    opt = make(params, fixed_momentum=True)
    run(opt, params, target, steps=3)
    state = opt.state_dict()
    assert state["param_groups"][0]["friction_lr"] == LR

    again = make(problem()[0], fixed_momentum=True)
    again.param_groups[0]["lr"] = 1.0
    again.load_state_dict(state)
    assert float(again.momentum_factor(0)) == pytest.approx(math.exp(-LR * FRICTION / MASS))

    old = {**state, "param_groups": [dict(state["param_groups"][0])]}
    del old["param_groups"][0]["fixed_momentum"], old["param_groups"][0]["friction_lr"]
    plain = make(problem()[0])
    plain.load_state_dict(old)
    assert plain.param_groups[0]["fixed_momentum"] is False


def test_a_group_added_later_records_its_own_lr() -> None:
    params, _ = problem()
    opt = PHS([params[0]], lr=LR, fixed_momentum=True)
    opt.add_param_group({"params": [params[1]], "lr": 0.05})
    assert [g["friction_lr"] for g in opt.param_groups] == [LR, 0.05]


def test_invalid_fixed_momentum() -> None:
    with pytest.raises(ValueError) as info:
        make(problem()[0], fixed_momentum=1)
    assert str(info.value) == "Invalid fixed_momentum value: 1 (must be True or False)"
