"""ImageClassifier: learns a learnable problem, logs its metrics, rejects a wrong backbone."""

import csv
import re
from functools import partial
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from goalbrake import PHS
from goalbrake.module import ImageClassifier


class Blobs(pl.LightningDataModule):
    """Three classes of 1x4x4 images: a class-dependent mean plus noise."""

    num_classes = 3
    input_shape = (1, 4, 4)

    def __init__(self, n: int = 192) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.y = torch.randint(0, 3, (n,), generator=g)
        centers = torch.randn(3, 1, 4, 4, generator=g) * 2
        self.x = centers[self.y] + 0.5 * torch.randn(n, 1, 4, 4, generator=g)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.x, self.y), batch_size=32, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.x, self.y), batch_size=64)

    test_dataloader = val_dataloader


def mlp(in_features: int = 16, num_classes: int = 3) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, num_classes))


def trainer(tmp_path: Path, **kwargs) -> pl.Trainer:
    """A quiet Trainer logging to CSV every step; ``kwargs`` override any of it."""
    settings = {
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "log_every_n_steps": 1,
    }
    return pl.Trainer(
        default_root_dir=tmp_path, logger=CSVLogger(tmp_path), **{**settings, **kwargs}
    )


def test_fit_learns_and_logs_namespaced_metrics(tmp_path: Path) -> None:
    model = ImageClassifier(mlp(), num_classes=3, optimizer=partial(PHS, lr=0.5, friction=1.0))
    t = trainer(tmp_path, max_epochs=3)
    t.fit(model, datamodule=Blobs())
    (result,) = t.test(model, datamodule=Blobs(), verbose=False)
    assert result["test/acc"] > 0.9  # chance is 1/3
    with open(Path(t.logger.log_dir) / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    columns = set(rows[0])
    assert {"train/loss", "train/acc", "val/loss", "val/acc"} <= columns
    losses = [float(r["train/loss"]) for r in rows if r["train/loss"]]
    assert len(losses) == 3 * 6  # one per step: 192 samples / 32 per batch, 3 epochs
    assert losses[-1] < losses[0]


def test_reference_loss_equals_cross_entropy_of_the_forward() -> None:
    model = ImageClassifier(mlp(), num_classes=3)
    x, y = torch.randn(5, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1])
    expected = nn.functional.cross_entropy(model(x), y)
    torch.testing.assert_close(model.reference_loss((x, y)), expected)


def test_wrong_backbone_input_is_one_clear_error_before_training(tmp_path: Path) -> None:
    model = ImageClassifier(mlp(in_features=25), num_classes=3, optimizer=partial(PHS, lr=0.1))
    t = trainer(tmp_path, max_epochs=1)
    with pytest.raises(
        ValueError, match=re.escape("does not take the data's images of shape (1, 4, 4)")
    ):
        t.fit(model, datamodule=Blobs())
    assert t.global_step == 0


def test_wrong_number_of_logits_is_one_clear_error(tmp_path: Path) -> None:
    model = ImageClassifier(mlp(num_classes=5), num_classes=3, optimizer=partial(PHS, lr=0.1))
    with pytest.raises(
        ValueError, match=re.escape("returns shape (5,) for one image (must be (3,)")
    ):
        trainer(tmp_path, max_epochs=1).fit(model, datamodule=Blobs())


def test_num_classes_below_two_is_rejected() -> None:
    with pytest.raises(ValueError, match=re.escape("Invalid num_classes value: 1 (must be >= 2)")):
        ImageClassifier(mlp(), num_classes=1)


def _smoothed_targets(y: torch.Tensor, k: int, eps: float) -> torch.Tensor:
    """q = (1 − ε)·onehot(y) + ε/K, written out."""
    return (1 - eps) * nn.functional.one_hot(y, k).double() + eps / k


def test_label_smoothing_trains_against_the_smoothed_targets() -> None:
    """L = −Σₖ qₖ log softmax(z)ₖ, in float64 against the closed form; ε = 0 is plain CE."""
    torch.manual_seed(0)
    net = mlp().double()
    x, y = torch.randn(7, 1, 4, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2, 2])
    log_p = torch.log_softmax(net(x), dim=1)
    for eps in (0.0, 0.1, 0.35):
        model = ImageClassifier(net, num_classes=3, label_smoothing=eps)
        expected = -(_smoothed_targets(y, 3, eps) * log_p).sum(dim=1).mean()
        torch.testing.assert_close(model.reference_loss((x, y)), expected)
    # At uniform logits every ε gives ln K.
    zero = ImageClassifier(mlp(), num_classes=3, label_smoothing=0.3)
    nn.init.zeros_(zero.backbone[1].weight)
    nn.init.zeros_(zero.backbone[1].bias)
    torch.testing.assert_close(zero.reference_loss((x.float(), y)), torch.tensor(3.0).log())


def test_label_smoothing_floors_the_training_loss_not_the_validation_loss(
    tmp_path: Path,
) -> None:
    """The smoothed loss cannot fall below the entropy H(q) of its targets; val/loss is
    the plain cross-entropy, which can (and on separable blobs does)."""
    eps, k = 0.3, 3
    q = _smoothed_targets(torch.tensor([0]), k, eps)[0]
    floor = float(-(q * q.log()).sum())  # H(q) = 0.6390 for ε = 0.3, K = 3
    model = ImageClassifier(
        mlp(), num_classes=k, optimizer=partial(PHS, lr=0.5, friction=1.0), label_smoothing=eps
    )
    t = trainer(tmp_path, max_epochs=4)
    t.fit(model, datamodule=Blobs())
    with open(Path(t.logger.log_dir) / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    train = [float(r["train/loss"]) for r in rows if r["train/loss"]]
    val = [float(r["val/loss"]) for r in rows if r["val/loss"]]
    assert min(train) >= floor - 1e-6
    assert min(train) < floor + 0.1  # it gets close: the blobs are separable
    assert val[-1] < floor  # the plain cross-entropy goes below it


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, True, "0.1", float("nan")])
def test_label_smoothing_outside_its_range_is_rejected(bad: object) -> None:
    with pytest.raises(
        ValueError, match=re.escape(f"Invalid label_smoothing value: {bad!r} (must be in [0, 1))")
    ):
        ImageClassifier(mlp(), num_classes=3, label_smoothing=bad)  # type: ignore[arg-type]


def test_predict_returns_classes_probabilities_logits_and_labels(tmp_path: Path) -> None:
    model = ImageClassifier(mlp(), num_classes=3, optimizer=partial(PHS, lr=0.5, friction=1.0))
    t = trainer(tmp_path, max_epochs=3)
    data = Blobs()
    t.fit(model, datamodule=data)
    batches = t.predict(model, dataloaders=data.val_dataloader())
    assert [sorted(b) for b in batches] == [["logits", "preds", "probs", "target"]] * 3
    preds = torch.cat([b["preds"] for b in batches])
    probs = torch.cat([b["probs"] for b in batches])
    assert preds.shape == (192,) and probs.shape == (192, 3)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(192))
    assert torch.equal(preds, probs.argmax(dim=1))
    assert (preds == data.y).float().mean() > 0.9  # the trained model, not chance
    # A batch of images alone (no labels) predicts too.
    (out,) = t.predict(model, dataloaders=DataLoader(data.x[:5], batch_size=5))
    assert sorted(out) == ["logits", "preds", "probs"] and out["preds"].shape == (5,)


class _EveryStep(ImageClassifier):
    """The old behaviour: ``train/loss`` logged on every training step."""

    def loss_log_due(self, batch_idx: int) -> bool:
        return True


class _Seen(pl.Callback):
    """What a progress bar shows (read at its refreshes) and the loss at each epoch's end."""

    reads_loss_between_logs = False

    def __init__(self, refresh_rate: int) -> None:
        self.refresh_rate = refresh_rate
        self.bar: list[float] = []
        self.epoch_ends: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.progress_bar_callback is not None and (batch_idx + 1) % self.refresh_rate == 0:
            self.bar.append(float(trainer.progress_bar_metrics["train/loss"]))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.epoch_ends.append(float(trainer.callback_metrics["train/loss"]))


class _EveryBatch(pl.Callback):
    """A user's callback that reads the loss on every batch, and stops the fit at step 5."""

    def __init__(self) -> None:
        self.read: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.read.append(float(trainer.callback_metrics["train/loss"]))
        trainer.should_stop = trainer.should_stop or trainer.global_step == 5


class _Midway(pl.Callback):
    """Reads the loss at each validation, which runs twice an epoch."""

    def __init__(self) -> None:
        self.read: list[float] = []

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.read.append(float(trainer.callback_metrics["train/loss"]))


def _fit_logged(cls: type, tmp_path: Path, refresh_rate: int | None, **kwargs) -> dict:
    """Fit Blobs (7 batches an epoch) for 2 epochs; what each reader of the loss got."""
    pl.seed_everything(3, verbose=False)
    model = cls(mlp(), num_classes=3, optimizer=partial(PHS, lr=0.5, friction=1.0))
    seen = _Seen(refresh_rate or 1)
    extra = kwargs.pop("callbacks", [])
    bar = [pl.callbacks.TQDMProgressBar(refresh_rate=refresh_rate)] if refresh_rate else []
    t = trainer(
        tmp_path,
        enable_progress_bar=refresh_rate is not None,
        log_every_n_steps=4,
        max_epochs=2,
        **{"limit_val_batches": 0, **kwargs},
        callbacks=[*bar, seen, *extra],
    )
    t.fit(model, datamodule=Blobs(n=224))
    with open(Path(t.logger.log_dir) / "metrics.csv") as f:
        rows = [(r["step"], r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")]
    return {
        "rows": rows,
        "end": float(t.callback_metrics["train/loss"]),
        "bar": seen.bar,
        "epoch_ends": seen.epoch_ends,
        "read": [c.read for c in extra],
        "every_step": model._loss_every_step,
    }


def _scenario(name: str) -> tuple[int | None, dict]:
    return {
        "no progress bar": (None, {}),
        "progress bar every 3": (3, {}),
        "max_steps mid-epoch": (None, {"max_steps": 10}),
        "a callback reading every batch and stopping": (None, {"callbacks": [_EveryBatch()]}),
        "validation twice an epoch": (
            None,
            {"callbacks": [_Midway()], "val_check_interval": 3, "limit_val_batches": 1},
        ),
    }[name]


@pytest.mark.parametrize(
    ("scenario", "every_step"),
    [
        ("no progress bar", None),
        ("progress bar every 3", None),
        ("max_steps mid-epoch", None),
        ("a callback reading every batch and stopping", "_EveryBatch may read train/loss"),
        ("validation twice an epoch", "validation runs within an epoch"),
    ],
)
def test_the_loss_logged_only_when_read_gives_every_reader_the_same_values(
    tmp_path: Path, scenario: str, every_step: str | None
) -> None:
    refresh, kwargs = _scenario(scenario)
    got = _fit_logged(ImageClassifier, tmp_path / "due", refresh, **kwargs)
    refresh, kwargs = _scenario(scenario)  # fresh callbacks for the reference
    ref = _fit_logged(_EveryStep, tmp_path / "every", refresh, **kwargs)
    assert (got["every_step"] or "").startswith(every_step or ""), got["every_step"]
    assert (got["every_step"] is None) == (every_step is None)
    assert got["rows"], "the logger wrote no train/loss"
    for reader in ("rows", "end", "bar", "epoch_ends", "read"):
        assert got[reader] == ref[reader], reader
    if refresh:
        assert len(got["bar"]) == 4  # batches 3 and 6 of each epoch


@pytest.mark.parametrize(
    ("max_steps", "expected"),
    [(-1, [3, 6, 7, 11, 13]), (10, [3, 6, 7, 9])],
)
def test_the_loss_is_logged_on_fewer_steps_when_nothing_else_reads_it(
    tmp_path: Path, max_steps: int, expected: list[int]
) -> None:
    model = ImageClassifier(mlp(), num_classes=3, optimizer=partial(PHS, lr=0.5, friction=1.0))
    logged: list[int] = []
    real_log = model.log

    def log(name: str, *args, **kwargs) -> None:
        if name == "train/loss":
            logged.append(model.global_step)
        real_log(name, *args, **kwargs)

    model.log = log  # type: ignore[method-assign]
    t = trainer(
        tmp_path, log_every_n_steps=4, max_epochs=2, max_steps=max_steps, limit_val_batches=0
    )
    t.fit(model, datamodule=Blobs(n=224))
    # Steps 3, 7, 11 for the logger; 6 and 13 end an epoch; 9 is max_steps' last.
    assert logged == expected


class _Stream(torch.utils.data.IterableDataset):
    def __iter__(self):
        blobs = Blobs(n=64)
        return iter(zip(blobs.x, blobs.y, strict=True))


def _policy(tmp_path: Path, callbacks: list, loader: DataLoader | None = None, **kwargs) -> object:
    from goalbrake import EnergyMonitor, GoalBrake
    from goalbrake.callbacks import HParamsLogger

    model = ImageClassifier(mlp(), num_classes=3, optimizer=partial(PHS, lr=0.5, friction=1.0))
    t = pl.Trainer(
        default_root_dir=tmp_path,
        logger=CSVLogger(tmp_path),
        max_epochs=1,
        callbacks=[GoalBrake(goal=0.5), EnergyMonitor(), HParamsLogger(), *callbacks],
        enable_progress_bar=True,
        **kwargs,
    )
    blobs = Blobs(n=64)
    t.fit(
        model,
        train_dataloaders=blobs.train_dataloader() if loader is None else loader,
        val_dataloaders=blobs.val_dataloader(),
    )
    return model._loss_every_step


def test_the_shipped_callbacks_let_the_loss_be_logged_only_when_read(tmp_path: Path) -> None:
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint

    callbacks = [ModelCheckpoint(monitor="val/acc", mode="max"), LearningRateMonitor()]
    assert _policy(tmp_path, callbacks) is None


@pytest.mark.parametrize(
    ("setting", "reason"),
    [
        ({"max_time": "00:00:10:00"}, "Timer may read train/loss"),
        ({"monitor": "train/loss"}, "ModelCheckpoint may read train/loss"),
        ({"filename": "{epoch}-{train/loss:.2f}"}, "ModelCheckpoint may read train/loss"),
        ({"user": True}, "Callback may read train/loss"),
        ({"val_check_interval": 0.5}, "validation runs within an epoch"),
        ({"stream": True}, "the epoch's length is unknown"),
    ],
)
def test_any_other_reader_keeps_the_loss_logged_every_step(
    tmp_path: Path, setting: dict, reason: str
) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    kwargs, callbacks, loader = dict(setting), [], None
    for key in ("monitor", "filename"):
        if key in kwargs:
            callbacks.append(ModelCheckpoint(**{key: kwargs.pop(key)}))
    if kwargs.pop("user", False):
        callbacks.append(pl.Callback())
    if kwargs.pop("stream", False):
        loader = DataLoader(_Stream(), batch_size=32)
    policy = _policy(tmp_path, callbacks, loader, **kwargs)
    assert isinstance(policy, str) and policy.startswith(reason), policy
