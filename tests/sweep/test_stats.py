"""Student's t and the paired comparison against closed forms and table values."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from goalbrake.sweep.report.stats import paired, student_t_cdf, student_t_ppf

ts = st.floats(min_value=-50.0, max_value=50.0, allow_nan=False)


@given(ts)
def test_cdf_df1_is_the_cauchy_distribution(t: float) -> None:
    assert student_t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)


@given(ts)
def test_cdf_df2_closed_form(t: float) -> None:
    assert student_t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-12)


@given(ts, st.integers(min_value=1, max_value=60))
def test_cdf_is_symmetric(t: float, df: int) -> None:
    assert student_t_cdf(t, df) + student_t_cdf(-t, df) == pytest.approx(1.0, abs=1e-12)


def test_large_df_approaches_the_normal() -> None:
    for t in (-2.0, -0.5, 0.3, 1.96):
        normal = 0.5 * (1 + math.erf(t / math.sqrt(2)))
        assert student_t_cdf(t, 1e6) == pytest.approx(normal, abs=1e-6)


# Two-sided 95 % critical values t_{0.975, df} from the standard tables.
@pytest.mark.parametrize(
    ("df", "value"),
    [(1, 12.7062047), (2, 4.3026527), (3, 3.1824463), (4, 2.7764451), (9, 2.2621572)],
)
def test_ppf_matches_the_tables(df: int, value: float) -> None:
    assert student_t_ppf(0.975, df) == pytest.approx(value, rel=1e-7)
    assert student_t_ppf(0.025, df) == pytest.approx(-value, rel=1e-7)


@given(st.floats(min_value=1e-4, max_value=1 - 1e-4), st.integers(min_value=1, max_value=30))
def test_ppf_inverts_cdf(q: float, df: int) -> None:
    assert student_t_cdf(student_t_ppf(q, df), df) == pytest.approx(q, abs=1e-9)


def test_paired_by_hand() -> None:
    a, b = [0.91, 0.90, 0.93], [0.90, 0.90, 0.91]
    r = paired(a, b)
    d = [0.01, 0.0, 0.02]
    s = statistics.stdev(d)
    t = statistics.fmean(d) / (s / math.sqrt(3))
    assert r.n == 3 and r.wins == 2
    assert r.mean == pytest.approx(0.01) and r.std == pytest.approx(s)
    assert r.t == pytest.approx(t)
    # df = 2 closed form of the two-sided p.
    assert r.p == pytest.approx(1 - t / math.sqrt(2 + t * t))
    half = 4.3026527 * s / math.sqrt(3)
    assert r.ci95 == pytest.approx((0.01 - half, 0.01 + half), rel=1e-6)
    assert "+1.00 pp" in r.describe() and "2/3 seeds" in r.describe()


def test_paired_edge_cases() -> None:
    one = paired([0.9], [0.8])
    assert one.p is None and one.ci95 is None
    assert one.describe() == "+10.00 pp (better on 1/1 seeds)"
    same = paired([0.5, 0.6], [0.4, 0.5])  # identical differences: no spread
    assert same.p == 0.0 and same.t == math.inf
    zero = paired([0.5, 0.6], [0.5, 0.6])
    assert zero.p == 1.0 and zero.t == 0.0
    with pytest.raises(ValueError, match="equal, non-zero lengths"):
        paired([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="invalid df"):
        student_t_cdf(1.0, 0)
