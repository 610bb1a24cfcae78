"""GoalBrake under DDP: two CPU processes (gloo) brake at the same step and end equal.

The slow test runs this file as a script (``strategy="ddp"`` relaunches the script for rank 1);
each rank saves what it saw, and the test compares. The ranks train on different halves of
the data (Lightning's DistributedSampler), so their batch losses differ: the decision must
come from the smoothed loss averaged over the ranks, the same on both.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch.strategies import SingleDeviceStrategy

from goalbrake.callbacks import GoalBrake

GOAL, HALF_LIFE = 0.3, 3.0


@pytest.mark.slow
def test_ddp_ranks_brake_at_the_same_step_and_end_with_equal_weights(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("LOCAL_RANK", None)
    done = subprocess.run(
        [sys.executable, __file__, str(tmp_path)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]

    # The ranks really saw different losses ...
    assert ranks[0]["losses"] != ranks[1]["losses"]
    # ... yet took one decision, at one step, from the mean over ranks.
    steps = {r["braked_step"] for r in ranks}
    assert len(steps) == 1 and None not in steps
    assert ranks[0]["history"] == ranks[1]["history"] and len(ranks[0]["history"]) == 1
    assert ranks[0]["reference_loss"] == ranks[1]["reference_loss"]
    mean = [(a + b) / 2 for a, b in zip(ranks[0]["losses"], ranks[1]["losses"], strict=True)]
    beta, s, expected = 0.5 ** (1 / HALF_LIFE), None, None
    for t, x in enumerate(mean, 1):
        s = x if s is None else s * beta + (1 - beta) * x
        if s <= GOAL * ranks[0]["reference_loss"]:
            expected = t
            break
    assert steps == {expected}
    assert ranks[0]["friction"] == ranks[1]["friction"] == 0.5 * 50
    for p, q in zip(ranks[0]["params"], ranks[1]["params"], strict=True):
        assert torch.equal(p, q)


class VetoingStrategy(SingleDeviceStrategy):
    """One device, but "the other rank" does not agree to brake before global step ``until``."""

    def __init__(self, until: int) -> None:
        super().__init__(device=torch.device("cpu"))
        self.until = until
        self.asked: list[tuple[bool, bool]] = []

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:
        self.asked.append((decision, all))
        return decision and self.lightning_module.trainer.global_step >= self.until


def test_the_decision_itself_is_reduced_over_ranks(make_module, make_trainer) -> None:
    def fit(**kwargs: Any) -> GoalBrake:
        brake = GoalBrake(goal=GOAL, factor=50.0, half_life=HALF_LIFE)
        make_trainer(callbacks=[brake], max_epochs=4, **kwargs).fit(make_module())
        return brake

    alone = fit().braked_step
    assert alone is not None
    strategy = VetoingStrategy(until=alone + 5)
    brake = fit(strategy=strategy)
    assert brake.braked_step == alone + 5  # this rank reached the goal 5 steps earlier
    assert [d.trigger for d in brake.history] == ["goal"]
    # One question per check until the brake, "any rank" as EarlyStopping asks it.
    assert strategy.asked == [(step >= alone, False) for step in range(1, alone + 6)]


# ------------------------------------------------------------------ the DDP script
def _main(out: Path) -> None:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    torch.set_num_threads(1)

    import conftest as helpers  # this file's directory is sys.path[0]
    import lightning.pytorch as pl

    from goalbrake.app import close_process_group

    class Losses(pl.Callback):
        def __init__(self) -> None:
            self.losses: list[float] = []

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, *_: Any) -> None:
            self.losses.append(float(outputs["loss"]))

    torch.manual_seed(0)
    brake, losses = GoalBrake(goal=GOAL, factor=50.0, half_life=HALF_LIFE), Losses()
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_epochs=6,
        callbacks=[brake, losses],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    module = helpers.build_module()
    trainer.fit(module)
    torch.save(
        {
            "braked_step": brake.braked_step,
            "history": brake.history,
            "reference_loss": brake.reference_loss,
            "losses": losses.losses,
            "friction": trainer.optimizers[0].param_groups[0]["friction"],
            "params": [p.detach().clone() for p in module.parameters()],
        },
        out / f"rank{trainer.global_rank}.pt",
    )
    close_process_group()  # as the goalbrake command does: else gloo may abort at exit


if __name__ == "__main__":
    _main(Path(sys.argv[1]))
