"""Benchmark: one LeNet epoch on FashionMNIST, three ways, in one process.

Not a test. Times one training epoch (60,000 images, batch 64, PHS conformal with the
paper's FashionMNIST settings, no validation) of goalbrake's ``LeNet`` three ways:

1. ``floor``: a hand-written PyTorch loop over pre-loaded, pre-normalized tensors
   (``randperm`` indices, forward, backward, ``step``): nothing but the training math.
2. ``goalbrake``: ``Trainer.fit`` of ``ImageClassifier`` on ``FashionMNISTDataModule``
   with the default device-resident tensor loader, with ``GoalBrake`` and
   ``EnergyMonitor`` and a TensorBoard logger, as ``configs/fashionmnist/goal.yaml`` runs.
3. ``dataloader``: the same ``Trainer.fit`` and callbacks over torchvision's
   ``FashionMNIST`` dataset (``ToTensor`` + ``Normalize`` per sample) and a standard
   ``DataLoader(shuffle=True, num_workers=0)``: what users write today.

Informative extra rows split the difference between ``floor`` and ``goalbrake``:
``lightning bare`` (the tensor loader and a LightningModule whose ``training_step`` only
returns the loss: Lightning's own cost per step), ``lightning+tensor`` (``ImageClassifier``
as shipped: a torchmetrics accuracy update every step, the loss logged on the steps the
logger writes; no callbacks, no logger), ``bare+log`` (``lightning bare`` plus a
``self.log`` of the loss on every step, what ``ImageClassifier`` did before),
``bare+metric`` (``lightning bare`` plus the accuracy update), and the time to iterate
each loader alone, without training. The last lines give each part's cost per step: the
median over the rounds of two rows' CPU difference, over the steps.

Each variant's time is the epoch alone (``on_train_epoch_start`` to
``on_train_epoch_end``; for the floor, the loop), not the set-up, measured twice: wall
time and this process's CPU time (``time.process_time``). All work of these variants
runs in this process (no DataLoader workers), so on a machine shared with other jobs the
CPU time with one thread (``--threads 1``, the default) is the steadier measure of the
work done, while the wall time also counts the waits for a core. Every variant runs
``--repeats`` times, in rotated order each round, after an untimed 20-batch run of each;
the table shows minima and medians, and the ratios (CPU time) are taken within each round (each
variant over the same round's floor) and reported as their median and interquartile range
over the rounds: a CPU whose speed drifts over the minutes of a run (a boost after idle, a
neighbour on a shared host) moves a round's variants together.

Data: the real FashionMNIST from Debian's ``dataset-fashion-mnist`` when
``/usr/share/datasets/fashion-mnist`` exists, else 60,000 fake images written by
``goalbrake.data.fake`` in the same format. Nothing is downloaded.

Usage::

    python benchmarks/epoch_time.py                  # 2 repeats, 1 thread
    python benchmarks/epoch_time.py --repeats 3 --threads 2
    python benchmarks/epoch_time.py --batches 100    # a quick partial epoch
"""

from __future__ import annotations

import argparse
import gzip
import logging
import platform
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

import lightning.pytorch as pl
import torch
import torchvision
from torch.nn import functional as F
from torchmetrics.classification import MulticlassAccuracy
from torchvision import transforms

from goalbrake.callbacks import EnergyMonitor, GoalBrake
from goalbrake.data import FashionMNISTDataModule
from goalbrake.data.fake import write_fashion_mnist
from goalbrake.models import LeNet
from goalbrake.module import ImageClassifier
from goalbrake.optim import PHS

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
BATCH = 64
Timing = tuple[float, float]  # (wall seconds, CPU seconds)
PHS_ARGS = dict(lr=0.1, mass=10.0, friction=0.1, scheme="conformal", friction_on="velocity")


# ----------------------------------------------------------------------------- data
def prepare_data(workdir: Path) -> tuple[Path, Path, str]:
    """(data_dir for goalbrake, root for torchvision, description)."""
    root = workdir / "torchvision"
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    if DEBIAN.is_dir():
        # torchvision reads only uncompressed files from root/FashionMNIST/raw.
        for gz in DEBIAN.glob("*-ubyte.gz"):
            with gzip.open(gz) as src, (raw / gz.stem).open("wb") as dst:
                shutil.copyfileobj(src, dst)
        return DEBIAN, root, f"real FashionMNIST ({DEBIAN})"
    write_fashion_mnist(root, n_train=60_000, n_test=10_000, layout="torchvision", compress=False)
    return root, root, "fake FashionMNIST, 60,000 images (goalbrake.data.fake)"


# ------------------------------------------------------------------------- variants
def _now() -> Timing:
    return time.perf_counter(), time.process_time()


def _since(start: Timing) -> Timing:
    wall, cpu = _now()
    return wall - start[0], cpu - start[1]


class EpochTimer(pl.Callback):
    reads_loss_between_logs = False  # it reads the clock only

    def __init__(self) -> None:
        self.timing: Timing | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = _now()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.timing = _since(self._start)


BATCHES: int | None = None  # --batches: a partial epoch


def floor(data_dir: Path, root: Path, workdir: Path) -> Timing:
    dm = FashionMNISTDataModule(data_dir=str(data_dir), val_size=0)
    dm.setup("fit")
    images, labels = dm._splits["train"]
    x = (images.float() / 255 - dm.mean[0]) / dm.std[0]
    model = LeNet()
    opt = PHS(model.parameters(), **PHS_ARGS)
    model.train()
    start = _now()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    stop = len(labels) if BATCHES is None else BATCHES * BATCH
    for i in range(0, stop, BATCH):
        index = order[i : i + BATCH]
        loss = F.cross_entropy(model(x[index]), labels[index])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return _since(start)


def _classifier() -> pl.LightningModule:
    return ImageClassifier(LeNet(), optimizer=partial(PHS, **PHS_ARGS))


def _fit(model: pl.LightningModule, workdir: Path, callbacks: list, logger: bool, **data) -> Timing:
    timer = EpochTimer()
    trainer_logger: pl.loggers.Logger | bool = False
    if logger:
        trainer_logger = pl.loggers.TensorBoardLogger(workdir / "runs", default_hp_metric=False)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=trainer_logger,
        log_every_n_steps=50,
        callbacks=[*callbacks, timer],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        limit_train_batches=BATCHES,
    )
    trainer.fit(model, **data)
    assert timer.timing is not None
    return timer.timing


class _Bare(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = LeNet()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        return F.cross_entropy(self.backbone(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return PHS(self.parameters(), **PHS_ARGS)


class _BareLog(_Bare):
    """``_Bare`` plus ImageClassifier's per-step ``self.log`` of the loss."""

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        loss = super().training_step(batch, batch_idx)
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True)
        return loss


class _BareMetric(_Bare):
    """``_Bare`` plus ImageClassifier's per-step torchmetrics accuracy update."""

    def __init__(self) -> None:
        super().__init__()
        self.train_acc = MulticlassAccuracy(10, average="micro")

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        logits = self.backbone(x)
        self.train_acc.update(logits.detach(), y)
        return F.cross_entropy(logits, y)

    def on_train_epoch_end(self) -> None:
        self.log("train/acc", self.train_acc.compute())
        self.train_acc.reset()


def lightning_bare(data_dir: Path, root: Path, workdir: Path) -> Timing:
    dm = FashionMNISTDataModule(data_dir=str(data_dir), val_size=0, batch_size=BATCH)
    return _fit(_Bare(), workdir, [], False, datamodule=dm)


def lightning_log(data_dir: Path, root: Path, workdir: Path) -> Timing:
    dm = FashionMNISTDataModule(data_dir=str(data_dir), val_size=0, batch_size=BATCH)
    return _fit(_BareLog(), workdir, [], False, datamodule=dm)


def lightning_metric(data_dir: Path, root: Path, workdir: Path) -> Timing:
    dm = FashionMNISTDataModule(data_dir=str(data_dir), val_size=0, batch_size=BATCH)
    return _fit(_BareMetric(), workdir, [], False, datamodule=dm)


def _goalbrake_callbacks() -> list:
    return [GoalBrake(goal=0.15, factor=50.0, mode="remaining"), EnergyMonitor()]


def goalbrake_fit(data_dir: Path, root: Path, workdir: Path) -> Timing:
    dm = FashionMNISTDataModule(data_dir=str(data_dir), val_size=0, batch_size=BATCH)
    return _fit(_classifier(), workdir, _goalbrake_callbacks(), True, datamodule=dm)


def lightning_tensor(data_dir: Path, root: Path, workdir: Path) -> Timing:
    dm = FashionMNISTDataModule(data_dir=str(data_dir), val_size=0, batch_size=BATCH)
    return _fit(_classifier(), workdir, [], False, datamodule=dm)


def _torchvision_loader(root: Path) -> torch.utils.data.DataLoader:

    transform = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.2860406,), (0.3530242,))]
    )
    dataset = torchvision.datasets.FashionMNIST(str(root), train=True, transform=transform)
    return torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=0)


def dataloader_fit(data_dir: Path, root: Path, workdir: Path) -> Timing:
    loader = _torchvision_loader(root)
    return _fit(_classifier(), workdir, _goalbrake_callbacks(), True, train_dataloaders=loader)


def loader_only(data_dir: Path, root: Path) -> tuple[Timing, Timing]:
    dm = FashionMNISTDataModule(data_dir=str(data_dir), val_size=0, batch_size=BATCH)
    dm.setup("fit")
    timings = []
    for loader in (dm.train_dataloader(), _torchvision_loader(root)):
        start = _now()
        for _ in loader:
            pass
        timings.append(_since(start))
    return timings[0], timings[1]


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> None:
    global BATCHES
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", type=int, default=None, help="a partial epoch")
    args = parser.parse_args(argv)
    BATCHES = args.batches
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)  # Lightning's set-up advice
    warnings.filterwarnings("ignore", category=FutureWarning)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    variants: dict[str, Callable[[Path, Path, Path], Timing]] = {
        "floor": floor,
        "goalbrake": goalbrake_fit,
        "dataloader": dataloader_fit,
        "lightning bare": lightning_bare,
        "lightning+tensor": lightning_tensor,
        "bare+log": lightning_log,
        "bare+metric": lightning_metric,
    }
    times: dict[str, list[Timing]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        data_dir, root, description = prepare_data(workdir)
        callbacks = ", ".join(type(c).__name__ for c in _goalbrake_callbacks()) or "none"
        print(f"data: {description}; goalbrake callbacks: {callbacks}")
        print(
            f"torch {torch.__version__}, lightning {pl.__version__}, torchvision "
            f"{torchvision.__version__}, {torch.get_num_threads()} thread(s), "
            f"{platform.processor() or platform.machine()}, python {platform.python_version()}"
        )
        pl.seed_everything(0, verbose=False)
        # Warm-up, untimed: a short run of every variant pays the one-time costs (allocator,
        # kernels, file cache, lazy imports, the logger's first write) outside the rounds.
        full, BATCHES = BATCHES, 20
        for run in variants.values():
            run(data_dir, root, workdir)
        BATCHES = full
        names = list(variants)
        for round_ in range(args.repeats):
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                wall, cpu = variants[name](data_dir, root, workdir)
                times[name].append((wall, cpu))
                print(f"  round {round_ + 1}: {name:<17} {wall:7.2f} s wall {cpu:7.2f} s CPU")
        (tensor_wall, tensor_cpu), (torch_wall, torch_cpu) = loader_only(data_dir, root)

    steps = "one epoch" if BATCHES is None else f"{BATCHES} batches"
    print(f"\nLeNet, {steps} of batch {BATCH}, CPU; minimum (median) of {args.repeats} runs,")
    print("and each round's ratio to that round's floor, median (interquartile range):")
    print(f"  {'':<17} {'wall s':>15} {'CPU s':>15}   CPU/floor per round")
    for name, values in times.items():
        walls, cpus = [v[0] for v in values], [v[1] for v in values]
        mid, low, high = median_iqr(round_ratios(times, name, "floor"))
        print(
            f"  {name:<17} {min(walls):6.2f} ({statistics.median(walls):6.2f}) "
            f"{min(cpus):6.2f} ({statistics.median(cpus):6.2f})   "
            f"{mid:.3f}x ({low:.3f}-{high:.3f})"
        )
    print(
        f"  iterating the loaders alone: tensor {tensor_wall:.2f} s wall {tensor_cpu:.2f} s CPU, "
        f"torchvision DataLoader {torch_wall:.2f} s wall {torch_cpu:.2f} s CPU"
    )
    steps_run = BATCHES or -(-60_000 // BATCH)
    parts = {
        "Lightning's loop (lightning bare - floor)": ("lightning bare", "floor"),
        "self.log of the loss every step (bare+log - lightning bare)": (
            "bare+log",
            "lightning bare",
        ),
        "torchmetrics accuracy update (bare+metric - lightning bare)": (
            "bare+metric",
            "lightning bare",
        ),
        "ImageClassifier as shipped (lightning+tensor - lightning bare)": (
            "lightning+tensor",
            "lightning bare",
        ),
        "callbacks and TensorBoard logger (goalbrake - lightning+tensor)": (
            "goalbrake",
            "lightning+tensor",
        ),
    }
    print(f"per step (median over the rounds of the CPU difference, {steps_run} steps):")
    for label, (a, b) in parts.items():
        differences = [x[1] - y[1] for x, y in zip(times[a], times[b], strict=True)]
        print(f"  {label:<66} {statistics.median(differences) / steps_run * 1e6:7.0f} us")
    for i, unit in enumerate(("wall", "CPU")):
        ours = median_iqr(round_ratios(times, "goalbrake", "floor", i))[0]
        loader = median_iqr(round_ratios(times, "dataloader", "goalbrake", i))[0]
        print(
            f"{unit:>4}: goalbrake / floor = {ours:.2f} (target <= 1.10), "
            f"dataloader / goalbrake = {loader:.2f} (target >= 1.8); medians of the rounds"
        )


def round_ratios(
    times: dict[str, list[Timing]], name: str, base: str, unit: int = 1
) -> list[float]:
    """Each round's time of ``name`` over the same round's time of ``base`` (unit 0 wall, 1 CPU).

    Runs of one round lie within a round's length apart (seconds for short runs, a minute or
    more for whole epochs), so a ratio within a round cancels drift slower than that across
    the minutes of a whole benchmark, which minima over all rounds do not (a first run on a
    CPU leaving idle can be 20 % faster than the rest).
    """
    return [t[unit] / b[unit] for t, b in zip(times[name], times[base], strict=True)]


def median_iqr(values: list[float]) -> tuple[float, float, float]:
    """(median, first quartile, third quartile); the quartiles are the median for one value."""
    if len(values) < 2:
        return (values[0],) * 3
    low, mid, high = statistics.quantiles(values, n=4, method="inclusive")
    return mid, low, high


if __name__ == "__main__":
    main()
