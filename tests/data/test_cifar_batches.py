"""CIFAR python batches: the published pickles, an allow-listed unpickler, clear errors."""

import os
import pickle

import numpy as np
import pytest
import torch

from goalbrake.data import CorruptDatasetError, read_cifar_batch, read_cifar_meta
from tests.fakedata import CIFAR10_LABEL_NAMES, py2_pickle_bytes, write_cifar10


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
    return write_cifar10(tmp_path_factory.mktemp("cifar"), n_train=52, n_test=20, seed=3)


def test_fake_files_are_python2_pickles_like_the_official_ones(cifar_dir):
    with (cifar_dir / "data_batch_1").open("rb") as f:
        raw = pickle.load(f, encoding="bytes")
    assert list(raw) == [b"data", b"labels", b"batch_label", b"filenames"]
    assert raw[b"data"].dtype == np.uint8
    assert raw[b"data"].shape == (11, 3072)  # 52 over five batches: 11, 11, 10, 10, 10
    assert raw[b"batch_label"] == b"training batch 1 of 5"


def test_round_trip_matches_the_pickled_arrays(cifar_dir):
    with (cifar_dir / "test_batch").open("rb") as f:
        raw = pickle.load(f, encoding="latin1")
    images, labels = read_cifar_batch(cifar_dir / "test_batch")
    assert images.shape == (20, 3, 32, 32)
    assert images.dtype == torch.uint8
    assert labels.dtype == torch.int64
    assert labels.tolist() == raw["labels"]
    # Channel planes: the first 1024 values are red, row-major.
    assert torch.equal(images[:, 0].reshape(20, -1), torch.from_numpy(raw["data"][:, :1024]))
    assert torch.equal(images[:, 2, 31, 31], torch.from_numpy(raw["data"][:, -1]))


def test_meta(cifar_dir):
    assert read_cifar_meta(cifar_dir / "batches.meta") == CIFAR10_LABEL_NAMES


def _write(tmp_path, obj, name="data_batch_1"):
    path = tmp_path / name
    path.write_bytes(py2_pickle_bytes(obj))
    return path


def _batch(n=4, **changes):
    batch = {"data": np.zeros((n, 3072), np.uint8), "labels": list(range(n))}
    batch.update(changes)
    return {k: v for k, v in batch.items() if v is not None}


def _error(path) -> str:
    with pytest.raises(CorruptDatasetError) as info:
        read_cifar_batch(path)
    assert str(path) in str(info.value)
    return str(info.value)


def test_truncated_pickle_names_the_file(tmp_path, cifar_dir):
    blob = (cifar_dir / "data_batch_2").read_bytes()
    path = tmp_path / "data_batch_2"
    path.write_bytes(blob[: len(blob) // 3])
    assert "Corrupt or truncated CIFAR pickle" in _error(path)


def test_garbage_is_an_error(tmp_path):
    path = tmp_path / "test_batch"
    path.write_bytes(os.urandom(64))
    assert "Corrupt or truncated CIFAR pickle" in _error(path)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo owned",))


def test_pickles_cannot_run_code(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": _Evil()}, protocol=2))
    assert "is not allowed" in _error(path)


def test_python3_written_pickles_load_too(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(_batch(), protocol=2))
    images, labels = read_cifar_batch(path)
    assert images.shape == (4, 3, 32, 32)
    assert labels.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        ([1, 2], "holds a list, not a dict"),
        (_batch(labels=None), "lacks labels"),
        (
            _batch(data=np.zeros((4, 3072), np.float32)),
            "'data' is float32 array of shape (4, 3072)",
        ),
        (_batch(data=np.zeros((4, 1024), np.uint8)), "'data' has shape (4, 1024)"),
        (_batch(data=[1, 2]), "'data' is list"),
        (_batch(labels=[0, 1, 2]), "4 images but labels of shape (3,)"),
        (_batch(labels=[0, 1, 2, 10]), "holds label 10 (must be in 0..9)"),
        (_batch(labels=[0, 1, -1, 2]), "holds label -1 (must be in 0..9)"),
        (_batch(labels=["a", "b", "c", "d"]), "'labels' are not integers"),
    ],
)
def test_structure_is_checked(tmp_path, batch, expected):
    assert expected in _error(_write(tmp_path, batch))


def test_meta_without_names(tmp_path):
    path = _write(tmp_path, {"num_vis": 3072}, "batches.meta")
    with pytest.raises(CorruptDatasetError, match="has no 'label_names' list"):
        read_cifar_meta(path)
