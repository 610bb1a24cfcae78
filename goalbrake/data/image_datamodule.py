"""The DataModule shared by FashionMNIST and CIFAR-10: find, parse, split, load.

A subclass names its files (a :class:`~goalbrake.data.sources.DatasetSource`), its class
names and normalization constants, and how to read one split and how to download; this
class does the rest:

* ``prepare_data`` (one process per node): download, only with ``download=True`` and only
  when the files are not found, into the named place or else the user cache;
* ``setup``: find the files (in the place the user named, ``data_dir`` or
  ``$GOALBRAKE_DATA``, alone; else by :func:`~goalbrake.data.sources.find_dataset_files`),
  say in one line which folder it reads, parse and
  check them, hold out a seeded validation split from the training set, and, for the
  tensor loader, move the uint8 data to the trainer's root device;
* ``*_dataloader``: a :class:`~goalbrake.data.tensor_loader.TensorLoader` (default) or a
  standard ``torch.utils.data.DataLoader``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from goalbrake.data.errors import DatasetNotFoundError
from goalbrake.data.sources import (
    DatasetSource,
    find_dataset_files,
    find_named_dataset_files,
    named_place,
    search_places,
    user_cache_dir,
)
from goalbrake.data.tensor_loader import TensorLoader

__all__ = ["LOADERS", "ImageDataModule"]

LOADERS: tuple[str, ...] = ("tensor", "torch")

Split = tuple[Tensor, Tensor]


def _check_int(name: str, value: int | None, low: int, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"Invalid {name} value: {value!r} (must be an integer >= {low})")


class ImageDataModule(pl.LightningDataModule):
    """Base class of the image-classification DataModules; see the subclasses."""

    source: ClassVar[DatasetSource]
    classes: ClassVar[tuple[str, ...]]
    image_shape: ClassVar[tuple[int, int, int]]
    mean: ClassVar[tuple[float, ...]]
    std: ClassVar[tuple[float, ...]]

    def __init__(
        self,
        data_dir: str | None = None,
        batch_size: int = 64,
        eval_batch_size: int = 1000,
        val_size: int = 5000,
        seed: int = 0,
        split_seed: int | None = 0,
        loader: Literal["tensor", "torch"] = "tensor",
        drop_last: bool = False,
        download: bool = False,
        train_subset: int | None = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        _check_int("batch_size", batch_size, 1)
        _check_int("eval_batch_size", eval_batch_size, 1)
        _check_int("val_size", val_size, 0)
        _check_int("train_subset", train_subset, 1, optional=True)
        _check_int("num_workers", num_workers, 0)
        _check_int("split_seed", split_seed, 0, optional=True)
        if loader not in LOADERS:
            raise ValueError(f"Invalid loader value: {loader!r} (must be one of tensor, torch)")
        if loader == "tensor" and num_workers:
            raise ValueError(
                f"Invalid num_workers value: {num_workers} (the tensor loader has no worker "
                "processes; use loader='torch' for workers, or num_workers=0)"
            )
        self.save_hyperparameters()
        self.data_dir = data_dir
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.val_size = val_size
        self.seed = seed
        self.split_seed = split_seed
        self.loader = loader
        self.drop_last = drop_last
        self.download = download
        self.train_subset = train_subset
        self.num_workers = num_workers
        self.files: dict[str, Path] | None = None
        self._splits: dict[str, Split] = {}  # uint8 images and int64 labels, on CPU
        self._device_splits: dict[str, Split] = {}
        self._float_splits: dict[str, Split] = {}
        if val_size == 0:
            # No validation split: present LightningDataModule's own (undefined)
            # val_dataloader, so the Trainer skips validation instead of warning about
            # an empty loader.
            self.val_dataloader = super().val_dataloader  # type: ignore[method-assign]

    # ----------------------------------------------------------------- dataset facts
    @property
    def num_classes(self) -> int:
        """Number of classes (10)."""
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Shape (C, H, W) of one image."""
        return self.image_shape

    @property
    def split_seed_used(self) -> int:
        """The seed of the validation split: ``split_seed``, or ``seed`` when it is None."""
        return self.seed if self.split_seed is None else self.split_seed

    # -------------------------------------------------------------- subclass hooks
    def _read_split(self, files: dict[str, Path], train: bool) -> Split:
        """uint8 images (N, C, H, W) and int64 labels (N,) of the training or test set."""
        raise NotImplementedError

    def _download(self, root: Path) -> None:
        """Download the dataset with torchvision into ``root`` (checksums verified)."""
        raise NotImplementedError

    # -------------------------------------------------------------------- files
    def find_files(self) -> dict[str, Path]:
        """The dataset's files: from the place the user named, else the first that has them.

        Raises:
            DatasetNotFoundError: a named place (``data_dir``, ``$GOALBRAKE_DATA``) does not
                hold them (one line naming it), or no place holds them (the message lists
                the places).
        """
        places = search_places(self.source, self.data_dir)
        named = named_place(places)
        if named is not None:
            return find_named_dataset_files(self.source, named)
        return find_dataset_files(self.source, places)

    def _download_root(self) -> Path:
        """Where ``download=True`` puts the files: the named place, else the user cache."""
        named = named_place(search_places(self.source, self.data_dir))
        return named.path if named is not None else user_cache_dir(self.source.name)

    def _files(self) -> dict[str, Path]:
        if self.files is None:
            try:
                self.files = self.find_files()
            except DatasetNotFoundError:
                if not self.download:
                    raise
                self._download(self._download_root())
                self.files = self.find_files()
            folders = sorted({str(path.parent) for path in self.files.values()})
            rank_zero_info(f"{self.source.title}: reading {', '.join(folders)}")
        return self.files

    def prepare_data(self) -> None:
        """Download (``download=True`` only) when the files are not found."""
        if self.download:
            self._files()

    # -------------------------------------------------------------------- setup
    def setup(self, stage: str | None = None) -> None:
        """Parse the splits ``stage`` needs and put them where the loaders want them.

        Raises:
            DatasetNotFoundError: the files are nowhere (and ``download`` is off).
            CorruptDatasetError: a file is damaged or inconsistent.
            ValueError: ``val_size`` or ``train_subset`` do not fit the training set.
        """
        if stage in (None, "fit", "validate") and "train" not in self._splits:
            self._split_train(*self._read_split(self._files(), train=True))
        if stage in (None, "test", "predict") and "test" not in self._splits:
            self._splits["test"] = self._read_split(self._files(), train=False)
        if self.loader == "tensor":
            device = self._root_device()
            for name, (images, labels) in self._splits.items():
                on = self._device_splits.get(name)
                if on is None or on[0].device != device:
                    self._device_splits[name] = (images.to(device), labels.to(device))

    def _split_train(self, images: Tensor, labels: Tensor) -> None:
        n = images.shape[0]
        if self.val_size >= n:
            raise ValueError(
                f"Invalid val_size value: {self.val_size} (must be < {n}, the size of the "
                "training set)"
            )
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.split_seed_used))
        val_index, train_index = order[: self.val_size], order[self.val_size :]
        if self.train_subset is not None:
            if self.train_subset > train_index.numel():
                raise ValueError(
                    f"Invalid train_subset value: {self.train_subset} (must be <= "
                    f"{train_index.numel()}, the training samples left after val_size)"
                )
            train_index = train_index[: self.train_subset]
        train_index, val_index = train_index.sort().values, val_index.sort().values
        self._splits["train"] = (images[train_index], labels[train_index])
        self._splits["val"] = (images[val_index], labels[val_index])

    def _root_device(self) -> torch.device:
        trainer = self.trainer
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def _rank_and_world_size(self) -> tuple[int, int]:
        trainer = self.trainer
        kwargs = trainer.distributed_sampler_kwargs if trainer is not None else None
        if not kwargs:
            return 0, 1
        return int(kwargs["rank"]), int(kwargs["num_replicas"])

    # -------------------------------------------------------------------- loaders
    def _loader(self, name: str, *, train: bool) -> TensorLoader | DataLoader:
        if name not in self._splits:
            stage = {"train": "fit", "val": "validate", "test": "test"}[name]
            raise RuntimeError(
                f"The {name} split is not loaded: call setup({stage!r}) first "
                "(the Trainer does this)."
            )
        batch_size = self.batch_size if train else self.eval_batch_size
        if self.loader == "tensor":
            rank, world_size = self._rank_and_world_size()
            images, labels = self._device_splits[name]
            return TensorLoader(
                images,
                labels,
                batch_size=batch_size,
                shuffle=train,
                drop_last=self.drop_last and train,
                seed=self.seed,
                rank=rank,
                world_size=world_size,
                mean=self.mean,
                std=self.std,
            )
        if name not in self._float_splits:
            images, labels = self._splits[name]
            mean = torch.tensor(self.mean).view(1, -1, 1, 1)
            std = torch.tensor(self.std).view(1, -1, 1, 1)
            self._float_splits[name] = ((images.float() / 255 - mean) / std, labels)
        return DataLoader(
            TensorDataset(*self._float_splits[name]),
            batch_size=batch_size,
            shuffle=train,
            drop_last=self.drop_last and train,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            generator=torch.Generator().manual_seed(self.seed) if train else None,
        )

    def train_dataloader(self) -> TensorLoader | DataLoader:
        """Shuffled training batches of ``batch_size``."""
        return self._loader("train", train=True)

    def val_dataloader(self) -> TensorLoader | DataLoader:
        """Validation batches of ``eval_batch_size`` in a fixed order (none if val_size=0:
        the Trainer then skips validation)."""
        return self._loader("val", train=False)

    def test_dataloader(self) -> TensorLoader | DataLoader:
        """Test batches of ``eval_batch_size`` in file order."""
        return self._loader("test", train=False)

    def predict_dataloader(self) -> TensorLoader | DataLoader:
        """The test set, as :meth:`test_dataloader`."""
        return self._loader("test", train=False)
