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
    return pl.Trainer(
        default_root_dir=tmp_path,
        logger=CSVLogger(tmp_path),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        **kwargs,
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
    """What a progress bar shows and what callbacks read, after each batch."""

    def __init__(self, refresh_rate: int) -> None:
        self.refresh_rate = refresh_rate
        self.bar: list[float] = []
        self.logged_steps: list[int] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if (batch_idx + 1) % self.refresh_rate == 0:
            self.bar.append(float(trainer.progress_bar_metrics["train/loss"]))


def _fit_logged(cls: type, tmp_path: Path, refresh_rate: int | None) -> tuple:
    pl.seed_everything(3, verbose=False)
    model = cls(mlp(), num_classes=3, optimizer=partial(PHS, lr=0.5, friction=1.0))
    seen = _Seen(refresh_rate or 1)
    bar = [pl.callbacks.TQDMProgressBar(refresh_rate=refresh_rate)] if refresh_rate else []
    t = pl.Trainer(
        default_root_dir=tmp_path,
        logger=CSVLogger(tmp_path),
        enable_checkpointing=False,
        enable_progress_bar=refresh_rate is not None,
        enable_model_summary=False,
        log_every_n_steps=4,
        max_epochs=2,
        limit_val_batches=0,
        callbacks=[*bar, *([seen] if refresh_rate else [])],
    )
    t.fit(model, datamodule=Blobs(n=224))  # 7 batches an epoch
    with open(Path(t.logger.log_dir) / "metrics.csv") as f:
        rows = [(r["step"], r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")]
    return rows, float(t.callback_metrics["train/loss"]), seen.bar


@pytest.mark.parametrize("refresh_rate", [None, 3])
def test_the_loss_logged_only_when_read_gives_the_same_logs_bar_and_end_value(
    tmp_path: Path, refresh_rate: int | None
) -> None:
    rows, end, bar = _fit_logged(ImageClassifier, tmp_path / "due", refresh_rate)
    ref_rows, ref_end, ref_bar = _fit_logged(_EveryStep, tmp_path / "every", refresh_rate)
    assert [s for s, _ in rows] == ["3", "7", "11"]  # every 4th of 14 steps, as Lightning
    assert rows == ref_rows
    assert end == ref_end  # an epoch's last step, as callbacks read it at the epoch's end
    assert bar == ref_bar and len(bar) == (4 if refresh_rate else 0)


def test_the_loss_is_logged_on_fewer_steps_without_a_progress_bar(tmp_path: Path) -> None:
    model = ImageClassifier(mlp(), num_classes=3, optimizer=partial(PHS, lr=0.5, friction=1.0))
    logged: list[int] = []
    real_log = model.log

    def log(name: str, *args, **kwargs) -> None:
        if name == "train/loss":
            logged.append(model.global_step)
        real_log(name, *args, **kwargs)

    model.log = log  # type: ignore[method-assign]
    t = pl.Trainer(
        default_root_dir=tmp_path,
        logger=CSVLogger(tmp_path),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=4,
        max_epochs=2,
        limit_val_batches=0,
    )
    t.fit(model, datamodule=Blobs(n=224))
    # Steps 3, 7, 11 for the logger; 6 and 13 end an epoch.
    assert logged == [3, 6, 7, 11, 13]
