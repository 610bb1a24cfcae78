"""A braked torch SGD run follows goalbrake's one reading of SGD (goalbrake.optim.sgd).

SGD(lr=η, momentum=μ) is the conformal PHS scheme with η = α²/m and μ = e^(−αγ/m), so a
brake γ → kγ is μ → μᵏ. Real SGD and real PHS steps in real Trainers, read back from the
CSV logger: the SGD run's μ and energies equal the conformal PHS run's step for step, and
μ after the brake is μᵏ, not the symplectic Euler reading 1 − k(1 − μ).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from goalbrake import PHS
from goalbrake.callbacks import EnergyMonitor, GoalBrake
from goalbrake.optim.sgd import (
    SGD_SCHEME,
    phs_to_sgd,
    sgd_braked_momentum,
    sgd_friction_rate,
    sgd_kinetic_energy,
)

ALPHA, MASS = 0.2, 2.0
FRICTION = -math.log(0.9) * MASS / ALPHA  # μ = e^(−αγ/m) = 0.9
SGD_LR, MU = phs_to_sgd(ALPHA, MASS, FRICTION)  # η = α²/m = 0.02
AT_STEP, FACTOR, STEPS = 9, 3.0, 24


def fit(make_module, make_trainer, optimizer: Any) -> tuple[Any, Any, GoalBrake]:
    torch.manual_seed(0)
    brake = GoalBrake(at_step=AT_STEP, factor=FACTOR)
    trainer = make_trainer(
        callbacks=[brake, EnergyMonitor(logging_interval=1)], max_epochs=STEPS // 8
    )
    module = make_module(optimizer=optimizer)
    trainer.fit(module)
    assert trainer.global_step == STEPS and brake.braked_step == AT_STEP
    return trainer, module, brake


def test_the_mapping_in_numbers() -> None:
    assert SGD_SCHEME == "conformal"
    assert (SGD_LR, MU) == (pytest.approx(0.02), pytest.approx(0.9))
    assert sgd_braked_momentum(MU, FACTOR) == pytest.approx(0.729)
    assert sgd_friction_rate(0.729) == pytest.approx(-3 * math.log(0.9))
    assert phs_to_sgd(0.1, 1.0, 2.0, "momentum") == (pytest.approx(0.01), math.exp(-0.2))
    buffers = [torch.ones(3), 2 * torch.ones(2)]
    assert float(sgd_kinetic_energy(0.5, buffers)) == pytest.approx(0.25 * (3 + 8))
    with pytest.raises(ValueError) as info:
        phs_to_sgd(0.1, 1.0, 2.0, "position")
    assert str(info.value) == (
        "Invalid friction_on value: 'position' (must be one of velocity, momentum)"
    )


def test_a_braked_sgd_run_is_the_braked_conformal_phs_run(
    make_module, make_trainer, read_csv_metrics
) -> None:
    sgd = lambda params: torch.optim.SGD(params, lr=SGD_LR, momentum=MU)  # noqa: E731
    phs = lambda params: PHS(params, lr=ALPHA, mass=MASS, friction=FRICTION)  # noqa: E731
    sgd_trainer, sgd_module, _ = fit(make_module, make_trainer, sgd)
    sgd_log = read_csv_metrics(sgd_trainer)
    phs_trainer, phs_module, _ = fit(make_module, make_trainer, phs)
    phs_log = read_csv_metrics(phs_trainer)

    # μ: the update at step t uses μ for t < AT_STEP (the brake comes after update AT_STEP)
    mu = sgd_log["optim/momentum_factor"]
    assert sorted(mu) == list(range(STEPS))
    for step, value in mu.items():
        expected = MU if step < AT_STEP else MU**FACTOR
        assert value == pytest.approx(expected, rel=1e-6), step
        assert value == pytest.approx(phs_log["optim/momentum_factor"][step], rel=1e-5)
    assert mu[AT_STEP] != pytest.approx(1 - FACTOR * (1 - MU))  # not symplectic Euler
    assert sgd_trainer.optimizers[0].param_groups[0]["momentum"] == MU**FACTOR

    # The friction GoalBrake logs: SGD's rate x = −ln μ is the PHS run's αγ/m.
    for step in range(STEPS):
        x = sgd_log["brake/friction"][step]
        assert x == pytest.approx(ALPHA * phs_log["brake/friction"][step] / MASS, rel=1e-5)
    assert sgd_log["brake/friction"][AT_STEP - 1] == pytest.approx(FACTOR * -math.log(MU))

    # The energies: φ = (η/2)‖buf‖² of SGD is ‖p‖²/2m of PHS, and H = L + φ alike.
    for name in ("energy/potential", "energy/kinetic", "energy/total"):
        assert sorted(sgd_log[name]) == list(range(STEPS)), name
        for step, value in sgd_log[name].items():
            assert value == pytest.approx(phs_log[name][step], rel=1e-4, abs=1e-9), (name, step)
    assert max(sgd_log["energy/kinetic"].values()) > 0
    assert "energy/dissipation" not in sgd_log  # needs α, which SGD does not have
    for p, q in zip(sgd_module.parameters(), phs_module.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)
