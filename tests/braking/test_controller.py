"""BrakeController without Lightning: scripted loss streams, the exact step of each decision."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from goalbrake.braking import (
    DEFAULT_FACTOR,
    DEFAULT_GOAL,
    Brake,
    BrakeController,
    NewBest,
    Release,
    RestoreBest,
    goal_target,
)

L0 = 2.0


# ------------------------------------------------------------------------------ helpers
def ema(stream: list[float], half_life: float) -> list[float]:
    """The reference EMA, s_1 = ℓ_1, s_t = β s_{t-1} + (1 − β) ℓ_t, β = 2^(−1/h)."""
    beta = 0.5 ** (1.0 / half_life)
    out = [stream[0]]
    for x in stream[1:]:
        out.append(out[-1] * beta + (1.0 - beta) * x)
    return out


def window_mean(stream: list[float], size: int) -> list[float]:
    return [
        math.fsum(stream[max(0, i + 1 - size) : i + 1]) / min(i + 1, size)
        for i in range(len(stream))
    ]


def smoothed(
    stream: list[float], smoothing: str, half_life: float = 5.0, size: int = 4
) -> list[float]:
    if smoothing == "ema":
        return ema(stream, half_life)
    if smoothing == "window":
        return window_mean(stream, size)
    return list(stream)


def first_crossing(values: list[float], target: float) -> int | None:
    """1-based step of the first value <= target."""
    return next((i + 1 for i, v in enumerate(values) if v <= target), None)


def run(ctrl: BrakeController, stream: list[float]) -> list[tuple[int, Any]]:
    """Feed the stream; (step, decision) for every decision."""
    out = []
    for loss in stream:
        out += [(ctrl.step, d) for d in ctrl.update(loss)]
    return out


def noisy_descent(
    n: int, seed: int, start: float = L0, end: float = 0.05, noise: float = 0.3
) -> list[float]:
    rng = random.Random(seed)
    return [
        max(1e-3, start * (end / start) ** (i / (n - 1)) * (1 + noise * rng.uniform(-1, 1)))
        for i in range(n)
    ]


# ------------------------------------------------------------------------------- targets
@pytest.mark.parametrize(
    ("mode", "goal", "target"),
    [("remaining", 0.15, 0.15 * L0), ("reduction", 0.15, 0.85 * L0), ("absolute", 0.15, 0.15)],
)
def test_goal_target_per_mode(mode: str, goal: float, target: float) -> None:
    assert goal_target(goal, mode, L0) == pytest.approx(target)
    assert BrakeController(goal, mode=mode, reference_loss=L0).targets == pytest.approx((target,))


def test_relative_mode_needs_reference() -> None:
    ctrl = BrakeController(0.5)
    ctrl.observe(1.0)
    with pytest.raises(RuntimeError, match=r"No reference loss yet: mode 'remaining' needs L₀"):
        ctrl.evaluate()
    # absolute needs none
    assert BrakeController(0.5, mode="absolute").update(0.4)[0].step == 1


# --------------------------------------------------------------- the first crossing
@pytest.mark.parametrize("mode", ["remaining", "reduction", "absolute"])
@pytest.mark.parametrize("smoothing", ["ema", "window", "none"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fires_once_at_first_crossing_of_noisy_stream(mode: str, smoothing: str, seed: int) -> None:
    goal = {"remaining": 0.2, "reduction": 0.6, "absolute": 0.5}[mode]
    stream = noisy_descent(120, seed)
    ctrl = BrakeController(
        goal, 50.0, mode=mode, reference_loss=L0, smoothing=smoothing, half_life=5.0, window=4
    )
    target = goal_target(goal, mode, L0)
    expected = first_crossing(smoothed(stream, smoothing), target)
    assert expected is not None and expected > 1

    decisions = run(ctrl, stream)

    assert [(s, type(d)) for s, d in decisions] == [(expected, Brake)]
    brake = decisions[0][1]
    assert (brake.factor, brake.stage, brake.trigger, brake.step) == (50.0, 0, "goal", expected)
    assert brake.target == pytest.approx(target)
    assert brake.smoothed_loss <= target
    assert brake.reason == f"smoothed loss {brake.smoothed_loss:.4g} <= goal {target:.4g}"
    assert ctrl.braked_step == expected and ctrl.braked and ctrl.factor == 50.0


@settings(max_examples=60, deadline=None)
@given(
    stream=st.lists(st.floats(0.01, 4.0), min_size=2, max_size=60),
    half_life=st.floats(0.5, 20.0),
    goal=st.floats(0.05, 0.95),
)
def test_ema_brake_step_is_first_crossing(
    stream: list[float], half_life: float, goal: float
) -> None:
    values = ema(stream, half_life)
    target = goal * L0
    # Ties within rounding of the target are ambiguous by construction: skip them.
    assume(all(abs(v - target) > 1e-9 * max(1.0, target) for v in values))
    ctrl = BrakeController(goal, reference_loss=L0, half_life=half_life)
    steps = [s for s, d in run(ctrl, stream) if isinstance(d, Brake)]
    expected = first_crossing(values, target)
    assert steps == ([] if expected is None else [expected])


def test_tensor_losses_decide_like_floats() -> None:
    stream = noisy_descent(80, 3)
    a = run(BrakeController(0.3, reference_loss=L0), stream)
    b = run(
        BrakeController(0.3, reference_loss=L0),
        [torch.tensor(x, dtype=torch.float64) for x in stream],
    )
    assert a == b and len(a) == 1


def test_nan_loss_never_reaches_a_goal() -> None:
    ctrl = BrakeController(0.5, smoothing="none", reference_loss=L0)
    assert run(ctrl, [math.nan] * 5) == []


@pytest.mark.parametrize("every", [1, 3, 7])
def test_check_every_n_steps_fires_at_first_check_after_crossing(every: int) -> None:
    stream = [2.0 - 0.1 * i for i in range(20)]  # raw crossing of 1.0 at step 11
    ctrl = BrakeController(0.5, smoothing="none", reference_loss=L0, check_every_n_steps=every)
    [(step, _)] = run(ctrl, stream)
    assert step == math.ceil(11 / every) * every


# ------------------------------------------------------------------------------ stages
def test_stages_fire_in_order_with_their_factors() -> None:
    stages = [(0.8, 2.0), (0.5, 5.0), (0.2, 10.0)]
    stream = [L0 * (1 - 0.01 * i) for i in range(100)]  # remaining fraction 1 - 0.01 (t-1)
    ctrl = BrakeController(stages=stages, smoothing="none", reference_loss=L0)
    decisions = run(ctrl, stream)
    # fraction <= 0.8 first at t-1 = 20 (t = 21), <= 0.5 at t = 51, <= 0.2 at t = 81
    assert [(s, d.stage, d.factor) for s, d in decisions] == [
        (21, 0, 2.0),
        (51, 1, 5.0),
        (81, 2, 10.0),
    ]
    assert ctrl.factor == pytest.approx(100.0) and ctrl.braked_step == 21 and ctrl.stage == 3


def test_one_check_past_several_goals_fires_them_all_in_order() -> None:
    ctrl = BrakeController(
        stages=[(0.8, 2.0), (0.5, 5.0), (0.2, 10.0)], smoothing="none", reference_loss=L0
    )
    assert ctrl.update(1.9) == []
    decisions = ctrl.update(0.9)  # 0.45 L0: past the first two goals at once
    assert [(d.stage, d.step) for d in decisions] == [(0, 2), (1, 2)]
    assert ctrl.target == pytest.approx(0.2 * L0)


@pytest.mark.parametrize(
    ("mode", "stages"),
    [("reduction", [(0.2, 2.0), (0.5, 5.0)]), ("absolute", [(1.5, 2.0), (0.95, 5.0)])],
)
def test_stages_in_other_modes(mode: str, stages: list[tuple[float, float]]) -> None:
    ctrl = BrakeController(stages=stages, mode=mode, smoothing="none", reference_loss=L0)
    assert [d.stage for _, d in run(ctrl, [1.9, 1.6, 1.2, 1.0, 0.9])] == [0, 1]


# ------------------------------------------------------------------ defaults, the clock
def test_neither_goal_nor_stages_keeps_the_default_stage() -> None:
    assert (DEFAULT_GOAL, DEFAULT_FACTOR) == (0.15, 50.0)
    assert BrakeController().stages == ((0.15, 50.0),)
    assert BrakeController(factor=10.0).stages == ((0.15, 10.0),)
    assert BrakeController(0.3).stages == ((0.3, 50.0),)


@pytest.mark.parametrize("every", [1, 4])
@pytest.mark.parametrize("at_step", [1, 7, 30])
def test_clock_fires_at_the_exact_step_whatever_the_loss(at_step: int, every: int) -> None:
    # The loss rises: no goal could fire, and no L₀ is needed.
    ctrl = BrakeController(at_step=at_step, factor=20.0, check_every_n_steps=every)
    assert ctrl.trigger == "step" and not ctrl.needs_reference
    decisions = run(ctrl, [1.0 + 0.1 * i for i in range(60)])
    expected = math.ceil(at_step / every) * every
    assert [(s, type(d), d.trigger, d.factor, d.target) for s, d in decisions] == [
        (expected, Brake, "step", 20.0, None)
    ]
    assert decisions[0][1].reason == f"step {expected} >= at_step {at_step}"
    assert ctrl.braked_step == expected and ctrl.factor == 20.0 and ctrl.target is None


def test_clock_brakes_even_when_the_loss_falls_early() -> None:
    ctrl = BrakeController(at_step=25, smoothing="none")
    assert ctrl.stages == ((None, 50.0),)
    decisions = run(ctrl, [0.001] * 40)  # a goal brake would have fired at step 1
    assert [(s, d.trigger) for s, d in decisions] == [(25, "step")]


def test_clock_release_restores_the_friction_after_settling() -> None:
    ctrl = BrakeController(at_step=5, smoothing="none", release_after=3, kick=2.0)
    decisions = run(ctrl, [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.6, 0.6, 0.6, 0.6])
    assert [(s, type(d)) for s, d in decisions] == [(5, Brake), (9, Release)]


def test_load_state_dict_refuses_another_trigger() -> None:
    state = BrakeController(at_step=10).state_dict()
    with pytest.raises(ValueError) as info:
        BrakeController(0.3).load_state_dict(state)
    assert str(info.value) == (
        "Invalid state: trigger 'step' in the state, 'goal' here (a resumed run keeps its "
        "trigger: the clock with at_step, or a goal)"
    )
    old = BrakeController(0.3, reference_loss=L0).state_dict()
    del old["at_step"]  # a checkpoint from before the clock trigger
    BrakeController(0.3).load_state_dict(old)
    with pytest.raises(ValueError, match=r"^Invalid state: trigger 'goal' in the state, 'step'"):
        BrakeController(at_step=10).load_state_dict(old)


def test_edited_settings_apply_on_top_of_the_loaded_history() -> None:
    first = BrakeController(0.3, smoothing="none", reference_loss=L0)
    run(first, [1.5, 1.2, 1.0])
    edited = BrakeController(0.45, smoothing="none")  # a goal edited before the brake
    edited.load_state_dict(first.state_dict())
    assert edited.reference_loss == L0 and edited.step == 3
    assert [(s, d.target) for s, d in run(edited, [0.95, 0.85])] == [(5, pytest.approx(0.9))]
    clock = BrakeController(at_step=4)
    clock.load_state_dict(BrakeController(at_step=50).state_dict())  # another step: on top
    assert [s for s, _ in run(clock, [1.0] * 5)] == [4]


# ------------------------------------------------------------------- agreeing (DDP)
def test_every_decision_passes_through_agree() -> None:
    asked: list[tuple[int, bool]] = []

    def veto_until_step_8(decision: bool) -> bool:  # another rank is not there yet
        asked.append((ctrl.step, decision))
        return decision and ctrl.step >= 8

    ctrl = BrakeController(0.5, smoothing="none", reference_loss=L0)
    stream = [2.0, 1.5, 0.9, 0.8, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]
    decisions = [(ctrl.step, d) for x in stream for d in ctrl.update(x, agree=veto_until_step_8)]
    assert [(s, d.trigger) for s, d in decisions] == [(8, "goal")]
    assert asked == [(t, t >= 3) for t in range(1, 9)]  # one question per check until it fired


def test_agree_can_fire_a_stage_this_rank_did_not_reach() -> None:
    ctrl = BrakeController(0.1, smoothing="none", reference_loss=L0)
    assert ctrl.update(1.5, agree=lambda d: d) == []
    [brake] = ctrl.update(1.5, agree=lambda d: True)  # the other rank reached the goal
    assert (brake.step, brake.trigger, brake.reason) == (
        2,
        "goal",
        "goal (decided on another rank)",
    )


def test_agree_holds_the_release_and_the_overfit_trigger() -> None:
    ctrl = BrakeController(0.5, smoothing="none", reference_loss=L0, release_after=2)
    no = lambda d: False  # noqa: E731
    assert [type(d) for d in ctrl.update(0.5)] == [Brake]
    assert [ctrl.update(0.6, agree=no) for _ in range(4)] == [[]] * 4
    assert [type(d) for d in ctrl.update(0.6)] == [Release]
    over = BrakeController(0.01, reference_loss=L0, overfit_patience=1)
    over.observe(1.0)
    assert over.observe_validation(1.0) == [] and over.observe_validation(2.0, agree=no) == []
    assert [d.trigger for d in over.observe_validation(3.0)] == ["overfit"]


# ---------------------------------------------------------------------------- patience
def test_patience_fires_at_n_steps_when_goal_is_missed() -> None:
    ctrl = BrakeController(0.1, smoothing="none", reference_loss=L0, patience=7)
    decisions = run(ctrl, [1.5] * 20)
    assert [(s, d.trigger) for s, d in decisions] == [(7, "patience")]
    assert decisions[0][1].reason == "goal 0.2 not reached within 7 steps (smoothed loss 1.5)"


def test_patience_of_a_later_stage_counts_from_the_previous_brake() -> None:
    ctrl = BrakeController(
        stages=[(0.8, 2.0), (0.1, 5.0)], smoothing="none", reference_loss=L0, patience=10
    )
    stream = [1.9, 1.8, 1.5, 1.5] + [1.5] * 20  # stage 0 fires at step 3
    assert [(s, d.stage, d.trigger) for s, d in run(ctrl, stream)] == [
        (3, 0, "goal"),
        (13, 1, "patience"),
    ]


def test_patience_restores_best_weights_when_asked() -> None:
    stream = [1.9, 1.5, 1.2, 1.3, 1.6, 1.7, 1.8, 1.8]  # lowest at step 3
    ctrl = BrakeController(0.1, smoothing="none", reference_loss=L0, patience=6, restore_best=True)
    decisions = run(ctrl, stream)
    assert decisions == [
        (1, NewBest(loss=1.9, step=1)),
        (2, NewBest(loss=1.5, step=2)),
        (3, NewBest(loss=1.2, step=3)),
        (6, RestoreBest(loss=1.2, step=3, reason=decisions[3][1].reason)),
        (6, decisions[4][1]),
    ]
    assert isinstance(decisions[4][1], Brake) and decisions[4][1].trigger == "patience"


def test_without_restore_best_no_snapshots_are_asked_for() -> None:
    ctrl = BrakeController(0.1, smoothing="none", reference_loss=L0, patience=6)
    assert [type(d) for _, d in run(ctrl, [1.9, 1.5, 1.2, 1.3, 1.6, 1.7])] == [Brake]


# ----------------------------------------------------------------------------- release
def test_release_after_m_steps_without_improvement() -> None:
    ctrl = BrakeController(
        0.5, 10.0, smoothing="none", reference_loss=L0, release_after=4, kick=2.0
    )
    stream = [1.5, 0.9, 0.8, 0.7, 0.75, 0.71, 0.72, 0.73, 0.7, 0.7]
    decisions = run(ctrl, stream)
    # brake at 2 (0.9 <= 1.0); new minima at 3 and 4; no new minimum for 4 steps -> 8
    assert [(s, type(d)) for s, d in decisions] == [(2, Brake), (8, Release)]
    release = decisions[1][1]
    assert (
        release.kick == 2.0 and release.reason == "smoothed loss did not improve on 0.7 for 4 steps"
    )
    assert not ctrl.braked and ctrl.factor == 1.0 and ctrl.released_step == 8
    assert run(ctrl, [0.1] * 10) == []  # released for good


def test_release_waits_for_the_last_stage() -> None:
    ctrl = BrakeController(
        stages=[(0.5, 2.0), (0.1, 5.0)], smoothing="none", reference_loss=L0, release_after=2
    )
    assert [type(d) for _, d in run(ctrl, [0.9] * 10)] == [Brake]


# ----------------------------------------------------------------------------- overfit
def test_overfit_fires_after_k_consecutive_rises() -> None:
    ctrl = BrakeController(0.01, smoothing="none", reference_loss=L0, overfit_patience=3)
    ctrl.update(1.0)
    fired = [
        bool(ctrl.observe_validation(v)) for v in [1.0, 0.9, 0.95, 0.93, 0.96, 0.97, 0.98, 0.99]
    ]
    # rises: 0.95 (1), 0.93 resets, 0.96 (1), 0.97 (2), 0.98 (3) -> fires at the 7th validation
    assert fired == [False, False, False, False, False, False, True, False]
    assert ctrl.stage == 1 and ctrl.braked_step == 1


def test_overfit_brake_reports_its_trigger() -> None:
    ctrl = BrakeController(0.01, smoothing="none", reference_loss=L0, overfit_patience=1)
    ctrl.update(1.0)
    ctrl.observe_validation(0.5)
    [brake] = ctrl.observe_validation(0.6)
    assert (brake.trigger, brake.reason) == (
        "overfit",
        "validation loss rose 1 times in a row (to 0.6)",
    )


# ------------------------------------------------------------------------------- state
CONFIGS: list[dict[str, Any]] = [
    dict(goal=0.3),
    dict(goal=0.3, smoothing="window", window=5),
    dict(goal=0.3, smoothing="none", check_every_n_steps=3),
    dict(stages=[(0.6, 2.0), (0.3, 5.0), (0.05, 3.0)], patience=25, restore_best=True),
    dict(goal=0.4, release_after=6, kick=1.5, half_life=2.0),
    dict(goal=0.01, overfit_patience=2),
    dict(at_step=30, release_after=6, half_life=2.0),
]


def _script(ctrl: BrakeController, stream: list[float], start: int) -> list[Any]:
    out = []
    for i, loss in enumerate(stream[start:], start):
        out += ctrl.update(loss)
        if i % 10 == 9:
            out += ctrl.observe_validation(1.0 + 0.01 * (i % 30))  # rises, then a drop
    return out


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: ",".join(c))
@pytest.mark.parametrize("cut", [1, 17, 40, 77])
def test_state_dict_round_trip_mid_stream_decides_like_uninterrupted(
    config: dict[str, Any], cut: int
) -> None:
    stream = noisy_descent(120, 5, noise=0.5)
    uninterrupted = BrakeController(reference_loss=L0, **config)
    whole = _script(uninterrupted, stream, 0)
    assert whole  # something happens in every configuration

    first = BrakeController(reference_loss=L0, **config)
    before = _script(first, stream[:cut], 0)
    state = first.state_dict()
    assert all(
        v is None
        or isinstance(v, (int, float, str))
        or (isinstance(v, list) and all(isinstance(x, float) for x in v))
        for v in state.values()
    ), state
    resumed = BrakeController(**config)
    resumed.load_state_dict(state)
    after = _script(resumed, stream, cut)
    assert before + after == whole
    assert resumed.state_dict() == uninterrupted.state_dict()


def test_load_state_dict_refuses_another_smoothing() -> None:
    state = BrakeController(0.3, reference_loss=L0).state_dict()
    with pytest.raises(
        ValueError, match=r"^Invalid state: smoothing 'ema' in the state, 'window' here"
    ):
        BrakeController(0.3, smoothing="window").load_state_dict(state)


def test_sync_smoothing_keeps_the_ema_of_the_mean() -> None:
    a, b = BrakeController(0.3, reference_loss=L0), BrakeController(0.3, reference_loss=L0)
    s1, s2 = noisy_descent(30, 1), noisy_descent(30, 2)
    for x, y in zip(s1, s2, strict=True):
        a.observe(x)
        b.observe(y)
        mean = torch.tensor((a.smoothed() + b.smoothed()) / 2, dtype=torch.float64)
        a.sync_smoothing(lambda t, m=mean: m.clone())
        b.sync_smoothing(lambda t, m=mean: m.clone())
    reference = ema([(x + y) / 2 for x, y in zip(s1, s2, strict=True)], 10.0)[-1]
    assert float(a.smoothed()) == pytest.approx(reference, rel=1e-12)


# --------------------------------------------------------------------------- bad input
BAD: list[tuple[dict[str, Any], str]] = [
    (
        dict(goal=1.5),
        "Invalid goal value: 1.5 for mode 'remaining' (must be in (0, 1))",
    ),
    (
        dict(goal=0.0, mode="reduction"),
        "Invalid goal value: 0.0 for mode 'reduction' (must be in (0, 1))",
    ),
    (
        dict(goal=-1.0, mode="absolute"),
        "Invalid goal value: -1.0 for mode 'absolute' (must be > 0)",
    ),
    (
        dict(goal=math.nan),
        "Invalid goal value: nan for mode 'remaining' (must be in (0, 1))",
    ),
    (
        dict(goal="0.5"),
        "Invalid goal value: '0.5' for mode 'remaining' (must be in (0, 1))",
    ),
    (
        dict(factor=0.0),
        "Invalid factor value: 0.0 (must be > 0)",
    ),
    (
        dict(factor=-50),
        "Invalid factor value: -50 (must be > 0)",
    ),
    (
        dict(mode="relative"),
        "Invalid mode value: 'relative' (must be one of remaining, reduction, absolute)",
    ),
    (
        dict(stages=[]),
        "Invalid stages value: [] (must be a non-empty list of (goal, factor) pairs)",
    ),
    (
        dict(stages=[(0.5, 2.0), (0.7, 5.0)]),
        "Invalid stages value: goals [0.5, 0.7] for mode 'remaining' (each stage must "
        "target a lower loss than the one before: goals strictly decreasing)",
    ),
    (
        dict(stages=[(0.5, 2.0), (0.2, 5.0)], mode="reduction"),
        "Invalid stages value: goals [0.5, 0.2] for mode 'reduction' (each stage must "
        "target a lower loss than the one before: goals strictly increasing)",
    ),
    (
        dict(stages=[(0.5, 2.0), (1.2, 5.0)]),
        "Invalid goal value: 1.2 for mode 'remaining' (must be in (0, 1)) in stages[1]",
    ),
    (
        dict(stages=[(0.5, 0.0)]),
        "Invalid factor value: 0.0 (must be > 0) in stages[0]",
    ),
    (
        dict(stages=[0.5]),
        "Invalid stages value: 0.5 in stages[0] (must be a (goal, factor) pair)",
    ),
    (
        dict(goal=0.3, stages=[(0.5, 2.0)]),
        "Invalid stages value: pass either goal and factor or stages, not both (got "
        "goal=0.3 and stages=[(0.5, 2.0)])",
    ),
    (  # the default values, given: no longer mistaken for "not given"
        dict(goal=0.15, stages=[(0.5, 2.0)]),
        "Invalid stages value: pass either goal and factor or stages, not both (got "
        "goal=0.15 and stages=[(0.5, 2.0)])",
    ),
    (
        dict(goal=0.15, factor=50.0, stages=[(0.5, 2.0)]),
        "Invalid stages value: pass either goal and factor or stages, not both (got "
        "goal=0.15, factor=50.0 and stages=[(0.5, 2.0)])",
    ),
    (
        dict(at_step=0),
        "Invalid at_step value: 0 (must be an integer >= 1)",
    ),
    (
        dict(at_step=12.5),
        "Invalid at_step value: 12.5 (must be an integer >= 1)",
    ),
    (
        dict(at_step=100, goal=0.15),
        "Invalid at_step value: 100 with goal=0.15 (the clock trigger replaces the goal; "
        "pass either at_step or goal/stages)",
    ),
    (
        dict(at_step=100, stages=[(0.5, 2.0)]),
        "Invalid at_step value: 100 with stages=[(0.5, 2.0)] (the clock trigger replaces "
        "the goal; pass either at_step or goal/stages)",
    ),
    (
        dict(at_step=100, patience=50),
        "Invalid at_step value: 100 with patience=50 (the clock trigger fires on its own; "
        "drop patience)",
    ),
    (
        dict(at_step=100, overfit_patience=2),
        "Invalid at_step value: 100 with overfit_patience=2 (the clock trigger fires on its "
        "own; drop overfit_patience)",
    ),
    (
        dict(at_step=100, factor=0.0),
        "Invalid factor value: 0.0 (must be > 0)",
    ),
    (
        dict(smoothing="median"),
        "Invalid smoothing value: 'median' (must be one of ema, window, none)",
    ),
    (
        dict(half_life=0),
        "Invalid half_life value: 0 (must be > 0, in steps)",
    ),
    (
        dict(smoothing="window", window=0),
        "Invalid window value: 0 (must be an integer >= 1)",
    ),
    (
        dict(patience=0),
        "Invalid patience value: 0 (must be an integer >= 1 or None)",
    ),
    (
        dict(patience=2.5),
        "Invalid patience value: 2.5 (must be an integer >= 1 or None)",
    ),
    (
        dict(release_after=-1),
        "Invalid release_after value: -1 (must be an integer >= 1 or None)",
    ),
    (
        dict(overfit_patience=True),
        "Invalid overfit_patience value: True (must be an integer >= 1 or None)",
    ),
    (
        dict(check_every_n_steps=0),
        "Invalid check_every_n_steps value: 0 (must be an integer >= 1)",
    ),
    (
        dict(restore_best=True),
        "Invalid restore_best value: True without patience (the best weights are "
        "restored before a patience brake; set patience=<steps>)",
    ),
    (
        dict(kick=2.0),
        "Invalid kick value: 2.0 without release_after (the momentum is kicked at the "
        "release; set release_after=<steps> or kick=1.0)",
    ),
    (
        dict(kick=-1.0, release_after=3),
        "Invalid kick value: -1.0 (must be >= 0)",
    ),
    (
        dict(reference_loss=-1.0),
        "Invalid reference_loss value: -1.0 (must be > 0 for mode 'remaining')",
    ),
    (
        dict(reference_loss=math.inf, mode="absolute"),
        "Invalid reference_loss value: inf (must be a finite number)",
    ),
]


@pytest.mark.parametrize(
    ("kwargs", "message"), BAD, ids=[m.split(":")[0] + str(i) for i, (_, m) in enumerate(BAD)]
)
def test_bad_input_has_one_clear_message(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        BrakeController(**kwargs)
    assert str(info.value) == message


def test_non_scalar_loss_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"^Invalid loss value: a tensor of shape \(2,\) \(must be a scalar\)$"
    ):
        BrakeController(0.3, reference_loss=L0).observe(torch.ones(2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("smoothing", ["ema", "window", "none"])
def test_observing_device_losses_never_syncs(smoothing: str) -> None:
    ctrl = BrakeController(0.3, reference_loss=L0, smoothing=smoothing)
    losses = list(torch.linspace(2.0, 0.1, 30, device="cuda").unbind())
    torch.cuda.set_sync_debug_mode("error")
    try:
        for loss in losses:
            ctrl.observe(loss)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert ctrl.smoothed().device.type == "cuda"
    assert [type(d) for d in ctrl.evaluate()] == [Brake]  # the check's one sync
