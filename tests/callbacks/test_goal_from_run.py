"""GoalBrake(goal_from=<earlier run>): the goal is the ratio L/L₀ an earlier run reached
(issue 19, fit level). The earlier runs are real fits; their logs and checkpoints are read
back."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from tensorboard.backend.event_processing import event_accumulator
from torch.utils.tensorboard import SummaryWriter

from goalbrake.callbacks import GoalBrake, HParamsLogger
from goalbrake.callbacks.goal_from_run import goal_from_run, read_earlier_run
from tests.callbacks.test_hparams import read_hparams


@pytest.fixture
def earlier(make_module, make_trainer, tmp_path: Path) -> dict[str, Any]:
    """A 3-epoch run that never brakes, logged to CSV and TensorBoard, and its checkpoint."""
    brake = GoalBrake(goal=1e-6, half_life=3.0)
    csv_logger = CSVLogger(str(tmp_path), name="csv")
    tb_logger = TensorBoardLogger(str(tmp_path), name="tb")
    trainer = make_trainer(callbacks=[brake], logger=[csv_logger, tb_logger], max_epochs=3)
    trainer.fit(make_module())
    trainer.save_checkpoint(tmp_path / "end.ckpt")
    with open(Path(csv_logger.log_dir) / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["brake/smoothed_loss"]]
    return {
        "csv": csv_logger.log_dir,
        "tensorboard": tb_logger.log_dir,
        "checkpoint": str(tmp_path / "end.ckpt"),
        "rows": rows,
        "final": float(brake.controller.smoothed()) / brake.reference_loss,
    }


def test_every_source_gives_the_ratio_the_run_ended_with(earlier: dict[str, Any]) -> None:
    assert len(earlier["rows"]) == 24 and 0 < earlier["final"] < 1
    for kind, rel in (("csv", 1e-6), ("tensorboard", 1e-6), ("checkpoint", 1e-9)):
        run = read_earlier_run(earlier[kind])
        assert run.kind == kind
        assert run.ratio_at(1.0)[1] == pytest.approx(earlier["final"], rel=rel), kind
    goal, where = goal_from_run(earlier["csv"], margin=1.5)
    assert goal == pytest.approx(1.5 * earlier["final"])
    assert where == f"L/L₀ {earlier['final']:.4g} at step 23 of {earlier['csv']} × margin 1.5"


def test_goal_at_reads_the_ratio_part_way_through(earlier: dict[str, Any]) -> None:
    row = next(r for r in earlier["rows"] if r["step"] == "11")  # the last step <= 0.5 × 23
    expected = float(row["brake/smoothed_loss"]) / float(row["brake/reference_loss"])
    goal, where = goal_from_run(earlier["tensorboard"], at=0.5)
    assert goal == pytest.approx(expected, rel=1e-6) and " at step 11 of " in where


def test_a_run_with_goal_from_brakes_at_that_goal_and_says_where_it_came_from(
    earlier: dict[str, Any], make_module, make_trainer, brake_lines
) -> None:
    brake = GoalBrake(goal_from=earlier["checkpoint"], goal_margin=1.2, half_life=3.0)
    assert brake.stages == ((pytest.approx(1.2 * earlier["final"]), 50.0),)
    assert brake.goal_source.startswith(f"L/L₀ {earlier['final']:.4g} at step 24 of ")
    torch.manual_seed(0)
    make_trainer(callbacks=[brake], max_epochs=3).fit(make_module())
    assert brake.braked_step is not None  # the loss reaches 1.2 × the earlier final ratio
    lines = [r.getMessage() for r in brake_lines]
    assert lines[0] == f"GoalBrake: goal {brake.stages[0][0]:.4g} from {brake.goal_source}"
    reduction = GoalBrake(goal_from=earlier["csv"], mode="reduction")
    assert reduction.stages[0][0] == pytest.approx(1 - earlier["final"])


def brake_texts(log_dir: str | Path) -> list[tuple[int, str]]:
    """(step, text) of every ``brake/events`` text in a TensorBoard run folder."""
    events = event_accumulator.EventAccumulator(str(log_dir), size_guidance={"tensors": 0})
    events.Reload()
    if "brake/events/text_summary" not in events.Tags()["tensors"]:
        return []
    return [
        (e.step, e.tensor_proto.string_val[0].decode())
        for e in events.Tensors("brake/events/text_summary")
    ]


def test_the_run_logs_its_goal_and_where_it_came_from_as_hparams_and_text(
    earlier: dict[str, Any], make_module, make_trainer, tmp_path: Path
) -> None:
    brake = GoalBrake(goal_from=earlier["csv"], goal_margin=1.2, half_life=3.0)
    tb = TensorBoardLogger(str(tmp_path), name="later", default_hp_metric=False)
    torch.manual_seed(0)
    make_trainer(callbacks=[brake, HParamsLogger()], logger=tb, max_epochs=2).fit(make_module())
    where = f"L/L₀ {earlier['final']:.4g} at step 23 of {earlier['csv']} × margin 1.2"
    assert brake.goal_source == where
    params, _, _ = read_hparams(tb.log_dir)
    assert params["goal_source"] == where
    assert params["goal"] == pytest.approx(1.2 * earlier["final"], rel=1e-6)
    assert params["mode"] == "remaining"
    texts = brake_texts(tb.log_dir)
    assert texts[0] == (0, f"GoalBrake: goal {brake.stages[0][0]:.4g} from {where}")
    assert brake.braked_step is not None and texts[1][0] == brake.braked_step


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_bad_input_fails_in_one_line_before_any_work(earlier: dict[str, Any], tmp_path) -> None:
    no_l0 = write_csv(tmp_path / "no_l0.csv", [{"step": "0", "brake/smoothed_loss": "1.0"}])
    ended_high = write_csv(
        tmp_path / "high.csv",
        [{"step": "0", "brake/smoothed_loss": "0.9", "brake/reference_loss": "1.0"}],
    )
    no_smoothed = write_csv(tmp_path / "no_smoothed.csv", [{"step": "0", "train/loss": "1.0"}])
    zero = write_csv(
        tmp_path / "zero.csv",
        [{"step": "0", "brake/smoothed_loss": "0.0", "brake/reference_loss": "1.0"}],
    )
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    no_brake = tmp_path / "no_brake.ckpt"
    torch.save({"state_dict": {}, "callbacks": {"ModelCheckpoint{}": {}}}, no_brake)
    tb_without = tmp_path / "tb_without"
    with SummaryWriter(str(tb_without)) as writer:  # a run that logged no brake/* scalars
        writer.add_scalar("train/loss", 1.0, 0)
    cases = [
        (
            dict(goal_from=str(tmp_path / "missing")),
            f"Invalid goal_from value: '{tmp_path / 'missing'}' (must be a metrics.csv, a folder "
            "holding one, a TensorBoard run folder or a .ckpt)",
        ),
        (
            dict(goal_from=str(no_l0)),
            f"Invalid goal_from value: '{no_l0}' (no brake/reference_loss logged: a GoalBrake "
            "run with log=True writes them)",
        ),
        (
            dict(goal_from=str(ended_high), goal_margin=1.2),
            f"Invalid goal_from value: '{ended_high}' (the rule gives the goal 1.08 (L/L₀ 0.9 "
            f"at step 0 of {ended_high} × margin 1.2), which must be in (0, 1): lower "
            "goal_margin)",
        ),
        (
            dict(goal_from=str(no_smoothed)),
            f"Invalid goal_from value: '{no_smoothed}' (no brake/smoothed_loss and no "
            "brake/reference_loss logged: a GoalBrake run with log=True writes them)",
        ),
        (
            dict(goal_from=str(tb_without)),
            f"Invalid goal_from value: '{tb_without}' (no brake/smoothed_loss and no "
            "brake/reference_loss logged: a GoalBrake run with log=True writes them)",
        ),
        (
            dict(goal_from=str(no_brake)),
            f"Invalid goal_from value: '{no_brake}' (0 GoalBrake states in the checkpoint "
            "(must be one))",
        ),
        (
            dict(goal_from=str(zero)),
            f"Invalid goal_from value: '{zero}' (the rule gives the goal 0 (L/L₀ 0 at step 0 "
            f"of {zero} × margin 1), which must be in (0, 1): the run's loss is not positive)",
        ),
        (
            dict(goal_from=str(junk)),
            f"Invalid goal_from value: '{junk}' (not a readable checkpoint: UnpicklingError)",
        ),
        (
            dict(goal_from=earlier["checkpoint"], goal_at=0.5),
            "Invalid goal_at value: 0.5 with a checkpoint (it holds the end of its run only: "
            "goal_at=1, or a metrics.csv or TensorBoard folder of the run)",
        ),
        (
            dict(goal_from=earlier["csv"], goal_at=0.0),
            "Invalid goal_at value: 0.0 (must be in (0, 1])",
        ),
        (
            dict(goal_from=earlier["csv"], goal_at=1.5),
            "Invalid goal_at value: 1.5 (must be in (0, 1])",
        ),
        (
            dict(goal_from=earlier["csv"], goal_margin=0.9),
            "Invalid goal_margin value: 0.9 (must be >= 1)",
        ),
        (
            dict(goal_from=earlier["csv"], goal_margin=math.inf),
            "Invalid goal_margin value: inf (must be >= 1)",
        ),
        (
            dict(goal_margin=1.1),
            "Invalid goal_margin value: 1.1 without goal_from (it shapes the goal taken from "
            "an earlier run; pass goal_from=<run> or drop it)",
        ),
        (
            dict(goal_at=0.5),
            "Invalid goal_at value: 0.5 without goal_from (it shapes the goal taken from "
            "an earlier run; pass goal_from=<run> or drop it)",
        ),
        (
            dict(goal_from=earlier["csv"], stages=[(0.5, 10.0)]),
            f"Invalid goal_from value: '{earlier['csv']}' with stages=[(0.5, 10.0)] (the goal "
            "comes from the earlier run; pass either goal_from or goal/stages/at_step)",
        ),
        (
            dict(goal_from=earlier["csv"], at_step=5),
            f"Invalid goal_from value: '{earlier['csv']}' with at_step=5 (the goal comes from "
            "the earlier run; pass either goal_from or goal/stages/at_step)",
        ),
        (
            dict(goal_from=earlier["csv"], goal=0.2),
            f"Invalid goal_from value: '{earlier['csv']}' with goal=0.2 (the goal comes from "
            "the earlier run; pass either goal_from or goal/stages/at_step)",
        ),
        (
            dict(goal_from=earlier["csv"], mode="absolute"),
            f"Invalid goal_from value: '{earlier['csv']}' with mode 'absolute' (the earlier "
            "run gives a fraction of L₀; use mode='remaining' or 'reduction')",
        ),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError) as info:
            GoalBrake(**kwargs)
        assert str(info.value) == message, kwargs
