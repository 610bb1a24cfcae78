"""Paired comparisons across seeds: Student's t without SciPy.

Two settings run with the same seeds share their initial weights and data order, so the
difference of their accuracies per seed, d_i = a_i − b_i, removes the seed's luck. With n
seeds, mean d̄ and sample standard deviation s (ddof 1),

    t = d̄ / (s / √n),   two-sided p = P(|T_{n−1}| ≥ |t|),
    95 % interval d̄ ± t_{0.975, n−1} · s / √n,

where the Student-t distribution function is F(t) = 1 − ½ I_{ν/(ν+t²)}(ν/2, ½) for t ≥ 0
(I the regularized incomplete beta function, evaluated by its continued fraction).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Paired", "paired", "student_t_cdf", "student_t_ppf"]

_EPS = 1e-15
_TINY = 1e-300


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (modified Lentz; Numerical Recipes §6.4)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            return h
    raise ArithmeticError(f"incomplete beta did not converge (a={a}, b={b}, x={x})")


def _betainc(a: float, b: float, x: float, y: float) -> float:
    """The regularized incomplete beta function I_x(a, b), 0 ≤ x ≤ 1, given y = 1 − x
    computed without cancellation by the caller."""
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, y) / b


def student_t_cdf(t: float, df: float) -> float:
    """P(T ≤ t) for Student's t with ``df`` > 0 degrees of freedom."""
    if df <= 0:
        raise ValueError(f"invalid df {df!r} (> 0)")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t), t * t / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def student_t_ppf(q: float, df: float) -> float:
    """The ``q`` quantile of Student's t (bisection on :func:`student_t_cdf`)."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"invalid quantile {q!r} (0 < q < 1)")
    if q == 0.5:
        return 0.0
    if q < 0.5:
        return -student_t_ppf(1.0 - q, df)
    low, high = 0.0, 1.0
    while student_t_cdf(high, df) < q:
        high *= 2.0
    for _ in range(200):
        mid = 0.5 * (low + high)
        if student_t_cdf(mid, df) < q:
            low = mid
        else:
            high = mid
        if high - low <= 1e-12 * max(1.0, high):
            break
    return 0.5 * (low + high)


@dataclass(frozen=True)
class Paired:
    """A paired comparison of ``a`` − ``b`` over the seeds both have."""

    n: int
    mean: float
    std: float | None
    t: float | None
    p: float | None
    ci95: tuple[float, float] | None
    wins: int  # seeds where a > b

    def describe(self, scale: float = 100.0, unit: str = " pp") -> str:
        """``+0.52 pp (95 % CI −0.10 … +1.14, p = 0.08, a better on 3/3 seeds)``."""
        text = f"{self.mean * scale:+.2f}{unit}"
        if self.ci95 is not None and self.p is not None:
            low, high = (v * scale for v in self.ci95)
            text += f" (95 % CI {low:+.2f} … {high:+.2f}, p = {self.p:.2g}"
        else:
            text += " ("
        sep = ", " if self.p is not None else ""
        return text + f"{sep}better on {self.wins}/{self.n} seeds)"


def paired(a: Sequence[float], b: Sequence[float]) -> Paired:
    """Paired t statistics of ``a[i] − b[i]`` (see the module docstring).

    Raises:
        ValueError: the sequences differ in length or are empty.
    """
    if len(a) != len(b) or not a:
        raise ValueError(f"paired samples need equal, non-zero lengths (got {len(a)}, {len(b)})")
    d = [x - y for x, y in zip(a, b, strict=True)]
    n = len(d)
    mean = statistics.fmean(d)
    wins = sum(x > y for x, y in zip(a, b, strict=True))
    if n < 2:
        return Paired(n, mean, None, None, None, None, wins)
    std = statistics.stdev(d)
    half_width = student_t_ppf(0.975, n - 1) * std / math.sqrt(n)
    if std == 0.0:
        t = math.copysign(math.inf, mean) if mean else 0.0
        p = 0.0 if mean else 1.0
    else:
        t = mean / (std / math.sqrt(n))
        p = 2.0 * (1.0 - student_t_cdf(abs(t), n - 1))
    return Paired(n, mean, std, t, p, (mean - half_width, mean + half_width), wins)
