"""The goal from an earlier run: "the reduction of the loss obtained in previous trials".

An earlier GoalBrake run logged its smoothed loss L and its reference loss L₀
(``brake/smoothed_loss``, ``brake/reference_loss``). :func:`goal_from_run` reads the ratio
L/L₀ that run reached at a fraction ``at`` of its steps (1: its end) and turns it into a
goal, ratio × ``margin`` (margin ≥ 1: brake a little before the loss the earlier run
reached). The earlier run is

* a CSVLogger's ``metrics.csv``, or a folder holding one;
* a TensorBoard run folder (the ``events.out.tfevents.*`` files of one run);
* a Lightning checkpoint (``.ckpt``) with a GoalBrake state: its end only (``at=1``).

Every bad input fails here, in one line, before any training. This file imports no
Lightning. See docs/braking.md, "The goal from an earlier run".
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from tensorboard.backend.event_processing import event_accumulator

from goalbrake.braking.smoothing import make_smoother

__all__ = ["EarlierRun", "goal_from_run", "read_earlier_run"]

SMOOTHED, REFERENCE = "brake/smoothed_loss", "brake/reference_loss"


@dataclass(frozen=True)
class EarlierRun:
    """The L/L₀ ratios an earlier run logged, by step, and where they came from."""

    source: str
    kind: str  # "csv", "tensorboard" or "checkpoint"
    ratios: dict[int, float]

    def ratio_at(self, at: float) -> tuple[int, float]:
        """(step, L/L₀) at the last logged step <= ``at`` × the last step."""
        last = max(self.ratios)
        step = max(s for s in self.ratios if s <= at * last or s == min(self.ratios))
        return step, self.ratios[step]


def _error(path: str | Path, why: str) -> ValueError:
    return ValueError(f"Invalid goal_from value: {str(path)!r} ({why})")


def _ratios(
    path: str | Path, smoothed: dict[int, float], reference: dict[int, float]
) -> dict[int, float]:
    if not smoothed or not reference:
        missing = [name for name, s in ((SMOOTHED, smoothed), (REFERENCE, reference)) if not s]
        raise _error(
            path, f"no {' and no '.join(missing)} logged: a GoalBrake run with log=True writes them"
        )
    l0 = next(iter(reference.values()))
    return {step: value / l0 for step, value in sorted(smoothed.items())}


def _read_csv(path: Path) -> dict[int, float]:
    smoothed: dict[int, float] = {}
    reference: dict[int, float] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            for name, out in ((SMOOTHED, smoothed), (REFERENCE, reference)):
                if row.get(name):
                    out[int(row["step"])] = float(row[name])
    return _ratios(path, smoothed, reference)


def _read_tensorboard(path: Path) -> dict[int, float]:
    events = event_accumulator.EventAccumulator(str(path), size_guidance={"scalars": 0})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    series = [
        {e.step: e.value for e in events.Scalars(tag)} if tag in tags else {}
        for tag in (SMOOTHED, REFERENCE)
    ]
    return _ratios(path, *series)


def _read_checkpoint(path: Path) -> dict[int, float]:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated file, or not a checkpoint at all
        raise _error(path, f"not a readable checkpoint: {type(err).__name__}") from None
    states = [
        state
        for key, state in (checkpoint.get("callbacks") or {}).items()
        if str(key).startswith("GoalBrake{")
    ]
    if len(states) != 1:
        raise _error(path, f"{len(states)} GoalBrake states in the checkpoint (must be one)")
    state = states[0]
    window = len(state.get("window") or ()) or 1
    smoother = make_smoother(state["smoothing"], half_life=1.0, window=window)
    smoother.load_state_dict(state)
    value, l0 = smoother.value(), state.get("reference_loss")
    smoothed = {} if value is None else {int(state["step"]): float(value)}
    return _ratios(path, smoothed, {} if l0 is None else {0: float(l0)})


def read_earlier_run(path: str | Path) -> EarlierRun:
    """The ratios L/L₀ an earlier run logged (see the module docstring for the sources).

    Raises:
        ValueError: no such file or folder, or it holds no smoothed loss and L₀.
    """
    p = Path(path)
    if p.is_dir() and (p / "metrics.csv").is_file():
        return EarlierRun(str(p), "csv", _read_csv(p / "metrics.csv"))
    if p.is_dir() and any(p.glob("events.out.tfevents.*")):
        return EarlierRun(str(p), "tensorboard", _read_tensorboard(p))
    if p.is_file() and p.suffix == ".csv":
        return EarlierRun(str(p), "csv", _read_csv(p))
    if p.is_file() and p.suffix == ".ckpt":
        return EarlierRun(str(p), "checkpoint", _read_checkpoint(p))
    raise _error(
        path,
        "must be a metrics.csv, a folder holding one, a TensorBoard run folder or a .ckpt",
    )


def goal_from_run(path: str | Path, *, at: float = 1.0, margin: float = 1.0) -> tuple[float, str]:
    """``(goal, where it came from)``: L/L₀ of the earlier run at ``at`` of its steps × margin.

    The goal is a remaining fraction of L₀ (``mode="remaining"``).

    Raises:
        ValueError: ``at`` not in (0, 1] (a checkpoint: not 1), ``margin`` not >= 1, the
            earlier run unreadable, or a goal not in (0, 1) (>= 1 would brake at once).

    Example::

        goal, where = goal_from_run("runs/fashionmnist_goal/version_0", margin=1.1)
    """
    if not (isinstance(at, (int, float)) and 0 < at <= 1):
        raise ValueError(f"Invalid goal_at value: {at!r} (must be in (0, 1])")
    if not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin >= 1):
        raise ValueError(f"Invalid goal_margin value: {margin!r} (must be >= 1)")
    run = read_earlier_run(path)
    if run.kind == "checkpoint" and at != 1:
        raise ValueError(
            f"Invalid goal_at value: {at!r} with a checkpoint (it holds the end of its run "
            "only: goal_at=1, or a metrics.csv or TensorBoard folder of the run)"
        )
    step, ratio = run.ratio_at(at)
    goal = ratio * margin
    where = f"L/L₀ {ratio:.4g} at step {step} of {run.source} × margin {margin:g}"
    if not 0 < goal < 1:
        raise _error(
            path,
            f"the rule gives the goal {goal:.4g} ({where}), which must be in (0, 1): "
            + ("lower goal_margin" if goal >= 1 else "the run's loss is not positive"),
        )
    return goal, where
