"""HParamsLogger: real fits and tests, read back with TensorBoard's hparams plugin data."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from tensorboard.backend.event_processing import event_accumulator, plugin_event_accumulator
from tensorboard.plugins.hparams import metadata as hp_metadata
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from goalbrake import PHS
from goalbrake.callbacks import GoalBrake, HParamsLogger
from goalbrake.callbacks.hparams import BRAKE_KEYS, OPTIMIZER_KEYS

VAL_ACCS = [0.5, 0.75, 0.625]  # scripted per validation: best 0.75, final 0.625
TEST_ACC = 0.875


class Classifier(pl.LightningModule):
    """Two classes of 4 features; val/acc and test/acc are scripted, the loss is real."""

    def __init__(self, optimizer: str = "phs", width: int = 4) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Linear(width, 2)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(64, width, generator=g)
        self.data = TensorDataset(x, (x[:, 0] > 0).long())
        self.validations = 0

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val/acc", VAL_ACCS[min(self.validations, len(VAL_ACCS) - 1)])

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self.validations += 1

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.log("test/acc", TEST_ACC)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.hparams.optimizer == "sgd":
            return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)
        return PHS(self.parameters(), lr=0.1, mass=2.0, friction=0.5, friction_on="momentum")

    def _loader(self) -> DataLoader:
        return DataLoader(self.data, batch_size=16)

    train_dataloader = val_dataloader = test_dataloader = _loader


def trainer(tmp_path: Path, callbacks: list[Any], logger: Any = None, **kwargs: Any) -> pl.Trainer:
    settings: dict[str, Any] = dict(max_epochs=3, enable_checkpointing=False) | kwargs
    return pl.Trainer(
        accelerator="cpu",
        logger=logger or TensorBoardLogger(tmp_path, name="tb", default_hp_metric=False),
        callbacks=callbacks,
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=1,
        **settings,
    )


def read_hparams(log_dir: str | Path) -> tuple[dict[str, Any], list[str], dict[str, float]]:
    """(session hparams, experiment metric tags, last value of each hp/* scalar)."""
    # What TensorBoard's server reads (its plugin accumulator keeps a tag's first metadata).
    plugin = plugin_event_accumulator.EventAccumulator(str(log_dir))
    content = plugin.Reload().PluginTagToContent(hp_metadata.PLUGIN_NAME)
    session = hp_metadata.parse_session_start_info_plugin_data(
        content[hp_metadata.SESSION_START_INFO_TAG]
    )
    experiment = hp_metadata.parse_experiment_plugin_data(content[hp_metadata.EXPERIMENT_TAG])
    acc = event_accumulator.EventAccumulator(
        str(log_dir), size_guidance={event_accumulator.SCALARS: 0}
    ).Reload()
    params = {}
    for key, value in session.hparams.items():
        kind = value.WhichOneof("kind")
        params[key] = getattr(value, kind)
    tags = [info.name.tag for info in experiment.metric_infos]
    last = {
        tag: acc.Scalars(tag)[-1].value for tag in acc.Tags()["scalars"] if tag.startswith("hp/")
    }
    return params, tags, last


def test_a_braking_fit_and_its_test_fill_one_hparams_row(tmp_path: Path) -> None:
    torch.manual_seed(0)
    brake = GoalBrake(at_step=5, factor=50.0)
    run = trainer(tmp_path, [brake, HParamsLogger()])
    model = Classifier()
    run.fit(model)
    params, tags, last = read_hparams(run.logger.log_dir)
    assert tags == ["hp/val_acc_best", "hp/val_acc_final", "hp/test_acc"]
    assert last["hp/val_acc_best"] == 0.75 and last["hp/val_acc_final"] == 0.625
    assert math.isnan(last["hp/test_acc"])
    assert params["optimizer"] == "PHS"
    assert params["lr"] == pytest.approx(0.1) and params["mass"] == 2.0
    assert params["friction"] == 0.5  # read at fit start, before the brake
    assert params["momentum"] == pytest.approx(math.exp(-0.1 * 0.5))
    assert (params["scheme"], params["friction_on"], params["kinetic"]) == (
        "conformal",
        "momentum",
        "quadratic",
    )
    assert (params["mode"], params["factor"]) == ("at_step", 50.0)
    assert params["brake_step"] == brake.braked_step == 5  # the clock trigger's at_step
    assert math.isnan(params["goal"]) and math.isnan(params["reference_loss"])
    assert params["goal_source"] == ""  # the clock trigger has no goal
    # The module's save_hyperparameters (and LightningCLI's _instantiator) stay out.
    assert sorted(params) == sorted(OPTIMIZER_KEYS + BRAKE_KEYS)

    run.test(model)
    params_after, tags_after, last = read_hparams(run.logger.log_dir)
    assert last["hp/test_acc"] == TEST_ACC
    assert last["hp/val_acc_best"] == 0.75  # the test's write leaves the fit's values
    assert (repr(params_after), tags_after) == (repr(params), tags)  # repr: NaN != NaN


def test_goal_brake_logs_goal_mode_and_reference_loss(tmp_path: Path) -> None:
    torch.manual_seed(0)
    brake = GoalBrake(goal=0.99, factor=10.0, mode="remaining", smoothing="none")
    run = trainer(tmp_path, [brake, HParamsLogger()])
    run.fit(Classifier())
    params, _, _ = read_hparams(run.logger.log_dir)
    assert (params["goal"], params["factor"], params["mode"]) == (0.99, 10.0, "remaining")
    assert params["goal_source"] == "config"  # a goal given as a number
    assert params["reference_loss"] == pytest.approx(brake.reference_loss)
    assert brake.braked_step is not None and params["brake_step"] == brake.braked_step


def test_sgd_and_extra_params_without_a_brake(tmp_path: Path) -> None:
    run = trainer(tmp_path, [HParamsLogger(params={"trial": 7, "outcome": "complete"})])
    run.fit(Classifier(optimizer="sgd"))
    params, _, _ = read_hparams(run.logger.log_dir)
    assert (params["optimizer"], params["lr"], params["momentum"]) == ("SGD", 0.05, 0.9)
    assert math.isnan(params["friction"]) and params["scheme"] == ""
    assert params["mode"] == "" and math.isnan(params["brake_step"])
    assert params["goal_source"] == ""
    assert (params["trial"], params["outcome"]) == (7, "complete")


def test_an_interrupted_fit_keeps_its_row(tmp_path: Path) -> None:
    class Stop(pl.Callback):
        def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            if not trainer.sanity_checking:
                raise RuntimeError("stop")

    run = trainer(tmp_path, [HParamsLogger(), Stop()])
    with pytest.raises(RuntimeError, match="stop"):
        run.fit(Classifier())
    _, _, last = read_hparams(run.logger.log_dir)
    assert last["hp/val_acc_best"] == last["hp/val_acc_final"] == 0.5


@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty")
def test_a_resumed_fit_keeps_its_best(tmp_path: Path) -> None:
    checkpoint = ModelCheckpoint(tmp_path / "ckpt")
    first = trainer(
        tmp_path, [HParamsLogger(), checkpoint], max_epochs=2, enable_checkpointing=True
    )
    first.fit(Classifier())  # val/acc 0.5, 0.75
    path = str(next((tmp_path / "ckpt").glob("*.ckpt")))
    again = ModelCheckpoint(tmp_path / "ckpt")
    resumed = trainer(tmp_path, [HParamsLogger(), again], enable_checkpointing=True)
    resumed.fit(Classifier(), ckpt_path=path)
    _, _, last = read_hparams(resumed.logger.log_dir)  # the new module's first val/acc: 0.5
    assert (last["hp/val_acc_best"], last["hp/val_acc_final"]) == (0.75, 0.5)


def test_a_logger_without_metrics_gets_params_and_metrics_apart(tmp_path: Path) -> None:
    run = trainer(tmp_path, [HParamsLogger()], logger=CSVLogger(tmp_path, name="csv"))
    run.fit(Classifier())
    saved = yaml.safe_load((Path(run.logger.log_dir) / "hparams.yaml").read_text())
    assert (saved["optimizer"], saved["friction"]) == ("PHS", 0.5)
    with open(Path(run.logger.log_dir) / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("hp/val_acc_best")]
    assert float(rows[-1]["hp/val_acc_best"]) == 0.75


def test_a_test_alone_writes_its_row(tmp_path: Path) -> None:
    run = trainer(tmp_path, [HParamsLogger()])
    run.test(Classifier())
    params, tags, last = read_hparams(run.logger.log_dir)
    assert tags == ["hp/val_acc_best", "hp/val_acc_final", "hp/test_acc"]
    assert last["hp/test_acc"] == TEST_ACC and math.isnan(last["hp/val_acc_best"])
    assert params["optimizer"] == ""  # trainer.test sets up no optimizer


def test_a_subclass_adds_metrics(tmp_path: Path) -> None:
    class TrialHParams(HParamsLogger):
        def more_metrics(self, trainer: pl.Trainer) -> dict[str, float]:
            return {"hp/epochs": float(trainer.current_epoch)}

    run = trainer(tmp_path, [TrialHParams()])
    run.fit(Classifier())
    _, tags, last = read_hparams(run.logger.log_dir)
    assert tags == ["hp/val_acc_best", "hp/val_acc_final", "hp/test_acc", "hp/epochs"]
    assert last["hp/epochs"] == 3.0


def test_monitor_min_and_custom_names(tmp_path: Path) -> None:
    callback = HParamsLogger(monitor="val/loss", mode="min", test_metric="test/loss")
    assert callback.metric_names == ("hp/val_loss_best", "hp/val_loss_final", "hp/test_loss")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "top"}, "Invalid mode value: 'top' (must be one of 'max', 'min')"),
        (
            {"params": {"trial": None}},
            "Invalid params value: trial=None (must be a number, string or bool)",
        ),
    ],
)
def test_invalid_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        HParamsLogger(**kwargs)
    assert str(info.value) == message


def test_hparams_module_imports_no_lightning() -> None:
    source = Path(__file__).parents[2] / "goalbrake" / "callbacks" / "hparams.py"
    assert "lightning" not in source.read_text().split('"""', 2)[2].split("class ")[0]
