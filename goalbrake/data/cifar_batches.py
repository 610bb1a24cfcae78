"""Readers for the CIFAR-10 "python version" batches (``data_batch_1..5``, ``test_batch``).

Each batch is a pickled dict (written by Python 2, protocol 2): ``data``, a uint8 array of
shape (N, 3072) holding each image's 1024 red, then 1024 green, then 1024 blue values,
row-major 32×32 planes, and ``labels``, N ints in 0..9 (Krizhevsky's CIFAR page; the
format ``torchvision.datasets.CIFAR10`` reads with ``pickle.load(f, encoding="latin1")``).
Unlike torchvision these readers unpickle with an allow-list (numpy arrays only, so a file
from an untrusted directory cannot run code), check every field, and turn any defect into
a :class:`CorruptDatasetError` that names the file. They do not check md5 sums, so
lossless rebuilds of the files (other placeholder ``filenames``) load too.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from goalbrake.data.errors import CorruptDatasetError

__all__ = ["read_cifar_batch", "read_cifar_meta"]

_IMAGE_SHAPE = (3, 32, 32)
_PIXELS = 3 * 32 * 32
#: What a CIFAR pickle may reference: numpy's array reconstruction (numpy 1 and 2 module
#: names) and, for files written by Python 3, how protocol 2 stores bytes.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return super().find_class(module, name)


def _load_dict(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            obj = _ArrayUnpickler(f, encoding="latin1").load()
    except OSError as error:
        raise CorruptDatasetError(f"Cannot read {path}: {error}") from error
    except Exception as error:  # unpickling raises many types on damaged input
        raise CorruptDatasetError(
            f"Corrupt or truncated CIFAR pickle {path}: {type(error).__name__}: {error}"
        ) from error
    if not isinstance(obj, dict):
        raise CorruptDatasetError(f"CIFAR pickle {path} holds a {type(obj).__name__}, not a dict")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def read_cifar_batch(path: str | Path, num_classes: int = 10) -> tuple[Tensor, Tensor]:
    """Read one CIFAR-10 python batch.

    Args:
        path: a ``data_batch_<i>`` or ``test_batch`` file.
        num_classes: labels must lie in ``0..num_classes - 1``.

    Returns:
        ``(images, labels)``: uint8 of shape (N, 3, 32, 32) and int64 of shape (N,).

    Raises:
        CorruptDatasetError: the file cannot be unpickled, lacks ``data`` or ``labels``,
            or they have the wrong type, shape or range, or different lengths.

    Example::

        >>> images, labels = read_cifar_batch("cifar-10-batches-py/test_batch")  # doctest: +SKIP
    """
    path = Path(path)
    batch = _load_dict(path)
    missing = [key for key in ("data", "labels") if key not in batch]
    if missing:
        raise CorruptDatasetError(f"CIFAR batch {path} lacks {', '.join(missing)}")
    data, labels = batch["data"], batch["labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        found = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else ""
        raise CorruptDatasetError(
            f"CIFAR batch {path}: 'data' is {found or type(data).__name__} "
            f"(must be a uint8 array of shape (N, {_PIXELS}))"
        )
    if data.shape[1] != _PIXELS:
        raise CorruptDatasetError(
            f"CIFAR batch {path}: 'data' has shape {data.shape} (must be (N, {_PIXELS}))"
        )
    try:
        targets = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    except (TypeError, ValueError) as error:
        raise CorruptDatasetError(f"CIFAR batch {path}: 'labels' are not integers") from error
    if targets.shape != (data.shape[0],):
        raise CorruptDatasetError(
            f"CIFAR batch {path}: {data.shape[0]} images but labels of shape {tuple(targets.shape)}"
        )
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= num_classes):
        bad = int(targets.max()) if int(targets.max()) >= num_classes else int(targets.min())
        raise CorruptDatasetError(
            f"CIFAR batch {path} holds label {bad} (must be in 0..{num_classes - 1})"
        )
    # A copy: the unpickled array may share a read-only buffer with the file's bytes.
    images = torch.from_numpy(np.array(data, dtype=np.uint8, order="C")).view(-1, *_IMAGE_SHAPE)
    return images, targets


def read_cifar_meta(path: str | Path) -> list[str]:
    """The class names in ``batches.meta``.

    Raises:
        CorruptDatasetError: the file cannot be unpickled or has no ``label_names`` list.
    """
    path = Path(path)
    meta = _load_dict(path)
    names = meta.get("label_names")
    if not isinstance(names, list) or not all(isinstance(n, str | bytes) for n in names):
        raise CorruptDatasetError(f"CIFAR meta file {path} has no 'label_names' list")
    return [n.decode("latin1") if isinstance(n, bytes) else n for n in names]
