r"""PHSFlow: the port-Hamiltonian gradient flow, integrated per batch with an ODE solver.

The discrete schemes of :mod:`goalbrake.optim.phs` take one step of length α per batch.
:class:`PHSFlow` instead integrates the continuous system itself (the port-Hamiltonian
gradient flow, PHGF, of Poli, Massaroli et al.) on the sampled batch B,

.. math::

    \dot θ = ∇φ(p), \qquad \dot p = -∇L_B(θ) - γ\,F(p), \qquad
    \frac{dH_B}{dt} = -γ\,⟨∇φ(p), F(p)⟩ \le 0, \quad H_B = L_B(θ) + φ(p)

with F(p) = ∇φ(p) (``friction_on="velocity"``) or F(p) = p (``friction_on="momentum"``),
for the integration time T = α (the learning rate) with an adaptive Runge–Kutta solver
(torchdiffeq's ``odeint``). Every evaluation of the right-hand side sets the parameters,
calls the closure (forward and backward on the same batch) and reads the gradient, so one
step costs ``last_nfe`` forward/backward passes instead of one. In exchange the step is
as accurate as ``rtol``/``atol`` ask at any α: on a fixed batch the energy H_B decreases
for every kinetic energy, a property no explicit scheme has at large α.

With several param groups the groups are one coupled system (one loss). Each group's
clock runs at its own lr: the solver integrates s ∈ [0, 1] with
θ_g' = α_g ∇φ_g(p_g), p_g' = −α_g (∇_g L_B + γ_g F_g(p_g)), which for a single lr is the
flow above over t ∈ [0, α] (a linear change of time, exact for Runge–Kutta methods too).

References:
    M. Poli, S. Massaroli et al., "Port-Hamiltonian Gradient Flows", ICLR 2020 workshop
    on integration of deep neural models and differential equations (the PHGF; their
    Fig. 2 sweeps the integration time, reproduced in shape by benchmarks/ode_lr_sweep.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from goalbrake.optim.base import (
    SHARED_KEY_DEFAULTS,
    Number,
    PHSBase,
    as_float,
    check_number,
    one_of,
)
from goalbrake.optim.kinetic import KineticEnergy, Mass, get_kinetic

__all__ = ["ADAPTIVE_SOLVERS", "FIXED_SOLVERS", "FLOW_SOLVERS", "PHSFlow", "phs_flow_field"]

#: torchdiffeq's adaptive-step solvers: the step is refined until rtol/atol hold.
ADAPTIVE_SOLVERS: tuple[str, ...] = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")
#: torchdiffeq's fixed-grid solvers: one step over the whole interval [0, lr] (``euler``
#: is then PHS(scheme="euler")); rtol and atol are not used.
FIXED_SOLVERS: tuple[str, ...] = ("euler", "midpoint", "heun2", "heun3", "rk4")
FLOW_SOLVERS: tuple[str, ...] = ADAPTIVE_SOLVERS + FIXED_SOLVERS
#: The group keys that describe the one ODE of the whole optimizer (equal in all groups).
_SHARED_KEYS: tuple[str, ...] = ("solver", "rtol", "atol", "max_evals")
#: The solver settings a state from before they existed (or a PHS state) loads with.
_SOLVER_DEFAULTS: dict[str, object] = {
    "solver": "dopri5",
    "rtol": 1e-3,
    "atol": 1e-6,
    "max_evals": 1000,
}


class _TooManyEvaluations(Exception):
    """Raised inside the right-hand side when the step's evaluation budget is spent."""


# ------------------------------------------------------------------------------ optimizer
class PHSFlow(PHSBase):
    r"""The port-Hamiltonian gradient flow (PHGF), integrated for time lr on every batch.

    A sibling of :class:`~goalbrake.optim.PHS` with the same kinetic energies, param-group
    keys (``lr``, ``friction``, ``mass``, ``kinetic``, ``friction_on``; ``scheme`` is
    fixed to ``"ode"``) and monitoring (``kinetic_energy()``, ``dissipation_power()``,
    ``momentum_factor()``), so :class:`~goalbrake.GoalBrake` brakes it the same way: it
    multiplies ``group["friction"]`` and the next step reads it.

    Algorithm (one call of ``step(closure)`` on the batch B the closure evaluates):

    .. math::

        \begin{aligned}
        &\textbf{solve}\ \ \dot θ = ∇φ(p),\quad
            \dot p = -\big(∇L_B(θ) + λθ\big) - γ F(p),\qquad t ∈ [0, α] \\
        &\quad\text{from } (θ_k, p_k) \text{ with an adaptive solver (rtol, atol)} \\
        &(θ_{k+1}, p_{k+1}) = (θ(α), p(α))
        \end{aligned}

    The learning rate α is an *integration time*, not a step size: doubling it follows
    the same trajectory twice as far (at about twice the evaluations). For the quadratic
    φ and velocity friction the flow is the damped oscillator m θ'' + γ θ' + ∇L(θ) = 0,
    which the discrete schemes of :class:`PHS` approximate with one gradient per step
    (``conformal`` ≈ SGD(lr=α²/m, momentum=e^{−αγ/m})). The friction part alone
    decays p by e^{−αγ/m} over one step, the ``momentum_factor()`` reported here.

    Every evaluation starts from zero gradients (the optimizer clears them), sets the
    parameters to the solver's stage, calls the closure under ``torch.enable_grad()``
    and reads ``p.grad``. Parameters without a gradient at the first evaluation are left
    alone (as in PHS). The closure's first loss (at θ_k) is returned and kept in
    ``last_loss``; the number of closure calls of the last step is ``last_nfe`` (also in
    ``state_dict()["flow"]``, with ``total_nfe``). ``p.grad`` holds the gradient of the
    last evaluation. Gradient accumulation over several batches (Lightning's
    ``accumulate_grad_batches > 1``) does not apply: each evaluation needs the gradient
    at the solver's own point.

    Args:
        params: parameters or param groups (one device, one floating dtype preferred; a
            mix of dtypes is integrated in the promoted dtype).
        lr: integration time α > 0 per batch.
        mass: m > 0 (a number, a 0-d tensor or one tensor per parameter, as in PHS).
        friction: γ ≥ 0.
        kinetic: a name (``quadratic``, ``relativistic``, ``normalized``, ``soft_clip``,
            ``logsumexp``, ``pnorm``) or a :class:`~goalbrake.optim.KineticEnergy`.
        friction_on: ``"velocity"`` (F = ∇φ(p)) or ``"momentum"`` (F = p).
        weight_decay: coupled L2 penalty λ, added to the gradient (the flow then descends
            L + λ‖θ‖²/2).
        maximize: ascend the loss instead.
        solver: a torchdiffeq method, one of ``dopri5`` (default), ``dopri8``, ``bosh3``,
            ``fehlberg2``, ``adaptive_heun`` (adaptive), or ``euler``, ``midpoint``,
            ``heun2``, ``heun3``, ``rk4`` (a single fixed step over [0, lr]).
        rtol: relative tolerance of the adaptive solver (> 0).
        atol: absolute tolerance of the adaptive solver (≥ 0).
        max_evals: the most closure calls one step may make (≥ 1).

    Raises:
        ValueError: a value out of range or an unknown name, a param group whose
            ``scheme`` is not ``"ode"``, or groups that disagree on the solver settings.
        TypeError: ``step()`` without a closure.
        RuntimeError: a step that needs more than ``max_evals`` evaluations, or a solver
            failure (a non-finite loss or gradient); the parameters are then restored to
            their values before the step and the momentum is unchanged.

    Example:
        >>> model = torch.nn.Linear(4, 1)
        >>> x, y = torch.randn(32, 4), torch.randn(32, 1)
        >>> opt = PHSFlow(model.parameters(), lr=0.5, friction=1.0)
        >>> def closure():
        ...     loss = torch.nn.functional.mse_loss(model(x), y)
        ...     loss.backward()
        ...     return loss
        >>> loss = opt.step(closure)
        >>> opt.last_nfe > 1
        True
        >>> opt.param_groups[0]["friction"] *= 50  # brake: read by the next step
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float | Tensor,
        mass: float | Tensor | Sequence[Tensor] = 1.0,
        friction: float | Tensor = 0.1,
        kinetic: str | KineticEnergy = "quadratic",
        friction_on: str = "velocity",
        weight_decay: float = 0.0,
        maximize: bool = False,
        solver: str = "dopri5",
        rtol: float = 1e-3,
        atol: float = 1e-6,
        max_evals: int = 1000,
    ) -> None:
        self.last_nfe = 0
        self.total_nfe = 0
        self.last_loss: Any = None
        self._last_dt: float | None = None  # the last accepted solver step, in time units
        defaults = dict(
            lr=lr,
            mass=mass,
            friction=friction,
            scheme="ode",
            kinetic=kinetic,
            friction_on=friction_on,
            weight_decay=weight_decay,
            maximize=maximize,
            solver=solver,
            rtol=rtol,
            atol=atol,
            max_evals=max_evals,
        )
        super().__init__(params, defaults)

    _key_defaults: ClassVar[dict[str, object]] = SHARED_KEY_DEFAULTS

    def _check_scheme(self, group: dict[str, Any]) -> None:
        if group["scheme"] != "ode":
            raise ValueError(
                f"Invalid scheme value: {group['scheme']!r} (PHSFlow integrates the flow, its "
                "scheme is 'ode'; use PHS for the discrete schemes)"
            )

    def _check_extra(self, group: dict[str, Any]) -> None:
        _check_solver(group)
        first = self.param_groups[0]
        if group is not first:
            _check_shared(group, {key: first[key] for key in _SHARED_KEYS})

    def _factor_scheme(self, group: dict[str, Any]) -> str:
        # The friction part of the flow, p' = −γ c p with the rate c frozen, decays p by
        # exactly e^{−x} over the integration time lr: the conformal factor.
        return "conformal"

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A PHS state loads into PHSFlow (the momentum carries over): its groups lack the
        # solver keys, which come from this optimizer's defaults where it has them.
        super().__setstate__(state)
        defaults = {k: self.defaults.get(k, v) for k, v in _SOLVER_DEFAULTS.items()}
        for group in self.param_groups:
            group["scheme"] = "ode"
            for key, value in defaults.items():
                group.setdefault(key, value)
        self.last_nfe = getattr(self, "last_nfe", 0)
        self.total_nfe = getattr(self, "total_nfe", 0)
        self.last_loss = getattr(self, "last_loss", None)
        self._last_dt = getattr(self, "_last_dt", None)

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state dict plus ``"flow"``: ``last_nfe`` and ``total_nfe``."""
        state = super().state_dict()
        state["flow"] = {"last_nfe": self.last_nfe, "total_nfe": self.total_nfe}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a PHSFlow (or PHS) state; the counters come back when present."""
        super().load_state_dict(state_dict)
        flow = state_dict.get("flow", {})
        self.last_nfe = int(flow.get("last_nfe", 0))
        self.total_nfe = int(flow.get("total_nfe", 0))

    def function_evaluations(self) -> int:
        """Closure calls (forward + backward passes) of the last step."""
        return self.last_nfe

    # ---------------------------------------------------------------------------- step
    def _participants(self) -> list[tuple[dict[str, Any], list[int], list[Tensor]]]:
        """Per group: the group, the indices of its parameters with a gradient, those."""
        out = []
        for group in self.param_groups:
            out.append((group, *self._with_grad(group)))
        return out

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """Integrate the flow for time lr on the batch the closure evaluates.

        Args:
            closure: re-evaluates the model on the current batch, calls ``backward()`` and
                returns the loss. Required; Lightning passes one to ``optimizer.step``.

        Returns:
            The closure's loss at the parameters before the step.

        Raises:
            TypeError: no closure.
            RuntimeError: more than ``max_evals`` evaluations, or a solver failure; the
                parameters are restored to their values before the step.
        """
        if closure is None:
            raise TypeError(
                "PHSFlow.step needs a closure that re-evaluates the loss on the current batch "
                "and calls backward(), e.g. opt.step(closure); Lightning passes one to "
                "optimizer.step in automatic optimization"
            )
        from torchdiffeq import odeint  # the one dependency only PHSFlow needs

        shared = {key: self.param_groups[0][key] for key in _SHARED_KEYS}
        for group in self.param_groups[1:]:
            _check_shared(group, shared)

        self.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = closure()
        self.last_loss = loss.detach() if isinstance(loss, Tensor) else loss
        groups = self._participants()
        params = [p for _, _, ps in groups for p in ps]
        if not params:
            self.last_nfe = 1
            self.total_nfe += 1
            return loss
        field = _Field(self, closure, groups, params, int(shared["max_evals"]))
        field.write(self._solve(odeint, field, shared))
        return loss

    def _solve(
        self, odeint: Callable[..., Tensor], field: _Field, shared: dict[str, Any]
    ) -> Tensor:
        """y(1) of the flow on the s-clock; on any failure θ is restored and the error says why."""
        span = torch.tensor([0.0, 1.0], dtype=field.dtype, device=field.y0.device)
        options: dict[str, float] = {}
        accepted: list[float] = []
        clock = as_float(self.param_groups[0]["lr"])
        if shared["solver"] in ADAPTIVE_SOLVERS:
            # Warm start: the first trial step is the last accepted one of the previous
            # batch (in time units, so a changed lr keeps it), not a fresh estimate that
            # costs one evaluation and grows by at most 10x per step.
            if self._last_dt is not None:
                options["first_step"] = min(self._last_dt / clock, 1.0)
            field.callback_accept_step = lambda t0, y, dt: accepted.append(float(dt))
        try:
            y1 = odeint(
                field,
                field.y0,
                span,
                method=shared["solver"],
                options=options,
                **_tolerances(shared),
            )[-1]
        except _TooManyEvaluations:
            field.restore()
            raise RuntimeError(
                f"PHSFlow: the solver needed more than {field.max_evals} function evaluations "
                f"in one step ({_describe(self.param_groups, shared)}); raise max_evals, loosen "
                "rtol/atol or shorten lr"
            ) from None
        except AssertionError as error:  # torchdiffeq's checks: dt underflow, NaN state
            field.restore()
            raise RuntimeError(
                f"PHSFlow: the solver failed after {field.nfe} function evaluations "
                f"({_describe(self.param_groups, shared)}): {error}; the loss or its gradient "
                "is probably not finite: shorten lr or raise the friction"
            ) from None
        except BaseException:
            field.restore()
            raise
        finally:
            self.last_nfe = field.nfe
            self.total_nfe += field.nfe
        if accepted:
            self._last_dt = accepted[-1] * clock
        return y1


class _Field:
    """The right-hand side of one step's ODE on the flattened state y = (θ, p).

    Each call with a new y sets the parameters to θ, calls the closure and reads the
    gradients (one function evaluation, counted in ``nfe``); the closure's call before
    the solve is the evaluation at y0.
    """

    callback_accept_step: Callable[[Tensor, Tensor, Tensor], None]

    def __init__(
        self,
        opt: PHSFlow,
        closure: Callable[[], Any],
        groups: list[tuple[dict[str, Any], list[int], list[Tensor]]],
        params: list[Tensor],
        max_evals: int,
    ) -> None:
        devices = {p.device for p in params}
        if len(devices) > 1:
            raise RuntimeError(
                f"PHSFlow integrates one state vector, but the parameters are on "
                f"{len(devices)} devices ({', '.join(sorted(map(str, devices)))}); use one device"
            )
        self.dtype = params[0].dtype
        for p in params[1:]:
            self.dtype = torch.promote_types(self.dtype, p.dtype)
        self.opt, self.closure, self.groups, self.params = opt, closure, groups, params
        self.momenta = [opt._momentum(p) for p in params]
        self.sizes = [p.numel() for p in params]
        self.n = sum(self.sizes)
        self.y0 = torch.cat([t.detach().reshape(-1).to(self.dtype) for t in params + self.momenta])
        self.pending: list[Tensor] | None = self._gradients()  # the evaluation at y0
        self.nfe, self.max_evals = 1, max_evals

    def _split(self, y: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        ps, n = self.params, self.n
        thetas = [v.view(p.shape) for v, p in zip(y[:n].split(self.sizes), ps, strict=True)]
        moms = [v.view(p.shape) for v, p in zip(y[n:].split(self.sizes), ps, strict=True)]
        return thetas, moms

    def _gradients(self) -> list[Tensor]:
        return [
            torch.zeros(p.shape, dtype=self.dtype, device=p.device)
            if p.grad is None
            else p.grad.to(self.dtype)
            for p in self.params
        ]

    def _evaluate(self, y: Tensor, thetas: list[Tensor]) -> list[Tensor]:
        if self.pending is not None and torch.equal(y, self.y0):
            grads, self.pending = self.pending, None
            return grads
        self.pending = None
        if self.nfe >= self.max_evals:
            raise _TooManyEvaluations
        self.nfe += 1
        for p, theta in zip(self.params, thetas, strict=True):
            p.copy_(theta)
        self.opt.zero_grad(set_to_none=True)
        with torch.enable_grad():
            self.closure()
        return self._gradients()

    def __call__(self, t: Tensor, y: Tensor) -> Tensor:
        thetas, moms = self._split(y)
        grads = self._evaluate(y, thetas)
        velocity, force = [], []
        start = 0
        for group, index, ps in self.groups:
            stop = start + len(ps)
            if ps:
                mass = group["mass"]
                if isinstance(mass, list):
                    mass = [mass[i].to(self.dtype) for i in index]
                d_theta, d_p = phs_flow_field(
                    thetas[start:stop],
                    moms[start:stop],
                    grads[start:stop],
                    lr=group["lr"],
                    friction=group["friction"],
                    mass=mass,
                    kinetic=get_kinetic(group["kinetic"]),
                    friction_on=group["friction_on"],
                    weight_decay=group["weight_decay"],
                    maximize=group["maximize"],
                )
                velocity += d_theta
                force += d_p
            start = stop
        return torch.cat([v.reshape(-1) for v in velocity + force])

    def restore(self) -> None:
        """θ back to its value before the step."""
        for p, v in zip(self.params, self.y0[: self.n].split(self.sizes), strict=True):
            p.copy_(v.view(p.shape))

    def write(self, y1: Tensor) -> None:
        """(θ, p) of the solved state into the parameters and momenta."""
        thetas, moms = self._split(y1)
        for p, theta in zip(self.params, thetas, strict=True):
            p.copy_(theta)
        for m, mom in zip(self.momenta, moms, strict=True):
            m.copy_(mom)


# ------------------------------------------------------------------------------ validation
def _check_solver(group: dict[str, Any]) -> None:
    """The solver's keys: a known method, rtol > 0, atol >= 0, max_evals >= 1."""
    one_of("solver", group["solver"], FLOW_SOLVERS)
    for name, positive in (("rtol", True), ("atol", False)):
        value = group[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"Invalid {name} value: {value!r} (must be a number)")
        check_number(name, value, positive=positive)
    max_evals = group["max_evals"]
    if isinstance(max_evals, bool) or not isinstance(max_evals, int) or max_evals < 1:
        raise ValueError(f"Invalid max_evals value: {max_evals!r} (must be an integer >= 1)")


def _check_shared(group: dict[str, Any], shared: dict[str, Any]) -> None:
    for key, value in shared.items():
        if group[key] != value:
            raise ValueError(
                f"Invalid {key} value: {group[key]!r} in a param group, but {value!r} in the "
                f"first (PHSFlow integrates all groups as one ODE; set {key} once, in the "
                "constructor)"
            )


def _tolerances(shared: dict[str, Any]) -> dict[str, float]:
    if shared["solver"] in FIXED_SOLVERS:
        return {}
    return {"rtol": float(shared["rtol"]), "atol": float(shared["atol"])}


def _describe(groups: list[dict[str, Any]], shared: dict[str, Any]) -> str:
    lrs = sorted({as_float(g["lr"]) for g in groups})
    lr = f"{lrs[0]:g}" if len(lrs) == 1 else "[" + ", ".join(f"{v:g}" for v in lrs) + "]"
    return f"lr={lr}, rtol={shared['rtol']:g}, atol={shared['atol']:g}, solver={shared['solver']!r}"


# ------------------------------------------------------------------------------ the math
def phs_flow_field(
    params: Sequence[Tensor],
    momenta: Sequence[Tensor],
    grads: Sequence[Tensor],
    *,
    lr: Number,
    friction: Number,
    mass: Mass,
    kinetic: KineticEnergy,
    friction_on: str,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> tuple[list[Tensor], list[Tensor]]:
    """The right-hand side of one group on the s-clock: (α ∇φ(p), −α (g + λθ + γ F(p))).

    Pure: returns new tensors and writes nothing. ``g`` is the loss gradient at ``params``
    (negated for ``maximize``); F(p) = ∇φ(p) for velocity friction, p for momentum.
    """
    g = [-gi for gi in grads] if maximize else list(grads)
    if weight_decay != 0:
        g = torch._foreach_add(g, list(params), alpha=weight_decay)  # coupled, as SGD
    velocity = kinetic.grad(momenta, mass)
    force = velocity if friction_on == "velocity" else list(momenta)
    d_p = torch._foreach_add(g, torch._foreach_mul(force, friction))
    torch._foreach_mul_(d_p, -lr)
    return torch._foreach_mul(velocity, lr), d_p
