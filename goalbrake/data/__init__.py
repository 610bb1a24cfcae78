"""Datasets for the app: FashionMNIST and CIFAR-10 DataModules and the device-resident loader.

Local files first (``data_dir``, ``$GOALBRAKE_DATA``, Debian's ``dataset-fashion-mnist``,
the user cache), a torchvision download second (``download=True``), one clear error last;
see :mod:`goalbrake.data.sources`.
"""

from goalbrake.data.cifar10 import CIFAR10DataModule
from goalbrake.data.cifar_batches import read_cifar_batch, read_cifar_meta
from goalbrake.data.errors import CorruptDatasetError, DatasetNotFoundError
from goalbrake.data.fashion_mnist import FashionMNISTDataModule
from goalbrake.data.idx import read_idx, read_idx_images, read_idx_labels
from goalbrake.data.image_datamodule import LOADERS, ImageDataModule
from goalbrake.data.sources import (
    CIFAR10_SOURCE,
    FASHION_MNIST_SOURCE,
    DatasetSource,
    SearchPlace,
    find_dataset_files,
    search_places,
    user_cache_dir,
)
from goalbrake.data.tensor_loader import EpochPermutation, TensorLoader, epoch_seed

__all__ = [
    "CIFAR10_SOURCE",
    "FASHION_MNIST_SOURCE",
    "LOADERS",
    "CIFAR10DataModule",
    "CorruptDatasetError",
    "DatasetNotFoundError",
    "DatasetSource",
    "EpochPermutation",
    "FashionMNISTDataModule",
    "ImageDataModule",
    "SearchPlace",
    "TensorLoader",
    "epoch_seed",
    "find_dataset_files",
    "read_cifar_batch",
    "read_cifar_meta",
    "read_idx",
    "read_idx_images",
    "read_idx_labels",
    "search_places",
    "user_cache_dir",
]
