r"""PHS: the port-Hamiltonian momentum optimizer.

Parameters θ are a position and the momentum p a second state of the same shape. With a
kinetic energy φ (default φ(p) = ‖p‖²/2m) and friction γ ≥ 0 the continuous system is

.. math::

    \dot θ = ∇φ(p), \qquad \dot p = -∇L(θ) - γ\,F(p), \qquad
    \frac{dH}{dt} = -γ\,⟨∇φ(p), F(p)⟩ \le 0, \quad H = L(θ) + φ(p)

with the friction acting on the velocity, F(p) = ∇φ(p) (``friction_on="velocity"``, the
paper's eq. (3), a Rayleigh dissipation), or on the momentum, F(p) = p
(``friction_on="momentum"``, the conformal Hamiltonian of Celledoni's and Franca et al.'s
Hamiltonian descent). Every kinetic energy writes ∇φ(p) = s(p) ⊙ p, so F(p) = c ⊙ p with
c = s(p) or 1, and one step of length α (the learning rate) with g = ∇L(θ_k) and the
friction rate x = α γ c (x = αγ/m for the quadratic energy with velocity friction) is

======================  ==============================  ===========================
scheme                  momentum                        position
======================  ==============================  ===========================
``euler``               p⁺ = (1 − x) p − α g            θ⁺ = θ + α ∇φ(p)   (old p)
``symplectic_euler``    p⁺ = (1 − x) p − α g            θ⁺ = θ + α ∇φ(p⁺)
``conformal``           p⁺ = e^(−x) p − α g             θ⁺ = θ + α ∇φ(p⁺)
``stormer_verlet``      p⁺ = ((2 − x) p − 2α g)/(2 + x) θ⁺ = θ + α ∇φ(p⁺)
``nesterov``            p⁺ = e^(−x) p − α g             θ⁺ = θ + α ∇φ(e^(−x) p⁺ − α g)
======================  ==============================  ===========================

Mapping to torch SGD (quadratic φ, scalar mass m, p = −α·buf): a scheme whose momentum
update reads p⁺ = μ p − α g is SGD(lr=α²/m, momentum=μ, dampening=0), so
``symplectic_euler`` is SGD(lr=α²/m, momentum=1 − αγ/m), ``conformal`` the same with
momentum e^(−αγ/m), and ``nesterov`` is SGD(..., momentum=e^(−αγ/m), nesterov=True).
Braking by a factor k (γ → kγ) turns ``conformal``'s μ into μᵏ, stable for every k, while
the explicit schemes ``euler`` and ``symplectic_euler`` diverge once x > 2.

References:
    Port-Hamiltonian gradient flows (Poli, Massaroli et al., 2020), eq. (7) for
    ``stormer_verlet``; conformal Hamiltonian descent (França et al., 2020); the goal-
    oriented braking paper ("who brakes early, loses") for eqs. (2)–(3).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from goalbrake.optim.kinetic import KineticEnergy, Mass, Mobility, Quadratic, get_kinetic

__all__ = ["FRICTION_CONVENTIONS", "PHS", "SCHEMES", "phs"]

SCHEMES: tuple[str, ...] = ("euler", "symplectic_euler", "conformal", "stormer_verlet", "nesterov")
FRICTION_CONVENTIONS: tuple[str, ...] = ("velocity", "momentum")
#: Schemes that integrate the friction explicitly and diverge for x > 2.
EXPLICIT_SCHEMES: tuple[str, ...] = ("euler", "symplectic_euler")

Number = float | Tensor
Coef = float | Tensor | list[Tensor]


# --------------------------------------------------------------------------- validation
def _one_of(name: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"Invalid {name} value: {value!r} (must be one of {', '.join(allowed)})")


def _as_float(value: Number) -> float:
    return float(value.detach().max()) if isinstance(value, Tensor) else float(value)


def _check_number(name: str, value: Number, *, positive: bool) -> None:
    if isinstance(value, Tensor) and value.dim() != 0:
        raise ValueError(
            f"Invalid {name} value: a tensor of shape {tuple(value.shape)} (must be 0-d)"
        )
    low = float(value.detach().min()) if isinstance(value, Tensor) else float(value)
    if positive and not low > 0:
        raise ValueError(f"Invalid {name} value: {low} (must be > 0)")
    if not positive and not low >= 0:
        raise ValueError(f"Invalid {name} value: {low} (must be >= 0)")


def _normalize_mass(mass: Any, params: Sequence[Tensor]) -> Mass:
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
    if isinstance(mass, bool) or not isinstance(mass, (int, float, Tensor)):
        raise ValueError(f"Invalid mass value: {mass!r} (must be a number or a tensor)")
    _check_number("mass", mass, positive=True)
    return float(mass) if not isinstance(mass, Tensor) else mass


def _min_mass(mass: Mass) -> float | None:
    """The smallest mass element, or None where reading it would sync a device."""
    if isinstance(mass, list):
        if any(m.device.type != "cpu" for m in mass):
            return None
        return min(float(m.min()) for m in mass)
    if isinstance(mass, Tensor):
        return float(mass) if mass.device.type == "cpu" else None
    return float(mass)


def _rate_bound(group: dict[str, Any]) -> float | None:
    """The largest friction rate x = lr·friction·c the group can see (None: unknown)."""
    values = (group["lr"], group["friction"])
    if any(isinstance(v, Tensor) and v.device.type != "cpu" for v in values):
        return None  # reading a device tensor would sync; the check is skipped there
    lr, friction = (_as_float(v) for v in values)
    if group["friction_on"] == "momentum":
        return lr * friction
    m = _min_mass(group["mass"])
    if m is None:
        return None
    return lr * friction * get_kinetic(group["kinetic"]).max_mobility(m)


def _check_stable(group: dict[str, Any]) -> None:
    if group["scheme"] not in EXPLICIT_SCHEMES:
        return
    x = _rate_bound(group)
    if x is not None and x > 2.0:
        values = f"lr={_as_float(group['lr']):g}, friction={_as_float(group['friction']):g}"
        if group["friction_on"] == "momentum":
            rate = "lr*friction"
        else:  # the largest mobility is 1/mass for most energies, 1/(mass*eps) for some
            kinetic = get_kinetic(group["kinetic"])
            rate = (
                "lr*friction/mass"
                if kinetic.max_mobility(1.0) == 1.0
                else "lr*friction*max_mobility(mass)"
            )
            values += f", mass={_min_mass(group['mass']):g}"
        raise ValueError(
            f"Unstable scheme {group['scheme']!r}: x = {rate} = {x:g} > 2 ({values}); "
            "use scheme='conformal' or 'stormer_verlet' (stable for any friction) or keep x <= 2"
        )


# ------------------------------------------------------------------------------ optimizer
class PHS(Optimizer):
    r"""Port-Hamiltonian momentum SGD: a heavy ball with mass and friction.

    Continuous system (the module docstring has the discrete schemes):

    .. math::

        \dot θ = ∇φ(p), \quad \dot p = -∇L(θ) - γ F(p), \quad
        F(p) = ∇φ(p)\ \text{(velocity)}\ \text{or}\ p\ \text{(momentum)}

    Algorithm (``conformal``, quadratic φ, velocity friction):

    .. math::

        \begin{aligned}
        &x = αγ/m,\quad g_k = ∇L(θ_k) + λθ_k \\
        &p_{k+1} = e^{-x} p_k - α g_k \\
        &θ_{k+1} = θ_k + (α/m)\, p_{k+1}
        \end{aligned}

    which is ``torch.optim.SGD(lr=α²/m, momentum=e^{-αγ/m}, dampening=0)``; with
    ``scheme="symplectic_euler"`` the momentum factor is 1 − αγ/m instead.

    ``lr``, ``friction`` and ``mass`` live in ``param_groups`` and are read at every step,
    so a callback that sets ``group["friction"]`` changes the next step. ``lr`` and
    ``friction`` may be Python floats or 0-d tensors (a device-side brake needs no host
    sync). ``mass`` may be a number, a 0-d tensor, or a list of one positive tensor per
    parameter (a diagonal mass matrix; separable kinetic energies only).

    Args:
        params: parameters or param groups.
        lr: step length α > 0 (the time step of the discretized flow).
        mass: m > 0.
        friction: γ ≥ 0.
        scheme: one of ``euler``, ``symplectic_euler``, ``conformal`` (default: braking by
            any factor stays stable), ``stormer_verlet``, ``nesterov``.
        kinetic: a name (``quadratic``, ``relativistic``, ``normalized``, ``soft_clip``,
            ``logsumexp``, ``pnorm``) or a :class:`~goalbrake.optim.KineticEnergy`.
        friction_on: ``"velocity"`` (p' = −γ∇φ(p), eq. (3) as written, x = αγ/m) or
            ``"momentum"`` (p' = −γp, conformal Hamiltonian, x = αγ).
        weight_decay: coupled L2 penalty λ, added to the gradient as in torch SGD.
        maximize: ascend instead of descend.
        foreach: use the multi-tensor (``torch._foreach_*``) path (default) or the
            per-tensor reference path.

    Raises:
        ValueError: a value out of range or an unknown name; an explicit scheme with
            x > 2 (at construction, and at a step after a friction change).

    Example:
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = PHS(model.parameters(), lr=0.1, mass=10.0, friction=0.1)
        >>> model(torch.randn(8, 4)).square().mean().backward()
        >>> opt.step()
        >>> opt.param_groups[0]["friction"] *= 50  # brake: momentum factor μ -> μ**50
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float | Tensor,
        mass: float | Tensor | Sequence[Tensor] = 1.0,
        friction: float | Tensor = 0.1,
        scheme: str = "conformal",
        kinetic: str | KineticEnergy = "quadratic",
        friction_on: str = "velocity",
        weight_decay: float = 0.0,
        maximize: bool = False,
        foreach: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            mass=mass,
            friction=friction,
            scheme=scheme,
            kinetic=kinetic,
            friction_on=friction_on,
            weight_decay=weight_decay,
            maximize=maximize,
            foreach=foreach,
        )
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group, checking its hyperparameters (the ones it sets or inherits)."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            _check_group(group)
        except (ValueError, TypeError):
            self.param_groups.pop()
            raise

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            # Checkpoints from before a key existed load with its default.
            group.setdefault("scheme", "conformal")
            group.setdefault("kinetic", "quadratic")
            group.setdefault("friction_on", "velocity")
            group.setdefault("weight_decay", 0.0)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)

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

    def _init_group(
        self, group: dict[str, Any]
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor], Mass]:
        params, grads, momenta, masses = [], [], [], []
        per_parameter = isinstance(group["mass"], list)
        for i, p in enumerate(group["params"]):
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError(
                    f"PHS does not support sparse gradients (parameter of shape {tuple(p.shape)}); "
                    "use a dense gradient, e.g. nn.Embedding(sparse=False)"
                )
            state = self.state[p]
            if "momentum" not in state:
                state["momentum"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            params.append(p)
            grads.append(p.grad)
            momenta.append(state["momentum"])
            if per_parameter:
                masses.append(group["mass"][i])
        return params, grads, momenta, (masses if per_parameter else group["mass"])

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One step of the group's scheme (see the module docstring for the equations).

        Args:
            closure: re-evaluates the model and returns the loss (optional).

        Raises:
            ValueError: an explicit scheme whose friction rate now exceeds 2.
            RuntimeError: a sparse gradient.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            _check_stable(group)
            params, grads, momenta, mass = self._init_group(group)
            if not params:
                continue
            phs(
                params,
                grads,
                momenta,
                lr=group["lr"],
                friction=group["friction"],
                mass=mass,
                scheme=group["scheme"],
                kinetic=group["kinetic"],
                friction_on=group["friction_on"],
                weight_decay=group["weight_decay"],
                maximize=group["maximize"],
                foreach=group["foreach"],
            )
        return loss

    # ---------------------------------------------------------------------- monitoring
    def _momenta(self, group: dict[str, Any]) -> tuple[list[Tensor], Mass]:
        momenta, masses = [], []
        per_parameter = isinstance(group["mass"], list)
        for i, p in enumerate(group["params"]):
            state = self.state.get(p)
            if state and "momentum" in state:
                momenta.append(state["momentum"])
                if per_parameter:
                    masses.append(group["mass"][i])
        return momenta, (masses if per_parameter else group["mass"])

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
                values.append(
                    torch.zeros((), device=g["params"][0].device, dtype=g["params"][0].dtype)
                )
        device = values[0].device
        return torch.stack([v.to(device) for v in values]).sum()

    def kinetic_energy(self, group: int | None = None) -> Tensor:
        """φ(p) of one param group, or summed over all groups, as a 0-d tensor (no sync)."""
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
        """μ of p⁺ = μ p − b g for the group's scheme at the current friction (0-d tensor).

        For an elementwise friction rate (a per-parameter mass, or a kinetic energy whose
        mobility varies by element) this is the mean factor over all elements.
        """
        g = self.param_groups[group]
        momenta, mass = self._momenta(g)
        if not momenta:  # before the first step: the factor at p = 0
            momenta = [torch.zeros_like(p) for p in g["params"]]
            mass = g["mass"] if not isinstance(g["mass"], list) else list(g["mass"])
        c = _friction_rate(momenta, mass, get_kinetic(g["kinetic"]), g["friction_on"])
        a, _ = _rate_coefficients(g["scheme"], c, g["lr"], g["friction"])
        device = momenta[0].device
        if isinstance(a, list):
            total = sum(ai.expand_as(p).sum() for ai, p in zip(a, momenta, strict=True))
            return total / sum(p.numel() for p in momenta)
        return torch.as_tensor(a, device=device, dtype=momenta[0].dtype)


def _check_group(group: dict[str, Any]) -> None:
    _check_number("learning rate", group["lr"], positive=True)
    _check_number("friction", group["friction"], positive=False)
    _check_number("weight_decay", group["weight_decay"], positive=False)
    _one_of("scheme", group["scheme"], SCHEMES)
    _one_of("friction_on", group["friction_on"], FRICTION_CONVENTIONS)
    kinetic = get_kinetic(group["kinetic"])
    group["mass"] = _normalize_mass(group["mass"], group["params"])
    kinetic.check_mass(group["mass"])
    _check_stable(group)


# ------------------------------------------------------------------------------ the math
def _friction_rate(
    momenta: Sequence[Tensor], mass: Mass, kinetic: KineticEnergy, friction_on: str
) -> Mobility:
    """c in F(p) = c ⊙ p: the mobility s(p) for velocity friction, 1 for momentum friction."""
    return 1.0 if friction_on == "momentum" else kinetic.mobility(momenta, mass)


def _exp_neg(x: Number) -> Number:
    return torch.exp(-x) if isinstance(x, Tensor) else math.exp(-x)


def _coefficients(scheme: str, x: Number, lr: Number) -> tuple[Number, Number]:
    """(a, b) of the momentum update p⁺ = a p − b g at friction rate x."""
    if scheme in EXPLICIT_SCHEMES:
        return 1.0 - x, lr  # explicit Euler on the friction
    if scheme in ("conformal", "nesterov"):
        return _exp_neg(x), lr  # the friction flow p' = −(x/α) p solved exactly
    if scheme == "stormer_verlet":  # trapezoidal friction, p⁺ − p = −α g − (x/2)(p + p⁺)
        return (2.0 - x) / (2.0 + x), 2.0 * lr / (2.0 + x)
    raise ValueError(f"Invalid scheme value: {scheme!r} (must be one of {', '.join(SCHEMES)})")


def _rate_coefficients(scheme: str, c: Mobility, lr: Number, friction: Number) -> tuple[Coef, Coef]:
    """(a, b) for the group: numbers or 0-d tensors, or one tensor per parameter."""
    if isinstance(c, list):
        pairs = [_coefficients(scheme, lr * friction * ci, lr) for ci in c]
        b = [b for _, b in pairs]
        # b depends on x only for stormer_verlet; elsewhere it is lr, one number for all.
        return [a for a, _ in pairs], (b if isinstance(b[0], Tensor) else b[0])
    return _coefficients(scheme, lr * friction * c, lr)


def _times(k: Number, c: Mobility) -> Coef:
    return [k * ci for ci in c] if isinstance(c, list) else k * c


def _add_scaled_(dst: list[Tensor], src: list[Tensor], coef: Coef) -> None:
    """dst += coef ⊙ src for a number, a 0-d tensor, or one tensor per element."""
    if isinstance(coef, list):
        torch._foreach_addcmul_(dst, src, coef)
    elif isinstance(coef, Tensor) and coef.device.type == "cpu":
        # Reading a CPU tensor syncs nothing; a temporary the size of the parameters would
        # cost a page-faulting allocation and two more passes over memory.
        torch._foreach_add_(dst, src, alpha=coef.item())
    elif isinstance(coef, Tensor):
        torch._foreach_add_(dst, torch._foreach_mul(src, coef))
    else:
        torch._foreach_add_(dst, src, alpha=coef)


def _mul(x: Coef, y: Coef) -> Coef:
    """x ⊙ y for numbers, 0-d tensors, or one tensor per parameter."""
    if isinstance(x, list) and isinstance(y, list):
        return [xi * yi for xi, yi in zip(x, y, strict=True)]
    if isinstance(x, list):
        return [xi * y for xi in x]
    if isinstance(y, list):
        return [x * yi for yi in y]
    return x * y


def _neg(coef: Coef) -> Coef:
    return [-c for c in coef] if isinstance(coef, list) else -coef


def phs(
    params: list[Tensor],
    grads: list[Tensor],
    momenta: list[Tensor],
    *,
    lr: Number,
    friction: Number,
    mass: Mass,
    scheme: str = "conformal",
    kinetic: str | KineticEnergy = "quadratic",
    friction_on: str = "velocity",
    weight_decay: float = 0.0,
    maximize: bool = False,
    foreach: bool | None = None,
) -> None:
    """Functional PHS step: updates ``params`` and ``momenta`` in place.

    See :class:`PHS` for the arguments and the module docstring for the equations.
    """
    fn = _single_tensor_phs if foreach is False else _multi_tensor_phs
    fn(
        params,
        grads,
        momenta,
        lr=lr,
        friction=friction,
        mass=mass,
        scheme=scheme,
        kinetic=get_kinetic(kinetic),
        friction_on=friction_on,
        weight_decay=weight_decay,
        maximize=maximize,
    )


def _multi_tensor_phs(
    params: list[Tensor],
    grads: list[Tensor],
    momenta: list[Tensor],
    *,
    lr: Number,
    friction: Number,
    mass: Mass,
    scheme: str,
    kinetic: KineticEnergy,
    friction_on: str,
    weight_decay: float,
    maximize: bool,
) -> None:
    if maximize:
        grads = torch._foreach_neg(grads)
    if weight_decay != 0:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)  # coupled, as SGD

    c = _friction_rate(momenta, mass, kinetic, friction_on)
    a, b = _rate_coefficients(scheme, c, lr, friction)
    if scheme == "euler":  # eq. (2) read literally: θ moves with the old momentum
        s_old = c if friction_on == "velocity" else kinetic.mobility(momenta, mass)
        _add_scaled_(params, momenta, _times(lr, s_old))
    torch._foreach_mul_(momenta, a)
    _add_scaled_(momenta, grads, _neg(b))
    if scheme == "nesterov" and isinstance(kinetic, Quadratic):
        # s = 1/m does not depend on p: θ += α s (a p⁺ − b g) as two axpys, no temporary.
        s = _times(lr, c if friction_on == "velocity" else kinetic.mobility(momenta, mass))
        _add_scaled_(params, momenta, _mul(a, s))
        _add_scaled_(params, grads, _neg(_mul(b, s)))
    elif scheme == "nesterov":  # look-ahead momentum p̂ = μ p⁺ − α g
        ahead = torch._foreach_mul(momenta, a)
        _add_scaled_(ahead, grads, _neg(b))
        _add_scaled_(params, ahead, _times(lr, kinetic.mobility(ahead, mass)))
    elif scheme != "euler":
        _add_scaled_(params, momenta, _times(lr, kinetic.mobility(momenta, mass)))


def _single_tensor_phs(
    params: list[Tensor],
    grads: list[Tensor],
    momenta: list[Tensor],
    *,
    lr: Number,
    friction: Number,
    mass: Mass,
    scheme: str,
    kinetic: KineticEnergy,
    friction_on: str,
    weight_decay: float,
    maximize: bool,
) -> None:
    # Reference path: the same equations, one tensor at a time. Global kinetic energies
    # still need the whole group for their mobility, so s(p) is taken over the group.
    n = len(params)

    def each(c: Mobility) -> list[Number]:
        return c if isinstance(c, list) else [c] * n

    g = [(-gi if maximize else gi) for gi in grads]
    if weight_decay != 0:
        g = [gi + weight_decay * ti for gi, ti in zip(g, params, strict=True)]
    s_old = each(kinetic.mobility(momenta, mass))
    rate = s_old if friction_on == "velocity" else [1.0] * n
    for i in range(n):
        a, b = _coefficients(scheme, lr * friction * rate[i], lr)
        if scheme == "euler":
            params[i].add_(lr * s_old[i] * momenta[i])
        momenta[i].mul_(a).sub_(b * g[i])
    if scheme == "euler":
        return
    if scheme == "nesterov":
        ahead = []
        for i in range(n):
            a, b = _coefficients(scheme, lr * friction * rate[i], lr)
            ahead.append(a * momenta[i] - b * g[i])
    else:
        ahead = momenta
    s_new = each(kinetic.mobility(ahead, mass))
    for i in range(n):
        params[i].add_(lr * s_new[i] * ahead[i])
