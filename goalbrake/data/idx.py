"""Readers for the IDX files of (Fashion-)MNIST, gzipped or not.

The format (LeCun's MNIST page; "SN3 Pascal Vincent" in torchvision): two zero bytes, a
type code (0x08 = unsigned byte), the number of dimensions d, then d big-endian uint32
sizes, then the data in row-major order. torchvision's
``torchvision.datasets.mnist.read_sn3_pascalvincent_tensor`` reads the same layout, but
only from uncompressed files, checks with ``assert`` and accepts a file longer or shorter
than its header says (``strict=False`` in ``read_image_file``); these readers take the
``.gz`` files as published, and every defect is a :class:`CorruptDatasetError` that names
the file.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import torch
from torch import Tensor

from goalbrake.data.errors import CorruptDatasetError

__all__ = ["read_idx", "read_idx_images", "read_idx_labels"]

_GZIP_MAGIC = b"\x1f\x8b"
_UBYTE = 0x08


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic number."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise CorruptDatasetError(f"Cannot read {path}: {error}") from error
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as error:
        raise CorruptDatasetError(
            f"Corrupt or truncated gzip file {path}: {error}. Delete it and get it again."
        ) from error


def read_idx(path: str | Path) -> Tensor:
    """Read an unsigned-byte IDX file (``.gz`` or not) into a uint8 tensor of its shape.

    Args:
        path: the file.

    Returns:
        A uint8 tensor whose shape is the one the header declares.

    Raises:
        CorruptDatasetError: the file is unreadable, not an unsigned-byte IDX file, or its
            length differs from what its header declares.

    Example::

        >>> labels = read_idx("train-labels-idx1-ubyte.gz")  # doctest: +SKIP
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise CorruptDatasetError(f"Not an IDX file: {path} (bad magic number {data[:4].hex()})")
    code, ndim = data[2], data[3]
    if code != _UBYTE:
        raise CorruptDatasetError(
            f"Unsupported IDX type code 0x{code:02x} in {path} (must be 0x08, unsigned byte)"
        )
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise CorruptDatasetError(f"Truncated IDX header in {path} ({len(data)} bytes)")
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + math.prod(shape)
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "has trailing bytes"
        raise CorruptDatasetError(
            f"IDX file {path} {kind}: the header declares shape {tuple(shape)}, "
            f"{expected} bytes in all, but it has {len(data)}"
        )
    return torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=header).view(shape)


def read_idx_images(path: str | Path, image_size: int | None = None) -> Tensor:
    """Read an IDX image file into a uint8 tensor of shape (N, H, W).

    Raises:
        CorruptDatasetError: as :func:`read_idx`, or the file is not 3-dimensional, or its
            images are not ``image_size`` × ``image_size``.
    """
    images = read_idx(path)
    if images.dim() != 3:
        raise CorruptDatasetError(
            f"IDX image file {path} has shape {tuple(images.shape)} (must be (N, H, W))"
        )
    if image_size is not None and tuple(images.shape[1:]) != (image_size, image_size):
        raise CorruptDatasetError(
            f"IDX image file {path} holds {images.shape[1]}×{images.shape[2]} images "
            f"(must be {image_size}×{image_size})"
        )
    return images


def read_idx_labels(path: str | Path, num_classes: int | None = None) -> Tensor:
    """Read an IDX label file into an int64 tensor of shape (N,).

    Raises:
        CorruptDatasetError: as :func:`read_idx`, or the file is not 1-dimensional, or a
            label is not below ``num_classes``.
    """
    labels = read_idx(path)
    if labels.dim() != 1:
        raise CorruptDatasetError(
            f"IDX label file {path} has shape {tuple(labels.shape)} (must be (N,))"
        )
    if num_classes is not None and labels.numel() and int(labels.max()) >= num_classes:
        raise CorruptDatasetError(
            f"IDX label file {path} holds label {int(labels.max())} "
            f"(must be in 0..{num_classes - 1})"
        )
    return labels.long()
