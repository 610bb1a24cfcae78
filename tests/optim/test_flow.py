"""PHSFlow: the port-Hamiltonian gradient flow integrated per batch.

The reference for the linear cases is exact: on L = ½ k θ² with the quadratic kinetic
energy the flow is the damped oscillator m θ'' + γ θ' + k θ = 0, whose solution over time
T is the matrix exponential of the 2×2 system matrix (torch.linalg.matrix_exp, float64).
"""

from __future__ import annotations

import copy
import math
import pickle

import pytest
import torch
from torch import Tensor

from goalbrake.optim import PHS, PHSFlow
from goalbrake.optim.kinetic import (
    KineticEnergy,
    Logsumexp,
    Normalized,
    PNorm,
    Quadratic,
    Relativistic,
    SoftClip,
)

F64 = torch.float64


# ------------------------------------------------------------------------------ helpers
def oscillator(k: float, m: float, gamma: float, friction_on: str) -> Tensor:
    """The system matrix A of (θ, p)' = A (θ, p) for L = ½kθ² and φ = p²/2m."""
    damping = gamma / m if friction_on == "velocity" else gamma
    return torch.tensor([[0.0, 1.0 / m], [-k, -damping]], dtype=F64)


def exact(a: Tensor, time: float, theta: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
    """(θ(T), p(T)) elementwise for a stack of 2×2 systems a of shape (n, 2, 2)."""
    y = torch.linalg.matrix_exp(a * time) @ torch.stack([theta, p], dim=-1).unsqueeze(-1)
    return y[..., 0, 0], y[..., 1, 0]


def gamma_for(zeta: float, k: float, m: float, friction_on: str) -> float:
    """The friction with damping ratio ζ (1: critical) for m θ'' + c θ' + k θ = 0."""
    critical = 2.0 * math.sqrt(k * m)  # c = γ (velocity) or γ m (momentum)
    return zeta * critical if friction_on == "velocity" else zeta * critical / m


def quadratic_closure(theta: Tensor, k: Tensor | float) -> callable:
    def closure() -> Tensor:
        loss = 0.5 * (k * theta.square()).sum()
        loss.backward()  # no zero_grad here: PHSFlow clears the gradients itself
        return loss

    return closure


REGIMES = {"underdamped": 0.2, "critical": 1.0, "overdamped": 3.0}


# ------------------------------------------------------------------ the closed form
@pytest.mark.parametrize("friction_on", ["velocity", "momentum"])
@pytest.mark.parametrize("regime", list(REGIMES))
@pytest.mark.parametrize("lr", [0.05, 1.0, 7.0])
@pytest.mark.parametrize(("rtol", "atol"), [(1e-3, 1e-6), (1e-8, 1e-11)])
def test_one_step_is_the_damped_oscillator(
    friction_on: str, regime: str, lr: float, rtol: float, atol: float
) -> None:
    k, m = 3.0, 2.0
    gamma = gamma_for(REGIMES[regime], k, m, friction_on)
    theta = torch.nn.Parameter(torch.tensor([1.5], dtype=F64))
    opt = PHSFlow(
        [theta],
        lr=lr,
        mass=m,
        friction=gamma,
        friction_on=friction_on,
        rtol=rtol,
        atol=atol,
        max_evals=10_000,
    )
    opt.step(quadratic_closure(theta, k))

    want_theta, want_p = exact(
        oscillator(k, m, gamma, friction_on), lr, theta.new_tensor([1.5]), theta.new_zeros(1)
    )
    # Global error of an adaptive solver: a small multiple of the local tolerance.
    tol = 20 * (rtol * 1.5 + atol)
    torch.testing.assert_close(theta.detach(), want_theta, rtol=0, atol=tol)
    torch.testing.assert_close(opt.state[theta]["momentum"], want_p, rtol=0, atol=tol)


@pytest.mark.parametrize("friction_on", ["velocity", "momentum"])
def test_diagonal_quadratic_in_all_regimes_over_several_steps_and_a_brake(
    friction_on: str,
) -> None:
    # One coordinate per regime and a few stiffnesses: the coordinates decouple, each is
    # its own oscillator; the composition of steps is the product of exponentials.
    k = torch.tensor([0.05, 0.25, 1.0, 4.0, 25.0, 0.5], dtype=F64)
    m, gamma, lr, brake = 1.0, 1.0, 0.7, 8.0
    theta0 = torch.linspace(-2.0, 2.0, 6, dtype=F64)
    p0 = torch.linspace(1.0, -1.0, 6, dtype=F64)
    theta = torch.nn.Parameter(theta0.clone())
    opt = PHSFlow(
        [theta], lr=lr, mass=m, friction=gamma, friction_on=friction_on, rtol=1e-9, atol=1e-12
    )
    opt.state[theta]["momentum"] = p0.clone()  # start moving

    a = torch.stack([oscillator(float(ki), m, gamma, friction_on) for ki in k])
    a_braked = torch.stack([oscillator(float(ki), m, brake * gamma, friction_on) for ki in k])
    want = (theta0, p0)
    for step in range(4):
        if step == 2:
            opt.param_groups[0]["friction"] *= brake  # what GoalBrake does
        opt.step(quadratic_closure(theta, k))
        want = exact(a_braked if step >= 2 else a, lr, *want)
        torch.testing.assert_close(theta.detach(), want[0], rtol=0, atol=1e-7)
        torch.testing.assert_close(opt.state[theta]["momentum"], want[1], rtol=0, atol=1e-7)


def test_diagonal_mass_matrix() -> None:
    k = torch.tensor([1.0, 4.0, 0.5], dtype=F64)
    mass = torch.tensor([0.5, 2.0, 8.0], dtype=F64)
    gamma, lr = 1.5, 2.0
    theta = torch.nn.Parameter(torch.ones(3, dtype=F64))
    opt = PHSFlow([theta], lr=lr, mass=[mass], friction=gamma, rtol=1e-9, atol=1e-12)
    opt.step(quadratic_closure(theta, k))
    a = torch.stack(
        [
            oscillator(float(ki), float(mi), gamma, "velocity")
            for ki, mi in zip(k, mass, strict=True)
        ]
    )
    want = exact(a, lr, torch.ones(3, dtype=F64), torch.zeros(3, dtype=F64))
    torch.testing.assert_close(theta.detach(), want[0], rtol=0, atol=1e-7)
    torch.testing.assert_close(opt.state[theta]["momentum"], want[1], rtol=0, atol=1e-7)


def test_each_group_integrates_for_its_own_lr() -> None:
    # Two decoupled groups: each follows its oscillator for time = its own lr.
    a_param = torch.nn.Parameter(torch.tensor([1.0], dtype=F64))
    b_param = torch.nn.Parameter(torch.tensor([1.0], dtype=F64))
    opt = PHSFlow(
        [{"params": [a_param], "lr": 0.3}, {"params": [b_param], "lr": 3.0, "friction": 2.0}],
        lr=1.0,
        friction=0.5,
        rtol=1e-9,
        atol=1e-12,
    )

    def closure() -> Tensor:
        loss = 0.5 * a_param.square().sum() + 2.0 * b_param.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    one, zero = torch.ones(1, dtype=F64), torch.zeros(1, dtype=F64)
    want_a = exact(oscillator(1.0, 1.0, 0.5, "velocity"), 0.3, one, zero)
    want_b = exact(oscillator(4.0, 1.0, 2.0, "velocity"), 3.0, one, zero)
    torch.testing.assert_close(a_param.detach(), want_a[0], rtol=0, atol=1e-7)
    torch.testing.assert_close(b_param.detach(), want_b[0], rtol=0, atol=1e-7)


def test_float32_with_the_default_tolerances() -> None:
    theta = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = PHSFlow([theta], lr=2.0, friction=1.0)
    opt.step(quadratic_closure(theta, 1.0))
    a = oscillator(1.0, 1.0, 1.0, "velocity").expand(2, 2, 2)
    want = exact(a, 2.0, torch.tensor([1.0, -2.0], dtype=F64), torch.zeros(2, dtype=F64))
    assert theta.dtype == torch.float32
    torch.testing.assert_close(theta.detach().double(), want[0], rtol=0, atol=1e-2)


# ---------------------------------------------------------------------------- energy
KINETICS = [
    Quadratic(),
    Relativistic(),
    # eps = 1e-3 (the default) is stiff near p = 0: the friction rate is 1/(m eps), an
    # explicit solver then needs ~10⁴ evaluations for lr = 10. 0.1 keeps the test fast.
    Normalized(eps=0.1),
    SoftClip(),
    Logsumexp(),
    PNorm(),
]


def _convex_losses() -> dict[str, callable]:
    g = torch.Generator().manual_seed(1)
    q = torch.randn(6, 6, generator=g, dtype=F64)
    q = q @ q.T / 6 + 0.1 * torch.eye(6, dtype=F64)
    x = torch.randn(40, 3, generator=g, dtype=F64)
    labels = torch.randint(0, 2, (40,), generator=g)
    y = torch.randint(0, 3, (40,), generator=g)

    def quadratic(theta: Tensor) -> Tensor:
        return 0.5 * theta @ q @ theta

    def softmax_regression(theta: Tensor) -> Tensor:  # a log-sum-exp of linear maps
        return torch.nn.functional.cross_entropy(x[:, :2] @ theta.view(2, 3), y)

    def logistic(theta: Tensor) -> Tensor:
        return (
            torch.nn.functional.binary_cross_entropy_with_logits(
                x @ theta[:3] + theta[3], labels.to(F64)
            )
            + 0.01 * theta.square().sum()
        )

    return {"quadratic": quadratic, "softmax": softmax_regression, "logistic": logistic}


LOSSES = _convex_losses()


@pytest.mark.parametrize("kinetic", KINETICS, ids=lambda k: k.name)
@pytest.mark.parametrize("loss_name", list(LOSSES))
@pytest.mark.parametrize("lr", [0.01, 0.3, 10.0])
@pytest.mark.parametrize("friction_on", ["velocity", "momentum"])
def test_energy_never_increases_on_convex_problems(
    kinetic: KineticEnergy, loss_name: str, lr: float, friction_on: str
) -> None:
    loss_fn = LOSSES[loss_name]
    theta = torch.nn.Parameter(torch.randn(6, dtype=F64))
    rtol = 1e-6
    opt = PHSFlow(
        [theta],
        lr=lr,
        friction=0.5,
        kinetic=kinetic,
        friction_on=friction_on,
        rtol=rtol,
        atol=1e-9,
        max_evals=20_000,
    )
    opt.state[theta]["momentum"] = torch.randn(6, dtype=F64)

    def closure() -> Tensor:
        loss = loss_fn(theta)
        loss.backward()
        return loss

    def energy() -> Tensor:
        with torch.no_grad():
            return loss_fn(theta) + opt.kinetic_energy()

    for _ in range(3):
        before = energy()
        opt.step(closure)
        after = energy()
        assert after <= before + 10 * rtol * before.abs(), (float(before), float(after))


@pytest.mark.parametrize("lr", [0.1, 1.0, 10.0])
def test_energy_is_conserved_without_friction(lr: float) -> None:
    loss_fn = LOSSES["softmax"]
    theta = torch.nn.Parameter(torch.randn(6, dtype=F64))
    opt = PHSFlow([theta], lr=lr, friction=0.0, rtol=1e-10, atol=1e-13, max_evals=20_000)
    opt.state[theta]["momentum"] = torch.randn(6, dtype=F64)

    def closure() -> Tensor:
        loss = loss_fn(theta)
        loss.backward()
        return loss

    with torch.no_grad():
        before = loss_fn(theta) + opt.kinetic_energy()
    opt.step(closure)
    with torch.no_grad():
        after = loss_fn(theta) + opt.kinetic_energy()
    torch.testing.assert_close(after, before, rtol=1e-7, atol=0)


# ------------------------------------------------- agreement with the discrete schemes
@pytest.mark.parametrize("kinetic", ["quadratic", "relativistic", "soft_clip", "pnorm"])
@pytest.mark.parametrize("friction_on", ["velocity", "momentum"])
@pytest.mark.parametrize(("weight_decay", "maximize"), [(0.0, False), (0.1, True)])
def test_fixed_euler_solver_is_the_euler_scheme(
    kinetic: str, friction_on: str, weight_decay: float, maximize: bool
) -> None:
    # One explicit Euler step over [0, lr] is PHS's eq. (2) read literally.
    x, y = torch.randn(16, 5, dtype=F64), torch.randn(16, dtype=F64)
    w_flow = torch.nn.Parameter(torch.randn(5, dtype=F64))
    w_phs = torch.nn.Parameter(w_flow.detach().clone())
    p0 = torch.randn(5, dtype=F64)
    kw = dict(
        lr=0.2,
        mass=2.0,
        friction=0.7,
        kinetic=kinetic,
        friction_on=friction_on,
        weight_decay=weight_decay,
        maximize=maximize,
    )
    flow = PHSFlow([w_flow], solver="euler", **kw)
    phs = PHS([w_phs], scheme="euler", **kw)
    flow.state[w_flow]["momentum"] = p0.clone()
    phs.state[w_phs]["momentum"] = p0.clone()

    def closure_for(w: Tensor) -> callable:
        def closure() -> Tensor:
            loss = (x @ w - y).square().mean()
            loss.backward()
            return loss

        return closure

    for _ in range(3):
        flow.step(closure_for(w_flow))
        phs.zero_grad()
        phs.step(closure_for(w_phs))
        assert flow.last_nfe == 1
    torch.testing.assert_close(w_flow, w_phs)
    torch.testing.assert_close(flow.state[w_flow]["momentum"], phs.state[w_phs]["momentum"])


def test_small_lr_agrees_with_the_conformal_scheme_to_second_order() -> None:
    # Both are consistent with the same flow: the difference after one step is O(lr²).
    x, y = torch.randn(32, 4, dtype=F64), torch.randn(32, dtype=F64)
    errors = []
    for lr in (1e-2, 1e-3):
        w_flow = torch.nn.Parameter(torch.ones(4, dtype=F64))
        w_phs = torch.nn.Parameter(torch.ones(4, dtype=F64))
        flow = PHSFlow([w_flow], lr=lr, friction=1.0, rtol=1e-10, atol=1e-14)
        phs = PHS([w_phs], lr=lr, friction=1.0, scheme="conformal")
        for w, opt in ((w_flow, flow), (w_phs, phs)):

            def closure(w: Tensor = w) -> Tensor:
                loss = (x @ w - y).square().mean()
                loss.backward()
                return loss

            opt.step(closure)
        errors.append(float((w_flow - w_phs).detach().abs().max()))
    assert errors[1] < errors[0] / 50  # ~100 for an O(lr²) difference


# --------------------------------------------------------------------------- the books
def test_step_returns_the_first_loss_and_counts_evaluations() -> None:
    theta = torch.nn.Parameter(torch.tensor([2.0], dtype=F64))
    opt = PHSFlow([theta], lr=1.0, friction=1.0)
    calls = []

    def closure() -> Tensor:
        loss = 0.5 * theta.square().sum()
        loss.backward()
        calls.append(float(loss.detach()))
        assert torch.is_grad_enabled()
        return loss

    loss = opt.step(closure)
    assert float(loss.detach()) == calls[0] == 2.0
    assert float(opt.last_loss) == 2.0
    assert opt.last_nfe == len(calls) == opt.function_evaluations() > 6
    first = opt.last_nfe
    opt.step(closure)
    assert opt.total_nfe == first + opt.last_nfe == len(calls)
    assert opt.state_dict()["flow"] == {"last_nfe": opt.last_nfe, "total_nfe": opt.total_nfe}


def test_later_steps_start_from_the_last_accepted_step_size() -> None:
    # The first step estimates its initial step size (one extra evaluation, then growth by
    # at most 10x per step); later ones start from the last accepted one: a short lr is
    # then a single dopri5 step, the cached first evaluation plus 6 stages.
    theta = torch.nn.Parameter(torch.ones(4))
    opt = PHSFlow([theta], lr=0.01, friction=1.0)
    nfe = []
    for _ in range(4):
        opt.step(quadratic_closure(theta, 1.0))
        nfe.append(opt.last_nfe)
    assert nfe[0] > 7
    assert nfe[1:] == [7, 7, 7]


def test_parameters_without_gradient_are_left_alone() -> None:
    used = torch.nn.Parameter(torch.ones(2))
    unused = torch.nn.Parameter(torch.ones(2))
    frozen = torch.nn.Parameter(torch.ones(2), requires_grad=False)
    opt = PHSFlow([used, unused, frozen], lr=0.5)
    opt.step(quadratic_closure(used, 1.0))
    assert not torch.equal(used.detach(), torch.ones(2))
    assert torch.equal(unused.detach(), torch.ones(2))
    assert torch.equal(frozen, torch.ones(2))
    assert "momentum" in opt.state[used]
    assert "momentum" not in opt.state[unused]


def test_no_parameter_with_gradient_is_a_no_op() -> None:
    theta = torch.nn.Parameter(torch.ones(2))
    opt = PHSFlow([theta], lr=0.5)
    assert opt.step(lambda: torch.tensor(3.0)) == torch.tensor(3.0)
    assert opt.last_nfe == 1
    assert torch.equal(theta.detach(), torch.ones(2))


def test_momentum_factor_is_the_exact_friction_decay() -> None:
    theta = torch.nn.Parameter(torch.ones(3))
    opt = PHSFlow([theta], lr=0.5, mass=2.0, friction=0.4)
    assert float(opt.momentum_factor()) == pytest.approx(math.exp(-0.5 * 0.4 / 2.0))
    opt.step(quadratic_closure(theta, 1.0))
    opt.param_groups[0]["friction"] *= 50
    assert float(opt.momentum_factor()) == pytest.approx(math.exp(-0.5 * 0.4 * 50 / 2.0))
    momentum = PHSFlow([theta], lr=0.5, mass=2.0, friction=0.4, friction_on="momentum")
    assert float(momentum.momentum_factor()) == pytest.approx(math.exp(-0.5 * 0.4))


def test_monitoring_matches_phs_definitions() -> None:
    theta = torch.nn.Parameter(torch.ones(3, dtype=F64))
    opt = PHSFlow([theta], lr=0.5, mass=2.0, friction=0.4)
    opt.step(quadratic_closure(theta, 1.0))
    p = opt.state[theta]["momentum"]
    torch.testing.assert_close(opt.kinetic_energy(), p.square().sum() / 4.0)
    torch.testing.assert_close(opt.dissipation_power(), 0.4 * p.square().sum() / 4.0)


def test_tensor_lr_and_friction() -> None:
    theta = torch.nn.Parameter(torch.tensor([1.0], dtype=F64))
    opt = PHSFlow(
        [theta], lr=torch.tensor(0.8, dtype=F64), friction=torch.tensor(0.5), rtol=1e-9, atol=1e-12
    )
    opt.step(quadratic_closure(theta, 1.0))
    want = exact(
        oscillator(1.0, 1.0, 0.5, "velocity"),
        0.8,
        torch.ones(1, dtype=F64),
        torch.zeros(1, dtype=F64),
    )
    torch.testing.assert_close(theta.detach(), want[0], rtol=0, atol=1e-7)


def test_state_dict_round_trip_and_copies() -> None:
    theta = torch.nn.Parameter(torch.ones(3))
    opt = PHSFlow([theta], lr=0.5, friction=0.3, solver="bosh3", rtol=1e-4, max_evals=500)
    opt.step(quadratic_closure(theta, 2.0))
    state = copy.deepcopy(opt.state_dict())

    fresh = PHSFlow([torch.nn.Parameter(torch.ones(3))], lr=1.0)
    fresh.load_state_dict(state)
    group = fresh.param_groups[0]
    assert (group["lr"], group["friction"], group["scheme"]) == (0.5, 0.3, "ode")
    assert (group["solver"], group["rtol"], group["max_evals"]) == ("bosh3", 1e-4, 500)
    assert (fresh.last_nfe, fresh.total_nfe) == (opt.last_nfe, opt.total_nfe)
    torch.testing.assert_close(
        fresh.state[fresh.param_groups[0]["params"][0]]["momentum"], opt.state[theta]["momentum"]
    )
    for clone in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        assert clone.param_groups[0]["scheme"] == "ode"
        assert clone.param_groups[0]["solver"] == "bosh3"
        clone.add_param_group({"params": [torch.nn.Parameter(torch.ones(1))]})
        assert (clone.param_groups[1]["solver"], clone.param_groups[1]["rtol"]) == ("bosh3", 1e-4)


def test_a_phs_state_loads_into_phsflow() -> None:
    theta = torch.nn.Parameter(torch.ones(3))
    phs = PHS([theta], lr=0.5, friction=0.3)
    theta.grad = torch.ones(3)
    phs.step()
    flow = PHSFlow([theta], lr=1.0)
    flow.load_state_dict(phs.state_dict())
    group = flow.param_groups[0]
    assert group["scheme"] == "ode"
    assert (group["solver"], group["rtol"], group["atol"], group["max_evals"]) == (
        "dopri5",
        1e-3,
        1e-6,
        1000,
    )
    torch.testing.assert_close(flow.state[theta]["momentum"], phs.state[theta]["momentum"])
    flow.step(quadratic_closure(theta, 1.0))  # runs


# -------------------------------------------------------------------------- failures
def test_too_many_evaluations_is_a_clear_error_and_restores_the_parameters() -> None:
    theta = torch.nn.Parameter(torch.tensor([1.0, 2.0], dtype=F64))
    opt = PHSFlow([theta], lr=10.0, friction=0.1, rtol=1e-3, max_evals=5)
    opt.state[theta]["momentum"] = torch.tensor([0.5, -0.5], dtype=F64)
    message = (
        "PHSFlow: the solver needed more than 5 function evaluations in one step "
        "(lr=10, rtol=0.001, atol=1e-06, solver='dopri5'); raise max_evals, loosen rtol/atol "
        "or shorten lr"
    )
    with pytest.raises(RuntimeError, match=f"^{_escape(message)}$"):
        opt.step(quadratic_closure(theta, 100.0))
    assert torch.equal(theta.detach(), torch.tensor([1.0, 2.0], dtype=F64))
    assert torch.equal(opt.state[theta]["momentum"], torch.tensor([0.5, -0.5], dtype=F64))
    assert opt.last_nfe == 5


def test_a_non_finite_gradient_is_a_clear_error_and_restores_the_parameters() -> None:
    theta = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    opt = PHSFlow([theta], lr=1.0)

    def closure() -> Tensor:
        loss = (theta * float("nan")).sum()
        loss.backward()
        return loss

    with pytest.raises(RuntimeError, match=r"^PHSFlow: the solver failed after \d+ function "):
        opt.step(closure)
    assert torch.equal(theta.detach(), torch.tensor([1.0, 2.0]))


def test_an_error_in_the_closure_restores_the_parameters() -> None:
    theta = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    opt = PHSFlow([theta], lr=1.0)
    calls = 0

    def closure() -> Tensor:
        nonlocal calls
        calls += 1
        if calls == 4:
            raise KeyError("boom")
        loss = theta.square().sum()
        loss.backward()
        return loss

    with pytest.raises(KeyError, match="boom"):
        opt.step(closure)
    assert torch.equal(theta.detach(), torch.tensor([1.0, 2.0]))


def test_step_without_closure_is_a_clear_error() -> None:
    opt = PHSFlow([torch.nn.Parameter(torch.ones(2))], lr=0.1)
    message = (
        "PHSFlow.step needs a closure that re-evaluates the loss on the current batch and "
        "calls backward(), e.g. opt.step(closure); Lightning passes one to optimizer.step in "
        "automatic optimization"
    )
    with pytest.raises(TypeError, match=f"^{_escape(message)}$"):
        opt.step()


def _escape(text: str) -> str:
    import re

    return re.escape(text)


BAD_ARGUMENTS = [
    (dict(lr=0.0), "Invalid learning rate value: 0.0 (must be > 0)"),
    (dict(friction=-0.1), "Invalid friction value: -0.1 (must be >= 0)"),
    (dict(mass=0.0), "Invalid mass value: 0.0 (must be > 0)"),
    (dict(weight_decay=-1.0), "Invalid weight_decay value: -1.0 (must be >= 0)"),
    (
        dict(friction_on="position"),
        "Invalid friction_on value: 'position' (must be one of velocity, momentum)",
    ),
    (dict(kinetic="cubic"), "Invalid kinetic value: 'cubic'"),
    (
        dict(solver="rk45"),
        "Invalid solver value: 'rk45' (must be one of dopri5, dopri8, bosh3, fehlberg2, "
        "adaptive_heun, euler, midpoint, heun2, heun3, rk4)",
    ),
    (dict(rtol=0.0), "Invalid rtol value: 0.0 (must be > 0)"),
    (dict(rtol="tight"), "Invalid rtol value: 'tight' (must be a number)"),
    (dict(atol=-1e-6), "Invalid atol value: -1e-06 (must be >= 0)"),
    (dict(max_evals=0), "Invalid max_evals value: 0 (must be an integer >= 1)"),
    (dict(max_evals=10.5), "Invalid max_evals value: 10.5 (must be an integer >= 1)"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_ARGUMENTS)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    arguments = dict(lr=0.1) | kwargs
    with pytest.raises(ValueError, match=f"^{_escape(message)}"):
        PHSFlow([torch.nn.Parameter(torch.ones(2))], **arguments)


def test_a_group_cannot_choose_a_discrete_scheme_or_another_solver() -> None:
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match=r"^Invalid scheme value: 'conformal' \(PHSFlow"):
        PHSFlow([{"params": [a], "scheme": "conformal"}], lr=0.1)
    opt = PHSFlow([a], lr=0.1)
    with pytest.raises(ValueError, match=r"^Invalid rtol value: 1e-05 in a param group, but "):
        opt.add_param_group({"params": [b], "rtol": 1e-5})
    assert len(opt.param_groups) == 1
    opt.add_param_group({"params": [b], "lr": 0.5, "friction": 2.0})  # those may differ
    opt.param_groups[1]["solver"] = "bosh3"
    with pytest.raises(ValueError, match=r"^Invalid solver value: 'bosh3' in a param group"):
        opt.step(quadratic_closure(a, 1.0))


# ------------------------------------------------------------------ Lightning + braking
def _lightning_run(tmp_path, max_epochs: int, ckpt_path=None):
    """A linear regression fitted by PHSFlow with a GoalBrake; returns (module, brake)."""
    pl = pytest.importorskip("lightning.pytorch")
    from torch.utils.data import DataLoader, TensorDataset

    from goalbrake.callbacks import GoalBrake

    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 4, generator=g)
    y = x @ torch.tensor([[1.5], [-2.0], [1.0], [0.5]]) + 0.1 * torch.randn(64, 1, generator=g)

    class Regression(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Linear(4, 1)
            self.closure_calls = 0
            self.frictions: list[float] = []  # the friction each optimizer step read

        def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
            self.closure_calls += 1
            loss = torch.nn.functional.mse_loss(self.net(batch[0]), batch[1])
            self.log("train/loss", loss)
            return loss

        def on_train_batch_start(self, batch: object, batch_idx: int) -> None:
            self.frictions.append(float(self.optimizers().param_groups[0]["friction"]))

        def configure_optimizers(self) -> PHSFlow:
            return PHSFlow(self.parameters(), lr=0.3, friction=0.5)

    module = Regression()
    brake = GoalBrake(
        goal=0.3, factor=10.0, mode="remaining", smoothing="none", reference_batches=2, log=False
    )
    trainer = pl.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[brake],
    )
    trainer.fit(module, DataLoader(TensorDataset(x, y), batch_size=16), ckpt_path=ckpt_path)
    return trainer, module, brake


def test_lightning_fit_brakes_once_and_a_resume_does_not_brake_again(tmp_path) -> None:
    trainer, module, brake = _lightning_run(tmp_path, max_epochs=3)
    opt = trainer.optimizers[0]
    assert isinstance(opt, PHSFlow)
    assert brake.braked_step is not None, "the regression should reach 30% of L0 in 12 steps"
    assert opt.param_groups[0]["friction"] == 5.0  # 0.5 x 10, once
    frictions = module.frictions
    step = brake.braked_step
    assert 0 < step < len(frictions)
    # Braked once, read by the next step, never undone.
    assert frictions == [0.5] * step + [5.0] * (len(frictions) - step)
    # Each optimizer step called the closure (training_step) last_nfe times.
    assert module.closure_calls > trainer.global_step * 6
    assert opt.total_nfe == module.closure_calls - 2  # GoalBrake measured L0 on 2 batches
    path = tmp_path / "braked.ckpt"
    trainer.save_checkpoint(path)

    resumed, module2, brake2 = _lightning_run(tmp_path, max_epochs=5, ckpt_path=path)
    opt2 = resumed.optimizers[0]
    assert resumed.global_step == 20
    assert brake2.braked_step == brake.braked_step
    assert opt2.param_groups[0]["friction"] == 5.0  # not 50
    assert module2.frictions == [5.0] * 8
    assert opt2.total_nfe == opt.total_nfe + module2.closure_calls  # counters resumed
    assert not brake2.history  # no new brake decision after the resume
