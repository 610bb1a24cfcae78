"""IDX readers: the published layout, gzipped or not, and a clear error for every defect."""

import gzip
import re

import numpy as np
import pytest
import torch

from goalbrake.data import CorruptDatasetError, read_idx, read_idx_images, read_idx_labels
from tests.fakedata import idx_bytes


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)


@pytest.mark.parametrize("compress", [True, False])
def test_round_trip(tmp_path, images, compress):
    data = idx_bytes(images)
    path = tmp_path / ("x.gz" if compress else "x")
    path.write_bytes(gzip.compress(data) if compress else data)
    out = read_idx_images(path, image_size=28)
    assert out.dtype == torch.uint8
    assert torch.equal(out, torch.from_numpy(images))


def test_header_layout_is_big_endian(images):
    data = idx_bytes(images)
    assert data[:16] == bytes.fromhex("00000803000000050000001c0000001c")


def test_gzip_is_detected_by_content_not_by_name(tmp_path):
    path = tmp_path / "labels-without-suffix"
    path.write_bytes(gzip.compress(idx_bytes(np.array([3, 1, 4], dtype=np.uint8))))
    labels = read_idx_labels(path, num_classes=10)
    assert labels.dtype == torch.int64
    assert labels.tolist() == [3, 1, 4]


def _error(path) -> str:
    with pytest.raises(CorruptDatasetError) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    return str(info.value)


def test_truncated_gzip_names_the_file(tmp_path, images):
    blob = gzip.compress(idx_bytes(images))
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(blob[: len(blob) // 2])
    assert "Corrupt or truncated gzip file" in _error(path)


def test_corrupt_gzip_names_the_file(tmp_path, images):
    blob = bytearray(gzip.compress(idx_bytes(images)))
    blob[len(blob) // 2] ^= 0xFF
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(bytes(blob))
    assert "Corrupt or truncated gzip file" in _error(path)


def test_truncated_data_names_the_file_and_sizes(tmp_path, images):
    path = tmp_path / "x"
    path.write_bytes(idx_bytes(images)[:-10])
    message = _error(path)
    assert re.search(
        r"truncated: the header declares shape \(5, 28, 28\), 3936 bytes .* 3926", message
    )


def test_trailing_bytes_are_an_error(tmp_path, images):
    path = tmp_path / "x"
    path.write_bytes(idx_bytes(images) + b"\0")
    assert "has trailing bytes" in _error(path)


@pytest.mark.parametrize(
    ("blob", "expected"),
    [
        (b"\x01\x00\x08\x01\x00\x00\x00\x00", "Not an IDX file"),
        (b"\x00\x00\x0d\x01\x00\x00\x00\x00", "Unsupported IDX type code 0x0d"),
        (b"\x00\x00\x08\x03\x00\x00", "Truncated IDX header"),
        (b"", "Not an IDX file"),
    ],
)
def test_bad_headers(tmp_path, blob, expected):
    path = tmp_path / "x"
    path.write_bytes(blob)
    assert expected in _error(path)


def test_label_out_of_range(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(idx_bytes(np.array([0, 10, 3], dtype=np.uint8)))
    with pytest.raises(CorruptDatasetError, match=r"holds label 10 \(must be in 0\.\.9\)"):
        read_idx_labels(path, num_classes=10)


def test_images_of_wrong_size_or_rank(tmp_path):
    path = tmp_path / "images"
    path.write_bytes(idx_bytes(np.zeros((2, 32, 32), dtype=np.uint8)))
    with pytest.raises(CorruptDatasetError, match=r"holds 32×32 images \(must be 28×28\)"):
        read_idx_images(path, image_size=28)
    path.write_bytes(idx_bytes(np.zeros((2,), dtype=np.uint8)))
    with pytest.raises(CorruptDatasetError, match=r"must be \(N, H, W\)"):
        read_idx_images(path)
    path.write_bytes(idx_bytes(np.zeros((2, 2), dtype=np.uint8)))
    with pytest.raises(CorruptDatasetError, match=r"must be \(N,\)"):
        read_idx_labels(path)


def test_unreadable_file(tmp_path):
    with pytest.raises(CorruptDatasetError, match="Cannot read"):
        read_idx(tmp_path)  # a directory
