r"""The books that :class:`~goalbrake.optim.PHS` and :class:`~goalbrake.optim.PHSFlow` share.

Both optimizers carry the same state: a momentum p per parameter, and in every param group
``lr`` (α), ``friction`` (γ), ``mass`` (m), ``kinetic`` (φ), ``friction_on``,
``weight_decay`` and ``maximize``. :class:`PHSBase` keeps those books, as torch's
``Optimizer`` keeps its own: the validation table of the shared keys, the lazily created
momenta (dense gradients only), checkpoints that load onto the parameters' device, and the
monitoring of the port-Hamiltonian system

.. math::

    \dot θ = ∇φ(p), \qquad \dot p = -∇L(θ) - γ\,F(p), \qquad
    \frac{dH}{dt} = -γ\,⟨∇φ(p), F(p)⟩, \quad H = L(θ) + φ(p)

(``kinetic_energy()`` is φ(p), ``dissipation_power()`` is γ⟨∇φ(p), F(p)⟩ and
``momentum_factor()`` is μ of the friction part p⁺ = μ p). Each subclass keeps its own
math: PHS one discrete step per batch, PHSFlow an ODE solve. See docs/design.md, "The
port-Hamiltonian system".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.optim import Optimizer

from goalbrake.optim.kinetic import KineticEnergy, Mass, Mobility, get_kinetic
from goalbrake.optim.scratch import Scratch, product

__all__ = ["FRICTION_CONVENTIONS", "PHSBase"]

FRICTION_CONVENTIONS: tuple[str, ...] = ("velocity", "momentum")
#: Schemes that integrate the friction explicitly and diverge for x > 2.
EXPLICIT_SCHEMES: tuple[str, ...] = ("euler", "symplectic_euler")

Number = float | Tensor
Coef = float | Tensor | list[Tensor]

#: Keys a checkpoint from before they existed loads with (shared by PHS and PHSFlow).
SHARED_KEY_DEFAULTS: dict[str, object] = {
    "kinetic": "quadratic",
    "friction_on": "velocity",
    "weight_decay": 0.0,
    "maximize": False,
}


# --------------------------------------------------------------------------- validation
def one_of(name: str, value: object, allowed: Sequence[str]) -> None:
    """Raise ``Invalid {name} value: ...`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"Invalid {name} value: {value!r} (must be one of {', '.join(allowed)})")


def as_float(value: Number) -> float:
    """A number, or the largest element of a tensor, as a Python float."""
    if not isinstance(value, Tensor):
        return float(value)
    return value.item() if value.dim() == 0 else float(value.detach().max())


def check_number(name: str, value: Number, *, positive: bool) -> None:
    """A number or a 0-d tensor that is > 0 (``positive``) or >= 0."""
    if isinstance(value, Tensor) and value.dim() != 0:
        raise ValueError(
            f"Invalid {name} value: a tensor of shape {tuple(value.shape)} (must be 0-d)"
        )
    low = float(value.detach().min()) if isinstance(value, Tensor) else float(value)
    if positive and not low > 0:
        raise ValueError(f"Invalid {name} value: {low} (must be > 0)")
    if not positive and not low >= 0:
        raise ValueError(f"Invalid {name} value: {low} (must be >= 0)")


def _mass_list(mass: Sequence[Tensor], params: Sequence[Tensor]) -> list[Tensor]:
    if len(mass) != len(params):
        raise ValueError(
            f"Invalid mass value: {len(mass)} tensors for {len(params)} parameters "
            "(must be one per parameter)"
        )
    out = []
    for m, p in zip(mass, params, strict=True):
        m = torch.as_tensor(m, dtype=p.dtype, device=p.device)
        try:
            broadcast = torch.broadcast_shapes(m.shape, p.shape)
        except RuntimeError:
            broadcast = None
        if broadcast != p.shape:
            raise ValueError(
                f"Invalid mass value: shape {tuple(m.shape)} does not broadcast to its "
                f"parameter's shape {tuple(p.shape)}"
            )
        low = float(m.min())
        if not low > 0:
            raise ValueError(f"Invalid mass value: {low} (every element must be > 0)")
        out.append(m)
    return out


def normalize_mass(mass: object, params: Sequence[Tensor]) -> Mass:
    """A float, a 0-d tensor, or a list of one positive tensor per parameter."""
    if isinstance(mass, Tensor) and mass.dim() > 0:
        if len(params) != 1:
            raise ValueError(
                f"Invalid mass value: a tensor of shape {tuple(mass.shape)} for a group of "
                f"{len(params)} parameters (must be a number, a 0-d tensor, or a list of one "
                "tensor per parameter)"
            )
        mass = [mass]
    if isinstance(mass, (list, tuple)):
        return _mass_list(mass, params)
    if isinstance(mass, bool) or not isinstance(mass, (int, float, Tensor)):
        raise ValueError(f"Invalid mass value: {mass!r} (must be a number or a tensor)")
    check_number("mass", mass, positive=True)
    return float(mass) if not isinstance(mass, Tensor) else mass


def check_rates(group: dict[str, Any]) -> None:
    """lr > 0, friction >= 0, weight_decay >= 0 (numbers or 0-d tensors)."""
    check_number("learning rate", group["lr"], positive=True)
    check_number("friction", group["friction"], positive=False)
    check_number("weight_decay", group["weight_decay"], positive=False)


def check_energy(group: dict[str, Any]) -> None:
    """``friction_on``, ``kinetic`` and a ``mass`` the energy takes (normalized in place)."""
    one_of("friction_on", group["friction_on"], FRICTION_CONVENTIONS)
    kinetic = get_kinetic(group["kinetic"])
    group["mass"] = normalize_mass(group["mass"], group["params"])
    kinetic.check_mass(group["mass"])


# ----------------------------------------------------------------- the friction factor
def friction_rate(
    momenta: Sequence[Tensor],
    mass: Mass,
    kinetic: KineticEnergy,
    friction_on: str,
    scratch: Scratch | None = None,
) -> Mobility:
    """c in F(p) = c ⊙ p: the mobility s(p) for velocity friction, 1 for momentum friction."""
    return 1.0 if friction_on == "momentum" else kinetic._mobility(momenta, mass, scratch)


def _exp_neg(x: Number) -> Number:
    return torch.exp(-x) if isinstance(x, Tensor) else math.exp(-x)


def coefficients(scheme: str, x: Number, lr: Number) -> tuple[Number, Number]:
    """(a, b) of the momentum update p⁺ = a p − b g at friction rate x.

    ``euler``, ``symplectic_euler``: a = 1 − x (explicit friction); ``conformal``,
    ``nesterov``: a = e^(−x) (the friction flow solved exactly); ``stormer_verlet``:
    a = (2 − x)/(2 + x), b = 2α/(2 + x) (the trapezoidal rule). b = α elsewhere.
    """
    if scheme in EXPLICIT_SCHEMES:
        return 1.0 - x, lr
    if scheme in ("conformal", "nesterov"):
        return _exp_neg(x), lr
    if scheme == "stormer_verlet":  # p⁺ − p = −α g − (x/2)(p + p⁺)
        return (2.0 - x) / (2.0 + x), 2.0 * lr / (2.0 + x)
    raise ValueError(f"Invalid scheme value: {scheme!r}")


def quadratic_scalars(
    scheme: str, lr: Number, friction: Number, mass: Number, friction_on: str
) -> tuple[float, float, float]:
    """(a, b, α/m) of the quadratic step p⁺ = a p − b g', θ⁺ = θ + (α/m) q, as numbers.

    x = αγ/m with the friction on the velocity, αγ on the momentum. Tensor lr/friction/mass
    are read as numbers (a host sync on a GPU).
    """
    alpha, gamma, m = as_float(lr), as_float(friction), as_float(mass)
    x = alpha * gamma / m if friction_on == "velocity" else alpha * gamma
    a, b = coefficients(scheme, x, alpha)
    return float(a), float(b), alpha / m


def _list_coefficients(
    scheme: str, c: list[Tensor], rate: Number, lr: Number, scratch: Scratch | None
) -> tuple[Coef, Coef]:
    """:func:`coefficients` for one rate tensor per parameter, x = rate·c, as foreach ops."""
    if scheme == "stormer_verlet":
        denominator = product(c, rate, scratch)  # x, then 2 + x
        a = product(denominator, -1.0, scratch)
        torch._foreach_add_(a, 2.0)
        torch._foreach_add_(denominator, 2.0)
        torch._foreach_div_(a, denominator)
        torch._foreach_reciprocal_(denominator)
        torch._foreach_mul_(denominator, 2.0 * lr)
        return a, denominator
    a = product(c, -rate, scratch)  # −x
    if scheme in EXPLICIT_SCHEMES:
        torch._foreach_add_(a, 1.0)
    elif scheme in ("conformal", "nesterov"):
        torch._foreach_exp_(a)
    else:
        raise ValueError(f"Invalid scheme value: {scheme!r}")
    return a, lr


def rate_coefficients(
    scheme: str, c: Mobility, lr: Number, friction: Number, scratch: Scratch | None = None
) -> tuple[Coef, Coef]:
    """(a, b) for the group at x = lr·friction·c: numbers or 0-d tensors, or one per parameter."""
    if isinstance(c, list):
        return _list_coefficients(scheme, c, lr * friction, lr, scratch)
    return coefficients(scheme, lr * friction * c, lr)


# ------------------------------------------------------------------------- the books
class PHSBase(Optimizer):
    """The books of a port-Hamiltonian optimizer: param groups, momenta, monitoring.

    Not used directly: :class:`~goalbrake.optim.PHS` and :class:`~goalbrake.optim.PHSFlow`
    subclass it. ``isinstance(opt, PHSBase)`` says that ``opt`` keeps γ in
    ``group["friction"]`` and a momentum per parameter (what a brake needs).
    """

    #: Keys an old checkpoint's groups get when they lack them.
    _key_defaults: ClassVar[dict[str, object]] = SHARED_KEY_DEFAULTS

    def _check_scheme(self, group: dict[str, Any]) -> None:
        raise NotImplementedError

    def _check_extra(self, group: dict[str, Any]) -> None:
        """Checks of the subclass's own keys, after the shared ones."""

    def _factor_scheme(self, group: dict[str, Any]) -> str:
        """The scheme whose friction factor ``momentum_factor()`` reports."""
        raise NotImplementedError

    def _check_group(self, group: dict[str, Any]) -> None:
        check_rates(group)
        self._check_scheme(group)
        check_energy(group)
        self._check_extra(group)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group, checking its hyperparameters (the ones it sets or inherits)."""
        super().add_param_group(param_group)
        try:
            self._check_group(self.param_groups[-1])
        except (ValueError, TypeError):
            self.param_groups.pop()
            raise

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            for key, value in self._key_defaults.items():
                group.setdefault(key, value)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state, moving tensor hyperparameters to each group's device."""
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            device = group["params"][0].device
            for key in ("lr", "friction"):
                if isinstance(group[key], Tensor):
                    group[key] = group[key].to(device)
            mass = group["mass"]
            if isinstance(mass, Tensor):
                group["mass"] = mass.to(device)
            elif isinstance(mass, (list, tuple)):
                group["mass"] = [m.to(p.device) for m, p in zip(mass, group["params"], strict=True)]

    # ------------------------------------------------------------------------ momenta
    def _with_grad(self, group: dict[str, Any]) -> tuple[list[int], list[Tensor]]:
        """Indices and parameters of the group's parameters with a dense gradient."""
        index, params = [], []
        for i, p in enumerate(group["params"]):
            grad = p.grad
            if grad is None:
                continue
            if grad.is_sparse:
                raise RuntimeError(
                    f"{type(self).__name__} does not support sparse gradients (parameter of "
                    f"shape {tuple(p.shape)}); use a dense gradient, e.g. "
                    "nn.Embedding(sparse=False)"
                )
            index.append(i)
            params.append(p)
        return index, params

    def _momentum(self, p: Tensor) -> Tensor:
        """p's momentum, created as zeros at its first step."""
        state = self.state[p]
        momentum = state.get("momentum")
        if momentum is None:
            momentum = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["momentum"] = momentum
        return momentum

    def _momenta(self, group: dict[str, Any]) -> tuple[list[Tensor], Mass]:
        """The momenta the group has (those that stepped) and their masses."""
        momenta, masses = [], []
        per_parameter = isinstance(group["mass"], list)
        for i, p in enumerate(group["params"]):
            state = self.state.get(p)
            if state and "momentum" in state:
                momenta.append(state["momentum"])
                if per_parameter:
                    masses.append(group["mass"][i])
        return momenta, (masses if per_parameter else group["mass"])

    # --------------------------------------------------------------------- monitoring
    def _per_group(
        self, fn: Callable[[dict[str, Any], list[Tensor], Mass], Tensor], group: int | None
    ) -> Tensor:
        groups = self.param_groups if group is None else [self.param_groups[group]]
        values = []
        for g in groups:
            momenta, mass = self._momenta(g)
            if momenta:
                values.append(fn(g, momenta, mass))
            else:
                first = g["params"][0]
                values.append(torch.zeros((), device=first.device, dtype=first.dtype))
        device = values[0].device
        return torch.stack([v.to(device) for v in values]).sum()

    def kinetic_energy(self, group: int | None = None) -> Tensor:
        """φ(p) of one param group, or summed over all groups, as a 0-d tensor (no sync).

        Computed here, when asked, never during ``step()``.
        """
        return self._per_group(lambda g, ps, m: get_kinetic(g["kinetic"]).value(ps, m), group)

    def dissipation_power(self, group: int | None = None) -> Tensor:
        """γ ⟨∇φ(p), F(p)⟩ = −dH/dt from friction, per group or summed (0-d tensor)."""

        def power(g: dict[str, Any], momenta: list[Tensor], mass: Mass) -> Tensor:
            velocity = get_kinetic(g["kinetic"]).grad(momenta, mass)
            force = velocity if g["friction_on"] == "velocity" else momenta
            dots = [
                torch.vdot(v.flatten(), f.flatten()) for v, f in zip(velocity, force, strict=True)
            ]
            return g["friction"] * torch.stack(dots).sum()

        return self._per_group(power, group)

    def momentum_factor(self, group: int = 0) -> Tensor:
        """μ of the friction part p⁺ = μ p at the group's current friction (0-d tensor).

        μ = a(x) of the scheme (see :func:`coefficients`) at x = lr·γ·c. For an
        elementwise friction rate (a per-parameter mass, or a kinetic energy whose mobility
        varies by element) this is the mean factor over all elements.
        """
        g = self.param_groups[group]
        momenta, mass = self._momenta(g)
        if not momenta:  # before the first step: the factor at p = 0
            momenta = [torch.zeros_like(p) for p in g["params"]]
            mass = g["mass"] if not isinstance(g["mass"], list) else list(g["mass"])
        c = friction_rate(momenta, mass, get_kinetic(g["kinetic"]), g["friction_on"])
        a, _ = rate_coefficients(self._factor_scheme(g), c, g["lr"], g["friction"])
        if isinstance(a, list):
            total = sum(ai.expand_as(p).sum() for ai, p in zip(a, momenta, strict=True))
            return total / sum(p.numel() for p in momenta)
        return torch.as_tensor(a, device=momenta[0].device, dtype=momenta[0].dtype)
