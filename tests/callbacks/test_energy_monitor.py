"""EnergyMonitor: real Trainer fits on a tiny model, read back from TensorBoard and CSV."""

from __future__ import annotations

import ast
import csv
import math
import re
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import metadata as custom_scalar_metadata
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from goalbrake import PHS
from goalbrake.callbacks import EnergyMonitor, energy_monitor
from goalbrake.callbacks.energy_monitor import ENERGY_LAYOUT, EnergyMonitorBase

ENERGY_TAGS = ("energy/potential", "energy/kinetic", "energy/total", "energy/dissipation")
LR, MASS, FRICTION = 0.05, 2.0, 0.5

OptimizerFactory = Callable[[nn.Module], torch.optim.Optimizer]


# ------------------------------------------------------------------------------ helpers
def phs_factory(**kwargs: Any) -> OptimizerFactory:
    options = {"lr": LR, "mass": MASS, "friction": FRICTION, **kwargs}
    return lambda model: PHS(model.parameters(), **options)


def make_module(base: type = pl.LightningModule, optimizer: OptimizerFactory | None = None):
    """A two-layer regression net on 64 fixed random samples; logs ``train/loss`` per step."""

    class TinyRegression(base):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
            self.optimizer_factory = optimizer or phs_factory()

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            loss = nn.functional.mse_loss(self.net(x), y)
            self.log("train/loss", loss, on_step=True, on_epoch=False)
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return self.optimizer_factory(self)

        def train_dataloader(self) -> DataLoader:
            g = torch.Generator().manual_seed(1)
            x = torch.randn(64, 4, generator=g)
            y = x.sum(dim=1, keepdim=True).sin() + 0.1 * torch.randn(64, 1, generator=g)
            return DataLoader(TensorDataset(x, y), batch_size=8, shuffle=False)

    return TinyRegression()


class Recorder(pl.Callback):
    """Momenta at the start of every batch (before its update) and each batch's loss."""

    def __init__(self) -> None:
        self.momenta: dict[int, list[list[torch.Tensor]]] = {}
        self.losses: dict[int, float] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        opt = trainer.optimizers[0]
        self.momenta[trainer.global_step] = [
            [
                opt.state[p]["momentum"].clone() if p in opt.state else torch.zeros_like(p)
                for p in g["params"]
            ]
            for g in opt.param_groups
        ]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses[trainer.global_step - 1] = float(outputs["loss"])


def fit(
    tmp_path: Path,
    *,
    logger: Any = "tensorboard",
    max_steps: int = 12,
    interval: int = 3,
    optimizer: OptimizerFactory | None = None,
    callbacks: list[Any] | None = None,
    monitor: Any = None,
    **trainer_kwargs: Any,
) -> tuple[pl.Trainer, Any]:
    torch.manual_seed(0)
    module = make_module(optimizer=optimizer)
    if logger == "tensorboard":
        logger = TensorBoardLogger(tmp_path, name="tb")
    monitor = monitor if monitor is not None else EnergyMonitor(logging_interval=interval)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=max_steps,
        logger=logger,
        callbacks=[monitor, *(callbacks or [])],
        log_every_n_steps=interval,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **trainer_kwargs,
    )
    trainer.fit(module)
    return trainer, module


def read_events(log_dir: str | Path) -> event_accumulator.EventAccumulator:
    acc = event_accumulator.EventAccumulator(
        str(log_dir),
        size_guidance={event_accumulator.SCALARS: 0, event_accumulator.TENSORS: 0},
    )
    return acc.Reload()


def scalars(acc: event_accumulator.EventAccumulator) -> dict[str, dict[int, float]]:
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def read_layout(acc: event_accumulator.EventAccumulator) -> layout_pb2.Layout:
    events = acc.Tensors(custom_scalar_metadata.CONFIG_SUMMARY_TAG)
    assert len(events) == 1
    layout = layout_pb2.Layout()
    layout.ParseFromString(events[0].tensor_proto.string_val[0])
    return layout


def kinetic_closed_form(momenta: list[list[torch.Tensor]], masses: list[float]) -> float:
    return sum(
        sum(float(p.double().square().sum()) for p in group) / (2 * m)
        for group, m in zip(momenta, masses, strict=True)
    )


# -------------------------------------------------------------------------------- tests
def test_tensorboard_energy_series(tmp_path: Path) -> None:
    recorder = Recorder()
    trainer, _ = fit(tmp_path, max_steps=12, interval=3, callbacks=[recorder])
    series = scalars(read_events(trainer.logger.log_dir))

    steps = [2, 5, 8, 11]  # (step + 1) % 3 == 0, as Trainer(log_every_n_steps=3) picks them
    for tag in (*ENERGY_TAGS, "optim/friction", "optim/momentum_factor"):
        assert sorted(series[tag]) == steps, tag
    # The step axis is Lightning's: the batch loss sits where self.log put train/loss.
    assert sorted(series["train/loss"]) == steps
    for step in steps:
        potential = series["energy/potential"][step]
        kinetic = series["energy/kinetic"][step]
        assert potential == pytest.approx(series["train/loss"][step], rel=1e-6)
        assert potential == pytest.approx(recorder.losses[step], rel=1e-6)
        assert series["energy/total"][step] == pytest.approx(potential + kinetic, rel=1e-6)
        # φ(p) = Σp²/2m of the momentum before update `step`, and dH/dt = −γ Σp²/m².
        expected = kinetic_closed_form(recorder.momenta[step], [MASS])
        assert expected > 0
        assert kinetic == pytest.approx(expected, rel=1e-5)
        dissipation = FRICTION * 2 * expected / MASS
        assert series["energy/dissipation"][step] == pytest.approx(dissipation, rel=1e-5)
        assert series["optim/friction"][step] == pytest.approx(FRICTION)
        mu = math.exp(-LR * FRICTION / MASS)  # the conformal scheme's factor
        assert series["optim/momentum_factor"][step] == pytest.approx(mu, rel=1e-6)


def test_tensorboard_layout(tmp_path: Path) -> None:
    trainer, _ = fit(tmp_path, max_steps=3, interval=3)
    layout = read_layout(read_events(trainer.logger.log_dir))

    charts = {
        c.title: {ch.title: list(ch.multiline.tag) for ch in c.chart} for c in layout.category
    }
    assert list(charts) == ["Loss and accuracy", "Braking", "Energy"]
    assert charts == {
        category: {title: tags for title, (kind, tags) in spec.items()}
        for category, spec in ENERGY_LAYOUT.items()
    }
    assert all(kind == "Multiline" for spec in ENERGY_LAYOUT.values() for kind, _ in spec.values())


LOSS_ACC = "Loss and accuracy"
EPOCH_LOSS = "Loss per epoch"


def matching_charts(tag: str) -> set[tuple[str, str]]:
    """(category, chart) pairs of the layout whose regexes match ``tag`` as TensorBoard does."""
    return {
        (category, title)
        for category, spec in ENERGY_LAYOUT.items()
        for title, (_, regexes) in spec.items()
        if any(re.match(regex, tag) for regex in regexes)
    }


@pytest.mark.parametrize(
    ("tag", "category", "chart"),
    [
        ("energy/total", "Energy", "Total energy H = L + φ(p)"),
        ("energy/kinetic", "Energy", "Kinetic energy φ(p)"),
        ("energy/dissipation", "Energy", "Dissipation power γ⟨∇φ(p), F(p)⟩ = −dH/dt"),
        ("brake/smoothed_loss", "Braking", "Smoothed training loss and goal"),
        ("brake/goal_loss", "Braking", "Smoothed training loss and goal"),
        ("optim/friction", "Braking", "Friction γ"),
        ("optim/friction/group1", "Braking", "Friction γ"),
        ("optim/momentum_factor", "Braking", "Momentum factor μ"),
        ("optim/momentum_factor/group0", "Braking", "Momentum factor μ"),
        ("train/acc", LOSS_ACC, "Accuracy per epoch (train, val)"),
        ("val/acc", LOSS_ACC, "Accuracy per epoch (train, val)"),
        ("train/acc_epoch", LOSS_ACC, "Accuracy per epoch (train, val)"),
        ("val/loss", LOSS_ACC, EPOCH_LOSS),
        ("val/loss_epoch", LOSS_ACC, EPOCH_LOSS),
        ("train/loss_epoch", LOSS_ACC, EPOCH_LOSS),
        ("train/loss", LOSS_ACC, "Training loss per logged step"),
        ("train/loss_step", LOSS_ACC, "Training loss per logged step"),
    ],
)
def test_layout_regexes_match_tags(tag: str, category: str, chart: str) -> None:
    assert matching_charts(tag) == {(category, chart)}  # each trace in one chart only


@pytest.mark.parametrize(
    "tag",
    [
        "energy/kinetic_x",
        "optim/frictionless",
        "test/acc",
        "val/acc_top5",
        "lr-PHS",
        # duplicates of charted traces: train/loss, optim/friction (PHS) or μ (SGD)
        "energy/potential",
        "brake/friction",
        "brake/friction/group1",
        # a step of the friction chart
        "brake/braked",
    ],
)
def test_layout_regexes_reject_other_tags(tag: str) -> None:
    assert not matching_charts(tag)


def test_layout_can_be_switched_off(tmp_path: Path) -> None:
    monitor = EnergyMonitor(logging_interval=3, log_layout=False)
    trainer, _ = fit(tmp_path, max_steps=3, monitor=monitor)
    acc = read_events(trainer.logger.log_dir)
    assert custom_scalar_metadata.CONFIG_SUMMARY_TAG not in acc.Tags()["tensors"]
    assert "energy/total" in acc.Tags()["scalars"]


def test_param_groups_get_suffixes(tmp_path: Path) -> None:
    def two_groups(model: nn.Module) -> PHS:
        first, second = model.net[0], model.net[2]
        return PHS(
            [
                {"params": first.parameters(), "friction": 0.1, "mass": 1.0},
                {"params": second.parameters(), "friction": 0.3, "mass": 3.0},
            ],
            lr=LR,
        )

    recorder = Recorder()
    trainer, _ = fit(tmp_path, max_steps=4, interval=4, optimizer=two_groups, callbacks=[recorder])
    series = scalars(read_events(trainer.logger.log_dir))

    assert "optim/friction" not in series and "optim/momentum_factor" not in series
    assert series["optim/friction/group0"] == {3: pytest.approx(0.1)}
    assert series["optim/friction/group1"] == {3: pytest.approx(0.3)}
    assert series["optim/momentum_factor/group1"][3] == pytest.approx(math.exp(-LR * 0.3 / 3.0))
    expected = kinetic_closed_form(recorder.momenta[3], [1.0, 3.0])
    assert series["energy/kinetic"][3] == pytest.approx(expected, rel=1e-5)


def test_friction_change_shows_from_the_next_logged_step(tmp_path: Path) -> None:
    class BrakeByHand(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if trainer.global_step == 4:  # after update 3
                trainer.optimizers[0].param_groups[0]["friction"] *= 10

    trainer, _ = fit(tmp_path, max_steps=8, interval=2, callbacks=[BrakeByHand()])
    series = scalars(read_events(trainer.logger.log_dir))
    friction = series["optim/friction"]
    assert friction == {
        1: pytest.approx(FRICTION),
        3: pytest.approx(FRICTION),
        5: pytest.approx(10 * FRICTION),
        7: pytest.approx(10 * FRICTION),
    }


def test_csv_logger_gets_the_energy_columns(tmp_path: Path) -> None:
    trainer, _ = fit(tmp_path, logger=CSVLogger(tmp_path, name="csv"), max_steps=6, interval=2)
    with open(Path(trainer.logger.log_dir) / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("energy/total")]

    assert [int(r["step"]) for r in rows] == [1, 3, 5]
    for r in rows:
        potential, kinetic = float(r["energy/potential"]), float(r["energy/kinetic"])
        assert float(r["energy/total"]) == pytest.approx(potential + kinetic, rel=1e-12)
        assert float(r["energy/dissipation"]) > 0
        assert float(r["optim/friction"]) == pytest.approx(FRICTION)


def test_pytorch_lightning_trainer_logs_the_same_series(tmp_path: Path) -> None:
    ptl = pytest.importorskip("pytorch_lightning")
    from goalbrake.pytorch_lightning import EnergyMonitor as PTLEnergyMonitor

    trainer, _ = fit(tmp_path / "lightning", max_steps=6, interval=2)
    expected = scalars(read_events(trainer.logger.log_dir))

    torch.manual_seed(0)
    module = make_module(base=ptl.LightningModule)
    ptl_trainer = ptl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=6,
        logger=ptl.loggers.TensorBoardLogger(tmp_path / "ptl", name="tb"),
        callbacks=[PTLEnergyMonitor(logging_interval=2)],
        log_every_n_steps=2,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    ptl_trainer.fit(module)
    acc = read_events(ptl_trainer.logger.log_dir)
    got = scalars(acc)

    for tag in (*ENERGY_TAGS, "optim/friction", "optim/momentum_factor"):
        assert sorted(got[tag]) == [1, 3, 5]
        assert got[tag] == pytest.approx(expected[tag], rel=1e-6), tag
    assert [c.title for c in read_layout(acc).category] == list(ENERGY_LAYOUT)


def test_gradient_accumulation_logs_the_unscaled_loss_once_per_update(tmp_path: Path) -> None:
    recorder = Recorder()
    trainer, _ = fit(
        tmp_path, max_steps=4, interval=2, callbacks=[recorder], accumulate_grad_batches=2
    )
    series = scalars(read_events(trainer.logger.log_dir))

    assert sorted(series["energy/potential"]) == [1, 3]
    for step in (1, 3):
        # Lightning hands on_train_batch_end the loss divided by accumulate_grad_batches.
        assert series["energy/potential"][step] == pytest.approx(
            series["train/loss"][step], rel=1e-6
        )
        expected = kinetic_closed_form(recorder.momenta[step], [MASS])
        assert series["energy/kinetic"][step] == pytest.approx(expected, rel=1e-5)


def test_heavy_ball_sgd_has_the_phs_kinetic_energy(tmp_path: Path) -> None:
    # conformal PHS(lr=α, mass=m, friction=γ) is SGD(lr=α²/m, momentum=e^(−αγ/m)), p = −α·buf.
    mu = math.exp(-LR * FRICTION / MASS)
    sgd = lambda model: torch.optim.SGD(model.parameters(), lr=LR**2 / MASS, momentum=mu)  # noqa: E731

    trainer, _ = fit(tmp_path / "phs", max_steps=8, interval=2)
    phs_series = scalars(read_events(trainer.logger.log_dir))
    trainer, _ = fit(tmp_path / "sgd", max_steps=8, interval=2, optimizer=sgd)
    sgd_series = scalars(read_events(trainer.logger.log_dir))

    for tag in ("energy/potential", "energy/kinetic", "energy/total"):
        assert sgd_series[tag] == pytest.approx(phs_series[tag], rel=1e-4), tag
    assert sgd_series["optim/momentum_factor"] == pytest.approx(
        phs_series["optim/momentum_factor"], rel=1e-6
    )
    # Friction and dissipation need the step α, which SGD does not have: not logged.
    assert "optim/friction" not in sgd_series
    assert "energy/dissipation" not in sgd_series


def test_other_optimizers_log_only_the_potential(tmp_path: Path) -> None:
    adam = lambda model: torch.optim.Adam(model.parameters(), lr=1e-3)  # noqa: E731
    with pytest.warns(UserWarning, match=r"EnergyMonitor: Adam has no kinetic energy"):
        trainer, _ = fit(tmp_path, max_steps=4, interval=2, optimizer=adam)
    series = scalars(read_events(trainer.logger.log_dir))

    assert sorted(series["energy/potential"]) == [1, 3]
    logged = {t for t in series if t.startswith(("energy/", "optim/"))}
    assert logged == {"energy/potential"}


def test_nothing_is_read_between_logging_steps(tmp_path: Path, monkeypatch) -> None:
    calls = []
    original = PHS.kinetic_energy

    def counting(self: PHS, group: int | None = None) -> torch.Tensor:
        calls.append(group)
        return original(self, group)

    monkeypatch.setattr(PHS, "kinetic_energy", counting)
    fit(tmp_path, max_steps=10, interval=5)
    assert calls == [0, 0]  # steps 4 and 9, one param group


@pytest.mark.parametrize("interval", [None, "step"])
def test_by_default_the_trainers_logging_steps_are_logged(
    tmp_path: Path, interval: str | None
) -> None:
    monitor = EnergyMonitor(logging_interval=interval)
    trainer, _ = fit(tmp_path, max_steps=12, interval=4, monitor=monitor)
    series = scalars(read_events(trainer.logger.log_dir))
    assert sorted(series["energy/potential"]) == [3, 7, 11]
    assert sorted(series["energy/potential"]) == sorted(series["train/loss"])


def test_epoch_interval_logs_the_first_step_of_every_epoch(tmp_path: Path) -> None:
    trainer, _ = fit(tmp_path, max_steps=24, monitor=EnergyMonitor(logging_interval="epoch"))
    series = scalars(read_events(trainer.logger.log_dir))
    assert sorted(series["energy/kinetic"]) == [0, 8, 16]  # 8 batches an epoch
    assert series["energy/kinetic"][0] == 0.0  # no momentum before the first update


def test_a_momentum_monitor_beside_phs_is_told_where_mu_is(tmp_path: Path) -> None:
    lr_monitor = LearningRateMonitor(logging_interval="step", log_momentum=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer, _ = fit(tmp_path, max_steps=4, interval=2, callbacks=[lr_monitor])
    ours = [str(w.message) for w in caught if str(w.message).startswith("LearningRate")]
    assert ours == [
        "LearningRateMonitor(log_momentum=True) logs a momentum of 0 for PHS, which has no "
        "'momentum' setting: its momentum factor μ (p⁺ = μ p − α g) is logged by "
        "EnergyMonitor as optim/momentum_factor (per group: optim/momentum_factor/group<i>)"
    ]
    series = scalars(read_events(trainer.logger.log_dir))
    assert set(series["lr-PHS-momentum"].values()) == {0.0}  # what Lightning's monitor logs
    mu = math.exp(-LR * FRICTION / MASS)
    assert series["optim/momentum_factor"] == {1: pytest.approx(mu), 3: pytest.approx(mu)}


def test_trainer_without_logger_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(
        RuntimeError, match=r"Cannot use EnergyMonitor with a Trainer that has no logger"
    ):
        fit(tmp_path, logger=False, max_steps=2, default_root_dir=tmp_path)


ALLOWED = " (must be 'step', 'epoch', None or an int >= 1)"


@pytest.mark.parametrize(
    ("interval", "message"),
    [
        (0, "Invalid logging_interval value: 0 (must be >= 1)"),
        (-5, "Invalid logging_interval value: -5 (must be >= 1)"),
        (2.5, "Invalid logging_interval value: 2.5" + ALLOWED),
        (True, "Invalid logging_interval value: True" + ALLOWED),
        ("50", "Invalid logging_interval value: '50'" + ALLOWED),
        ("steps", "Invalid logging_interval value: 'steps'" + ALLOWED),
    ],
)
def test_invalid_logging_interval(interval: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        EnergyMonitor(logging_interval=interval)


def test_base_class_runs_without_lightning() -> None:
    # Duck typing: a hand-written loop drives the hooks with plain objects.
    class ListLogger:
        def __init__(self) -> None:
            self.calls: list[tuple[int, dict[str, float]]] = []

        def log_metrics(self, metrics: dict[str, float], step: int) -> None:
            self.calls.append((step, metrics))

    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = PHS(model.parameters(), lr=LR, mass=MASS, friction=FRICTION)
    logger = ListLogger()
    trainer = types.SimpleNamespace(
        loggers=[logger], optimizers=[opt], global_step=0, is_global_zero=True,
        accumulate_grad_batches=1,
    )  # fmt: skip
    module = types.SimpleNamespace(automatic_optimization=True)
    monitor = EnergyMonitorBase(logging_interval=2)
    monitor.setup(trainer, module, "fit")
    monitor.on_fit_start(trainer, module)
    kinetic_before = {}
    for step in range(4):
        monitor.on_train_batch_start(trainer, module, None, step)
        kinetic_before[step] = float(opt.kinetic_energy())
        loss = model(torch.randn(8, 3)).square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        trainer.global_step += 1
        monitor.on_train_batch_end(trainer, module, {"loss": loss.detach()}, None, step)

    assert [step for step, _ in logger.calls] == [1, 3]
    for step, metrics in logger.calls:
        assert metrics["energy/kinetic"] == pytest.approx(kinetic_before[step], rel=1e-6)
        assert metrics["energy/total"] == metrics["energy/potential"] + metrics["energy/kinetic"]


def test_energy_monitor_module_imports_no_lightning() -> None:
    modules = set()
    for node in ast.walk(ast.parse(Path(energy_monitor.__file__).read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module.split(".")[0])
    assert "torch" in modules
    assert not modules & {"lightning", "lightning_fabric", "pytorch_lightning"}
