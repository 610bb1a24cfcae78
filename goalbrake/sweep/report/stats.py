"""Paired comparisons across seeds, on SciPy's Student t (``scipy.stats``).

Two settings run with the same seeds share their initial weights and data order, so the
difference of their accuracies per seed, d_i = a_i − b_i, removes the seed's luck. With n
seeds, mean d̄ and sample standard deviation s (ddof 1),

    t = d̄ / (s / √n),   two-sided p = P(|T_{n−1}| ≥ |t|),
    95 % interval d̄ ± t_{0.975, n−1} · s / √n,

which is :func:`scipy.stats.ttest_rel` and its confidence interval (``scipy.stats.t.ppf``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import special, stats

__all__ = ["Paired", "paired", "student_t_cdf", "student_t_ppf"]


def _check_df(df: float) -> None:
    if not df > 0:
        raise ValueError(f"invalid df {df!r} (> 0)")


def student_t_cdf(t: float, df: float) -> float:
    """P(T ≤ t) for Student's t with ``df`` > 0 degrees of freedom.

    P(|T| ≤ |t|) = I_{t²/(ν+t²)}(½, ν/2), SciPy's regularized incomplete beta: exact to
    rounding near t = 0, where ``scipy.stats.t.cdf`` (1.17) is off by ~1e-11.
    """
    _check_df(df)
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    inner = float(special.betainc(0.5, df / 2.0, t * t / (df + t * t)))
    return 0.5 + math.copysign(0.5 * inner, t)


def student_t_ppf(q: float, df: float) -> float:
    """The ``q`` quantile of Student's t with ``df`` > 0 degrees of freedom."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"invalid quantile {q!r} (0 < q < 1)")
    _check_df(df)
    return float(stats.t.ppf(q, df))


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
    if std == 0.0:  # SciPy's t is undefined (nan) without spread; the limits are these
        t = math.copysign(math.inf, mean) if mean else 0.0
        p = 0.0 if mean else 1.0
    else:
        test = stats.ttest_rel(a, b)
        t, p = float(test.statistic), float(test.pvalue)
    return Paired(n, mean, std, t, p, (mean - half_width, mean + half_width), wins)
