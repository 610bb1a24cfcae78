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
the explicit schemes ``euler`` and ``symplectic_euler`` diverge once x > 2. (goalbrake
reads a torch SGD run as the conformal scheme: goalbrake/optim/sgd.py and docs/design.md,
"Torch SGD as a PHS scheme".)

Three paths take the same step: the per-tensor reference (``foreach=False``), the
multi-tensor one (``torch._foreach_*``), and for the quadratic φ with a scalar mass the
fused one (``fused=True``, the default there), which hands the step to torch's fused SGD
kernel with the momentum p itself as the kernel's buffer: buf⁺ = μ buf + (1 − d) g and
θ⁺ = θ − η buf⁺ with μ = a, d = 1 + b, η = −α/m are p⁺ = a p − b g, θ⁺ = θ + (α/m) p⁺.
The stored momentum stays p, so a brake or a scheduler changes the next step exactly as
on the other paths. Where the kernel needs two calls (``nesterov``, ``euler``) or cannot
take the step (the other kinetic energies), ``fused=True`` runs a one-pass step generated
by torch.compile (goalbrake/optim/compiled.py). The schemes are derived in docs/design.md,
"Discrete schemes".

References:
    Port-Hamiltonian gradient flows (Poli, Massaroli et al., 2020), eq. (7) for
    ``stormer_verlet``; conformal Hamiltonian descent (França et al., 2020); the goal-
    oriented braking paper ("who brakes early, loses") for eqs. (2)–(3).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.optim import Optimizer

from goalbrake.optim.base import (
    EXPLICIT_SCHEMES,
    FRICTION_CONVENTIONS,
    SHARED_KEY_DEFAULTS,
    Coef,
    Number,
    PHSBase,
    as_float,
    coefficients,
    friction_rate,
    one_of,
    quadratic_scalars,
    rate_coefficients,
)
from goalbrake.optim.compiled import compiled_phs
from goalbrake.optim.kinetic import KineticEnergy, Mass, Mobility, Quadratic, get_kinetic
from goalbrake.optim.scratch import Scratch, product

__all__ = ["FRICTION_CONVENTIONS", "PHS", "SCHEMES", "phs"]

SCHEMES: tuple[str, ...] = ("euler", "symplectic_euler", "conformal", "stormer_verlet", "nesterov")
#: Device types the fused path runs on. CPU only: torch's CUDA kernel (FusedSgdKernel.cu)
#: refuses a momentum factor <= 0 (stormer_verlet at x > 2, symplectic_euler at x > 1)
#: and applies ``maximize`` to the whole update instead of the gradient, so the mapping
#: with p as the buffer needs more there; untested without a GPU, CUDA takes foreach.
FUSED_DEVICES: tuple[str, ...] = ("cpu",)
#: Quadratic schemes that torch's kernel takes in two calls (8 and 6 passes, not 5).
TWO_CALL_SCHEMES: tuple[str, ...] = ("nesterov", "euler")
#: From this many weights in a group, ``fused=True`` takes those schemes through the
#: compiled one-pass step (goalbrake/optim/compiled.py): below it a step is bound by
#: per-call overhead, where torch's two calls (a few µs) beat the compiled function's
#: guards (~20 µs), and above it by memory, where 5 passes beat 8.
COMPILED_MIN_NUMEL = 1 << 18


# --------------------------------------------------------------------------- validation
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
    lr, friction = (as_float(v) for v in values)
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
        values = f"lr={as_float(group['lr']):g}, friction={as_float(group['friction']):g}"
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


def _fusable(group: dict[str, Any]) -> bool:
    """The quadratic energy with one mass for the group: SGD's kernel can take the step."""
    return isinstance(get_kinetic(group["kinetic"]), Quadratic) and not isinstance(
        group["mass"], list
    )


def _compilable(group: dict[str, Any]) -> bool:
    """A built-in energy with one mass for the group: the compiled step can take it."""
    return get_kinetic(group["kinetic"]).traceable and not isinstance(group["mass"], list)


def _check_fused(group: dict[str, Any]) -> None:
    fused = group["fused"]
    if fused not in (None, True, False):
        raise ValueError(f"Invalid fused value: {fused!r} (must be None, True or False)")
    if not fused:
        return
    if group["foreach"]:
        raise ValueError(
            "Invalid fused value: True with foreach=True (fused and foreach cannot both be True)"
        )
    if not _compilable(group):
        mass = "a per-parameter mass" if isinstance(group["mass"], list) else "a scalar mass"
        raise ValueError(
            "Invalid fused value: True (the fused step needs a built-in kinetic energy and a "
            f"scalar mass; got kinetic={get_kinetic(group['kinetic']).name!r} with {mass}); "
            "use fused=None or False"
        )
    for p in group["params"]:
        if p.device.type not in FUSED_DEVICES or not torch.is_floating_point(p):
            raise ValueError(
                f"Invalid fused value: True (the fused step needs floating-point parameters on "
                f"{' or '.join(FUSED_DEVICES)}; got {p.dtype} on {p.device.type})"
            )


def _on_host(value: object) -> bool:
    return not isinstance(value, Tensor) or value.device.type == "cpu"


def _use_fused(group: dict[str, Any], first: Tensor) -> bool:
    """The group's ``fused``, or with ``fused=None`` whether the fused path applies.

    The default (None) picks it where it is exact and costs no host sync: the quadratic
    energy, a scalar mass, lr/friction/mass as numbers or CPU tensors, floating-point
    parameters on a ``FUSED_DEVICES`` device, and no ``foreach`` asked for.
    """
    fused = group["fused"]
    if fused is not None:
        return fused
    return (
        group["foreach"] is None
        and _fusable(group)
        and _on_host(group["lr"])
        and _on_host(group["friction"])
        and _on_host(group["mass"])
        and first.device.type in FUSED_DEVICES
        and first.is_floating_point()
    )


def _check_fixed_momentum(group: dict[str, Any]) -> None:
    """``fixed_momentum`` is a bool; a group that has it on records its lr as friction_lr."""
    fixed = group["fixed_momentum"]
    if not isinstance(fixed, bool):
        raise ValueError(f"Invalid fixed_momentum value: {fixed!r} (must be True or False)")
    if fixed and "friction_lr" not in group:
        lr = group["lr"]
        # A copy: a scheduler sets a tensor lr in place (fill_), which would move it too.
        group["friction_lr"] = lr.detach().clone() if isinstance(lr, Tensor) else lr


def _applied_friction(group: dict[str, Any]) -> Number:
    """γ the step applies: ``friction``, or with ``fixed_momentum`` friction·friction_lr/lr."""
    if not group["fixed_momentum"]:
        return group["friction"]
    return group["friction"] * group["friction_lr"] / group["lr"]


def _applied(group: dict[str, Any]) -> dict[str, Any]:
    """The group as the step reads it: itself, or a view with the applied friction."""
    if not group["fixed_momentum"]:
        return group
    return {**group, "friction": _applied_friction(group)}


# ------------------------------------------------------------------------------ optimizer
class PHS(PHSBase):
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
        foreach: use the multi-tensor (``torch._foreach_*``) path, or (False) the
            per-tensor reference path.
        fused: take the step in fused kernels (a scalar mass, CPU parameters): torch's
            fused SGD kernel with the momentum p as its buffer for the quadratic φ, and
            (``True`` only) the one-pass step that torch.compile generates for the other
            built-in energies and for large ``nesterov``/``euler`` groups. None (default)
            picks torch's kernel where it applies and never compiles; see
            docs/optimizer.md, "The fused path" and "The compiled fused step".
        fixed_momentum: keep the momentum factor μ when ``lr`` changes (an lr scheduler):
            the step applies the friction ``friction · friction_lr / lr``, with
            ``group["friction_lr"]`` the group's lr when it was added, so x = lr·γ·c and μ
            stay what ``friction`` gives at that lr, while a brake (γ → kγ) still turns μ
            into μᵏ. Off by default: then shrinking lr also shrinks x and weakens the
            damping (μ = e^(−x) → 1), which SGD's ``momentum`` does not do.

    Raises:
        ValueError: a value out of range or an unknown name; an explicit scheme with
            x > 2 (at construction, and at a step after a friction change);
            ``fused=True`` where the fused step does not apply.

    Example:
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = PHS(model.parameters(), lr=0.1, mass=10.0, friction=0.1)
        >>> model(torch.randn(8, 4)).square().mean().backward()
        >>> opt.step()
        >>> opt.param_groups[0]["friction"] *= 50  # brake: momentum factor μ -> μ**50
    """

    _key_defaults: ClassVar[dict[str, object]] = {
        "scheme": "conformal",
        **SHARED_KEY_DEFAULTS,
        "foreach": None,
        "fused": None,
        "fixed_momentum": False,
    }

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
        fused: bool | None = None,
        fixed_momentum: bool = False,
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
            fused=fused,
            fixed_momentum=fixed_momentum,
        )
        self._scratch = Scratch()  # the foreach path's temporaries, reused over steps
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        if not hasattr(self, "_scratch"):  # unpickled: the pool is not part of the state
            self._scratch = Scratch()

    def _check_scheme(self, group: dict[str, Any]) -> None:
        one_of("scheme", group["scheme"], SCHEMES)

    def _check_extra(self, group: dict[str, Any]) -> None:
        _check_stable(group)
        _check_fused(group)
        _check_fixed_momentum(group)

    def _per_group(
        self, fn: Callable[[dict[str, Any], list[Tensor], Mass], Tensor], group: int | None
    ) -> Tensor:
        # dissipation_power() reads the friction the step applies (fixed_momentum).
        return super()._per_group(lambda g, ps, m: fn(_applied(g), ps, m), group)

    def momentum_factor(self, group: int = 0) -> Tensor:
        g = self.param_groups[group]
        if not g["fixed_momentum"]:
            return super().momentum_factor(group)
        friction = g["friction"]
        g["friction"] = _applied_friction(g)  # the base method reads the group's friction
        try:
            return super().momentum_factor(group)
        finally:
            g["friction"] = friction

    momentum_factor.__doc__ = PHSBase.momentum_factor.__doc__

    def _factor_scheme(self, group: dict[str, Any]) -> str:
        return group["scheme"]

    def _init_group(
        self, group: dict[str, Any]
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor], Mass]:
        # One loop over the group (a LeNet step is bound by Python per parameter): the
        # parameters with a dense gradient, their gradients and momenta (as _with_grad and
        # _momentum, which PHSFlow uses).
        index, params, grads, momenta = [], [], [], []
        state = self.state
        for i, p in enumerate(group["params"]):
            grad = p.grad
            if grad is None:
                continue
            if grad.is_sparse:
                self._with_grad(group)  # raises the sparse-gradient error
            momentum = state[p].get("momentum")
            if momentum is None:
                momentum = self._momentum(p)
            index.append(i)
            params.append(p)
            grads.append(grad)
            momenta.append(momentum)
        mass = group["mass"]
        return (
            params,
            grads,
            momenta,
            ([mass[i] for i in index] if isinstance(mass, list) else mass),
        )

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
            group = _applied(group)
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
                fused=_use_fused(group, params[0]),
                compiled=group["fused"] is True,
                scratch=self._scratch,
            )
        return loss


# ------------------------------------------------------------------------------ the math
def _times(k: Number, c: Mobility, scratch: Scratch | None = None) -> Coef:
    return product(c, k, scratch) if isinstance(c, list) else k * c


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


def _neg(coef: Coef, scratch: Scratch | None = None) -> Coef:
    return product(coef, -1.0, scratch) if isinstance(coef, list) else -coef


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
    fused: bool | None = None,
    compiled: bool = True,
    scratch: Scratch | None = None,
) -> None:
    """Functional PHS step: updates ``params`` and ``momenta`` in place.

    See :class:`PHS` for the arguments and the module docstring for the equations.
    ``fused=True`` takes the step in fused kernels (a scalar mass, CPU tensors): torch's
    fused SGD kernel for the quadratic φ, and with ``compiled`` the one-pass step that
    torch.compile generates (goalbrake/optim/compiled.py) for the other built-in energies
    and, on groups of ``COMPILED_MIN_NUMEL`` weights or more, for ``nesterov`` and
    ``euler``. None means False here (the class picks the default; it passes
    ``compiled=False`` unless ``fused=True`` was asked for). ``scratch``: a pool the foreach
    path takes its temporaries from (and releases at the end), reused over steps.
    """
    energy = get_kinetic(kinetic)
    if fused and compiled and _takes_compiled(scheme, energy, mass, params):
        for ps, gs, bufs in _by_device_and_dtype(params, grads, momenta):
            compiled_phs(
                ps,
                gs,
                bufs,
                lr=lr,
                friction=friction,
                mass=mass,  # type: ignore[arg-type]  # a scalar: _takes_compiled checked it
                scheme=scheme,
                kinetic=energy,
                friction_on=friction_on,
                weight_decay=weight_decay,
                maximize=maximize,
            )
        return
    if fused and isinstance(energy, Quadratic) and not isinstance(mass, list):
        scalars = _fused_scalars(scheme, lr, friction, mass, friction_on)
        if scalars is not None:
            for ps, gs, bufs in _by_device_and_dtype(params, grads, momenta):
                _fused_phs(ps, gs, bufs, scheme, *scalars, weight_decay, maximize)
            return
    if foreach is False:
        fn = _single_tensor_phs
    else:  # also a fused step whose momentum factor is 0 (the kernel skips its buffer)
        fn = partial(_multi_tensor_phs, scratch=scratch)
    fn(
        params,
        grads,
        momenta,
        lr=lr,
        friction=friction,
        mass=mass,
        scheme=scheme,
        kinetic=energy,
        friction_on=friction_on,
        weight_decay=weight_decay,
        maximize=maximize,
    )
    if scratch is not None:
        scratch.release()


#: Energies whose foreach step beats the compiled one (benchmarks/optimizer_step.py).
FOREACH_FASTER = frozenset({"relativistic", "normalized"})


def _takes_compiled(scheme: str, kinetic: KineticEnergy, mass: Mass, params: list[Tensor]) -> bool:
    """Whether ``fused=True`` runs the compiled step (not torch's kernel, not foreach)."""
    if isinstance(mass, list) or not kinetic.traceable:
        return False
    if params[0].device.type not in FUSED_DEVICES:  # inductor's GPU code is untested here
        return False
    if not isinstance(kinetic, Quadratic):
        # Measured (docs/optimizer.md): relativistic and normalized are 2-3x slower compiled
        # than on the foreach path, which already runs them near SGD; they stay there.
        return kinetic.name not in FOREACH_FASTER
    return scheme in TWO_CALL_SCHEMES and sum(p.numel() for p in params) >= COMPILED_MIN_NUMEL


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
    scratch: Scratch | None = None,
) -> None:
    if maximize or weight_decay != 0:
        grads = product(grads, -1.0 if maximize else 1.0, scratch)
    if weight_decay != 0:
        torch._foreach_add_(grads, params, alpha=weight_decay)  # coupled, as SGD

    c = friction_rate(momenta, mass, kinetic, friction_on, scratch)
    a, b = rate_coefficients(scheme, c, lr, friction, scratch)
    if scheme == "euler":  # eq. (2) read literally: θ moves with the old momentum
        s_old = c if friction_on == "velocity" else kinetic._mobility(momenta, mass, scratch)
        _add_scaled_(params, momenta, _times(lr, s_old, scratch))
    torch._foreach_mul_(momenta, a)
    _add_scaled_(momenta, grads, _neg(b, scratch))
    if scheme == "nesterov" and isinstance(kinetic, Quadratic):
        # s = 1/m does not depend on p: θ += α s (a p⁺ − b g) as two axpys, no temporary.
        s = _times(lr, c if friction_on == "velocity" else kinetic.mobility(momenta, mass))
        _add_scaled_(params, momenta, _mul(a, s))
        _add_scaled_(params, grads, _neg(_mul(b, s)))
    elif scheme == "nesterov":  # look-ahead momentum p̂ = μ p⁺ − α g
        ahead = product(momenta, a, scratch)
        _add_scaled_(ahead, grads, _neg(b, scratch))
        _move(params, ahead, lr, kinetic, mass, scratch)  # θ += α ∇φ(p̂)
    elif scheme != "euler":
        _move(params, momenta, lr, kinetic, mass, scratch)  # θ += α ∇φ(p⁺)


def _move(
    params: list[Tensor],
    momenta: list[Tensor],
    lr: Number,
    kinetic: KineticEnergy,
    mass: Mass,
    scratch: Scratch | None,
) -> None:
    """θ += α ∇φ(p): through ∇φ's closed form where the energy has one, else α s(p) ⊙ p
    (one axpy for a group-wide mobility, no temporary)."""
    if kinetic.closed_form_grad:
        _add_scaled_(params, kinetic._grad(momenta, mass, scratch), lr)
    else:
        _add_scaled_(
            params, momenta, _times(lr, kinetic._mobility(momenta, mass, scratch), scratch)
        )


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
        a, b = coefficients(scheme, lr * friction * rate[i], lr)
        if scheme == "euler":
            params[i].add_(lr * s_old[i] * momenta[i])
        momenta[i].mul_(a).sub_(b * g[i])
    if scheme == "euler":
        return
    if scheme == "nesterov":
        ahead = []
        for i in range(n):
            a, b = coefficients(scheme, lr * friction * rate[i], lr)
            ahead.append(a * momenta[i] - b * g[i])
    else:
        ahead = momenta
    s_new = each(kinetic.mobility(ahead, mass))
    for i in range(n):
        params[i].add_(lr * s_new[i] * ahead[i])


def _fused_scalars(
    scheme: str, lr: Number, friction: Number, mass: Mass, friction_on: str
) -> tuple[float, float, float] | None:
    """(a, b, α/m) of the fused step as numbers, or None where a = 0 exactly.

    At momentum 0 torch's kernel leaves its buffer alone, so p⁺ = −b g' (x = 1 for
    ``symplectic_euler``, x = 2 for ``stormer_verlet``, e^(−x) underflowing) goes the
    foreach way; ``euler`` uses no buffer. Tensor lr/friction/mass are read as numbers
    (a host sync on a GPU; ``fused=None`` does not pick this path then).
    """
    a, b, speed = quadratic_scalars(scheme, lr, friction, mass, friction_on)
    if a == 0.0 and scheme != "euler":
        return None
    return a, b, speed


def _by_device_and_dtype(
    params: list[Tensor], grads: list[Tensor], momenta: list[Tensor]
) -> list[tuple[list[Tensor], list[Tensor], list[Tensor]]]:
    """The kernel takes one device and dtype per call; most groups have one of each."""
    first = params[0]
    dtype, device = first.dtype, first.device
    if all(p.dtype is dtype and p.device == device for p in params):
        return [(params, grads, momenta)]
    grouped = Optimizer._group_tensors_by_device_and_dtype([params, grads, momenta])
    return [tuple(lists) for lists, _ in grouped.values()]  # type: ignore[misc]


def _fused_phs(
    params: list[Tensor],
    grads: list[Tensor],
    momenta: list[Tensor],
    scheme: str,
    a: float,
    b: float,
    speed: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    r"""The quadratic step through torch's fused SGD kernel, the momentum p as its buffer.

    One device and dtype; ``speed`` = α/m. The kernel computes, per element, with
    g' = ±g + λθ:

    .. math::

        \mathrm{buf}^+ = μ\,\mathrm{buf} + (1 - d)\,g', \qquad θ^+ = θ - η\,\mathrm{buf}^+

    With buf = p, μ = a, d = 1 + b and η = −α/m this is p⁺ = a p − b g',
    θ⁺ = θ + (α/m) p⁺: the ``symplectic_euler``, ``conformal`` and ``stormer_verlet`` steps
    in one pass over (θ, g, p). No coordinate change is stored, so a brake, a scheduler's
    lr or a new mass takes effect at the next step exactly as on the foreach path.
    ``nesterov`` adds the look-ahead's −(α/m) b g' as a second call (η = (α/m) b, no
    momentum); ``euler`` moves θ with the old p first (SGD on θ with p as its gradient),
    then p (SGD on p with weight decay (1 − a)/b).
    """
    if weight_decay and scheme in ("euler", "nesterov"):
        # Their second call reads θ after the first moved it: λθ_k goes in beforehand.
        signed = torch._foreach_neg(grads) if maximize else grads
        grads = torch._foreach_add(signed, params, alpha=weight_decay)
        weight_decay, maximize = 0.0, False
    if scheme == "euler":  # θ⁺ = θ + (α/m) p, then p⁺ = p − b (g' + ((1 − a)/b) p)
        _kernel(params, momenta, [], 0.0, 0.0, -speed, 0.0, False)
        _kernel(momenta, grads, [], (1.0 - a) / b, 0.0, b, 0.0, maximize)
        return
    lr = -speed * a if scheme == "nesterov" else -speed
    _kernel(params, grads, momenta, weight_decay, a, lr, 1.0 + b, maximize)
    if scheme == "nesterov":  # θ⁺ = θ + (α/m)(a p⁺ − b g'): the look-ahead's −(α/m) b g'
        _kernel(params, grads, [], 0.0, 0.0, speed * b, 0.0, maximize)


def _kernel(
    params: list[Tensor],
    grads: list[Tensor],
    buffers: list[Tensor],
    weight_decay: float,
    momentum: float,
    lr: float,
    dampening: float,
    maximize: bool,
) -> None:
    """torch's fused SGD step: buf⁺ = μ buf + (1 − d) g', θ⁺ = θ − η buf⁺ (η g' at μ = 0)."""
    torch._fused_sgd_(
        params,
        grads,
        buffers,
        weight_decay=weight_decay,
        momentum=momentum,
        lr=lr,
        dampening=dampening,
        nesterov=False,
        maximize=maximize,
        is_first_step=False,
    )
