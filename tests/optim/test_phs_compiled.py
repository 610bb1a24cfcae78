"""The compiled fused step (``fused=True``, torch.compile) equals the foreach path.

Over the schemes × kinetic energies × friction conventions, with weight decay and
maximize, 0-d tensor hyperparameters, and friction, lr and mass changes mid-run, in
float64 (to 1e-12) and float32 (to float32 rounding). ``nesterov`` and ``euler`` with the
quadratic energy take it from ``COMPILED_MIN_NUMEL`` weights; the tests set that to 0.
Each (scheme, kinetic, friction convention, dtype) compiles once (seconds), so the whole
table is marked slow and exhaustive (run with ``pytest -m exhaustive``); one row per energy
and the two-call schemes run by default.
"""

from __future__ import annotations

import importlib
import itertools
import re
import warnings
from collections.abc import Iterator

import pytest
import torch
import torch._dynamo.config as dynamo_config
from phs_helpers import SHAPES, momenta, rel_err
from test_phs_fused import FRICTION, LR, MASS, _params, _run

from goalbrake.optim import KINETIC_NAMES, PHS, SCHEMES, compiled

# The module, not the functional form that goalbrake.optim exports under the same name.
phs = importlib.import_module("goalbrake.optim.phs")

TOL = {torch.float64: 1e-12, torch.float32: 5e-6}


@pytest.fixture(autouse=True)
def _compile_small_groups(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(phs, "COMPILED_MIN_NUMEL", 0)
    # One compiled function per table row and dtype: more than torch's default of 8.
    with dynamo_config.patch(recompile_limit=512):
        yield


def _assert_compiled_equals_foreach(
    dtype: torch.dtype, change: dict | None = None, steps: int = 8, **kw: object
) -> None:
    a, b = _params(dtype), _params(dtype)
    fused = _run(a, steps=steps, change=change, fused=True, **kw)
    foreach = _run(b, steps=steps, change=change, foreach=True, **kw)
    tol = TOL[dtype]
    assert rel_err(a, b) <= tol
    assert rel_err(momenta(fused, a), momenta(foreach, b)) <= tol


def _kwargs(scheme: str, kinetic: str, friction_on: str) -> dict:
    # γ = 0.01 keeps the explicit schemes stable for normalized (s_max = 1/(mε)) too.
    friction = 0.01 if kinetic == "normalized" and friction_on == "velocity" else FRICTION
    return dict(
        lr=LR, friction=friction, mass=MASS, scheme=scheme, kinetic=kinetic, friction_on=friction_on
    )


TABLE = list(itertools.product(SCHEMES, KINETIC_NAMES, ["velocity", "momentum"]))
QUICK = [("conformal", k, "velocity") for k in KINETIC_NAMES if k != "quadratic"] + [
    ("nesterov", "quadratic", "velocity"),
    ("euler", "quadratic", "velocity"),
]


def _marks(row: tuple) -> list:
    return [] if row in QUICK else [pytest.mark.slow, pytest.mark.exhaustive]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize(
    ("scheme", "kinetic", "friction_on"),
    [pytest.param(*row, marks=_marks(row), id="-".join(row)) for row in TABLE],
)
def test_compiled_equals_foreach(
    scheme: str, kinetic: str, friction_on: str, dtype: torch.dtype
) -> None:
    kw = _kwargs(scheme, kinetic, friction_on)
    _assert_compiled_equals_foreach(dtype, **kw, weight_decay=0.05)
    _assert_compiled_equals_foreach(dtype, **kw, maximize=True)


@pytest.mark.parametrize(
    ("scheme", "kinetic"),
    [("conformal", k) for k in KINETIC_NAMES if k != "quadratic"]
    + [("nesterov", "quadratic"), ("euler", "quadratic")],
)
def test_compiled_through_changes_mid_run(scheme: str, kinetic: str) -> None:
    # A brake (γ × 50), a scheduler's lr, a new mass, with 0-d tensor lr and friction:
    # the hyperparameters are inputs of the compiled step, not constants baked into it
    # (for the quadratic energy its coefficients, computed anew at every step).
    kw = _kwargs(scheme, kinetic, "velocity")
    kw["friction"] = torch.tensor(kw["friction"], dtype=torch.float64)
    kw["lr"] = torch.tensor(LR, dtype=torch.float64)
    brake = 10.0 if scheme == "euler" else 50.0  # euler is stable for x = αγ/m <= 2 only
    for change in ({"friction": brake}, {"lr": 0.3}, {"mass": 3.0}):
        _assert_compiled_equals_foreach(torch.float64, change=change, **kw)


def test_compiled_step_leaves_the_gradients_alone_and_keeps_p() -> None:
    params = _params(torch.float32)
    opt = PHS(params, lr=LR, friction=FRICTION, kinetic="soft_clip", weight_decay=0.1, fused=True)
    for p in params:
        p.grad = torch.ones_like(p)
    before = [p.grad.clone() for p in params]
    opt.step()
    opt.step()
    assert all(torch.equal(p.grad, g) for p, g in zip(params, before, strict=True))
    # The state is p itself: the foreach path continues from it.
    opt.param_groups[0].update(fused=False, foreach=True)
    opt.step()


def test_the_quadratic_two_call_schemes_take_the_compiled_step_on_large_groups(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(phs, "COMPILED_MIN_NUMEL", sum(torch.Size(s).numel() for s in SHAPES))
    calls: list[str] = []
    monkeypatch.setattr(phs, "compiled_phs", lambda *a, **kw: calls.append(kw["scheme"]))
    for scheme in SCHEMES:
        params = _params(torch.float32)
        for p in params:
            p.grad = torch.ones_like(p)
        PHS(params, lr=LR, friction=FRICTION, scheme=scheme, fused=True).step()
        PHS(params, lr=LR, friction=FRICTION, scheme=scheme).step()  # fused=None: never
    assert calls == [s for s in SCHEMES if s in ("nesterov", "euler")]
    monkeypatch.setattr(phs, "COMPILED_MIN_NUMEL", 1 + sum(torch.Size(s).numel() for s in SHAPES))
    for scheme in SCHEMES:
        params = _params(torch.float32)
        for p in params:
            p.grad = torch.ones_like(p)
        PHS(params, lr=LR, friction=FRICTION, scheme=scheme, fused=True).step()
    assert len(calls) == 2  # small groups: torch's two kernel calls


def test_a_failed_compile_falls_back_to_the_same_step_with_one_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object, **kwargs: object) -> object:
        def fail(*a: object) -> None:
            raise RuntimeError("no C++ compiler\nsecond line")

        return fail

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(compiled, "_STEPS", {})
    monkeypatch.setattr(compiled, "_FAILED", set())
    message = (
        "torch.compile failed for the fused PHS step (scheme='conformal', kinetic='pnorm'): "
        "RuntimeError: no C++ compiler; running the same step uncompiled (use fused=None for "
        "the foreach path)"
    )
    with pytest.warns(RuntimeWarning, match=f"^{re.escape(message)}$"):
        _assert_compiled_equals_foreach(
            torch.float64, steps=1, **_kwargs("conformal", "pnorm", "velocity")
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once: later steps run the eager step silently
        _assert_compiled_equals_foreach(torch.float64, **_kwargs("conformal", "pnorm", "velocity"))


def test_more_variants_than_torchs_recompile_limit_stay_compiled_and_exact() -> None:
    # Ten parameter shapes are ten compiled entries of one traced function: beyond torch's
    # default limit of 8, which would fail the step (fullgraph) without the step's own limit.
    with dynamo_config.patch(recompile_limit=8), warnings.catch_warnings():
        warnings.simplefilter("error")
        for n in range(1, 11):
            a = [torch.linspace(-1.0, 1.0, n + 2, dtype=torch.float64)]
            b = [a[0].clone()]
            opts = [
                PHS(x, lr=LR, friction=FRICTION, kinetic="pnorm", fused=f, foreach=not f)
                for x, f in ((a, True), (b, False))
            ]
            for _ in range(3):
                for x, opt in zip((a, b), opts, strict=True):
                    x[0].grad = torch.cos(3.0 * x[0])
                    opt.step()
            assert rel_err(a, b) <= TOL[torch.float64]


def test_relativistic_and_normalized_take_the_compiled_step_on_large_groups_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(phs, "compiled_phs", lambda *a, **kw: calls.append(kw["kinetic"].name))
    numel = sum(torch.Size(s).numel() for s in SHAPES)
    for threshold in (numel, numel + 1):  # large enough, then small
        monkeypatch.setattr(phs, "COMPILED_MIN_NUMEL", threshold)
        for kinetic in KINETIC_NAMES:
            params = _params(torch.float32)
            for p in params:
                p.grad = torch.ones_like(p)
            PHS(params, lr=LR, friction=FRICTION, kinetic=kinetic, fused=True).step()
    others = [k for k in KINETIC_NAMES if k != "quadratic"]
    small = [k for k in others if k not in ("relativistic", "normalized")]
    assert calls == others + small


@pytest.mark.parametrize(
    ("scheme", "kinetic"), [("symplectic_euler", "logsumexp"), ("stormer_verlet", "pnorm")]
)
def test_split_steps_equal_foreach(scheme: str, kinetic: str) -> None:
    # Non-separable energies take two compiled functions (momentum, then position), with
    # weight decay (the gradient reads θ before it moves) and maximize.
    assert len(compiled._traced((scheme, phs.get_kinetic(kinetic), "velocity", True))) == 2
    for dtype in (torch.float64, torch.float32):
        kw = _kwargs(scheme, kinetic, "velocity")
        _assert_compiled_equals_foreach(dtype, **kw, weight_decay=0.05)
        _assert_compiled_equals_foreach(dtype, **kw, maximize=True)


def test_which_steps_are_split() -> None:
    def parts(scheme: str, kinetic: str, large: bool = True) -> int:
        return len(compiled._traced((scheme, phs.get_kinetic(kinetic), "velocity", large)))

    assert [parts("conformal", k) for k in KINETIC_NAMES] == [
        1 if phs.get_kinetic(k).separable else 2 for k in KINETIC_NAMES
    ]
    assert parts("nesterov", "pnorm") == parts("euler", "pnorm") == 1
    assert [parts("conformal", k, large=False) for k in KINETIC_NAMES] == [1] * len(KINETIC_NAMES)


def test_a_failed_second_part_falls_back_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    # The momentum part compiles, the position part does not: the step must not run the
    # momentum update twice (only the failed part reruns, eagerly).
    real = torch.compile
    calls = iter(range(100))

    def second_fails(fn: object, **kwargs: object) -> object:
        if next(calls) % 2 == 0:
            return real(fn, **kwargs)

        def fail(*a: object) -> None:
            raise RuntimeError("inductor error")

        return fail

    monkeypatch.setattr(torch, "compile", second_fails)
    monkeypatch.setattr(compiled, "_STEPS", {})
    monkeypatch.setattr(compiled, "_FAILED", set())
    with pytest.warns(RuntimeWarning, match="RuntimeError: inductor error"):
        _assert_compiled_equals_foreach(
            torch.float64, steps=3, **_kwargs("conformal", "pnorm", "velocity")
        )


@pytest.mark.parametrize("kinetic", ["pnorm", "logsumexp"])
def test_small_groups_take_the_whole_step_and_equal_foreach(
    kinetic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Below COMPILED_MIN_NUMEL the non-separable energies' step stays one function.
    monkeypatch.setattr(phs, "COMPILED_MIN_NUMEL", 1 << 40)
    traced: list[int] = []
    real = compiled._traced
    monkeypatch.setattr(compiled, "_traced", lambda key: traced.append(key[3]) or real(key))
    monkeypatch.setattr(compiled, "_STEPS", {})
    for dtype in (torch.float64, torch.float32):
        _assert_compiled_equals_foreach(dtype, **_kwargs("conformal", kinetic, "velocity"))
    assert traced == [False]
