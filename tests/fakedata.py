"""The fake-data writers for tests; they live in :mod:`goalbrake.data.fake` (the benchmarks
use them too), and are re-exported here so tests keep importing ``tests.fakedata``."""

from goalbrake.data.fake import (
    CIFAR10_FILES,
    CIFAR10_LABEL_NAMES,
    FASHION_MNIST_FILES,
    class_patterns,
    fake_images,
    idx_bytes,
    py2_pickle_bytes,
    write_cifar10,
    write_fashion_mnist,
)

__all__ = [
    "CIFAR10_FILES",
    "CIFAR10_LABEL_NAMES",
    "FASHION_MNIST_FILES",
    "class_patterns",
    "fake_images",
    "idx_bytes",
    "py2_pickle_bytes",
    "write_cifar10",
    "write_fashion_mnist",
]
