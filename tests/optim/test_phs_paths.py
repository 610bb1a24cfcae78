"""The foreach and per-tensor paths agree; tensor hyperparameters equal floats; state dicts
round-trip into the same trajectory; old checkpoints load through setdefault."""

from __future__ import annotations

import itertools

import pytest
import torch
from phs_helpers import DT, SHAPES, make_params, momenta, rel_err, save, set_grads

from goalbrake.optim import KINETIC_NAMES, PHS, SCHEMES, get_kinetic

# α = 0.05 and γ = 0.01 keep every scheme below x = 2, for normalized too (s_max = 1/(mε)).
LR, FRICTION, MASS = 0.05, 0.01, 0.8


def _per_element_mass(seed: int = 3) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.rand(s, generator=gen, dtype=DT) + 0.5 for s in SHAPES]


def _run(params: list[torch.nn.Parameter], steps: int = 8, **kwargs: object) -> PHS:
    opt = PHS(params, **kwargs)  # type: ignore[arg-type]
    for _ in range(steps):
        set_grads(params)
        opt.step()
    return opt


def _assert_same_run(kwargs_a: dict, kwargs_b: dict, tol: float) -> None:
    a, b = make_params(), make_params()
    opt_a, opt_b = _run(a, **kwargs_a), _run(b, **kwargs_b)
    assert rel_err(a, b) <= tol
    assert rel_err(momenta(opt_a, a), momenta(opt_b, b)) <= tol


COMBOS = list(itertools.product(SCHEMES, KINETIC_NAMES, ["velocity", "momentum"]))


@pytest.mark.parametrize(
    ("scheme", "kinetic", "friction_on"), COMBOS, ids=["-".join(c) for c in COMBOS]
)
def test_foreach_equals_per_tensor(scheme: str, kinetic: str, friction_on: str) -> None:
    common = dict(
        lr=LR,
        mass=MASS,
        friction=FRICTION,
        scheme=scheme,
        kinetic=kinetic,
        friction_on=friction_on,
        weight_decay=0.01,
    )
    _assert_same_run({**common, "foreach": True}, {**common, "foreach": False}, 1e-6)
    # 0-d tensor lr and friction on both paths: the same as the floats.
    tensors = {
        **common,
        "lr": torch.tensor(LR, dtype=DT),
        "friction": torch.tensor(FRICTION, dtype=DT),
    }
    _assert_same_run({**tensors, "foreach": True}, {**common, "foreach": False}, 1e-6)
    _assert_same_run({**tensors, "foreach": False}, {**common, "foreach": True}, 1e-6)


SEPARABLE = [k for k in KINETIC_NAMES if get_kinetic(k).separable]
PER_MASS = list(itertools.product(SCHEMES, SEPARABLE, ["velocity", "momentum"], [False, True]))


@pytest.mark.parametrize(
    ("scheme", "kinetic", "friction_on", "tensor_hyper"),
    PER_MASS,
    ids=[f"{s}-{k}-{f}-{'tensor' if t else 'float'}" for s, k, f, t in PER_MASS],
)
def test_foreach_equals_per_tensor_with_per_parameter_mass(
    scheme: str, kinetic: str, friction_on: str, tensor_hyper: bool
) -> None:
    lr = torch.tensor(LR, dtype=DT) if tensor_hyper else LR
    friction = torch.tensor(FRICTION, dtype=DT) if tensor_hyper else FRICTION
    common = dict(
        lr=lr,
        mass=_per_element_mass(),
        friction=friction,
        scheme=scheme,
        kinetic=kinetic,
        friction_on=friction_on,
    )
    _assert_same_run({**common, "foreach": True}, {**common, "foreach": False}, 1e-6)


def test_per_element_mass_of_equal_values_equals_the_scalar_mass() -> None:
    uniform = [torch.full(s, MASS, dtype=DT) for s in SHAPES]
    for scheme in SCHEMES:
        base = dict(lr=LR, friction=FRICTION, scheme=scheme)
        _assert_same_run({**base, "mass": uniform}, {**base, "mass": MASS}, 1e-12)


def test_mass_tensor_broadcasts_per_parameter() -> None:
    # A (1,)-shaped mass per parameter is a scalar mass for that parameter.
    per = [torch.full((1,), MASS, dtype=DT) for _ in SHAPES]
    base = dict(lr=LR, friction=FRICTION)
    _assert_same_run({**base, "mass": per}, {**base, "mass": MASS}, 1e-12)


# ---------------------------------------------------------------------------- state dicts
ROUND_TRIPS = [{"scheme": scheme} for scheme in SCHEMES] + [
    {"kinetic": "relativistic", "friction_on": "momentum"},
    {"kinetic": "soft_clip", "mass": "per-element"},
    {"lr": "tensor", "friction": "tensor"},
    {"scheme": "nesterov", "weight_decay": 0.01, "maximize": True},
]


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2)
    ).double()


def _optimizer(model: torch.nn.Module, spec: dict) -> PHS:
    kwargs: dict = {"lr": 0.1, "mass": 0.5, "friction": 0.3, **spec}
    if kwargs["mass"] == "per-element":
        kwargs["mass"] = [torch.rand(p.shape, dtype=DT) + 0.5 for p in model.parameters()]
    for key in ("lr", "friction"):
        if kwargs[key] == "tensor":
            kwargs[key] = torch.tensor({"lr": 0.1, "friction": 0.3}[key], dtype=DT)
    return PHS(model.parameters(), **kwargs)


def _train(model: torch.nn.Module, opt: PHS, batches: list[torch.Tensor]) -> list[torch.Tensor]:
    for x in batches:
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("spec", ROUND_TRIPS, ids=[str(s) for s in ROUND_TRIPS])
def test_state_dict_round_trip_continues_the_same_trajectory(spec: dict) -> None:
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randn(8, 4, generator=gen, dtype=DT) for _ in range(10)]
    model = _model(0)
    opt = _optimizer(model, spec)
    _train(model, opt, batches[:4])
    model_ckpt, opt_ckpt = save(model.state_dict()), save(opt.state_dict())
    expected = _train(model, opt, batches[4:])

    fresh = _model(1)  # other weights, other per-element masses: all come from the state
    fresh_opt = _optimizer(fresh, spec)
    fresh.load_state_dict(torch.load(model_ckpt))
    fresh_opt.load_state_dict(torch.load(opt_ckpt))
    actual = _train(fresh, fresh_opt, batches[4:])
    for a, e in zip(actual, expected, strict=True):
        assert torch.equal(a, e)


def test_old_state_without_new_keys_loads_with_defaults() -> None:
    model = _model(0)
    opt = PHS(model.parameters(), lr=0.1, friction=0.3)
    x = torch.randn(8, 4, dtype=DT)
    _train(model, opt, [x])
    state = opt.state_dict()
    for group in state["param_groups"]:
        for key in (
            "scheme",
            "kinetic",
            "friction_on",
            "weight_decay",
            "maximize",
            "foreach",
            "fused",
        ):
            del group[key]
    # Loading replaces the groups: the missing keys take the defaults, not these.
    fresh = PHS(
        _model(0).parameters(),
        lr=0.1,
        friction=0.3,
        scheme="stormer_verlet",
        friction_on="momentum",
    )
    fresh.load_state_dict(state)
    group = fresh.param_groups[0]
    assert (group["scheme"], group["kinetic"], group["friction_on"]) == (
        "conformal",
        "quadratic",
        "velocity",
    )
    assert (group["weight_decay"], group["maximize"], group["foreach"]) == (0.0, False, None)
    assert group["fused"] is None
    fresh.step()  # and it steps


def test_state_dict_keeps_hyperparameters_a_callback_changed() -> None:
    model = _model(0)
    opt = PHS(model.parameters(), lr=0.1, friction=0.3)
    opt.param_groups[0]["friction"] *= 50  # a brake
    fresh = PHS(_model(0).parameters(), lr=0.1, friction=0.3)
    fresh.load_state_dict(torch.load(save(opt.state_dict())))
    assert fresh.param_groups[0]["friction"] == pytest.approx(15.0)
