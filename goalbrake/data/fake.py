"""Small fake datasets written in the real published file formats.

Why this module is in the package: the smoke tests, the configs' tiny twins and the
benchmarks all need data that goes through goalbrake's real readers (gzipped IDX for
FashionMNIST, the CIFAR-10 "python version" pickles) without a download; one writer here
serves all of them, so a benchmark imports no test code. It is a tool for smoke tests and
benchmarks, not a dataset: the numbers it gives say nothing about real accuracy.

* :func:`write_fashion_mnist` writes the four FashionMNIST files as gzipped IDX
  (``train-images-idx3-ubyte.gz`` …), byte for byte in the published layout.
* :func:`write_cifar10` writes the CIFAR-10 "python version" files (``data_batch_1`` …
  ``data_batch_5``, ``test_batch``, ``batches.meta``) as Python-2-style protocol-2 pickles,
  opcode for opcode like the official ones (byte-string keys, ``numpy.core.multiarray``
  reconstruction), so ``pickle.load(f, encoding="bytes")`` gives ``b"data"`` as it does
  on the real files.

The images are learnable: each class has a fixed smooth random pattern and every image
is its class pattern plus noise, so a tiny network beats chance within an epoch. The
labels are balanced and shuffled. Everything is a function of ``seed``.

Example::

    from goalbrake.data.fake import write_fashion_mnist

    def test_fit(tmp_path):
        dm = FashionMNISTDataModule(data_dir=str(write_fashion_mnist(tmp_path)), val_size=100)
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
from pathlib import Path
from typing import Any, Literal

import numpy as np

from goalbrake.data.cifar10 import CIFAR10DataModule

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

FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
CIFAR10_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")
CIFAR10_LABEL_NAMES = list(CIFAR10DataModule.classes)


# ------------------------------------------------------------------------- images
def class_patterns(channels: int, size: int, seed: int, num_classes: int = 10) -> np.ndarray:
    """One smooth random pattern per class, float in [0, 1], shape (K, C, size, size)."""
    rng = np.random.default_rng([seed, 7919])
    coarse = rng.random((num_classes, channels, size // 4, size // 4))
    return np.kron(coarse, np.ones((4, 4)))  # blocks of 4×4 pixels


def fake_images(
    labels: np.ndarray, channels: int, size: int, seed: int, split: int, noise: float = 0.35
) -> np.ndarray:
    """uint8 images of shape (N, C, size, size): the label's pattern plus uniform noise."""
    patterns = class_patterns(channels, size, seed)
    rng = np.random.default_rng([seed, split])
    x = (1 - noise) * patterns[labels] + noise * rng.random((len(labels), channels, size, size))
    return np.clip(np.rint(255 * x), 0, 255).astype(np.uint8)


def _labels(n: int, seed: int, split: int) -> np.ndarray:
    return np.random.default_rng([seed, split, 1]).permutation(np.arange(n) % 10).astype(np.uint8)


# ------------------------------------------------------------------- FashionMNIST
def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file: 0, 0, 0x08, ndim, big-endian uint32 sizes, the data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_fashion_mnist(
    root: str | Path,
    n_train: int = 600,
    n_test: int = 200,
    seed: int = 0,
    *,
    layout: Literal["flat", "torchvision"] = "flat",
    compress: bool = True,
) -> Path:
    """Write a small FashionMNIST in the published gzipped IDX format.

    Args:
        root: the directory to write (created if needed).
        n_train: images in the training files.
        n_test: images in the ``t10k`` files.
        seed: seed of patterns, noise and labels.
        layout: ``"flat"`` puts the files in ``root``; ``"torchvision"`` in
            ``root/FashionMNIST/raw`` as torchvision's download does.
        compress: write ``.gz`` files (as published) or uncompressed ones.

    Returns:
        ``root``, to pass as ``data_dir``.
    """
    root = Path(root)
    directory = root / "FashionMNIST" / "raw" if layout == "torchvision" else root
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, n, split in (("train", n_train, 0), ("t10k", n_test, 1)):
        labels = _labels(n, seed, split)
        images = fake_images(labels, 1, 28, seed, split)[:, 0]
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            data = idx_bytes(array)
            name = f"{prefix}-{kind}-ubyte"
            if compress:
                (directory / f"{name}.gz").write_bytes(gzip.compress(data, mtime=0))
            else:
                (directory / name).write_bytes(data)
    return root


# ----------------------------------------------------------------------- CIFAR-10
class _Py2Pickler(pickle._Pickler):  # the pure-Python pickler, to change how str is written
    """Writes str and bytes as Python 2 byte strings (SHORT_BINSTRING / BINSTRING) and
    numpy's reconstructor under its numpy-1 name, like the official CIFAR pickles."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: str | bytes) -> None:
        data = obj.encode("latin-1") if isinstance(obj, str) else bytes(obj)
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, np.dtype):  # Python 2's numpy passed its flags as ints
            func, (code, align, copy), state = obj.__reduce__()
            return func, (code, int(align), int(copy)), state
        return NotImplemented

    def save_global(self, obj: Any, name: str | None = None) -> None:
        if getattr(obj, "__name__", None) == "_reconstruct":
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def py2_pickle_bytes(obj: Any) -> bytes:
    """``obj`` pickled as Python 2's cPickle (protocol 2) would have written it."""
    buffer = io.BytesIO()
    pickler = _Py2Pickler(buffer, protocol=2)
    placeholder = object()  # cPickle numbered its memo from 1
    pickler.memo[id(placeholder)] = (0, placeholder)
    pickler.dump(obj)
    return buffer.getvalue()


def write_cifar10(
    root: str | Path,
    n_train: int = 500,
    n_test: int = 100,
    seed: int = 0,
    *,
    layout: Literal["flat", "torchvision"] = "flat",
) -> Path:
    """Write a small CIFAR-10 in the published python-batches format.

    The training images are spread over ``data_batch_1`` … ``data_batch_5`` as evenly as
    possible (so ``n_train >= 5``).

    Args:
        root: the directory to write (created if needed).
        n_train: images in the five training batches together.
        n_test: images in ``test_batch``.
        seed: seed of patterns, noise and labels.
        layout: ``"flat"`` puts the files in ``root``; ``"torchvision"`` in
            ``root/cifar-10-batches-py`` as the archive and torchvision do.

    Returns:
        ``root``, to pass as ``data_dir``.
    """
    if n_train < 5:
        raise ValueError(f"Invalid n_train value: {n_train} (must be >= 5, one per batch)")
    root = Path(root)
    directory = root / "cifar-10-batches-py" if layout == "torchvision" else root
    directory.mkdir(parents=True, exist_ok=True)
    train_labels = _labels(n_train, seed, 0)
    train_images = fake_images(train_labels, 3, 32, seed, 0).reshape(n_train, -1)
    test_labels = _labels(n_test, seed, 1)
    test_images = fake_images(test_labels, 3, 32, seed, 1).reshape(n_test, -1)
    parts = np.array_split(np.arange(n_train), 5)
    batches = [
        (f"data_batch_{i}", f"training batch {i} of 5", train_images[p], train_labels[p])
        for i, p in enumerate(parts, start=1)
    ]
    batches.append(("test_batch", "testing batch 1 of 1", test_images, test_labels))
    for name, batch_label, images, labels in batches:
        batch = {
            "data": images,
            "labels": [int(label) for label in labels],
            "batch_label": batch_label,
            "filenames": [f"fake_{name}_{i}.png" for i in range(len(labels))],
        }
        (directory / name).write_bytes(py2_pickle_bytes(batch))
    meta = {
        "num_cases_per_batch": len(parts[0]),
        "label_names": CIFAR10_LABEL_NAMES,
        "num_vis": 3072,
    }
    (directory / "batches.meta").write_bytes(py2_pickle_bytes(meta))
    return root
