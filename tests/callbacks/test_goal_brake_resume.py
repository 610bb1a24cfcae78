"""Resuming with edited GoalBrake settings: the saved history stays, the new settings apply
on top of it (issue 17). Real fits, real checkpoints."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch

from goalbrake.callbacks import GoalBrake


def fit(make_module, make_trainer, brake: GoalBrake, ckpt: Path | None = None, **kw: Any) -> Any:
    torch.manual_seed(0)
    trainer, module = make_trainer(callbacks=[brake], **kw), make_module()
    if ckpt is None:
        trainer.fit(module)
        return trainer, module
    # Lightning finds no state under the edited key and says so before GoalBrake adopts it.
    with pytest.warns(UserWarning, match=r"^Be aware that when using `ckpt_path`"):
        trainer.fit(module, ckpt_path=ckpt)
    return trainer, module


def checkpoint(make_module, make_trainer, tmp_path: Path, goal: float) -> tuple[GoalBrake, Path]:
    """A run with ``goal`` stopped at step 16 (an epoch boundary), and its checkpoint."""
    brake = GoalBrake(goal=goal, factor=50.0, half_life=3.0)
    trainer, _ = fit(make_module, make_trainer, brake, max_steps=16, max_epochs=-1)
    path = tmp_path / f"goal{goal}.ckpt"
    trainer.save_checkpoint(path)
    return brake, path


def test_an_edited_goal_after_the_brake_neither_remeasures_nor_brakes_again(
    make_module, make_trainer, brake_lines, tmp_path: Path
) -> None:
    first, ckpt = checkpoint(make_module, make_trainer, tmp_path, goal=0.3)
    assert first.braked_step == 13
    brake_lines.clear()

    edited = GoalBrake(goal=0.2, factor=50.0, half_life=3.0)
    trainer, _ = fit(make_module, make_trainer, edited, ckpt, max_epochs=5)
    assert edited.history == []  # no second brake
    assert edited.braked_step == 13 and edited.braked
    assert edited.reference_loss == first.reference_loss  # not measured on trained weights
    assert trainer.optimizers[0].param_groups[0]["friction"] == 25.0  # not 25 * 50
    assert [r.getMessage() for r in brake_lines] == [
        f"GoalBrake: resumed the state of {first.state_key} (L₀ {first.reference_loss:.4g}, "
        f"braked at step 13); {edited.state_key} applies on top of it from step 16"
    ]
    assert [r.levelno for r in brake_lines] == [logging.WARNING]


def test_an_edited_goal_before_the_brake_applies_from_the_saved_history(
    make_module, make_trainer, tmp_path: Path
) -> None:
    first, ckpt = checkpoint(make_module, make_trainer, tmp_path, goal=0.1)  # brakes at 40
    assert first.braked_step is None and first.controller.step == 16
    whole = GoalBrake(goal=0.2, factor=50.0, half_life=3.0)
    fit(make_module, make_trainer, whole, max_epochs=5)

    # 0.2 was reached at step 15, before the checkpoint: the first check after it fires.
    edited = GoalBrake(goal=0.2, factor=50.0, half_life=3.0)
    fit(make_module, make_trainer, edited, ckpt, max_epochs=5)
    assert whole.braked_step == 15 and edited.braked_step == 17
    assert edited.reference_loss == whole.reference_loss == first.reference_loss
    assert edited.history[0].target == pytest.approx(0.2 * first.reference_loss)


def test_several_unclaimed_states_are_refused_in_one_line(
    make_module, make_trainer, tmp_path: Path
) -> None:
    a, b = GoalBrake(goal=0.3), GoalBrake(stages=[(0.9, 3.0), (0.1, 4.0)])
    trainer = make_trainer(callbacks=[a, b], max_steps=8, max_epochs=-1)
    trainer.fit(make_module())
    ckpt = tmp_path / "two.ckpt"
    trainer.save_checkpoint(ckpt)
    edited = GoalBrake(goal=0.2)
    with pytest.raises(ValueError) as info:
        fit(make_module, make_trainer, edited, ckpt, max_epochs=2)
    assert str(info.value) == (
        f"GoalBrake cannot tell which saved state is its own: {edited.state_key} is not in "
        f"the checkpoint, which holds {[a.state_key, b.state_key]}; resume with the settings "
        "of the run that wrote it"
    )
    assert "\n" not in str(info.value)
