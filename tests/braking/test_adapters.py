"""Friction adapters: PHS friction and SGD momentum braked, released, kicked, refused."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from goalbrake import PHS
from goalbrake.braking import (
    BestWeights,
    Brake,
    BrakeController,
    NewBest,
    PHSFriction,
    Release,
    RestoreBest,
    SGDMomentum,
    apply_decisions,
    friction_adapter,
)


def _model(seed: int = 0, dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).to(dtype)


def _brake(factor: float) -> Brake:
    return Brake(factor, 0, "goal", "test", 1, 0.0, 0.0)


# ------------------------------------------------------------------------------- PHS
def test_phs_float_friction_is_multiplied_and_stays_a_float() -> None:
    model = _model()
    opt = PHS(
        [{"params": model[0].parameters(), "friction": 0.2}, {"params": model[2].parameters()}],
        lr=0.1,
        friction=0.1,
    )
    adapter = friction_adapter(opt)
    assert isinstance(adapter, PHSFriction) and not adapter.braked
    adapter.brake(50.0)
    assert [g["friction"] for g in opt.param_groups] == [0.2 * 50.0, 0.1 * 50.0]
    assert all(type(g["friction"]) is float for g in opt.param_groups)
    adapter.brake(2.0)  # a second stage compounds
    assert [g["friction"] for g in opt.param_groups] == [0.2 * 50.0 * 2.0, 0.1 * 50.0 * 2.0]
    assert adapter.original == [0.2, 0.1] and adapter.friction() == 0.2 * 100.0
    adapter.release()
    assert [g["friction"] for g in opt.param_groups] == [0.2, 0.1] and not adapter.braked


def test_phs_tensor_friction_is_braked_in_place_once_even_when_shared() -> None:
    model = _model()
    shared = torch.tensor(0.1)
    opt = PHS(
        [{"params": model[0].parameters()}, {"params": model[2].parameters()}],
        lr=0.1,
        friction=shared,  # the default: both groups hold this very tensor
    )
    assert opt.param_groups[0]["friction"] is opt.param_groups[1]["friction"]
    adapter = friction_adapter(opt)
    adapter.brake(50.0)
    for g in opt.param_groups:
        assert g["friction"] is shared  # the optimizer keeps its tensor: in place, no sync
    assert float(shared) == pytest.approx(5.0)
    adapter.release()
    assert float(shared) == pytest.approx(0.1) and opt.param_groups[0]["friction"] is shared


def test_phs_brake_changes_the_momentum_factor_to_its_power() -> None:
    model = _model()
    opt = PHS(model.parameters(), lr=0.1, mass=2.0, friction=0.3)
    mu = float(opt.momentum_factor())
    friction_adapter(opt).brake(50.0)
    assert float(opt.momentum_factor()) == pytest.approx(mu**50, rel=1e-6)


# ------------------------------------------------------------------------------- SGD
def test_sgd_momentum_maps_to_its_kth_power_and_back() -> None:
    model = _model()
    opt = torch.optim.SGD(
        [{"params": model[0].parameters(), "momentum": 0.5}, {"params": model[2].parameters()}],
        lr=0.1,
        momentum=0.9,
    )
    adapter = friction_adapter(opt)
    assert isinstance(adapter, SGDMomentum)
    assert adapter.friction() == pytest.approx(-math.log(0.5))
    adapter.brake(50.0)
    assert [g["momentum"] for g in opt.param_groups] == [0.5**50, 0.9**50]
    adapter.release()
    assert [g["momentum"] for g in opt.param_groups] == [0.5, 0.9]


def test_braked_phs_conformal_equals_braked_sgd() -> None:
    """PHS conformal ≡ SGD(lr=α²/m, momentum=e^(−αγ/m)); braking both keeps them equal."""
    alpha, mass, friction, k = 0.1, 2.0, 0.4, 50.0
    a, b = _model(1, torch.float64), _model(1, torch.float64)
    phs = PHS(a.parameters(), lr=alpha, mass=mass, friction=friction, scheme="conformal")
    sgd = torch.optim.SGD(
        b.parameters(), lr=alpha**2 / mass, momentum=math.exp(-alpha * friction / mass)
    )
    brakes = [friction_adapter(phs), friction_adapter(sgd)]
    x, y = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 1, dtype=torch.float64)
    for step in range(12):
        if step == 5:
            apply_decisions([_brake(k)], brakes)
        for model, opt in ((a, phs), (b, sgd)):
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)


# -------------------------------------------------------------------------- refusals
def test_unsupported_optimizer_is_refused_naming_what_is_supported() -> None:
    opt = torch.optim.Adam(_model().parameters())
    with pytest.raises(TypeError) as info:
        friction_adapter(opt)
    assert str(info.value) == (
        "GoalBrake supports goalbrake.PHS, goalbrake.optim.PHSFlow and torch.optim.SGD with "
        "momentum > 0, got Adam"
    )


def test_sgd_without_momentum_is_refused() -> None:
    opt = torch.optim.SGD(_model().parameters(), lr=0.1)
    with pytest.raises(ValueError) as info:
        friction_adapter(opt)
    assert str(info.value) == (
        "GoalBrake supports goalbrake.PHS, goalbrake.optim.PHSFlow and torch.optim.SGD with "
        "momentum > 0, got SGD with momentum 0"
    )


def test_wrapped_optimizer_is_unwrapped() -> None:
    class Wrapper:  # like Lightning's LightningOptimizer
        def __init__(self, optimizer: torch.optim.Optimizer) -> None:
            self.optimizer = optimizer

    opt = PHS(_model().parameters(), lr=0.1)
    assert friction_adapter(Wrapper(opt)).optimizer is opt


# ---------------------------------------------------------------- kick, state, resume
@pytest.mark.parametrize("kind", ["phs", "sgd"])
def test_release_with_kick_scales_the_momentum(kind: str) -> None:
    model = _model()
    if kind == "phs":
        opt = PHS(model.parameters(), lr=0.1, friction=0.1)
        key = "momentum"
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        key = "momentum_buffer"
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    before = [opt.state[p][key].clone() for p in model.parameters()]
    adapter = friction_adapter(opt)
    adapter.brake(10.0)
    apply_decisions([Release(kick=3.0, reason="test", step=2)], [adapter])
    for p, old in zip(model.parameters(), before, strict=True):
        torch.testing.assert_close(opt.state[p][key], 3.0 * old)
    assert not adapter.braked


def test_state_dict_round_trip_and_reconcile_after_a_fresh_optimizer() -> None:
    model = _model()
    opt = PHS(model.parameters(), lr=0.1, friction=0.1)
    adapter = friction_adapter(opt)
    adapter.brake(50.0)
    state = adapter.state_dict()
    assert state == {"original": [0.1]}

    # Lightning restored the optimizer state: friction already braked, nothing to do.
    resumed = friction_adapter(PHS(model.parameters(), lr=0.1, friction=5.0))
    resumed.load_state_dict(state)
    assert not resumed.reconcile(50.0) and resumed.optimizer.param_groups[0]["friction"] == 5.0

    # A fresh optimizer (weights-only resume) lost the brake: reconcile brakes it again.
    fresh = friction_adapter(PHS(model.parameters(), lr=0.1, friction=0.1))
    fresh.load_state_dict(state)
    assert fresh.reconcile(50.0)
    assert fresh.optimizer.param_groups[0]["friction"] == 0.1 * 50.0
    fresh.release()
    assert fresh.optimizer.param_groups[0]["friction"] == 0.1


def test_state_with_another_number_of_groups_is_refused() -> None:
    adapter = friction_adapter(PHS(_model().parameters(), lr=0.1))
    with pytest.raises(ValueError, match=r"^Invalid state: 2 param groups in the state, 1 in"):
        adapter.load_state_dict({"original": [0.1, 0.2]})


# ----------------------------------------------------------------------- best weights
def test_best_weights_are_kept_on_the_cpu_and_restored_in_place() -> None:
    model = _model()
    best = BestWeights()
    apply_decisions([NewBest(loss=1.0, step=3)], [], module=model, best=best)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    weight = model[0].weight
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    apply_decisions([RestoreBest(loss=1.0, step=3, reason="test")], [], module=model, best=best)
    assert model[0].weight is weight  # loaded in place: optimizers keep their tensors
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, saved[k])
        assert best.state[k].device.type == "cpu"


def test_best_weight_decisions_need_a_module() -> None:
    with pytest.raises(RuntimeError, match=r"^NewBest needs the weights: pass module=<model>"):
        apply_decisions([NewBest(loss=1.0, step=1)], [])


# -------------------------------------------------------------------- hand-written loop
def test_a_hand_written_loop_brakes_once_and_later_steps_use_it() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    opt = PHS(model.parameters(), lr=0.1, mass=1.0, friction=0.5)
    with torch.no_grad():
        l0 = float(nn.functional.mse_loss(model(x), y))
    ctrl = BrakeController(goal=0.8, factor=20.0, reference_loss=l0, half_life=2.0)
    brakes = [friction_adapter(opt)]
    frictions = []
    for _ in range(60):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        frictions.append(opt.param_groups[0]["friction"])
        apply_decisions(ctrl.update(loss.detach()), brakes)
    assert ctrl.braked_step is not None
    assert frictions[: ctrl.braked_step] == [0.5] * ctrl.braked_step
    assert frictions[ctrl.braked_step :] == [10.0] * (60 - ctrl.braked_step)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_braking_a_device_friction_never_syncs() -> None:
    model = _model().cuda()
    friction = torch.tensor(0.1, device="cuda")
    opt = PHS(model.parameters(), lr=0.1, friction=friction)
    adapter = friction_adapter(opt)
    torch.cuda.set_sync_debug_mode("error")
    try:
        adapter.brake(50.0)
        adapter.friction()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert opt.param_groups[0]["friction"] is friction and float(friction) == pytest.approx(5.0)
