"""ImageClassifier: the training app's LightningModule."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import (
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
    ModelSummary,
    TQDMProgressBar,
)
from torch import Tensor, nn
from torch.nn import functional as F
from torchmetrics.classification import MulticlassAccuracy

__all__ = ["ImageClassifier", "reads_loss_between_logs"]

LOSS = "train/loss"
#: Lightning's callbacks that read no logged metric in the middle of an epoch (ModelSummary
#: covers RichModelSummary). RichProgressBar is not one: it redraws the metrics on every batch.
_EPOCH_READERS = (ModelSummary, TQDMProgressBar, LearningRateMonitor, EarlyStopping)


def reads_loss_between_logs(trainer: pl.Trainer) -> str | None:
    """Why a fit needs ``train/loss`` logged on every step, or None when it does not.

    None only when every reader of the logged loss is known to read it at the steps the
    logger writes, at a progress-bar refresh, at an epoch's end or at the fit's end: each
    callback is one of Lightning's epoch readers, a ``ModelCheckpoint`` that neither
    monitors nor names its files by ``train/loss``, LightningCLI's config saver, or
    declares ``reads_loss_between_logs = False`` (goalbrake's callbacks); validation runs
    only at an epoch's end; no LR scheduler steps on ``train/loss``; and the epoch's
    length is known. Anything else (a user's callback, ``max_time``'s Timer, a
    RichProgressBar) keeps every step's loss in ``callback_metrics``, as Lightning would.
    """
    if not math.isfinite(trainer.num_training_batches):
        return "the epoch's length is unknown (an iterable loader)"
    interval = trainer.val_check_interval
    if trainer.limit_val_batches != 0 and not (isinstance(interval, float) and interval == 1.0):
        return f"validation runs within an epoch (val_check_interval={interval!r})"
    for config in trainer.lr_scheduler_configs:
        if config.monitor == LOSS and config.interval == "step":
            return f"an LR scheduler steps on {LOSS}"
    from lightning.pytorch.cli import SaveConfigCallback

    for callback in trainer.callbacks:  # type: ignore[attr-defined]
        if isinstance(callback, (*_EPOCH_READERS, SaveConfigCallback)):
            continue
        if isinstance(callback, ModelCheckpoint):
            if callback.monitor != LOSS and LOSS not in (callback.filename or ""):
                continue
        elif getattr(callback, "reads_loss_between_logs", True) is False:
            continue
        return f"{type(callback).__name__} may read {LOSS} on any step"
    return None


OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


class ImageClassifier(pl.LightningModule):
    """Any ``nn.Module`` backbone trained with cross-entropy, torchmetrics accuracy.

    The training loss, the potential energy of the port-Hamiltonian system, is the
    cross-entropy against label-smoothed targets (Szegedy et al. 2016, §7)::

        L(θ) = −Σₖ qₖ log softmax(f_θ(x))ₖ,   q = (1 − ε)·onehot(y) + ε/K

    with ε = ``label_smoothing`` (0 by default: plain cross-entropy) and K classes. Its
    floor is the entropy of q, H(q) > 0 for ε > 0 (0.50 for ε = 0.1, K = 10), so a loss
    goal below H(q) is never reached. ``val/loss`` and ``test/loss`` are always the plain
    cross-entropy, comparable across ε.

    ``predict`` (``goalbrake predict``, ``Trainer.predict``) returns, per batch, a dict of
    the class predictions ``preds`` (N,), the class probabilities ``probs`` (N, K), the
    ``logits`` (N, K) and, for a labelled ``(x, y)`` batch, the labels ``target`` (N,).

    Logs ``train/loss`` on the steps something reads it (:meth:`loss_log_due`: the
    logger's every ``log_every_n_steps``, each refresh of a progress bar, an epoch's
    last batch), ``train/acc`` per epoch, ``val/loss``, ``val/acc``,
    ``test/loss`` and ``test/acc``. The optimizer is injected: on the command line by
    LightningCLI (``--optimizer goalbrake.PHS --optimizer.lr 0.1``), in Python by
    ``optimizer=``.

    Args:
        backbone: maps a batch of images (N, C, H, W) to logits (N, num_classes).
        num_classes: number of classes of the dataset.
        optimizer: builds the optimizer from the parameters (Python use; the CLI's
            ``--optimizer`` replaces it).
        label_smoothing: ε of the training loss above, in [0, 1).

    Raises:
        ValueError: for ``num_classes < 2`` or ``label_smoothing`` outside [0, 1).

    Example:
        >>> from functools import partial
        >>> from goalbrake import PHS
        >>> from goalbrake.models import LeNet
        >>> model = ImageClassifier(LeNet(), optimizer=partial(PHS, lr=0.1, mass=10.0))
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int = 10,
        optimizer: OptimizerFactory | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"Invalid num_classes value: {num_classes} (must be >= 2)")
        if (
            isinstance(label_smoothing, bool)
            or not isinstance(label_smoothing, (int, float))
            or not 0.0 <= label_smoothing < 1.0
        ):
            raise ValueError(
                f"Invalid label_smoothing value: {label_smoothing!r} (must be in [0, 1))"
            )
        self.save_hyperparameters(ignore=["backbone", "optimizer"])
        self.backbone = backbone
        self.num_classes = num_classes
        self.label_smoothing = float(label_smoothing)
        if optimizer is not None:
            # Assigned per instance so that LightningCLI's --optimizer, when given, takes
            # over without a second configure_optimizers competing with it.
            self.configure_optimizers = lambda: optimizer(self.parameters())  # type: ignore[method-assign]
        # The logits are this module's own, so the training metric skips torchmetrics' input
        # checks (about 15 µs a step); val and test keep them.
        self.train_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        # Set at on_train_start (loss_log_due): until then the loss is logged every step.
        self._loss_every_step: str | None = "not in a fit"
        self._loss_log_plan: tuple[int, int, int] | None = None

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone(x)

    def setup(self, stage: str) -> None:
        """Check once that the backbone takes the data's images, with a one-line fix."""
        shape = getattr(getattr(self.trainer, "datamodule", None), "input_shape", None)
        if shape is None:
            return
        probe = torch.zeros(2, *shape, device=self.device)
        try:
            with torch.no_grad():
                out = self.backbone(probe)
        except RuntimeError as err:
            first = str(err).splitlines()[0]
            raise ValueError(
                f"The backbone {type(self.backbone).__name__} does not take the data's images "
                f"of shape {tuple(shape)} ({first}); set its in_channels/image_size to match"
            ) from None
        if out.shape != (2, self.num_classes):
            raise ValueError(
                f"The backbone {type(self.backbone).__name__} returns shape {tuple(out.shape[1:])} "
                f"for one image (must be ({self.num_classes},), one logit per class)"
            )

    def reference_loss(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        """The training loss of a batch without logging: GoalBrake measures L₀ with it."""
        x, y = batch
        return self._training_loss(self(x), y)

    def _training_loss(self, logits: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)

    # The batch loss L(θ) is the potential energy of the port-Hamiltonian system.
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        logits = self(x)
        loss = self._training_loss(logits, y)
        # update() only accumulates; calling the metric would also compute a per-batch value.
        self.train_acc.update(logits.detach(), y)
        if self.loss_log_due(batch_idx):
            self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def on_train_start(self) -> None:
        trainer = self.trainer
        self._loss_every_step = reads_loss_between_logs(trainer)
        bar = trainer.progress_bar_callback
        refresh = int(getattr(bar, "refresh_rate", 1)) if bar is not None and bar.is_enabled else 0
        # What loss_log_due needs, read once: (log_every_n_steps, bar refresh, max_steps).
        self._loss_log_plan = (trainer.log_every_n_steps, max(refresh, 0), trainer.max_steps)

    def loss_log_due(self, batch_idx: int) -> bool:
        """Whether this training step logs ``train/loss``.

        A ``self.log`` call costs Lightning about 0.5 ms (its result collection moves
        the value's metric on every call), a tenth of a LeNet step on a CPU. When nothing
        else reads the loss mid-epoch (:func:`reads_loss_between_logs`), it is logged only
        on the steps that read it: those the logger writes (``global_step + 1`` a
        multiple of ``log_every_n_steps``, as Lightning decides), those a progress bar
        refreshes on (every ``refresh_rate`` batches), an epoch's last batch and the
        fit's last step (``max_steps``), so ``callback_metrics["train/loss"]`` at an
        epoch's and the fit's end is its last step's loss, as before. Otherwise, and
        outside a Trainer's fit, every step.
        """
        trainer = self._trainer
        plan = self._loss_log_plan
        if trainer is None or not trainer.training or plan is None or self._loss_every_step:
            return True
        every, refresh, max_steps = plan
        step = self.global_step + 1
        return (
            (every > 0 and step % every == 0)
            or (refresh > 0 and (batch_idx + 1) % refresh == 0)
            or 0 < max_steps <= step
            or batch_idx + 1 >= trainer.num_training_batches
            or trainer.should_stop
        )

    def on_train_epoch_end(self) -> None:
        # Logged once per epoch rather than handing Lightning the metric at every step:
        # each self.log call costs about as much as a LeNet step's optimizer update.
        self.log("train/acc", self.train_acc.compute(), sync_dist=True)
        self.train_acc.reset()

    def _evaluate(
        self, batch: tuple[Tensor, Tensor], stage: str, metric: MulticlassAccuracy
    ) -> None:
        x, y = batch
        logits = self(x)
        self.log(f"{stage}/loss", F.cross_entropy(logits, y), on_epoch=True, sync_dist=True)
        metric.update(logits, y)
        self.log(f"{stage}/acc", metric, on_epoch=True, prog_bar=True)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_acc)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_acc)

    def predict_step(
        self, batch: Tensor | tuple[Tensor, Tensor], batch_idx: int
    ) -> dict[str, Tensor]:
        """Class predictions, probabilities and logits of a batch of images (with labels).

        A batch is the images (N, C, H, W), or ``(images, labels)`` as the data modules'
        ``predict_dataloader`` yields them; the labels come back as ``target``.
        """
        x, y = (batch, None) if isinstance(batch, Tensor) else batch
        logits = self(x)
        out = {"preds": logits.argmax(dim=1), "probs": logits.softmax(dim=1), "logits": logits}
        if y is not None:
            out["target"] = y
        return out
