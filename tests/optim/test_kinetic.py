"""Kinetic energies: ∇φ = mobility ⊙ p equals autograd of φ; φ(0) = 0; 0 ≤ s ≤ s_max.

Property tests over random groups (one to three tensors of random shapes), momentum scales
from 1e-6 to 1e6, scalar masses from 1e-2 to 1e2 and, for the separable energies,
per-element masses.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from phs_helpers import DT

from goalbrake.optim import (
    KINETIC_NAMES,
    KineticEnergy,
    Logsumexp,
    Normalized,
    PNorm,
    Quadratic,
    Relativistic,
    SoftClip,
    get_kinetic,
)

SEPARABLE = [name for name in KINETIC_NAMES if get_kinetic(name).separable]
#: Non-default parameters too: the property must hold for every instance.
ENERGIES: list[KineticEnergy] = [
    *(get_kinetic(name) for name in KINETIC_NAMES),
    Relativistic(c=0.01),
    Normalized(eps=1.0),
    SoftClip(c=30.0),
    Logsumexp(temperature=0.05),
    PNorm(q=2.0),
    PNorm(q=7.5),
]
IDS = [repr(k) for k in ENERGIES]

shapes = st.lists(st.integers(1, 5), min_size=0, max_size=3).map(tuple)


@st.composite
def groups(draw: st.DrawFn, per_element_mass: bool = False) -> tuple[list[torch.Tensor], object]:
    """Momenta of one param group and a mass (a number, or one tensor per parameter)."""
    n = draw(st.integers(1, 3))
    tensor_shapes = [draw(shapes) for _ in range(n)]
    scale = 10.0 ** draw(st.floats(-6, 6))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31)))
    momenta = [scale * torch.randn(s, generator=gen, dtype=DT) for s in tensor_shapes]
    if per_element_mass:
        mass = [10.0 ** (4 * torch.rand(s, generator=gen, dtype=DT) - 2) for s in tensor_shapes]
    else:
        mass = 10.0 ** draw(st.floats(-2, 2))
    return momenta, mass


def assert_grad_is_autograd(
    kinetic: KineticEnergy, momenta: list[torch.Tensor], mass: object
) -> None:
    leaves = [p.clone().requires_grad_() for p in momenta]
    expected = torch.autograd.grad(kinetic.value(leaves, mass), leaves)
    actual = kinetic.grad(momenta, mass)
    # One tolerance for the whole group: elements far below the largest may round to 0.
    atol = 1e-12 * max(float(e.abs().max()) for e in expected if e.numel()) + 1e-300
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-9, atol=atol)


def assert_mobility_in_bounds(
    kinetic: KineticEnergy, momenta: list[torch.Tensor], mass: object
) -> None:
    s = kinetic.mobility(momenta, mass)
    s_list = s if isinstance(s, list) else [torch.as_tensor(s, dtype=DT)] * len(momenta)
    m_min = min(float(m.min()) for m in mass) if isinstance(mass, list) else mass
    s_max = kinetic.max_mobility(m_min)
    for si in s_list:
        assert torch.isfinite(si).all()
        assert (si >= 0).all()
        assert (si <= s_max * (1 + 1e-12)).all(), (float(si.max()), s_max)


@pytest.mark.parametrize("kinetic", ENERGIES, ids=IDS)
@settings(max_examples=40, deadline=None)
@given(group=groups())
def test_grad_is_autograd_of_value(kinetic: KineticEnergy, group: tuple) -> None:
    assert_grad_is_autograd(kinetic, *group)


@pytest.mark.parametrize("name", SEPARABLE)
@settings(max_examples=40, deadline=None)
@given(group=groups(per_element_mass=True))
def test_grad_is_autograd_of_value_with_per_element_mass(name: str, group: tuple) -> None:
    assert_grad_is_autograd(get_kinetic(name), *group)


@pytest.mark.parametrize("kinetic", ENERGIES, ids=IDS)
@settings(max_examples=40, deadline=None)
@given(group=groups())
def test_mobility_is_between_zero_and_max_mobility(kinetic: KineticEnergy, group: tuple) -> None:
    assert_mobility_in_bounds(kinetic, *group)


@pytest.mark.parametrize("name", SEPARABLE)
@settings(max_examples=20, deadline=None)
@given(group=groups(per_element_mass=True))
def test_mobility_bounds_with_per_element_mass(name: str, group: tuple) -> None:
    assert_mobility_in_bounds(get_kinetic(name), *group)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kinetic", ENERGIES, ids=IDS)
def test_value_at_zero_is_zero_and_mobility_is_finite(
    kinetic: KineticEnergy, dtype: torch.dtype
) -> None:
    zeros = [torch.zeros(3, 4, dtype=dtype), torch.zeros(5, dtype=dtype)]
    for mass in (0.3, 1.0, 7.0):
        assert float(kinetic.value(zeros, mass)) == 0.0
        assert_mobility_in_bounds(kinetic, [z.double() for z in zeros], mass)


# kinetic, φ(p) closed form for a group p (all momenta flattened), mass m
CLOSED_FORMS = [
    ("quadratic", lambda p, m: (p**2).sum() / (2 * m)),
    ("relativistic", lambda p, m: m * (torch.sqrt(1 + (p**2).sum() / m**2) - 1)),  # c = 1
    ("normalized", lambda p, m: torch.sqrt((p**2).sum() + (m * 1e-3) ** 2) - m * 1e-3),
    ("soft_clip", lambda p, m: (m * torch.log(torch.cosh(p / m))).sum()),  # c = 1
    ("logsumexp", lambda p, m: m * torch.log(torch.cosh(p / m).mean())),  # τ = 1
    ("pnorm", lambda p, m: (p.abs() ** 4).sum() ** 0.5 / (2 * m)),  # q = 4
]


@pytest.mark.parametrize(("name", "closed_form"), CLOSED_FORMS, ids=[c[0] for c in CLOSED_FORMS])
def test_value_closed_form(name: str, closed_form: object) -> None:
    gen = torch.Generator().manual_seed(0)
    momenta = [torch.randn(3, 4, generator=gen, dtype=DT), torch.randn(5, generator=gen, dtype=DT)]
    flat = torch.cat([p.reshape(-1) for p in momenta])
    for mass in (0.5, 2.0):
        expected = closed_form(flat, mass)  # type: ignore[operator]
        torch.testing.assert_close(
            get_kinetic(name).value(momenta, mass), expected, rtol=1e-12, atol=0
        )


def test_float32_value_is_accurate_for_small_momenta() -> None:
    # φ near p = 0 is computed without cancellation: float32 agrees with float64.
    gen = torch.Generator().manual_seed(0)
    p64 = [1e-4 * torch.randn(1000, generator=gen, dtype=DT)]
    for kinetic in ENERGIES:
        exact = float(kinetic.value(p64, 1.0))
        approx = float(kinetic.value([p64[0].float()], 1.0))
        assert approx == pytest.approx(exact, rel=1e-5), kinetic


def test_logsumexp_mobility_float32_is_accurate_for_small_momenta() -> None:
    gen = torch.Generator().manual_seed(0)
    p = 1e-5 * torch.randn(1000, generator=gen, dtype=DT)
    kinetic = Logsumexp()
    exact = kinetic.mobility([p], 1.0)[0]
    approx = kinetic.mobility([p.float()], 1.0)[0].double()
    torch.testing.assert_close(approx, exact, rtol=1e-5, atol=0)


def test_per_parameter_mass_needs_a_separable_energy() -> None:
    momenta = [torch.ones(2, dtype=DT)]
    for name in KINETIC_NAMES:
        kinetic = get_kinetic(name)
        if kinetic.separable:
            kinetic.check_mass([torch.ones(2, dtype=DT)])
            continue
        message = (
            f"Invalid mass for kinetic '{name}': a per-parameter mass needs a separable kinetic "
            "energy ('quadratic' or 'soft_clip'); use a scalar mass"
        )
        with pytest.raises(ValueError, match=re.escape(message)):
            kinetic.check_mass([torch.ones(2, dtype=DT)])
    assert Quadratic().value(momenta, [torch.full((2,), 0.5, dtype=DT)]) == 2.0


BAD_PARAMETERS = [
    (Relativistic, {"c": 0.0}, "Invalid c value: 0.0 (must be > 0)"),
    (SoftClip, {"c": -1.0}, "Invalid c value: -1.0 (must be > 0)"),
    (Normalized, {"eps": 0.0}, "Invalid eps value: 0.0 (must be > 0)"),
    (Logsumexp, {"temperature": -2.0}, "Invalid temperature value: -2.0 (must be > 0)"),
    (PNorm, {"q": 1.5}, "Invalid q value: 1.5 (must be >= 2)"),
]


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"), BAD_PARAMETERS, ids=[b[2] for b in BAD_PARAMETERS]
)
def test_bad_parameters(cls: type, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        cls(**kwargs)


def test_get_kinetic() -> None:
    assert get_kinetic("soft_clip") == SoftClip()
    custom = Relativistic(c=3.0)
    assert get_kinetic(custom) is custom
    assert custom != Relativistic() and hash(custom) == hash(Relativistic(c=3.0))
    names = ", ".join(KINETIC_NAMES)
    message = f"Invalid kinetic value: 'cubic' (must be one of {names} or a KineticEnergy instance)"
    with pytest.raises(ValueError, match=re.escape(message)):
        get_kinetic("cubic")
    message = "Invalid kinetic value: 3 (must be a name or a KineticEnergy instance)"
    with pytest.raises(TypeError, match=re.escape(message)):
        get_kinetic(3)  # type: ignore[arg-type]


def test_float32_tanh_approximation_is_within_3_ulp_of_tanh() -> None:
    # tanh(x) = x · (tanh(x)/x): the rational form the float32 compiled step uses, against
    # float64 tanh over 0, the tiny, the clamp and far beyond it, both signs.
    from goalbrake.optim.kinetic import _tanh_over_x

    grid = torch.logspace(-30, 4, 400_001, dtype=DT)
    x = torch.cat([-grid.flip(0), torch.zeros(1, dtype=DT), grid]).float()
    clamped, ratio = _tanh_over_x(x)
    exact = torch.tanh(x.double())
    ulp = torch.finfo(torch.float32).eps
    tanh_err = ((clamped * ratio).double() - exact).abs() / exact.abs().clamp_min(1e-300)
    assert float(tanh_err[x != 0].max()) <= 3 * ulp
    inside = x.abs() < 7.9  # tanh(x)/x itself, where the form is used for the mobility
    exact_ratio = torch.where(x == 0, 1.0, exact / x.double())
    ratio_err = (ratio.double() - exact_ratio).abs() / exact_ratio
    assert float(ratio_err[inside].max()) <= 3 * ulp
    assert ratio[x == 0].item() == pytest.approx(1.0, abs=ulp)


@pytest.mark.parametrize("kinetic", [k for k in ENERGIES if k.traceable], ids=repr)
@settings(max_examples=25, deadline=None)
@given(group=groups())
def test_traced_float32_mobility_and_grad_match_float64(
    kinetic: KineticEnergy, group: tuple
) -> None:
    # The compiled step's forms (run eagerly here) in float32 against the exact float64 s(p)
    # and ∇φ(p): to float32 rounding, relative to each group's largest value.
    momenta, mass = group
    p32 = [p.float() for p in momenta]
    m32 = torch.tensor(mass, dtype=torch.float32)
    s = kinetic.mobility(momenta, mass)
    s_list = s if isinstance(s, list) else [torch.as_tensor(s, dtype=DT)] * len(momenta)
    t = kinetic._traced_mobility(p32, m32)
    t_list = t if isinstance(t, list) else [t] * len(momenta)
    for expected_list, actual_list in (
        (s_list, t_list),
        (kinetic.grad(momenta, mass), kinetic._traced_grad(p32, m32)),
    ):
        top = max(float(e.abs().max()) for e in expected_list if e.numel()) if momenta else 0
        for a, e in zip(actual_list, expected_list, strict=True):
            torch.testing.assert_close(
                a.double().expand_as(e), e, rtol=2e-6, atol=2e-6 * top + 1e-30
            )


def test_float32_neg_expm1_ratio_is_within_3_ulp() -> None:
    # (1 − e^{−2a})/(2a), logsumexp's float32 compiled form, against float64 expm1 from the
    # smallest normal number (the floor its caller applies) through the switch at 1/2 to
    # far beyond the clamp of its exp.
    from goalbrake.optim.kinetic import _neg_expm1_ratio

    tiny = torch.finfo(torch.float32).tiny
    a = torch.logspace(math.log10(tiny), 6, 400_001, dtype=DT).float()
    a = torch.cat([a, torch.tensor([0.5, 0.5 - 3e-8, 20.0], dtype=torch.float32)])
    exact = -torch.expm1(-2.0 * a.double()) / (2.0 * a.double())
    err = (_neg_expm1_ratio(a).double() - exact).abs() / exact
    assert float(err.max()) <= 3 * torch.finfo(torch.float32).eps
