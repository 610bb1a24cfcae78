"""GoalBrake in real lightning.pytorch fits on a tiny regression (CPU, a second or less each).

The logged series are read back from the CSV logger. Lightning writes a step's metrics at
row ``global_step - 1`` (its ``_batches_that_stepped`` before the increment), so the row
where ``brake/braked`` first reads 1 is ``braked_step - 1``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing import event_accumulator

from goalbrake.braking import Brake, RestoreBest
from goalbrake.callbacks import GoalBrake

MU_FREE = math.exp(-0.1 * 0.5)  # conftest's default PHS: lr 0.1, mass 1, friction 0.5


class Probe(pl.Callback):
    """Per global step: the friction each optimizer step used, and its momentum factor.

    The factor is measured from the update itself, p⁺ = μ p − α g, as
    μ = ⟨p⁺ + α g, p⟩ / ⟨p, p⟩ over all parameters.
    """

    def __init__(self) -> None:
        self.friction: dict[int, float] = {}
        self.mu: dict[int, float] = {}
        self.weights: dict[int, list[torch.Tensor]] = {}
        self._before: list[torch.Tensor] = []
        self._grads: list[torch.Tensor] = []

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        params = [p for g in optimizer.param_groups for p in g["params"]]
        state = optimizer.state
        self._before = [
            state[p]["momentum"].clone() if p in state else torch.zeros_like(p) for p in params
        ]
        self._grads = [p.grad.clone() for p in params]
        self.friction[trainer.global_step] = float(optimizer.param_groups[0]["friction"])

    def on_train_batch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
        step = trainer.global_step  # after the update: the step just taken is step - 1
        opt = trainer.optimizers[0]
        params = [p for g in opt.param_groups for p in g["params"]]
        lr = opt.param_groups[0]["lr"]
        num = den = 0.0
        for p, old, g in zip(params, self._before, self._grads, strict=True):
            num += float(((opt.state[p]["momentum"] + lr * g) * old).sum())
            den += float((old * old).sum())
        if den > 0:
            self.mu[step - 1] = num / den
        self.weights[step] = [p.detach().clone() for p in pl_module.parameters()]


def first_step(series: dict[int, float], pred: Callable[[float], bool]) -> int | None:
    return next((s for s in sorted(series) if pred(series[s])), None)


# ------------------------------------------------------------------- a real fit brakes
def test_brakes_once_where_the_logged_smoothed_loss_first_reaches_the_goal(
    make_module, make_trainer, read_csv_metrics
) -> None:
    brake, probe = GoalBrake(goal=0.3, factor=50.0, half_life=3.0), Probe()
    trainer = make_trainer(callbacks=[brake, probe], max_epochs=4)
    trainer.fit(make_module())

    m = read_csv_metrics(trainer)
    goal = m["brake/goal_loss"]
    smoothed = m["brake/smoothed_loss"]
    crossing = first_step(smoothed, lambda v: v <= goal[0])
    assert crossing is not None and crossing > 2
    assert list(goal.values()) == pytest.approx([0.3 * brake.reference_loss] * len(goal))
    # Braked exactly at that row, and never before.
    assert first_step(m["brake/braked"], lambda v: v == 1.0) == crossing
    assert all(v == 0.0 for s, v in m["brake/braked"].items() if s < crossing)
    assert all(v == 1.0 for s, v in m["brake/braked"].items() if s >= crossing)
    assert brake.braked_step == crossing + 1 == trainer.global_step - (31 - crossing)
    # Friction multiplied exactly once.
    assert sorted(set(m["brake/friction"].values())) == [0.5, 25.0]
    assert [d for d in brake.history if isinstance(d, Brake)] == [brake.history[0]]
    assert trainer.optimizers[0].param_groups[0]["friction"] == 25.0
    # Every optimizer step after the brake used it: by the friction it read ...
    s = brake.braked_step
    assert {probe.friction[t] for t in range(s)} == {0.5}
    assert {probe.friction[t] for t in range(s, trainer.global_step)} == {25.0}
    # ... and by the momentum factor its update applied.
    assert probe.mu[s - 1] == pytest.approx(MU_FREE, rel=1e-4)
    assert probe.mu[s] == pytest.approx(MU_FREE**50, rel=1e-3)


def test_scripted_losses_brake_at_the_computed_step(make_module, make_trainer) -> None:
    losses = [2.0, 1.8, 1.9, 1.2, 1.4, 0.9, 0.7, 0.8, 0.3, 0.5] + [0.2] * 30
    brake = GoalBrake(goal=0.5, factor=10.0, half_life=2.0, reference_batches=3)
    trainer = make_trainer(callbacks=[brake], max_epochs=2)
    trainer.fit(make_module("scripted", losses=losses))
    assert brake.reference_loss == 2.0  # training_step at step 0, three batches: losses[0]
    beta, s, expected = 0.5**0.5, None, None
    for t, x in enumerate(torch.tensor(losses).tolist(), 1):
        s = x if s is None else s * beta + (1 - beta) * x
        if s <= 1.0:
            expected = t
            break
    assert brake.braked_step == expected


def test_sgd_momentum_is_braked_to_its_kth_power(make_module, make_trainer) -> None:
    brake = GoalBrake(goal=0.5, factor=20.0, half_life=2.0)
    sgd = lambda params: torch.optim.SGD(params, lr=0.02, momentum=0.9)  # noqa: E731
    trainer = make_trainer(callbacks=[brake], max_epochs=3)
    trainer.fit(make_module(optimizer=sgd))
    assert brake.braked_step is not None
    assert trainer.optimizers[0].param_groups[0]["momentum"] == 0.9**20.0


def test_gradient_accumulation_counts_optimizer_steps(make_module, make_trainer) -> None:
    losses = [2.0, 1.8, 1.5, 1.2, 0.9, 0.8, 0.7, 0.6, 0.5, 0.5]
    brake = GoalBrake(goal=0.5, factor=10.0, smoothing="none", reference_loss=2.0)
    trainer = make_trainer(callbacks=[brake], max_epochs=2, accumulate_grad_batches=2)
    # 16 batches, 8 optimizer steps; the two batches of step t both score losses[t - 1]
    trainer.fit(make_module("scripted", losses=losses))
    assert (brake.braked_step, brake.history[0].smoothed_loss) == (5, pytest.approx(0.9))
    assert brake.controller.step == trainer.global_step == 8


# --------------------------------------------------------------------------- L₀
def test_reference_loss_is_the_mean_initial_loss_of_the_first_batches(
    make_module, make_trainer
) -> None:
    module = make_module()
    initial = [p.detach().clone() for p in module.parameters()]
    brake = GoalBrake(goal=1e-6, reference_batches=3)
    make_trainer(callbacks=[brake], max_steps=2).fit(module)
    first = list(itertools.islice(make_module().train_dataloader(), 3))
    with torch.no_grad():
        losses = [torch.nn.functional.mse_loss(x @ initial[0].T + initial[1], y) for x, y in first]
    assert brake.reference_loss == pytest.approx(float(torch.stack(losses).mean()), rel=1e-6)


@pytest.mark.parametrize("shuffle_seed", [2, None], ids=["loader-generator", "global-rng"])
def test_measuring_the_reference_loss_has_no_side_effects(
    make_module, make_trainer, shuffle_seed: int | None
) -> None:
    """Shuffled batches: a run with a GoalBrake that never brakes trains bit for bit like a
    run without one (same weights, same batch order in every epoch)."""
    measuring = GoalBrake(goal=1e-6, reference_batches=3)
    absolute = GoalBrake(goal=1e-9, mode="absolute")
    modules = []
    for callbacks in ([], [measuring, absolute]):
        torch.manual_seed(3)
        modules.append(make_module(shuffle=True, shuffle_seed=shuffle_seed))
        make_trainer(callbacks=callbacks, max_epochs=3).fit(modules[-1])
    plain, braked = modules
    assert measuring.reference_loss is not None and measuring.braked_step is None
    assert absolute.reference_loss is None  # the absolute mode needs no L₀
    for p, q in zip(plain.parameters(), braked.parameters(), strict=True):
        assert torch.equal(p, q)


def test_module_reference_loss_hook_is_used(make_module, make_trainer) -> None:
    module = make_module()
    calls = []

    def reference_loss(batch: Any) -> torch.Tensor:
        calls.append(batch[0].shape[0])
        return torch.tensor(4.0)

    module.reference_loss = reference_loss
    brake = GoalBrake(goal=0.5, reference_batches=2)
    make_trainer(callbacks=[brake], max_steps=1).fit(module)
    assert brake.reference_loss == 4.0 and calls == [8, 8]


# -------------------------------------------------------------------- stages, patience
def test_patience_brakes_at_n_and_restores_the_best_weights(make_module, make_trainer) -> None:
    losses = [3.0, 2.5, 2.0, 1.5, 1.8, 2.2, 2.4, 2.6, 2.8, 2.9] + [3.0] * 10  # best at step 4
    brake = GoalBrake(goal=0.1, smoothing="none", reference_loss=3.0, patience=8, restore_best=True)
    probe = Probe()
    trainer = make_trainer(callbacks=[brake, probe], max_steps=12)
    trainer.fit(make_module("scripted", losses=losses))
    brakes = [d for d in brake.history if isinstance(d, Brake)]
    assert [(d.step, d.trigger) for d in brakes] == [(8, "patience")]
    assert [d.step for d in brake.history if isinstance(d, RestoreBest)] == [4]
    # After step 8's update the weights were put back to those after step 4's.
    for p, q in zip(probe.weights[8], probe.weights[4], strict=True):
        assert torch.equal(p, q)
    assert not torch.equal(probe.weights[7][0], probe.weights[4][0])


def test_overfit_trigger_brakes_after_k_rising_validations(make_module, make_trainer) -> None:
    brake = GoalBrake(goal=0.01, reference_loss=10.0, overfit_patience=2)
    trainer = make_trainer(callbacks=[brake], max_epochs=6, limit_val_batches=1)
    # one validation per epoch of 8 steps; rises at validations 3 and 4 -> brake after 4
    trainer.fit(make_module(val_losses=[1.0, 0.8, 0.9, 1.0, 1.1, 1.2]))
    [decision] = brake.history
    assert (decision.trigger, decision.step, brake.braked_step) == ("overfit", 32, 32)
    assert trainer.optimizers[0].param_groups[0]["friction"] == 25.0


def test_release_restores_the_friction_and_kicks(make_module, make_trainer) -> None:
    losses = [2.0, 1.5, 0.9, 0.8, 0.85, 0.9, 0.9, 0.9] + [0.9] * 10
    brake = GoalBrake(
        goal=0.5, factor=10.0, smoothing="none", reference_loss=2.0, release_after=3, kick=2.0
    )
    probe = Probe()
    trainer = make_trainer(callbacks=[brake, probe], max_steps=12, max_epochs=-1)
    trainer.fit(make_module("scripted", losses=losses))
    assert [(type(d).__name__, d.step) for d in brake.history] == [("Brake", 3), ("Release", 7)]
    assert [probe.friction[t] for t in range(12)] == [0.5] * 3 + [5.0] * 4 + [0.5] * 5
    assert trainer.optimizers[0].param_groups[0]["friction"] == 0.5


# ------------------------------------------------------------------------- logging
def test_brake_event_goes_to_tensorboard_and_the_log(
    make_module, make_trainer, brake_lines, tmp_path: Path
) -> None:
    brake = GoalBrake(goal=0.5, factor=50.0, half_life=2.0)
    tb = TensorBoardLogger(str(tmp_path), name="tb")
    make_trainer(callbacks=[brake], logger=tb, max_epochs=2).fit(make_module())
    [message] = [r.getMessage() for r in brake_lines]
    d = brake.history[0]
    assert message == (
        f"GoalBrake: braked at step {d.step} (smoothed loss {d.smoothed_loss:.4g} <= goal "
        f"{d.target:.4g}), friction x50"
    )
    events = event_accumulator.EventAccumulator(tb.log_dir, size_guidance={"tensors": 0})
    events.Reload()
    [text] = events.Tensors("brake/events/text_summary")
    assert text.step == d.step and message in text.tensor_proto.string_val[0].decode()
    assert {"brake/goal_loss", "brake/smoothed_loss", "brake/friction", "brake/braked"} <= set(
        events.Tags()["scalars"]
    )


def test_metrics_are_logged_at_the_trainers_logging_steps(
    make_module, make_trainer, read_csv_metrics
) -> None:
    brake = GoalBrake(goal=0.3, half_life=3.0)
    trainer = make_trainer(callbacks=[brake], max_epochs=4, log_every_n_steps=5)
    trainer.fit(make_module())
    # The rows the Trainer writes, and the brake's row (no logging step) written directly.
    s = brake.braked_step
    assert s not in (5, 10, 15, 20, 25, 30)
    assert set(read_csv_metrics(trainer)["brake/friction"]) == {4, 9, 14, 19, 24, 29, s - 1}


def test_the_brake_has_its_point_in_tensorboard_off_the_logging_steps(
    make_module, make_trainer, tmp_path: Path
) -> None:
    brake = GoalBrake(goal=0.3, factor=50.0, half_life=3.0)
    tb = TensorBoardLogger(str(tmp_path), name="tb")
    make_trainer(callbacks=[brake], logger=tb, max_epochs=4, log_every_n_steps=5).fit(make_module())
    s = brake.braked_step
    assert s is not None and s % 5 != 0  # Lightning writes rows 4, 9, …: not the brake's
    events = event_accumulator.EventAccumulator(tb.log_dir, size_guidance={"scalars": 0})
    events.Reload()
    braked = {e.step: e.value for e in events.Scalars("brake/braked")}
    friction = {e.step: e.value for e in events.Scalars("brake/friction")}
    assert min(step for step, v in braked.items() if v == 1.0) == s - 1
    assert friction[s - 1] == 25.0 and friction[4] == 0.5
    assert set(braked) == {4, 9, 14, 19, 24, 29, s - 1}


# --------------------------------------------------------------------------- resume
def test_resume_after_the_brake_keeps_it_and_matches_an_uninterrupted_run(
    make_module, make_trainer, tmp_path: Path
) -> None:
    def run(**kwargs: Any) -> tuple[GoalBrake, Any, Any]:
        torch.manual_seed(0)
        brake = GoalBrake(goal=0.3, factor=50.0, half_life=3.0)
        return brake, make_trainer(callbacks=[brake], **kwargs), make_module()

    whole_brake, whole, whole_module = run(max_epochs=5)
    whole.fit(whole_module)
    s = whole_brake.braked_step
    assert s is not None and s < 16

    # Stop after the brake, at an epoch boundary (a plain DataLoader cannot resume
    # mid-epoch), and resume an epoch-based run (Lightning replays a batch when the
    # resumed run is step-based: max_epochs=-1 with max_steps).
    first_brake, first, first_module = run(max_steps=16, max_epochs=-1)
    first.fit(first_module)
    assert first_brake.braked_step == s
    ckpt = tmp_path / "after-brake.ckpt"
    first.save_checkpoint(ckpt)
    saved = torch.load(ckpt, weights_only=False)
    assert saved["callbacks"][first_brake.state_key]["braked_step"] == s
    assert saved["optimizer_states"][0]["param_groups"][0]["friction"] == 25.0

    resumed_brake, resumed, resumed_module = run(max_epochs=5)
    resumed.fit(resumed_module, ckpt_path=ckpt)
    assert resumed_brake.history == []  # no second brake
    assert resumed_brake.braked_step == s and resumed_brake.braked
    assert resumed_brake.reference_loss == whole_brake.reference_loss  # not measured again
    assert resumed.optimizers[0].param_groups[0]["friction"] == 25.0  # not 25 * 50
    assert resumed.global_step == whole.global_step == 40
    for p, q in zip(whole_module.parameters(), resumed_module.parameters(), strict=True):
        assert torch.equal(p, q)


def test_instances_with_other_stages_keep_their_own_state(
    make_module, make_trainer, tmp_path: Path
) -> None:
    a = GoalBrake(goal=0.3, factor=2.0, half_life=3.0)
    b = GoalBrake(stages=[(0.9, 3.0), (0.1, 4.0)], half_life=3.0)
    assert a.state_key != b.state_key
    trainer = make_trainer(callbacks=[a, b], max_epochs=2)
    trainer.fit(make_module())
    ckpt = tmp_path / "two.ckpt"
    trainer.save_checkpoint(ckpt)
    callbacks = torch.load(ckpt, weights_only=False)["callbacks"]
    assert callbacks[a.state_key]["stage"] == a.controller.stage
    assert callbacks[b.state_key]["stage"] == b.controller.stage


# ------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(goal=1.5), "Invalid goal value: 1.5 for mode 'remaining' (must be in (0, 1))"),
        (dict(factor=0.0), "Invalid factor value: 0.0 (must be > 0)"),
        (
            dict(mode="percent"),
            "Invalid mode value: 'percent' (must be one of remaining, reduction, absolute)",
        ),
        (
            dict(reference_batches=0),
            "Invalid reference_batches value: 0 (must be an integer >= 1)",
        ),
        (dict(log="yes"), "Invalid log value: 'yes' (must be True or False)"),
        (
            dict(goal=0.15, stages=[(0.5, 10.0), (0.2, 5.0)]),
            "Invalid stages value: pass either goal and factor or stages, not both (got "
            "goal=0.15 and stages=[(0.5, 10.0), (0.2, 5.0)])",
        ),
        (dict(at_step=-5), "Invalid at_step value: -5 (must be an integer >= 1)"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        GoalBrake(**kwargs)
    assert str(info.value) == message


def test_an_unsupported_optimizer_fails_before_the_first_step(make_module, make_trainer) -> None:
    module = make_module(optimizer=lambda params: torch.optim.Adam(params))
    trainer = make_trainer(callbacks=[GoalBrake()], max_epochs=1)
    with pytest.raises(TypeError) as info:
        trainer.fit(module)
    assert str(info.value) == (
        "GoalBrake supports goalbrake.PHS, goalbrake.optim.PHSFlow and torch.optim.SGD with "
        "momentum > 0, got Adam"
    )
    assert trainer.global_step == 0


def test_overfit_trigger_without_validation_fails_at_setup(make_module, make_trainer) -> None:
    trainer = make_trainer(callbacks=[GoalBrake(overfit_patience=2)], limit_val_batches=0)
    with pytest.raises(ValueError) as info:
        trainer.fit(make_module())
    assert str(info.value) == (
        "GoalBrake(overfit_patience=2) watches the validation loss, but the Trainer has "
        "limit_val_batches=0; set limit_val_batches > 0 or overfit_patience=None"
    )
    assert trainer.global_step == 0
