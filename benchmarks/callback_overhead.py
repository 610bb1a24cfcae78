"""Benchmark: the per-step cost of GoalBrake (and EnergyMonitor) in a real Lightning fit.

Not a test. Trains the paper's LeNet-sized net (two 5x5 convolutions, one 2x2 pooling, two
linear layers: 43,982 weights, defined here) on random 28x28 images with a
``goalbrake.PHS`` in a ``lightning.pytorch`` Trainer, with and without the callbacks, in one
process:

- ``baseline``: no callback of goalbrake's;
- ``goalbrake``: ``GoalBrake(goal=0.5)`` (it brakes during the run, so steps before and
  after the brake are both timed), logging its four ``brake/*`` metrics at the Trainer's
  logging steps (``log_every_n_steps=50``);
- ``goalbrake-nolog``: the same with ``log=False`` (the decision logic alone);
- ``energy`` and ``goalbrake+energy``: with ``goalbrake.EnergyMonitor``, when it exists.

Method: every configuration is one fresh Trainer fit of ``--steps`` steps; a timing callback
(present in every configuration) stamps the clock at each ``on_train_batch_start``, and a
fit's step time is the mean interval over the steps after ``--warmup`` (so L₀'s measurement
at the start of training, a one-off, is not in it; it is reported separately). The clock is
the main thread's CPU time by default (``--clock thread``, with ``--threads 1`` so that all
of torch's work runs on that thread): on a shared machine other processes then cost
nothing, while wall time (``--clock wall``) counts them. The configurations run
interleaved, ``--repeats`` rounds in a rotating order; the table reports the median over
rounds of each configuration's step time and of its ratio to the baseline of the same
round, with the interquartile range of the ratios, and the share of the step spent inside
GoalBrake's ``on_train_batch_end`` (the decision logic and its ``pl_module.log`` calls).
Target: GoalBrake's overhead ≤ 3% on CPU.

Usage::

    python benchmarks/callback_overhead.py
    python benchmarks/callback_overhead.py --steps 300 --repeats 9 --clock wall --threads 2
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import time
import warnings
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

import goalbrake
from goalbrake import PHS
from goalbrake.callbacks import GoalBrake

try:
    from goalbrake.callbacks import EnergyMonitor
except ImportError:  # pragma: no cover - written by another engineer
    EnergyMonitor = None


class LeNet(nn.Module):
    """conv 1→6 (5x5), conv 6→16 (5x5), 2x2 max pooling, fc 1024→40, fc 40→10."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 8 * 8, 40)
        self.fc2 = nn.Linear(40, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(self.conv1(x))  # 28 -> 24
        x = torch.max_pool2d(x, 2)  # 24 -> 12
        x = torch.relu(self.conv2(x))  # 12 -> 8
        x = torch.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


class Classifier(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = LeNet()

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return PHS(self.parameters(), lr=0.1, mass=10.0, friction=0.1)


CLOCKS = {"thread": time.thread_time, "wall": time.perf_counter}
clock = time.thread_time


class StepTimer(pl.Callback):
    """Stamps every training batch start; the one-off L₀ measurement is timed apart."""

    def __init__(self) -> None:
        self.stamps: list[float] = []
        self.train_start = 0.0

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.train_start = clock()

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, idx: int) -> None:
        self.stamps.append(clock())


class TimedGoalBrake(GoalBrake):
    """GoalBrake that adds up the time spent in its per-step hook."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hook_times: list[float] = []

    def on_train_batch_end(self, *args: Any) -> None:
        start = clock()
        super().on_train_batch_end(*args)
        self.hook_times.append(clock() - start)


def make_loader(batch_size: int, steps: int) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    n = batch_size * steps
    x = torch.randn(n, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=False)


def callbacks_for(name: str) -> list[pl.Callback]:
    out: list[pl.Callback] = []
    if "goalbrake" in name:
        out.append(TimedGoalBrake(goal=0.5, factor=50.0, log=not name.endswith("nolog")))
    if "energy" in name:
        out.append(EnergyMonitor())
    return out


def fit_once(name: str, loader: DataLoader, steps: int, warmup: int) -> tuple[float, float, float]:
    """(mean step time, time from on_train_start to the first batch, GoalBrake hook time)."""
    torch.manual_seed(0)
    timer = StepTimer()
    extra = callbacks_for(name)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=steps,
        logger=pl.loggers.CSVLogger("/tmp/goalbrake-bench", name=name),
        log_every_n_steps=50,
        callbacks=[timer, *extra],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    trainer.fit(Classifier(), loader)
    stamps = timer.stamps[warmup:]
    step = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
    hooks = [h for cb in extra for h in getattr(cb, "hook_times", [])][
        warmup : len(timer.stamps) - 1
    ]
    hook = statistics.fmean(hooks) if hooks else 0.0
    return step, timer.stamps[0] - timer.train_start, hook


def quartiles(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return q[0], q[2]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="thread")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    global clock
    clock = CLOCKS[args.clock]
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("goalbrake").setLevel(logging.WARNING)

    names = ["baseline", "goalbrake", "goalbrake-nolog"]
    if EnergyMonitor is not None:
        names += ["energy", "goalbrake+energy"]
    loader = make_loader(args.batch_size, args.steps)
    fit_once("baseline", loader, min(args.steps, 40), 5)  # warm-up: imports, allocator
    times: dict[str, list[float]] = {n: [] for n in names}
    starts: dict[str, list[float]] = {n: [] for n in names}
    ratios: dict[str, list[float]] = {n: [] for n in names}
    hooks: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        round_times = {}
        for name in order:
            step, start, hook = fit_once(name, loader, args.steps, args.warmup)
            round_times[name] = step
            hooks[name].append(hook / step)
            times[name].append(step)
            starts[name].append(start)
        for name in names:
            ratios[name].append(round_times[name] / round_times["baseline"])

    print(
        f"goalbrake {goalbrake.__version__}, torch {torch.__version__}, lightning "
        f"{pl.__version__}, Python {platform.python_version()}, {platform.machine()} "
        f"({platform.processor() or 'cpu'}), {args.threads} threads"
    )
    print(
        f"LeNet (43,982 weights), batch {args.batch_size}, {args.steps} steps per fit "
        f"(mean of the steps after {args.warmup}), {args.repeats} interleaved rounds, "
        f"{args.clock} clock\n"
    )
    print(
        f"{'configuration':<18} {'step ms':>8} {'ratio':>7} {'IQR':>17} "
        f"{'in GoalBrake':>12} {'to 1st batch ms':>16}"
    )
    for name in names:
        lo, hi = quartiles(ratios[name])
        print(
            f"{name:<18} {1e3 * statistics.median(times[name]):8.3f} "
            f"{statistics.median(ratios[name]):7.4f} [{lo:.4f}, {hi:.4f}] "
            f"{100 * statistics.median(hooks[name]):11.2f}% "
            f"{1e3 * statistics.median(starts[name]):16.1f}"
        )


if __name__ == "__main__":
    main()
