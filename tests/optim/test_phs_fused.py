"""The fused path (torch's fused SGD kernel through p = buf) equals the foreach path.

Over the tables of schemes, friction conventions, masses, weight decay and maximize, in
float64 (to 1e-12) and float32 (to float32 rounding), and through friction, lr and mass
changes mid-run (a brake, a scheduler). The default ``fused=None`` picks the path only
where it applies; ``fused=True`` where no fused step applies (a user-defined kinetic energy,
a per-parameter mass) is refused with one line. The compiled fused step of the other
energies and of large ``nesterov``/``euler`` groups is tested in test_phs_compiled.py.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

import pytest
import torch
from phs_helpers import SHAPES, make_params, momenta, rel_err, set_grads

from goalbrake.optim import PHS, SCHEMES, KineticEnergy

LR, FRICTION, MASS = 0.1, 1.5, 0.8  # x = αγ/m = 0.1875 (velocity), αγ = 0.15 (momentum)
#: Float64 agrees to accumulated rounding; float32 to a few ulps per step.
TOL = {torch.float64: 1e-12, torch.float32: 2e-6}


def _params(dtype: torch.dtype, seed: int = 0) -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(p.detach().to(dtype)) for p in make_params(seed)]


def _run(
    params: list[torch.nn.Parameter],
    steps: int = 8,
    change: dict | None = None,
    **kwargs: object,
) -> PHS:
    """``steps`` steps; ``change`` (key -> factor) multiplies group keys after half of them."""
    opt = PHS(params, **kwargs)  # type: ignore[arg-type]
    for step in range(steps):
        if change and step == steps // 2:
            for key, factor in change.items():
                opt.param_groups[0][key] = opt.param_groups[0][key] * factor
        set_grads(params, lambda ps: _loss(ps))
        opt.step()
    return opt


def _loss(params: list[torch.Tensor]) -> torch.Tensor:
    # smooth_loss in the parameters' own dtype (float32 runs compare to float32 rounding).
    total = params[0].new_zeros(())
    for i, p in enumerate(params):
        gen = torch.Generator().manual_seed(100 + i)
        w = (torch.rand(p.shape, generator=gen) + 0.5).to(p.dtype)
        c = torch.randn(p.shape, generator=gen).to(p.dtype)
        total = total + (0.5 * w * p.square() + torch.sin(p + c)).sum()
    return total


def _assert_fused_equals_foreach(dtype: torch.dtype, change: dict | None = None, **kw: object):
    a, b = _params(dtype), _params(dtype)
    fused = _run(a, change=change, fused=True, **kw)
    foreach = _run(b, change=change, foreach=True, **kw)
    tol = TOL[dtype]
    assert rel_err(a, b) <= tol
    assert rel_err(momenta(fused, a), momenta(foreach, b)) <= tol
    for p in a:
        assert p.dtype == dtype and fused.state[p]["momentum"].dtype == dtype


OPTIONS = [(0.0, False), (0.05, False), (0.0, True), (0.05, True)]  # weight_decay, maximize
TABLE = list(itertools.product(SCHEMES, ["velocity", "momentum"], ["float", "tensor"], OPTIONS))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize(
    ("scheme", "friction_on", "mass", "options"),
    TABLE,
    ids=[f"{s}-{f}-{m}-wd{o[0]}-max{o[1]}" for s, f, m, o in TABLE],
)
def test_fused_equals_foreach(
    scheme: str, friction_on: str, mass: str, options: tuple, dtype: torch.dtype
) -> None:
    weight_decay, maximize = options
    _assert_fused_equals_foreach(
        dtype,
        lr=LR,
        friction=FRICTION,
        mass=torch.tensor(MASS, dtype=dtype) if mass == "tensor" else MASS,
        scheme=scheme,
        friction_on=friction_on,
        weight_decay=weight_decay,
        maximize=maximize,
    )


# A brake (friction x 50, x 2 for the explicit schemes, which refuse x > 2), a scheduler's
# lr change, a new mass, and all three at once, after half of the run.
CHANGES = [
    {"friction": 50.0},
    {"lr": 0.3},
    {"mass": 3.0},
    {"friction": 8.0, "lr": 0.5, "mass": 0.5},
]
CHANGE_TABLE = list(itertools.product(SCHEMES, range(len(CHANGES))))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize(
    ("scheme", "change"),
    CHANGE_TABLE,
    ids=[f"{s}-{'-'.join(CHANGES[c])}" for s, c in CHANGE_TABLE],
)
def test_fused_equals_foreach_through_changes_mid_run(
    scheme: str, change: int, dtype: torch.dtype
) -> None:
    factors = dict(CHANGES[change])
    if scheme in ("euler", "symplectic_euler") and "friction" in factors:
        factors["friction"] = 2.0 if len(factors) == 1 else 0.5  # keep x <= 2
    _assert_fused_equals_foreach(
        dtype, change=factors, lr=LR, friction=FRICTION, mass=MASS, scheme=scheme
    )


def test_fused_follows_an_lr_scheduler_like_foreach() -> None:
    a, b = _params(torch.float64), _params(torch.float64)
    opts = [
        PHS(a, lr=LR, friction=FRICTION, fused=True),
        PHS(b, lr=LR, friction=FRICTION, fused=False),
    ]
    schedulers = [torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10) for o in opts]
    for _ in range(10):
        for params, opt, scheduler in zip((a, b), opts, schedulers, strict=True):
            set_grads(params, _loss)
            opt.step()
            scheduler.step()
    assert rel_err(a, b) <= 1e-12
    assert rel_err(momenta(opts[0], a), momenta(opts[1], b)) <= 1e-12


@pytest.mark.parametrize(
    ("scheme", "friction"),
    [("symplectic_euler", MASS / LR), ("stormer_verlet", 2 * MASS / LR),
     ("conformal", 1e6), ("nesterov", 1e6), ("euler", MASS / LR)],
    ids=["symplectic_euler-x1", "stormer_verlet-x2", "conformal-x1e5", "nesterov-x1e5",
         "euler-x1"],
)  # fmt: skip
def test_a_zero_momentum_factor_steps_like_foreach(scheme: str, friction: float) -> None:
    # μ = 0 exactly (x = 1, x = 2, e^(-1e5) = 0): torch's kernel would skip its buffer.
    _assert_fused_equals_foreach(torch.float64, lr=LR, friction=friction, mass=MASS, scheme=scheme)


def test_fused_step_leaves_the_gradients_alone() -> None:
    for scheme in SCHEMES:
        params = _params(torch.float32)
        opt = PHS(params, lr=LR, friction=FRICTION, scheme=scheme, weight_decay=0.1, fused=True)
        set_grads(params, _loss)
        before = [p.grad.clone() for p in params]
        opt.step()
        opt.step()
        assert all(torch.equal(p.grad, g) for p, g in zip(params, before, strict=True))


# ------------------------------------------------------------------------- the default
def _kernel_calls(monkeypatch: pytest.MonkeyPatch, **kwargs: object) -> int:
    calls = []
    kernel = torch._fused_sgd_

    def counting(*args: object, **kw: object) -> None:
        calls.append(1)
        kernel(*args, **kw)

    monkeypatch.setattr(torch, "_fused_sgd_", counting)
    params = _params(torch.float32)
    opt = PHS(params, **{"lr": LR, "friction": FRICTION, **kwargs})  # type: ignore[arg-type]
    set_grads(params, _loss)
    opt.step()
    return len(calls)


DEFAULTS = [
    ({}, True),
    ({"scheme": "stormer_verlet", "friction_on": "momentum"}, True),
    ({"mass": torch.tensor(2.0)}, True),
    ({"lr": torch.tensor(0.1), "friction": torch.tensor(1.0)}, True),  # CPU tensors: no sync
    ({"foreach": True}, False),
    ({"foreach": False}, False),
    ({"fused": False}, False),
    ({"kinetic": "soft_clip"}, False),
    ({"kinetic": "relativistic"}, False),
    ({"mass": [torch.ones(s) for s in SHAPES]}, False),
]


@pytest.mark.parametrize(("kwargs", "fused"), DEFAULTS, ids=[str(d[0])[:50] for d in DEFAULTS])
def test_default_picks_the_fused_path_where_it_applies(
    monkeypatch: pytest.MonkeyPatch, kwargs: dict, fused: bool
) -> None:
    assert (_kernel_calls(monkeypatch, **kwargs) > 0) is fused


class _Cubic(KineticEnergy):
    """A user-defined energy, φ(p) = Σ|p|³/3: no traced form, so no fused step."""

    name = "cubic"

    def value(self, momenta: Sequence[torch.Tensor], mass: object) -> torch.Tensor:
        return torch.stack([p.abs().pow(3).sum() for p in momenta]).sum() / 3

    def mobility(self, momenta: Sequence[torch.Tensor], mass: object) -> list[torch.Tensor]:
        return [p.abs() for p in momenta]


BAD = [
    ({"fused": True, "foreach": True},
     "Invalid fused value: True with foreach=True (fused and foreach cannot both be True)"),
    ({"fused": True, "kinetic": _Cubic()},
     "Invalid fused value: True (the fused step needs a built-in kinetic energy and a scalar "
     "mass; got kinetic='cubic' with a scalar mass); use fused=None or False"),
    ({"fused": True, "mass": [torch.ones(s) for s in SHAPES]},
     "Invalid fused value: True (the fused step needs a built-in kinetic energy and a scalar "
     "mass; got kinetic='quadratic' with a per-parameter mass); use fused=None or False"),
    ({"fused": True, "kinetic": "soft_clip", "mass": [torch.ones(s) for s in SHAPES]},
     "Invalid fused value: True (the fused step needs a built-in kinetic energy and a scalar "
     "mass; got kinetic='soft_clip' with a per-parameter mass); use fused=None or False"),
    ({"fused": "yes"}, "Invalid fused value: 'yes' (must be None, True or False)"),
]  # fmt: skip


@pytest.mark.parametrize(("kwargs", "message"), BAD, ids=[b[1][:50] for b in BAD])
def test_bad_fused_values(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        PHS(_params(torch.float32), lr=LR, **kwargs)


def test_fused_true_needs_cpu_parameters() -> None:
    # torch's CUDA kernel refuses a momentum factor <= 0 and reads maximize differently:
    # the fused path is CPU-only, and fused=True elsewhere says so.
    params = [torch.nn.Parameter(torch.empty(3, device="meta"))]
    message = (
        "Invalid fused value: True (the fused step needs floating-point parameters on cpu; "
        "got torch.float32 on meta)"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        PHS(params, lr=LR, fused=True)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_fused_with_tensor_lr_and_friction_equals_foreach_with_floats(scheme: str) -> None:
    a, b = _params(torch.float64), _params(torch.float64)
    lr, friction = (
        torch.tensor(LR, dtype=torch.float64),
        torch.tensor(FRICTION, dtype=torch.float64),
    )
    fused = _run(a, lr=lr, friction=friction, scheme=scheme, fused=True)
    foreach = _run(b, lr=LR, friction=FRICTION, scheme=scheme, foreach=True)
    assert rel_err(a, b) <= 1e-12
    assert rel_err(momenta(fused, a), momenta(foreach, b)) <= 1e-12


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_checkpoint_continues_on_the_other_path(scheme: str) -> None:
    # The stored momentum is p on both paths: 4 fused steps + 4 foreach steps from the
    # fused state equal 8 foreach steps.
    a, b = _params(torch.float64), _params(torch.float64)
    kw = dict(lr=LR, friction=FRICTION, scheme=scheme)
    first = _run(a, steps=4, fused=True, **kw)
    second = PHS(a, foreach=True, **kw)  # type: ignore[arg-type]
    second.load_state_dict(first.state_dict())
    assert second.param_groups[0]["fused"] is True  # the groups come from the state
    second.param_groups[0].update(fused=False, foreach=True)
    for _ in range(4):
        set_grads(a, _loss)
        second.step()
    reference = _run(b, steps=8, foreach=True, **kw)
    assert rel_err(a, b) <= 1e-12
    assert rel_err(momenta(second, a), momenta(reference, b)) <= 1e-12
