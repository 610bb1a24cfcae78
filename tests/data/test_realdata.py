"""The real datasets, where this machine has them (skipped otherwise).

FashionMNIST comes from Debian's ``dataset-fashion-mnist`` package; CIFAR-10 from the
directory named by ``$GOALBRAKE_TEST_CIFAR10`` (a ``cifar-10-batches-py`` folder).
"""

import os
from pathlib import Path

import pytest
import torch

from goalbrake.data import CIFAR10DataModule, FashionMNISTDataModule, read_cifar_meta
from tests.fakedata import py2_pickle_bytes

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
CIFAR = os.environ.get("GOALBRAKE_TEST_CIFAR10")

pytestmark = pytest.mark.realdata


@pytest.mark.skipif(not DEBIAN.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_debian_fashion_mnist():
    dm = FashionMNISTDataModule(val_size=5000)  # found through the search, not data_dir
    dm.setup()
    assert dm.files["train-images-idx3-ubyte"] == DEBIAN / "train-images-idx3-ubyte.gz"
    train_labels = torch.cat([dm._splits["train"][1], dm._splits["val"][1]])
    test_images, test_labels = dm._splits["test"]
    assert train_labels.numel() == 60_000
    assert test_labels.numel() == 10_000
    assert torch.bincount(train_labels).tolist() == [6000] * 10
    assert torch.bincount(test_labels).tolist() == [1000] * 10
    assert test_images.shape == (10_000, 1, 28, 28)
    # the normalization constants are the training set's statistics
    pixels = torch.cat([dm._splits["train"][0], dm._splits["val"][0]]).double() / 255
    assert abs(pixels.mean().item() - dm.mean[0]) < 1e-6
    assert abs(pixels.std(unbiased=False).item() - dm.std[0]) < 1e-6


@pytest.mark.skipif(CIFAR is None, reason="set GOALBRAKE_TEST_CIFAR10 to a cifar-10-batches-py")
def test_real_cifar10():
    dm = CIFAR10DataModule(data_dir=CIFAR, val_size=0)
    dm.setup()
    images, labels = dm._splits["train"]
    test_images, test_labels = dm._splits["test"]
    assert images.shape == (50_000, 3, 32, 32)
    assert test_images.shape == (10_000, 3, 32, 32)
    assert torch.bincount(labels).tolist() == [5000] * 10
    assert torch.bincount(test_labels).tolist() == [1000] * 10
    # known label orders of the official files
    assert labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert test_labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    x = images.double() / 255
    torch.testing.assert_close(
        x.mean((0, 2, 3)), torch.tensor(dm.mean, dtype=torch.float64), rtol=0, atol=1e-6
    )
    std = x.permute(1, 0, 2, 3).flatten(1).std(1, unbiased=False)
    torch.testing.assert_close(std, torch.tensor(dm.std, dtype=torch.float64), rtol=0, atol=1e-6)


@pytest.mark.skipif(CIFAR is None, reason="set GOALBRAKE_TEST_CIFAR10 to a cifar-10-batches-py")
def test_fake_writer_reproduces_the_official_meta_file_byte_for_byte():
    meta = Path(CIFAR) / "batches.meta"
    names = read_cifar_meta(meta)
    obj = {"num_cases_per_batch": 10000, "label_names": names, "num_vis": 3072}
    assert py2_pickle_bytes(obj) == meta.read_bytes()
