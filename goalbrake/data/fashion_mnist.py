"""FashionMNIST (Xiao, Rasul & Vollgraf, 2017): 60,000 + 10,000 grey 28×28 images, 10 classes."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from goalbrake.data.errors import CorruptDatasetError
from goalbrake.data.idx import read_idx_images, read_idx_labels
from goalbrake.data.image_datamodule import ImageDataModule, Split
from goalbrake.data.sources import FASHION_MNIST_SOURCE, DatasetSource

__all__ = ["FashionMNISTDataModule"]


class FashionMNISTDataModule(ImageDataModule):
    """FashionMNIST from the published gzipped IDX files, on the training device.

    The files (``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
    ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``, gzipped or not) are
    searched in ``data_dir``, ``$GOALBRAKE_DATA``, ``/usr/share/datasets/fashion-mnist``
    (Debian's ``dataset-fashion-mnist``) and ``~/.cache/goalbrake/fashion-mnist``, directly
    or under ``FashionMNIST/raw/`` (torchvision's layout) or ``fashion-mnist/``; see
    :mod:`goalbrake.data.sources`. Images are normalized with the training set's pixel
    statistics, mean 0.2860406 and std 0.3530242 (on the [0, 1] scale, all 60,000
    training images).

    Args:
        data_dir: a directory with the files, searched first.
        batch_size: training batch size.
        eval_batch_size: batch size of validation, test and predict.
        val_size: training images held out for validation (0: no validation loader).
        seed: seed of the per-epoch training order.
        split_seed: seed of the validation split, independent of ``seed`` (runs with
            different seeds share one split); None: the split follows ``seed``, so a
            seed-to-seed spread also covers the choice of validation images.
        loader: ``"tensor"``: the dataset lives on the trainer's root device as uint8 and
            batches are cut by index (:class:`~goalbrake.data.tensor_loader.TensorLoader`);
            ``"torch"``: a standard ``DataLoader`` over a ``TensorDataset`` on the CPU.
        drop_last: drop the last incomplete training batch.
        download: when the files are not found, download them with torchvision into the
            named ``data_dir`` / ``$GOALBRAKE_DATA``, else the user cache (md5 checked).
            Off by default.
        train_subset: train on only this many of the training images left after the
            validation split (a seeded random subset).
        num_workers: ``DataLoader`` workers (``loader="torch"`` only).

    Raises:
        ValueError: for invalid arguments.

    Example::

        >>> dm = FashionMNISTDataModule(batch_size=128, val_size=5000)
        >>> dm.input_shape, dm.num_classes
        ((1, 28, 28), 10)
    """

    source: ClassVar[DatasetSource] = FASHION_MNIST_SOURCE
    classes: ClassVar[tuple[str, ...]] = (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    )
    image_shape: ClassVar[tuple[int, int, int]] = (1, 28, 28)
    mean: ClassVar[tuple[float, ...]] = (0.2860406,)
    std: ClassVar[tuple[float, ...]] = (0.3530242,)

    def _read_split(self, files: dict[str, Path], train: bool) -> Split:
        prefix = "train" if train else "t10k"
        image_file = files[f"{prefix}-images-idx3-ubyte"]
        label_file = files[f"{prefix}-labels-idx1-ubyte"]
        images = read_idx_images(image_file, image_size=self.image_shape[1])
        labels = read_idx_labels(label_file, num_classes=self.num_classes)
        if images.shape[0] != labels.shape[0]:
            raise CorruptDatasetError(
                f"{image_file} holds {images.shape[0]} images but {label_file} holds "
                f"{labels.shape[0]} labels"
            )
        return images.unsqueeze(1), labels

    def _download(self, root: Path) -> None:
        from torchvision.datasets import FashionMNIST

        # Downloads all four files into root/FashionMNIST/raw, checking each md5.
        FashionMNIST(str(root), train=True, download=True)
