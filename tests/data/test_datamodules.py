"""FashionMNIST/CIFAR-10 DataModules on fake data in the real formats, alone and in a Trainer."""

import gzip

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.fabric.utilities.warnings import PossibleUserWarning
from torch.utils.data import DataLoader

from goalbrake.data import (
    CIFAR10DataModule,
    CorruptDatasetError,
    FashionMNISTDataModule,
    TensorLoader,
)
from goalbrake.models import LeNet
from tests.fakedata import write_cifar10, write_fashion_mnist


@pytest.fixture(scope="module")
def fmnist_dir(tmp_path_factory):
    return write_fashion_mnist(tmp_path_factory.mktemp("fmnist"), n_train=300, n_test=100, seed=1)


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
    return write_cifar10(
        tmp_path_factory.mktemp("cifar"), n_train=120, n_test=40, seed=2, layout="torchvision"
    )


def _idx_array(path):
    data = gzip.decompress(path.read_bytes())
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _pairs(images, labels):
    return sorted(zip((bytes(x.numpy()) for x in images), labels.tolist(), strict=True))


def test_fashion_mnist_round_trip(fmnist_dir):
    dm = FashionMNISTDataModule(data_dir=str(fmnist_dir), val_size=50, batch_size=32)
    assert (dm.num_classes, dm.input_shape) == (10, (1, 28, 28))
    dm.setup()
    train_images, train_labels = dm._splits["train"]
    val_images, val_labels = dm._splits["val"]
    assert (len(train_labels), len(val_labels), len(dm._splits["test"][1])) == (250, 50, 100)
    # train ∪ val is exactly the training file, image and label still paired
    images = torch.from_numpy(_idx_array(fmnist_dir / "train-images-idx3-ubyte.gz").copy())
    labels = torch.from_numpy(_idx_array(fmnist_dir / "train-labels-idx1-ubyte.gz").copy())
    joined = torch.cat([train_images, val_images])[:, 0]
    assert _pairs(joined, torch.cat([train_labels, val_labels])) == _pairs(images, labels)
    test_images, _ = dm._splits["test"]
    assert torch.equal(
        test_images[:, 0],
        torch.from_numpy(_idx_array(fmnist_dir / "t10k-images-idx3-ubyte.gz").copy()),
    )


def test_batches_are_normalized_with_the_dataset_constants(fmnist_dir):
    dm = FashionMNISTDataModule(data_dir=str(fmnist_dir), val_size=50, eval_batch_size=100)
    dm.setup("test")
    x, y = next(iter(dm.test_dataloader()))
    raw = dm._splits["test"][0].float() / 255
    torch.testing.assert_close(x, (raw - 0.2860406) / 0.3530242)
    assert torch.equal(y, dm._splits["test"][1])


def test_cifar_round_trip_and_channel_constants(cifar_dir):
    dm = CIFAR10DataModule(data_dir=str(cifar_dir), val_size=20, eval_batch_size=40)
    assert (dm.num_classes, dm.input_shape) == (10, (3, 32, 32))
    dm.setup()
    assert dm._splits["train"][0].shape == (100, 3, 32, 32)
    assert dm._splits["val"][0].shape == (20, 3, 32, 32)
    x, _ = next(iter(dm.test_dataloader()))
    raw = dm._splits["test"][0].float() / 255
    mean = torch.tensor(CIFAR10DataModule.mean).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10DataModule.std).view(1, 3, 1, 1)
    torch.testing.assert_close(x, (raw - mean) / std)


def test_validation_split_depends_on_split_seed_only(fmnist_dir):
    def val_labels_and_images(**kwargs):
        dm = FashionMNISTDataModule(data_dir=str(fmnist_dir), val_size=50, **kwargs)
        dm.setup("fit")
        return dm._splits["val"][0]

    base = val_labels_and_images(seed=0)
    assert torch.equal(base, val_labels_and_images(seed=1))
    assert not torch.equal(base, val_labels_and_images(split_seed=1))


def test_split_seed_none_makes_the_validation_split_follow_seed(fmnist_dir):
    def val_images(**kwargs):
        dm = FashionMNISTDataModule(data_dir=str(fmnist_dir), val_size=50, **kwargs)
        dm.setup("fit")
        return dm._splits["val"][0], dm._splits["train"][0]

    # split_seed=None with seed s holds out exactly the images split_seed=s holds out.
    for seed in (0, 3):
        follow_val, follow_train = val_images(seed=seed, split_seed=None)
        fixed_val, fixed_train = val_images(seed=0, split_seed=seed)
        assert torch.equal(follow_val, fixed_val)
        assert torch.equal(follow_train, fixed_train)
    assert not torch.equal(
        val_images(seed=0, split_seed=None)[0], val_images(seed=1, split_seed=None)[0]
    )


def test_train_subset_takes_a_subset_of_the_remaining_training_images(fmnist_dir):
    dm = FashionMNISTDataModule(data_dir=str(fmnist_dir), val_size=50, train_subset=40)
    dm.setup("fit")
    full = FashionMNISTDataModule(data_dir=str(fmnist_dir), val_size=50)
    full.setup("fit")
    assert dm._splits["train"][0].shape[0] == 40
    assert torch.equal(dm._splits["val"][0], full._splits["val"][0])
    flat = {bytes(x.numpy()) for x in full._splits["train"][0]}
    assert all(bytes(x.numpy()) in flat for x in dm._splits["train"][0])


def test_loaders_of_both_kinds_give_the_same_data(fmnist_dir):
    kinds = {}
    for loader in ("tensor", "torch"):
        dm = FashionMNISTDataModule(
            data_dir=str(fmnist_dir), val_size=50, batch_size=32, loader=loader
        )
        dm.setup("fit")
        train = dm.train_dataloader()
        assert isinstance(train, TensorLoader if loader == "tensor" else DataLoader)
        assert len(train) == 8
        xs, ys = zip(*train, strict=True)
        kinds[loader] = torch.cat(xs), torch.cat(ys)
        val_x, _ = zip(*dm.val_dataloader(), strict=True)
        kinds[loader + "-val"] = torch.cat(val_x)
    (xa, ya), (xb, yb) = kinds["tensor"], kinds["torch"]
    order_a, order_b = xa.flatten(1).sum(1).argsort(), xb.flatten(1).sum(1).argsort()
    torch.testing.assert_close(xa[order_a], xb[order_b])
    assert torch.equal(ya[order_a], yb[order_b])
    torch.testing.assert_close(kinds["tensor-val"], kinds["torch-val"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"loader": "dali"}, "Invalid loader value: 'dali' (must be one of tensor, torch)"),
        ({"batch_size": 0}, "Invalid batch_size value: 0 (must be an integer >= 1)"),
        ({"val_size": -1}, "Invalid val_size value: -1 (must be an integer >= 0)"),
        ({"train_subset": 0}, "Invalid train_subset value: 0 (must be an integer >= 1)"),
        ({"split_seed": -1}, "Invalid split_seed value: -1 (must be an integer >= 0)"),
        (
            {"num_workers": 2},
            "Invalid num_workers value: 2 (the tensor loader has no worker processes; "
            "use loader='torch' for workers, or num_workers=0)",
        ),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError) as info:
        FashionMNISTDataModule(**kwargs)
    assert str(info.value) == message


def test_sizes_that_do_not_fit_the_training_set(fmnist_dir):
    with pytest.raises(ValueError, match=r"Invalid val_size value: 300 \(must be < 300"):
        FashionMNISTDataModule(data_dir=str(fmnist_dir), val_size=300).setup("fit")
    with pytest.raises(ValueError, match=r"Invalid train_subset value: 251 \(must be <= 250"):
        FashionMNISTDataModule(data_dir=str(fmnist_dir), val_size=50, train_subset=251).setup("fit")


def test_loader_before_setup_says_what_to_do():
    with pytest.raises(RuntimeError, match=r"call setup\('fit'\) first"):
        FashionMNISTDataModule().train_dataloader()


def test_labels_and_images_of_different_lengths(tmp_path):
    write_fashion_mnist(tmp_path, n_train=30, n_test=10)
    other = write_fashion_mnist(tmp_path / "other", n_train=31, n_test=10)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(
        (other / "train-labels-idx1-ubyte.gz").read_bytes()
    )
    with pytest.raises(CorruptDatasetError, match=r"holds 30 images but .* holds 31 labels"):
        FashionMNISTDataModule(data_dir=str(tmp_path), val_size=5).setup("fit")


def test_truncated_file_fails_setup_with_its_name(tmp_path):
    write_fashion_mnist(tmp_path, n_train=30, n_test=10)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(CorruptDatasetError, match=r"t10k-images-idx3-ubyte\.gz"):
        FashionMNISTDataModule(data_dir=str(tmp_path), val_size=5).setup("test")


def test_truncated_cifar_batch_fails_setup_with_its_name(tmp_path):
    write_cifar10(tmp_path, n_train=20, n_test=5)
    path = tmp_path / "data_batch_3"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CorruptDatasetError, match="data_batch_3"):
        CIFAR10DataModule(data_dir=str(tmp_path), val_size=5).setup("fit")


def test_no_validation_loader_when_val_size_is_zero(fmnist_dir):
    dm = FashionMNISTDataModule(data_dir=str(fmnist_dir), val_size=0)
    dm.setup("fit")
    with pytest.raises(MisconfigurationException, match="must be implemented"):
        dm.val_dataloader()
    assert dm._splits["train"][0].shape[0] == 300


@pytest.mark.parametrize("kind", ["fmnist", "cifar"])
def test_fake_data_is_learnable_by_lenet(kind, fmnist_dir, cifar_dir):
    if kind == "fmnist":
        dm, net = FashionMNISTDataModule(data_dir=str(fmnist_dir), val_size=50), LeNet()
    else:
        dm, net = CIFAR10DataModule(data_dir=str(cifar_dir), val_size=20), LeNet(3, 10, 32)
    dm.batch_size = 20
    dm.setup()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    loader = dm.train_dataloader()
    for _ in range(2):
        for x, y in loader:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
    with torch.no_grad():
        x, y = next(iter(dm.test_dataloader()))
        accuracy = (net(x).argmax(1) == y).float().mean().item()
    assert accuracy > 0.5  # chance is 0.1


# ------------------------------------------------------------------- in a Trainer
class Recorder(pl.LightningModule):
    """Records each training batch's labels and image sums, per epoch."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(784, 10)
        self.seen: dict[int, list[torch.Tensor]] = {}

    def training_step(self, batch, batch_idx):
        x, y = batch
        self.seen.setdefault(self.current_epoch, []).append(
            torch.stack([y.float(), x.flatten(1).sum(1)])
        )
        return torch.nn.functional.cross_entropy(self.layer(x.flatten(1)), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", torch.nn.functional.cross_entropy(self.layer(x.flatten(1)), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def epoch(self, e):
        return torch.cat(self.seen[e], dim=1)


def _trainer(tmp_path, **kwargs):
    defaults = dict(
        accelerator="cpu",
        devices=1,
        max_epochs=2,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    return pl.Trainer(**{**defaults, **kwargs})


def _expected(dm, epoch):
    order = dm.train_dataloader().sampler.indices(epoch)
    images, labels = dm._splits["train"]
    x = (images[order].float() / 255 - dm.mean[0]) / dm.std[0]
    return torch.stack([labels[order].float(), x.flatten(1).sum(1)])


def test_trainer_sees_the_seeded_order_of_each_epoch(fmnist_dir, tmp_path):
    dm = FashionMNISTDataModule(data_dir=str(fmnist_dir), val_size=50, batch_size=32, seed=4)
    model = Recorder()
    _trainer(tmp_path, enable_checkpointing=False).fit(model, datamodule=dm)
    for epoch in (0, 1):
        torch.testing.assert_close(model.epoch(epoch), _expected(dm, epoch))


class SaveAtStep(pl.Callback):
    """Saves a checkpoint where ModelCheckpoint(every_n_train_steps=...) would."""

    def __init__(self, step, path):
        self.step, self.path = step, path

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step:
            trainer.save_checkpoint(self.path)


def test_resumed_training_continues_the_same_order(fmnist_dir, tmp_path):
    def datamodule():
        return FashionMNISTDataModule(data_dir=str(fmnist_dir), val_size=50, batch_size=32, seed=4)

    path = tmp_path / "mid-epoch.ckpt"  # after step 6 of the 8 of epoch 0
    _trainer(
        tmp_path, max_epochs=1, enable_checkpointing=False, callbacks=[SaveAtStep(6, path)]
    ).fit(Recorder(), datamodule=datamodule())
    resumed, dm = Recorder(), datamodule()
    _trainer(tmp_path, enable_checkpointing=False).fit(resumed, datamodule=dm, ckpt_path=str(path))
    torch.testing.assert_close(resumed.epoch(0), _expected(dm, 0)[:, 6 * 32 :])
    torch.testing.assert_close(resumed.epoch(1), _expected(dm, 1))


def test_trainer_runs_without_validation_when_val_size_is_zero(fmnist_dir, tmp_path):
    dm = FashionMNISTDataModule(data_dir=str(fmnist_dir), val_size=0, batch_size=100)
    model = Recorder()
    with pytest.warns(PossibleUserWarning, match="no `val_dataloader`. Skipping val loop"):
        _trainer(tmp_path, max_epochs=1, enable_checkpointing=False).fit(model, datamodule=dm)
    assert model.epoch(0).shape == (2, 300)
