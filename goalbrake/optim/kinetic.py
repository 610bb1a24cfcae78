"""Kinetic energies φ(p) for the port-Hamiltonian optimizer.

Every kinetic energy here is the mass-scaled form of a unit-mass energy ψ:

    φ_m(p) = m · ψ(p / m),      so     ∇φ_m(p) = ∇ψ(p / m)

The mass turns momentum into velocity. For the quadratic ψ(v) = ‖v‖²/2 this is the
classical φ(p) = ‖p‖²/2m; for the others it reproduces the forms of docs/design.md,
"Kinetic energies" (with m = 1 where the design writes no mass).

The optimizer needs two things from a kinetic energy: its value (for monitoring) and its
gradient, which every energy here writes as ``∇φ(p) = s(p) ⊙ p`` with a non-negative
*mobility* ``s`` (a scalar for the whole group, or one tensor per parameter). The
velocity-friction update then reads ``x = α γ s``, which for the quadratic energy is the
``x = αγ/m`` of docs/design.md, "Discrete schemes".

Norms are global over all momenta of a param group (one momentum vector), except for the
separable energies (``quadratic``, ``soft_clip``), which act element by element and so
also take a per-element mass (a diagonal mass matrix M).

A user-defined energy subclasses :class:`KineticEnergy` and implements ``value`` and
``mobility``; :func:`torch.autograd` of ``value`` must equal ``mobility(p) * p``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor

from goalbrake.optim.scratch import Scratch, empty, product

__all__ = [
    "KineticEnergy",
    "Logsumexp",
    "Normalized",
    "PNorm",
    "Quadratic",
    "Relativistic",
    "SoftClip",
    "get_kinetic",
]

#: A mass: one number (or 0-d tensor) for the group, or one tensor per parameter.
Mass = float | Tensor | Sequence[Tensor]
#: A mobility: one number (or 0-d tensor) for the group, or one tensor per parameter.
Mobility = float | Tensor | list[Tensor]


def _is_per_parameter(mass: Mass) -> bool:
    return isinstance(mass, (list, tuple))


def _sum_of_squares(tensors: Sequence[Tensor]) -> Tensor:
    """Σ‖t‖² over a list of tensors as a 0-d tensor (no host sync)."""
    norms = torch._foreach_norm(list(tensors))
    return torch.stack(norms).square().sum()


def _host_sum_of_squares(tensors: Sequence[Tensor], mass: float | Tensor) -> float | Tensor:
    """Σ‖t‖², a Python float where reading it syncs nothing (CPU tensors and mass).

    A step's scalar mobility then costs one norm kernel and Python arithmetic instead of
    a chain of 0-d tensor ops, each a few µs of dispatch (most of a LeNet-sized step).
    """
    sq = _sum_of_squares(tensors)
    on_host = sq.device.type == "cpu" and (
        not isinstance(mass, Tensor) or mass.device.type == "cpu"
    )
    return sq.item() if on_host else sq


def _sqrt(x: float | Tensor) -> float | Tensor:
    return torch.sqrt(x) if isinstance(x, Tensor) else math.sqrt(x)


def _traced_sum_of_squares(tensors: Sequence[Tensor]) -> Tensor:
    """Σ‖t‖² in plain tensor ops, for torch.compile to fuse into the step's reduction."""
    return torch.stack([(t * t).sum() for t in tensors]).sum()


class KineticEnergy(ABC):
    """A kinetic energy φ(p) with ∇φ(p) = s(p) ⊙ p.

    Attributes:
        name: the short name used in configs and logs.
        separable: True when φ is a sum over elements, so a per-element mass works.
        max_mobility: sup over p of s(p) · m, the largest friction rate relative to the
            quadratic energy's 1/m (1 for most energies).
        closed_form_grad: True where ∇φ(p) has a form cheaper than s(p) ⊙ p, which the
            optimizer's position update then uses.
    """

    name: str = "custom"
    separable: bool = False
    #: True where ``_grad`` computes ∇φ(p) directly, cheaper than s(p) ⊙ p.
    closed_form_grad: bool = False
    #: True where ``_traced_mobility`` exists: the energy can take the compiled fused step.
    traceable: bool = False

    @abstractmethod
    def value(self, momenta: Sequence[Tensor], mass: Mass) -> Tensor:
        """φ(p) of the group's momenta as a 0-d tensor."""

    @abstractmethod
    def mobility(self, momenta: Sequence[Tensor], mass: Mass) -> Mobility:
        """The non-negative s(p) with ∇φ(p) = s(p) ⊙ p."""

    def max_mobility(self, mass: float) -> float:
        """The largest value s(p) can take, for the stability check of explicit schemes."""
        return 1.0 / mass

    def grad(self, momenta: Sequence[Tensor], mass: Mass) -> list[Tensor]:
        """∇φ(p), the velocity θ' of the port-Hamiltonian system."""
        return self._grad(momenta, mass, None)

    # The optimizer's hooks: the same values, their temporaries taken from a Scratch pool
    # (fresh CPU tensors of parameter size page-fault). A user-defined energy need not
    # implement them: the defaults call mobility().
    def _mobility(self, momenta: Sequence[Tensor], mass: Mass, scratch: Scratch | None) -> Mobility:
        return self.mobility(momenta, mass)

    def _grad(self, momenta: Sequence[Tensor], mass: Mass, scratch: Scratch | None) -> list[Tensor]:
        return product(momenta, self._mobility(momenta, mass, scratch), scratch)

    # The compiled fused step's hooks (goalbrake/optim/compiled.py): the same s(p) and ∇φ(p)
    # in plain tensor ops that torch.compile traces into one kernel: no host reads, no
    # scratch pool, the mass a 0-d tensor. Elementwise products are left to the caller's
    # kernel, so a per-element mobility costs no pass over memory of its own.
    def _traced_mobility(self, momenta: Sequence[Tensor], mass: Tensor) -> Tensor | list[Tensor]:
        raise NotImplementedError(f"{type(self).__name__} has no traced mobility")

    def _traced_grad(self, momenta: Sequence[Tensor], mass: Tensor) -> list[Tensor]:
        s = self._traced_mobility(momenta, mass)
        if isinstance(s, list):
            return [si * p for si, p in zip(s, momenta, strict=True)]
        return [s * p for p in momenta]

    def check_mass(self, mass: Mass) -> None:
        """Raise if this energy cannot take the given kind of mass."""
        if _is_per_parameter(mass) and not self.separable:
            raise ValueError(
                f"Invalid mass for kinetic '{self.name}': a per-parameter mass needs a "
                "separable kinetic energy ('quadratic' or 'soft_clip'); use a scalar mass"
            )

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(vars(self).items()))))


def _scalar_mass(mass: Mass) -> float | Tensor:
    if _is_per_parameter(mass):
        raise ValueError("this kinetic energy takes a scalar mass")
    return mass  # type: ignore[return-value]


class Quadratic(KineticEnergy):
    """φ(p) = Σ p²/2m, ∇φ(p) = p/m: classical momentum (heavy ball)."""

    name = "quadratic"
    separable = True

    def value(self, momenta: Sequence[Tensor], mass: Mass) -> Tensor:
        if _is_per_parameter(mass):
            terms = [(p.square() / m).sum() for p, m in zip(momenta, mass, strict=True)]
            return 0.5 * torch.stack(terms).sum()
        return 0.5 * _sum_of_squares(momenta) / mass

    def mobility(self, momenta: Sequence[Tensor], mass: Mass) -> Mobility:
        if _is_per_parameter(mass):
            return [torch.reciprocal(m) for m in mass]
        return 1.0 / mass

    traceable = True

    def _traced_mobility(self, momenta: Sequence[Tensor], mass: Tensor) -> Tensor:
        return 1.0 / mass


class Relativistic(KineticEnergy):
    """Relativistic kinetic energy: speed capped at ``c`` (Franca et al.; Celledoni's RGD).

    φ(p) = m c² (√(1 + ‖p‖²/(m²c²)) − 1),   ∇φ(p) = p / (m √(1 + ‖p‖²/(m²c²)))

    (the rest energy m c² is subtracted so that φ(0) = 0; it does not change ∇φ).

    Args:
        c: the speed of light, the largest ‖θ'‖ the optimizer can reach.
    """

    name = "relativistic"

    def __init__(self, c: float = 1.0) -> None:
        if not c > 0:
            raise ValueError(f"Invalid c value: {c} (must be > 0)")
        self.c = float(c)

    def _gamma(self, momenta: Sequence[Tensor], mass: float | Tensor) -> Tensor:
        # Lorentz factor √(1 + ‖p‖²/(mc)²).
        return torch.sqrt(1.0 + _sum_of_squares(momenta) / (mass * self.c) ** 2)

    def value(self, momenta: Sequence[Tensor], mass: Mass) -> Tensor:
        m = _scalar_mass(mass)
        # m c² (Γ − 1) = ‖p‖² / (m (Γ + 1)): no cancellation when ‖p‖ ≪ m c.
        return _sum_of_squares(momenta) / (m * (self._gamma(momenta, m) + 1.0))

    def mobility(self, momenta: Sequence[Tensor], mass: Mass) -> Mobility:
        m = _scalar_mass(mass)
        sq = _host_sum_of_squares(momenta, m)
        if not isinstance(sq, Tensor):
            m = float(m)
        return 1.0 / (m * _sqrt(1.0 + sq / (m * self.c) ** 2))

    traceable = True

    def _traced_mobility(self, momenta: Sequence[Tensor], mass: Tensor) -> Tensor:
        mc = mass * self.c
        return 1.0 / (mass * torch.sqrt(1.0 + _traced_sum_of_squares(momenta) / (mc * mc)))


class Normalized(KineticEnergy):
    """Smoothed norm: normalized momentum SGD (unit speed).

    φ(p) = √(‖p‖² + (m ε)²) − m ε,   ∇φ(p) = p / √(‖p‖² + (m ε)²)

    The speed ‖θ'‖ is 1 once ‖p‖ ≫ m ε; the mass only sets the smoothing radius.

    Args:
        eps: smoothing of the norm at p = 0.
    """

    name = "normalized"

    def __init__(self, eps: float = 1e-3) -> None:
        if not eps > 0:
            raise ValueError(f"Invalid eps value: {eps} (must be > 0)")
        self.eps = float(eps)

    def value(self, momenta: Sequence[Tensor], mass: Mass) -> Tensor:
        me = _scalar_mass(mass) * self.eps
        # √(‖p‖² + (mε)²) − mε = ‖p‖² / (√(‖p‖² + (mε)²) + mε): no cancellation near 0.
        sq = _sum_of_squares(momenta)
        return sq / (torch.sqrt(sq + me**2) + me)

    def mobility(self, momenta: Sequence[Tensor], mass: Mass) -> Mobility:
        m = _scalar_mass(mass)
        sq = _host_sum_of_squares(momenta, m)
        me = (m if isinstance(sq, Tensor) else float(m)) * self.eps
        return 1.0 / _sqrt(sq + me**2)

    traceable = True

    def _traced_mobility(self, momenta: Sequence[Tensor], mass: Tensor) -> Tensor:
        me = mass * self.eps
        return 1.0 / torch.sqrt(_traced_sum_of_squares(momenta) + me * me)

    def max_mobility(self, mass: float) -> float:
        return 1.0 / (mass * self.eps)


class SoftClip(KineticEnergy):
    """Soft clipping with momentum: per-element speed saturating at ``c``.

    φ(p) = Σᵢ m c² log cosh(pᵢ/(m c)),   ∇φ(p)ᵢ = c tanh(pᵢ/(m c))

    Smooth, convex and coercive (it grows like c|pᵢ|); equal to p²/2m near 0, so small
    momenta move like classical momentum and large ones are clipped to speed c.

    Args:
        c: the largest speed of any single coordinate.
    """

    name = "soft_clip"
    separable = True
    closed_form_grad = True

    def __init__(self, c: float = 1.0) -> None:
        if not c > 0:
            raise ValueError(f"Invalid c value: {c} (must be > 0)")
        self.c = float(c)

    @staticmethod
    def _log_cosh(z: Tensor) -> Tensor:
        # log cosh z = log1p(2 sinh²(z/2)) for small |z| (no cancellation near 0), and
        # |z| + log1p(e^{-2|z|}) − log 2 for large |z| (no overflow). The clamp keeps the
        # unused branch finite, so its zero-weighted gradient is not NaN.
        a = z.abs()
        small = torch.log1p(2.0 * torch.sinh(0.5 * a.clamp(max=1.0)).square())
        large = a + torch.log1p(torch.exp(-2.0 * a)) - math.log(2.0)
        return torch.where(a < 1.0, small, large)

    def _masses(self, momenta: Sequence[Tensor], mass: Mass) -> Sequence[float | Tensor]:
        return mass if _is_per_parameter(mass) else [mass] * len(momenta)  # type: ignore[return-value]

    def value(self, momenta: Sequence[Tensor], mass: Mass) -> Tensor:
        c = self.c
        terms = [
            (m * c**2 * self._log_cosh(p / (m * c))).sum()
            for p, m in zip(momenta, self._masses(momenta, mass), strict=True)
        ]
        return torch.stack(terms).sum()

    def mobility(self, momenta: Sequence[Tensor], mass: Mass) -> Mobility:
        return self._mobility(momenta, mass, None)

    def _mobility(self, momenta: Sequence[Tensor], mass: Mass, scratch: Scratch | None) -> Mobility:
        # s = c tanh(z)/p = tanh(z)/(z m), z = p/(mc): tanh is accurate to the last bit for
        # small |z|, so the ratio is too; only z = 0 (0/0, the limit 1) needs a fix.
        masses = self._masses(momenta, mass)
        z = product(momenta, [1.0 / (m * self.c) for m in masses], scratch)
        ratio = empty(z, scratch)
        for r, zi, m in zip(ratio, z, masses, strict=True):
            torch.tanh(zi, out=r).div_(zi).nan_to_num_(nan=1.0).div_(m)
        return ratio

    def _grad(self, momenta: Sequence[Tensor], mass: Mass, scratch: Scratch | None) -> list[Tensor]:
        # ∇φ(p) = c tanh(p/(mc)) in closed form (no 0/0 at p = 0).
        masses = self._masses(momenta, mass)
        z = product(momenta, [1.0 / (m * self.c) for m in masses], scratch)
        torch._foreach_tanh_(z)
        torch._foreach_mul_(z, self.c)
        return z

    traceable = True

    @staticmethod
    def _tanh_abs(a: Tensor) -> Tensor:
        # tanh(a) for a = |z| as e/(e + 2), e = expm1(2a): accurate near 0 like tanh; a is
        # capped at 20, where tanh rounds to 1 in float64. The float64 traced path only.
        e = torch.expm1(2.0 * a.clamp_max(20.0))
        return e / (e + 2.0)

    def _traced_mobility(self, momenta: Sequence[Tensor], mass: Tensor) -> list[Tensor]:
        # tanh(|z|)/(|z| m), the limit 1/m at z = 0 (as _mobility).
        out = []
        for p in momenta:
            if p.dtype == torch.float64:
                a = (p / (mass * self.c)).abs()
                out.append(torch.where(a == 0, 1.0, self._tanh_abs(a) / a) / mass)
                continue
            # tanh(a)/a = x P(x²) / (a Q(x²)) with x = min(a, clamp): P/Q inside the clamp,
            # tanh(clamp)/a beyond it, one division (a floored where it is 0: x/a = 1).
            a = (p * (1.0 / (mass * self.c))).abs().clamp_min(torch.finfo(p.dtype).tiny)
            x = a.clamp_max(_TANH_CLAMP)
            x2 = x * x
            ratio = (x * _horner(x2, _TANH_P)) / (a * _horner(x2, _TANH_Q))
            out.append(ratio * (1.0 / mass))
        return out

    def _traced_grad(self, momenta: Sequence[Tensor], mass: Tensor) -> list[Tensor]:
        out = []
        for p in momenta:
            if p.dtype == torch.float64:
                z = p / (mass * self.c)
                out.append(self.c * torch.copysign(self._tanh_abs(z.abs()), z))
            else:  # c tanh(z) = c x (tanh(x)/x), x the clamped z
                clamped, ratio = _tanh_over_x(p * (1.0 / (mass * self.c)))
                out.append(self.c * clamped * ratio)
        return out


#: tanh(x) ≈ x P(x²)/Q(x²) on |x| ≤ _TANH_CLAMP, the rational approximation that Eigen
#: (generic_fast_tanh_float) and XLA use for float32: within 2.6 ulp of tanh over the whole
#: float32 range (3 ulp for tanh(x)/x), and no 0/0 at x = 0. In a vectorized loop it costs
#: a third of an exp-based tanh (expm1 is the slow one of torch's vectorized functions).
_TANH_CLAMP = 7.90531110763549805
_TANH_P = (
    4.89352455891786e-03,
    6.37261928875436e-04,
    1.48572235717979e-05,
    5.12229709037114e-08,
    -8.60467152213735e-11,
    2.00018790482477e-13,
    -2.76076847742355e-16,
)
_TANH_Q = (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04, 1.19825839466702e-06)


def _horner(x: Tensor, coefficients: Sequence[float]) -> Tensor:
    """Σₖ cₖ xᵏ by Horner's rule (c₀ first)."""
    out = x * coefficients[-1] + coefficients[-2]
    for c in reversed(coefficients[:-2]):
        out = out * x + c
    return out


def _tanh_over_x(z: Tensor) -> tuple[Tensor, Tensor]:
    """(x, tanh(x)/x) for x = z clamped to ±_TANH_CLAMP: P(x²)/Q(x²), float32 accuracy."""
    x = z.clamp(-_TANH_CLAMP, _TANH_CLAMP)
    x2 = x * x
    return x, _horner(x2, _TANH_P) / _horner(x2, _TANH_Q)


def _exp_floored(x: Tensor) -> Tensor:
    """e^x for x ≤ 0, with x floored at log(smallest normal) + 30 of its dtype (−57 in float32).

    The floor keeps exp on its vectorized fast path: on x86 CPUs, inputs whose result is
    subnormal (below −87 in float32) or underflows to 0 take a 10-30x slower path, and
    float32 reaches them once the largest |z| passes ~44. Terms this small add nothing to
    the sums they enter (whose largest term is 1), and the mobility they give stays below
    e^-57 of the largest mobility.
    """
    return x.clamp_min(math.log(torch.finfo(x.dtype).tiny) + 30.0).exp()


def _neg_expm1_ratio(a: Tensor) -> Tensor:
    """−expm1(−2a)/(2a) = (1 − e^{−2a})/(2a) for a > 0, to float32 accuracy, with one exp.

    Below a = 1/2 its Taylor series Σₖ (−2a)ᵏ/(k+1)! to k = 11 (the next term is below
    2e-10 there); above it 1 − e^{−2a} has no cancellation (it is ≥ 0.63), and its exp is
    clamped before it would reach the slow subnormal path. torch's vectorized expm1 costs
    several exps, and every exp in a compiled loop is a call that spills the registers.
    """
    series = _horner(-2.0 * a.clamp_max(0.5), _EXPM1_RATIO)
    large = (1.0 - (-2.0 * a.clamp_max(20.0)).exp()) / (2.0 * a)
    return torch.where(a < 0.5, series, large)


#: (eˣ − 1)/x = Σ xᵏ/(k+1)!, k = 0..11.
_EXPM1_RATIO = tuple(1.0 / math.factorial(k + 1) for k in range(12))


class Logsumexp(KineticEnergy):
    """Symmetric LogSumExp: a smooth ∞-norm.

    φ(p) = m τ (log Σᵢ 2 cosh(pᵢ/(m τ)) − log 2n),
    ∇φ(p)ᵢ = sinh(pᵢ/(m τ)) / Σⱼ cosh(pⱼ/(m τ))

    the softmax-weighted signs of p: ‖∇φ(p)‖₁ ≤ 1, and φ → ‖p‖_∞ as τ → 0 (within
    m τ log 2n).

    Args:
        temperature: τ, the smoothing of the maximum.
    """

    name = "logsumexp"

    def __init__(self, temperature: float = 1.0) -> None:
        if not temperature > 0:
            raise ValueError(f"Invalid temperature value: {temperature} (must be > 0)")
        self.temperature = float(temperature)

    def _scaled(self, momenta: Sequence[Tensor], mass: Mass) -> tuple[list[Tensor], Tensor]:
        mt = _scalar_mass(mass) * self.temperature
        zs = [p / mt for p in momenta]
        top = torch.stack(torch._foreach_norm(zs, ord=math.inf)).max()
        return zs, top

    def _log_sum_cosh_minus_top(self, zs: list[Tensor], top: Tensor) -> Tensor:
        # log Σ 2cosh(z) − top, each term computed as e^{z−top} + e^{−z−top}.
        total = sum((_exp_floored(z - top) + _exp_floored(-z - top)).sum() for z in zs)
        return torch.log(total)

    def value(self, momenta: Sequence[Tensor], mass: Mass) -> Tensor:
        zs, top = self._scaled(momenta, mass)
        n = sum(z.numel() for z in zs)
        mt = _scalar_mass(mass) * self.temperature
        # log(Σ cosh z / n) = log1p(2 Σ sinh²(z/2) / n): no cancellation near 0, for as long
        # as cosh cannot overflow; above that the shifted form. The clamp keeps the unused
        # branch finite, so its zero-weighted gradient is not NaN.
        small = torch.log1p(
            (2.0 / n)
            * torch.stack([torch.sinh(0.5 * z.clamp(-20.0, 20.0)).square().sum() for z in zs]).sum()
        )
        large = top + self._log_sum_cosh_minus_top(zs, top) - math.log(2 * n)
        return mt * torch.where(top < 20.0, small, large)

    def mobility(self, momenta: Sequence[Tensor], mass: Mass) -> Mobility:
        return self._mobility(momenta, mass, None)

    def _mobility(self, momenta: Sequence[Tensor], mass: Mass, scratch: Scratch | None) -> Mobility:
        mt = _scalar_mass(mass) * self.temperature
        # With a = |z|, E = e^{a−top} and u = e^{−2a} − 1 (expm1: no cancellation for small
        # |z|): sinh(z) e^{−top}/z = −E u/(2a) and cosh(z) e^{−top} = E (1 + u/2), so
        # s = sinh(z)/(z · m τ · Σ cosh z) takes one exp and one expm1 per element. a is
        # floored at the smallest normal number, where −u/(2a) = 1 (the limit at z = 0).
        # top = max|z| by _foreach_max (a norm of order inf is ~20x slower on CPU).
        a = product(momenta, 1.0 / mt, scratch)
        torch._foreach_abs_(a)
        top = torch.stack(torch._foreach_max(a)).max()
        torch._foreach_clamp_min_(a, torch.finfo(top.dtype).tiny)
        u = product(a, -2.0, scratch)
        torch._foreach_expm1_(u)
        e = product(a, 1.0, scratch)  # E = e^{a − top}, floored as in _exp_floored
        torch._foreach_sub_(e, top)
        torch._foreach_clamp_min_(e, math.log(torch.finfo(top.dtype).tiny) + 30.0)
        torch._foreach_exp_(e)
        total = (
            torch.stack(
                [torch.dot(ei.flatten(), ui.flatten()) for ei, ui in zip(e, u, strict=True)]
            ).sum()
            * 0.5
            + torch.stack([ei.sum() for ei in e]).sum()
        )  # Σ E (1 + u/2)
        torch._foreach_mul_(e, u)
        torch._foreach_div_(e, a)
        torch._foreach_mul_(e, -0.5 / (mt * total))
        return e

    traceable = True

    def _traced_mobility(self, momenta: Sequence[Tensor], mass: Tensor) -> list[Tensor]:
        # The formulas of _mobility with w = −u/(2a) = (1 − e^{−2a})/(2a):
        # s = E w / (m τ Σ E (1 − a w)).
        mt = mass * self.temperature
        a = [(p * (1.0 / mt)).abs() for p in momenta]
        top = torch.stack([ai.amax() for ai in a]).amax()
        # E and w are built twice, for the sum and for s: inductor stores a value holding an
        # exp that two kernels read in a fresh buffer of parameter size on every step (page
        # faults); built twice they cost arithmetic instead.
        terms = [e * (1.0 - ai * w) for ai, (e, w) in ((ai, self._traced_e_w(ai, top)) for ai in a)]
        scale = 1.0 / (mt * torch.stack([t.sum() for t in terms]).sum())
        return [e * w * scale for e, w in (self._traced_e_w(ai, top) for ai in a)]

    @staticmethod
    def _traced_e_w(a: Tensor, top: Tensor) -> tuple[Tensor, Tensor]:
        """(E, w) = (e^{a − top} floored as in _exp_floored, (1 − e^{−2a})/(2a)) for a = |z|."""
        tiny = torch.finfo(a.dtype).tiny
        a = a.clamp_min(tiny)  # w → 1 at a = 0, where (1 − e^{−2a})/(2a) is 0/0
        if a.dtype == torch.float64:
            w = torch.expm1(-2.0 * a) * (-0.5 / a)
        else:
            w = _neg_expm1_ratio(a)
        return (a - top).clamp_min(math.log(tiny) + 30.0).exp(), w

    def max_mobility(self, mass: float) -> float:
        return 1.0 / (mass * self.temperature)


class PNorm(KineticEnergy):
    """Half-squared p-norm (here ``q`` to keep p for the momentum).

    φ(p) = ‖p‖_q² / 2m,   ∇φ(p)ᵢ = ‖p‖_q^{2−q} |pᵢ|^{q−1} sign(pᵢ) / m

    q = 2 is the quadratic energy; large q approaches the (squared) ∞-norm.

    Args:
        q: the norm's order, ≥ 2 (below 2 the friction rate is unbounded at pᵢ = 0).
    """

    name = "pnorm"

    def __init__(self, q: float = 4.0) -> None:
        if not q >= 2:
            raise ValueError(f"Invalid q value: {q} (must be >= 2)")
        self.q = float(q)

    def _norm(self, momenta: Sequence[Tensor]) -> Tensor:
        norms = torch._foreach_norm(list(momenta), ord=self.q)
        return torch.linalg.vector_norm(torch.stack(norms), ord=self.q)

    def value(self, momenta: Sequence[Tensor], mass: Mass) -> Tensor:
        return 0.5 * self._norm(momenta).square() / _scalar_mass(mass)

    def mobility(self, momenta: Sequence[Tensor], mass: Mass) -> Mobility:
        return self._mobility(momenta, mass, None)

    def _mobility(self, momenta: Sequence[Tensor], mass: Mass, scratch: Scratch | None) -> Mobility:
        m = _scalar_mass(mass)
        momenta = list(momenta)
        if self.q == 4.0:
            # The default q: s = p²/(‖p‖₄² m), and ‖p‖₄² = ‖p²‖₂: no pow per element.
            squares = product(momenta, momenta, scratch)
            norm = _sum_of_squares(squares).sqrt()
            safe = torch.where(norm > 0, norm, torch.ones_like(norm))
            torch._foreach_mul_(squares, 1.0 / (safe * m))
            return squares
        norm = self._norm(momenta)
        # s = (|pᵢ|/‖p‖)^{q−2}/m ∈ [0, 1/m]; 0 where the whole momentum is 0.
        safe = torch.where(norm > 0, norm, torch.ones_like(norm))
        ratio = product(momenta, 1.0 / safe, scratch)
        torch._foreach_abs_(ratio)
        torch._foreach_pow_(ratio, self.q - 2.0)
        torch._foreach_div_(ratio, m)
        return ratio

    traceable = True

    def _traced_mobility(self, momenta: Sequence[Tensor], mass: Tensor) -> list[Tensor]:
        if self.q == 4.0:  # s = p²/(‖p‖₄² m), ‖p‖₄² = ‖p²‖₂ (as _mobility)
            squares = [p * p for p in momenta]
            norm = torch.sqrt(_traced_sum_of_squares(squares))
            safe = torch.where(norm > 0, norm, 1.0)
            return [sq / (safe * mass) for sq in squares]
        # ‖p‖_q = top ‖p/top‖_q with top = max|pᵢ| (as torch's norm scales): |pᵢ|^q alone
        # overflows float32 from |pᵢ| = 3.4e38^(1/q), 1.4e5 for q = 7.5.
        a = [p.abs() for p in momenta]
        top = torch.stack([ai.amax() for ai in a]).amax()
        top = torch.where(top > 0, top, 1.0)
        norm = top * torch.stack([((ai / top) ** self.q).sum() for ai in a]).sum() ** (1.0 / self.q)
        safe = torch.where(norm > 0, norm, 1.0)
        return [(ai / safe) ** (self.q - 2.0) / mass for ai in a]


_BY_NAME: dict[str, type[KineticEnergy]] = {
    cls.name: cls for cls in (Quadratic, Relativistic, Normalized, SoftClip, Logsumexp, PNorm)
}
KINETIC_NAMES: tuple[str, ...] = tuple(_BY_NAME)
_DEFAULTS: dict[str, KineticEnergy] = {name: cls() for name, cls in _BY_NAME.items()}
# A kinetic energy given as an instance is stored in param_groups, so checkpoints hold it:
# allow the built-in ones under torch.load(weights_only=True), Lightning's default. A
# user-defined KineticEnergy needs the same torch.serialization.add_safe_globals call.
torch.serialization.add_safe_globals(list(_BY_NAME.values()))


def get_kinetic(spec: str | KineticEnergy) -> KineticEnergy:
    """The kinetic energy named ``spec`` (with default parameters), or ``spec`` itself.

    Raises:
        ValueError: unknown name.
        TypeError: neither a name nor a :class:`KineticEnergy`.
    """
    if isinstance(spec, KineticEnergy):
        return spec
    if isinstance(spec, str):
        try:
            return _DEFAULTS[spec]
        except KeyError:
            raise ValueError(
                f"Invalid kinetic value: {spec!r} (must be one of {', '.join(KINETIC_NAMES)} "
                "or a KineticEnergy instance)"
            ) from None
    raise TypeError(f"Invalid kinetic value: {spec!r} (must be a name or a KineticEnergy instance)")
