"""GoalBrake(at_step=N): the clock trigger in real lightning.pytorch fits (issue 20, arm 7).

The same brake as a goal brake, at a fixed global step: the event trigger's ablation.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing import event_accumulator

from goalbrake.braking import Brake
from goalbrake.callbacks import GoalBrake

FRICTION = 0.5  # conftest's default PHS: lr 0.1, mass 1, friction 0.5


class FrictionProbe(pl.Callback):
    """The friction each optimizer step used, by global step."""

    def __init__(self) -> None:
        self.friction: dict[int, float] = {}

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        self.friction[trainer.global_step] = float(optimizer.param_groups[0]["friction"])


def test_clock_brakes_at_the_exact_step_and_logs_like_a_goal_brake(
    make_module, make_trainer, read_csv_metrics, brake_lines, tmp_path: Path
) -> None:
    brake, friction = GoalBrake(at_step=13, factor=20.0), FrictionProbe()
    tb = TensorBoardLogger(str(tmp_path), name="tb")
    trainer = make_trainer(callbacks=[brake, friction], max_epochs=3)
    trainer.loggers = [trainer.logger, tb]
    trainer.fit(make_module())

    assert brake.braked_step == 13 and brake.braked and brake.reference_loss is None
    [decision] = brake.history
    assert isinstance(decision, Brake)
    assert (decision.step, decision.trigger, decision.factor, decision.target) == (
        13, "step", 20.0, None,
    )  # fmt: skip
    assert friction.friction == {t: FRICTION if t < 13 else 10.0 for t in range(24)}
    line = "GoalBrake: braked at step 13 (step 13 >= at_step 13), friction x20"
    assert [r.getMessage() for r in brake_lines] == [line]

    m = read_csv_metrics(trainer)  # Lightning writes step t's metrics at row t - 1
    assert "brake/goal_loss" not in m
    assert min(s for s, v in m["brake/braked"].items() if v == 1.0) == 12
    assert m["brake/friction"][11] == FRICTION and m["brake/friction"][12] == 10.0
    assert set(m["brake/smoothed_loss"]) == set(range(24))
    events = event_accumulator.EventAccumulator(tb.log_dir, size_guidance={"tensors": 0})
    events.Reload()
    [text] = events.Tensors("brake/events/text_summary")
    assert text.step == 13 and line in text.tensor_proto.string_val[0].decode()


def test_clock_at_a_goal_brakes_step_trains_exactly_like_the_goal_brake(
    make_module, make_trainer
) -> None:
    modules, brakes = [], []
    for make in (lambda: GoalBrake(goal=0.3, factor=50.0, half_life=3.0), None):
        brake = make() if make else GoalBrake(at_step=brakes[0].braked_step, factor=50.0)
        torch.manual_seed(0)
        modules.append(make_module(shuffle=True))
        make_trainer(callbacks=[brake], max_epochs=4).fit(modules[-1])
        brakes.append(brake)
    goal, clock = brakes
    assert goal.braked_step is not None and clock.braked_step == goal.braked_step
    assert [d.trigger for d in goal.history + clock.history] == ["goal", "step"]
    for p, q in zip(*(m.parameters() for m in modules), strict=True):
        assert torch.equal(p, q)


def test_at_step_is_an_init_arg_from_the_command_line(make_module, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["goalbrake"])
    module_class = type(make_module())
    cli = LightningCLI(
        module_class,
        run=False,
        save_config_callback=None,
        args=[
            "--seed_everything=0",
            "--trainer.accelerator=cpu",
            "--trainer.max_epochs=2",
            "--trainer.logger=false",
            "--trainer.enable_checkpointing=false",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
            "--trainer.callbacks+=goalbrake.callbacks.GoalBrake",
            "--trainer.callbacks.init_args.at_step=5",
            "--trainer.callbacks.init_args.factor=4",
        ],
    )
    [brake] = [c for c in cli.trainer.callbacks if isinstance(c, GoalBrake)]
    assert (brake.at_step, brake.stages) == (5, ((None, 4.0),))
    cli.trainer.fit(cli.model)
    assert brake.braked_step == 5
    assert cli.trainer.optimizers[0].param_groups[0]["friction"] == FRICTION * 4


def test_clock_state_survives_a_checkpoint(make_module, make_trainer, tmp_path: Path) -> None:
    brake = GoalBrake(at_step=5, factor=4.0)
    assert brake.state_key == "GoalBrake{'at_step': 5, 'factor': 4.0}"
    trainer = make_trainer(callbacks=[brake], max_steps=8, max_epochs=-1)
    trainer.fit(make_module())
    ckpt = tmp_path / "clock.ckpt"
    trainer.save_checkpoint(ckpt)
    assert torch.load(ckpt, weights_only=False)["callbacks"][brake.state_key]["at_step"] == 5

    resumed = GoalBrake(at_step=5, factor=4.0)
    make_trainer(callbacks=[resumed], max_epochs=2).fit(make_module(), ckpt_path=ckpt)
    assert resumed.history == [] and resumed.braked_step == 5 and resumed.braked
