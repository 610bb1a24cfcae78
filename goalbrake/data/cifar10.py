"""CIFAR-10 (Krizhevsky, 2009): 50,000 + 10,000 colour 32×32 images, 10 classes."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch

from goalbrake.data.cifar_batches import read_cifar_batch
from goalbrake.data.image_datamodule import ImageDataModule, Split
from goalbrake.data.sources import CIFAR10_SOURCE, DatasetSource

__all__ = ["CIFAR10DataModule"]


class CIFAR10DataModule(ImageDataModule):
    """CIFAR-10 from the published python batches, on the training device.

    The files ``data_batch_1`` … ``data_batch_5`` and ``test_batch`` are searched in
    ``data_dir``, ``$GOALBRAKE_DATA`` and ``~/.cache/goalbrake/cifar-10``, directly or
    under ``cifar-10-batches-py/`` (the archive's and torchvision's layout); all six must
    be present. They are checked by structure, not md5, so lossless rebuilds load too.
    Images are normalized per channel with the training set's statistics, mean
    (0.4913997, 0.4821584, 0.4465309) and std (0.2470322, 0.2434851, 0.2615878) on the
    [0, 1] scale. No augmentation.

    Args:
        data_dir: a directory with the files, searched first.
        batch_size: training batch size.
        eval_batch_size: batch size of validation, test and predict.
        val_size: training images held out for validation (0: no validation loader).
        seed: seed of the per-epoch training order.
        split_seed: seed of the validation split, independent of ``seed`` (runs with
            different seeds share one split); None: the split follows ``seed``, so a
            seed-to-seed spread also covers the choice of validation images.
        loader: ``"tensor"`` (device-resident, batches by index) or ``"torch"`` (a
            standard ``DataLoader``).
        drop_last: drop the last incomplete training batch.
        download: when the files are not found, download the archive with torchvision
            into the named ``data_dir`` / ``$GOALBRAKE_DATA``, else the user cache (md5
            checked). Off by default.
        train_subset: train on only this many of the training images left after the
            validation split.
        num_workers: ``DataLoader`` workers (``loader="torch"`` only).

    Raises:
        ValueError: for invalid arguments.

    Example::

        >>> dm = CIFAR10DataModule(batch_size=128)
        >>> dm.input_shape, dm.num_classes
        ((3, 32, 32), 10)
    """

    source: ClassVar[DatasetSource] = CIFAR10_SOURCE
    classes: ClassVar[tuple[str, ...]] = (
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    )
    image_shape: ClassVar[tuple[int, int, int]] = (3, 32, 32)
    mean: ClassVar[tuple[float, ...]] = (0.4913997, 0.4821584, 0.4465309)
    std: ClassVar[tuple[float, ...]] = (0.2470322, 0.2434851, 0.2615878)

    def _read_split(self, files: dict[str, Path], train: bool) -> Split:
        names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
        batches = [read_cifar_batch(files[name], num_classes=self.num_classes) for name in names]
        images = torch.cat([images for images, _ in batches])
        labels = torch.cat([labels for _, labels in batches])
        return images, labels

    def _download(self, root: Path) -> None:
        from torchvision.datasets import CIFAR10

        # Downloads and extracts the archive into root/cifar-10-batches-py (md5 checked).
        CIFAR10(str(root), train=True, download=True)
