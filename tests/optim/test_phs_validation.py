"""Bad inputs raise one-line errors that name the value and what is allowed."""

from __future__ import annotations

import re

import pytest
import torch
from phs_helpers import DT, SHAPES, make_params, set_grads

from goalbrake.optim import KINETIC_NAMES, PHS

ONES = [torch.ones(s, dtype=DT) for s in SHAPES]
WITH_A_ZERO = [ONES[0], torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0], dtype=DT), ONES[2]]
UNSTABLE_HINT = (
    "use scheme='conformal' or 'stormer_verlet' (stable for any friction) or keep x <= 2"
)

# kwargs (lr defaults to 0.1), exception, message
BAD = [
    ({"lr": 0.0}, ValueError, "Invalid learning rate value: 0.0 (must be > 0)"),
    ({"lr": -1.0}, ValueError, "Invalid learning rate value: -1.0 (must be > 0)"),
    ({"lr": torch.tensor(-0.5)}, ValueError, "Invalid learning rate value: -0.5 (must be > 0)"),
    ({"lr": torch.tensor([0.1, 0.2])}, ValueError,
     "Invalid learning rate value: a tensor of shape (2,) (must be 0-d)"),
    ({"mass": 0.0}, ValueError, "Invalid mass value: 0.0 (must be > 0)"),
    ({"mass": -2}, ValueError, "Invalid mass value: -2.0 (must be > 0)"),
    ({"mass": torch.tensor(0.0)}, ValueError, "Invalid mass value: 0.0 (must be > 0)"),
    ({"mass": WITH_A_ZERO}, ValueError, "Invalid mass value: 0.0 (every element must be > 0)"),
    ({"mass": ONES[:1]}, ValueError,
     "Invalid mass value: 1 tensors for 3 parameters (must be one per parameter)"),
    ({"mass": [ONES[0], torch.ones(2, dtype=DT), ONES[2]]}, ValueError,
     "Invalid mass value: shape (2,) does not broadcast to its parameter's shape (5,)"),
    ({"mass": torch.ones(3)}, ValueError,
     "Invalid mass value: a tensor of shape (3,) for a group of 3 parameters (must be a number, "
     "a 0-d tensor, or a list of one tensor per parameter)"),
    ({"mass": "heavy"}, ValueError, "Invalid mass value: 'heavy' (must be a number or a tensor)"),
    ({"mass": True}, ValueError, "Invalid mass value: True (must be a number or a tensor)"),
    ({"mass": ONES, "kinetic": "relativistic"}, ValueError,
     "Invalid mass for kinetic 'relativistic': a per-parameter mass needs a separable kinetic "
     "energy ('quadratic' or 'soft_clip'); use a scalar mass"),
    ({"friction": -0.1}, ValueError, "Invalid friction value: -0.1 (must be >= 0)"),
    ({"friction": torch.tensor(-1.0)}, ValueError, "Invalid friction value: -1.0 (must be >= 0)"),
    ({"weight_decay": -1.0}, ValueError, "Invalid weight_decay value: -1.0 (must be >= 0)"),
    ({"scheme": "leapfrog"}, ValueError,
     "Invalid scheme value: 'leapfrog' (must be one of euler, symplectic_euler, conformal, "
     "stormer_verlet, nesterov)"),
    ({"kinetic": "cubic"}, ValueError,
     f"Invalid kinetic value: 'cubic' (must be one of {', '.join(KINETIC_NAMES)} or a "
     "KineticEnergy instance)"),
    ({"kinetic": 3}, TypeError,
     "Invalid kinetic value: 3 (must be a name or a KineticEnergy instance)"),
    ({"friction_on": "position"}, ValueError,
     "Invalid friction_on value: 'position' (must be one of velocity, momentum)"),
    # Explicit schemes diverge once x > 2.
    ({"lr": 1.0, "friction": 3.0, "scheme": "euler"}, ValueError,
     f"Unstable scheme 'euler': x = lr*friction/mass = 3 > 2 (lr=1, friction=3, mass=1); "
     f"{UNSTABLE_HINT}"),
    ({"lr": 1.0, "friction": 1.0, "mass": 0.4, "scheme": "symplectic_euler"}, ValueError,
     "Unstable scheme 'symplectic_euler': x = lr*friction/mass = 2.5 > 2 (lr=1, friction=1, "
     f"mass=0.4); {UNSTABLE_HINT}"),
    ({"lr": 1.0, "friction": 3.0, "scheme": "symplectic_euler", "friction_on": "momentum"},
     ValueError,
     f"Unstable scheme 'symplectic_euler': x = lr*friction = 3 > 2 (lr=1, friction=3); "
     f"{UNSTABLE_HINT}"),
    ({"lr": 1.0, "friction": 0.6, "mass": [0.25 * m for m in ONES], "scheme": "euler"},
     ValueError,
     f"Unstable scheme 'euler': x = lr*friction/mass = 2.4 > 2 (lr=1, friction=0.6, "
     f"mass=0.25); {UNSTABLE_HINT}"),
    ({"lr": 0.1, "friction": 0.03, "kinetic": "normalized", "scheme": "euler"}, ValueError,
     "Unstable scheme 'euler': x = lr*friction*max_mobility(mass) = 3 > 2 (lr=0.1, "
     f"friction=0.03, mass=1); {UNSTABLE_HINT}"),
    ({"lr": torch.tensor(1.0), "friction": torch.tensor(3.0), "scheme": "euler"}, ValueError,
     f"Unstable scheme 'euler': x = lr*friction/mass = 3 > 2 (lr=1, friction=3, mass=1); "
     f"{UNSTABLE_HINT}"),
]  # fmt: skip


@pytest.mark.parametrize(("kwargs", "error", "message"), BAD, ids=[b[2][:60] for b in BAD])
def test_bad_hyperparameters(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        PHS(make_params(), **{"lr": 0.1, **kwargs})


def test_bad_param_group_is_not_added() -> None:
    opt = PHS(make_params(), lr=0.1)
    extra = torch.nn.Parameter(torch.zeros(2, dtype=DT))
    with pytest.raises(ValueError, match=re.escape("Invalid friction value: -1.0 (must be >= 0)")):
        opt.add_param_group({"params": [extra], "friction": -1.0})
    assert len(opt.param_groups) == 1


@pytest.mark.parametrize("scheme", ["conformal", "stormer_verlet", "nesterov"])
def test_implicit_friction_schemes_take_any_friction(scheme: str) -> None:
    params = make_params()
    opt = PHS(params, lr=1.0, friction=1e6, scheme=scheme)
    set_grads(params)
    opt.step()
    assert all(torch.isfinite(p).all() for p in params)


@pytest.mark.parametrize("tensor_friction", [False, True], ids=["float", "tensor"])
@pytest.mark.parametrize("scheme", ["euler", "symplectic_euler"])
def test_braking_an_explicit_scheme_past_x_2_raises_at_the_next_step(
    scheme: str, tensor_friction: bool
) -> None:
    params = make_params()
    friction = torch.tensor(0.5) if tensor_friction else 0.5
    opt = PHS(params, lr=0.5, friction=friction, scheme=scheme)  # x = 0.25
    set_grads(params)
    opt.step()
    opt.param_groups[0]["friction"] *= 50  # x = 12.5: would diverge
    before = [p.detach().clone() for p in params]
    message = (
        f"Unstable scheme '{scheme}': x = lr*friction/mass = 12.5 > 2 (lr=0.5, friction=25, "
        f"mass=1); {UNSTABLE_HINT}"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        opt.step()
    assert all(torch.equal(p, b) for p, b in zip(params, before, strict=True))  # nothing moved


def test_raising_lr_of_an_explicit_scheme_past_x_2_raises() -> None:
    params = make_params()
    opt = PHS(params, lr=0.5, friction=2.0, scheme="symplectic_euler")
    opt.param_groups[0]["lr"] = 1.5
    set_grads(params)
    with pytest.raises(ValueError, match=re.escape("x = lr*friction/mass = 3 > 2")):
        opt.step()


def test_sparse_gradients_raise() -> None:
    emb = torch.nn.Embedding(10, 3, sparse=True)
    opt = PHS(emb.parameters(), lr=0.1)
    emb(torch.tensor([1, 2])).sum().backward()
    message = (
        "PHS does not support sparse gradients (parameter of shape (10, 3)); use a dense "
        "gradient, e.g. nn.Embedding(sparse=False)"
    )
    with pytest.raises(RuntimeError, match=f"^{re.escape(message)}$"):
        opt.step()


@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("mass", ["scalar", "per-element"])
def test_parameters_without_gradient_are_skipped(foreach: bool, mass: str) -> None:
    params = make_params()
    opt_mass = 0.5 if mass == "scalar" else [torch.full(s, 0.5, dtype=DT) for s in SHAPES]
    opt = PHS(params, lr=0.1, mass=opt_mass, foreach=foreach)
    set_grads(params)
    params[1].grad = None
    frozen = params[1].detach().clone()
    moved = [params[0].detach().clone(), params[2].detach().clone()]
    opt.step()
    assert torch.equal(params[1], frozen)
    assert "momentum" not in opt.state[params[1]]
    assert not torch.equal(params[0], moved[0])
    assert not torch.equal(params[2], moved[1])
    # A group where no parameter has a gradient is a no-op.
    for p in params:
        p.grad = None
    before = [p.detach().clone() for p in params]
    opt.step()
    assert all(torch.equal(p, b) for p, b in zip(params, before, strict=True))
