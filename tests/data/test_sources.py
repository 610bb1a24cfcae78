"""Where datasets are searched, in which order, and the one error when they are nowhere."""

import dataclasses
from pathlib import Path

import pytest

from goalbrake.data import (
    CIFAR10_SOURCE,
    FASHION_MNIST_SOURCE,
    CIFAR10DataModule,
    DatasetNotFoundError,
    FashionMNISTDataModule,
    SearchPlace,
    find_dataset_files,
    search_places,
    user_cache_dir,
)
from tests.fakedata import write_cifar10, write_fashion_mnist

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


def test_search_order_fashion_mnist():
    env = {"GOALBRAKE_DATA": "/env/data", "XDG_CACHE_HOME": "/xdg"}
    assert search_places(FASHION_MNIST_SOURCE, "/given", env) == [
        SearchPlace("data_dir", Path("/given")),
        SearchPlace("$GOALBRAKE_DATA", Path("/env/data")),
        SearchPlace("Debian package dataset-fashion-mnist", DEBIAN),
        SearchPlace("user cache", Path("/xdg/goalbrake/fashion-mnist")),
    ]


def test_search_order_cifar10_has_no_system_place():
    env = {"GOALBRAKE_DATA": "/env/data", "XDG_CACHE_HOME": "/xdg"}
    assert [p.path for p in search_places(CIFAR10_SOURCE, "/given", env)] == [
        Path("/given"),
        Path("/env/data"),
        Path("/xdg/goalbrake/cifar-10"),
    ]


def test_unset_places_are_skipped_and_the_cache_defaults_to_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    places = search_places(CIFAR10_SOURCE, None, {})
    assert places == [SearchPlace("user cache", tmp_path / ".cache/goalbrake/cifar-10")]
    assert user_cache_dir("x", {"XDG_CACHE_HOME": ""}) == tmp_path / ".cache/goalbrake/x"


def _source_without_system_places(source):
    return dataclasses.replace(source, system_places=())


@pytest.mark.parametrize(
    ("layout", "compress", "subdir", "suffix"),
    [
        ("flat", True, "", ".gz"),
        ("flat", False, "", ""),
        ("torchvision", True, "FashionMNIST/raw", ".gz"),
    ],
)
def test_fashion_mnist_layouts(tmp_path, layout, compress, subdir, suffix):
    write_fashion_mnist(tmp_path, n_train=10, n_test=10, layout=layout, compress=compress)
    files = find_dataset_files(FASHION_MNIST_SOURCE, [SearchPlace("data_dir", tmp_path)])
    directory = tmp_path / subdir if subdir else tmp_path
    assert files == {name: directory / f"{name}{suffix}" for name in FASHION_MNIST_SOURCE.files}


def test_cifar_layouts(tmp_path):
    write_cifar10(tmp_path / "a", n_train=5, n_test=1, layout="flat")
    write_cifar10(tmp_path / "b", n_train=5, n_test=1, layout="torchvision")
    for root, sub in ((tmp_path / "a", ""), (tmp_path / "b", "cifar-10-batches-py")):
        files = find_dataset_files(CIFAR10_SOURCE, [SearchPlace("data_dir", root)])
        assert files["test_batch"] == (root / sub / "test_batch" if sub else root / "test_batch")


def test_uncompressed_file_is_preferred(tmp_path):
    write_fashion_mnist(tmp_path, n_train=10, n_test=10, compress=True)
    write_fashion_mnist(tmp_path, n_train=10, n_test=10, compress=False)
    files = find_dataset_files(FASHION_MNIST_SOURCE, [SearchPlace("data_dir", tmp_path)])
    assert all(path.suffix != ".gz" for path in files.values())


def test_first_place_with_the_files_wins(tmp_path):
    write_fashion_mnist(tmp_path / "second", n_train=10, n_test=10)
    write_fashion_mnist(tmp_path / "third", n_train=10, n_test=10)
    places = [
        SearchPlace("data_dir", tmp_path / "missing"),
        SearchPlace("env", tmp_path / "second"),
        SearchPlace("cache", tmp_path / "third"),
    ]
    files = find_dataset_files(FASHION_MNIST_SOURCE, places)
    assert {p.parent for p in files.values()} == {tmp_path / "second"}


def test_incomplete_directory_is_an_error_not_a_smaller_dataset(tmp_path):
    write_cifar10(tmp_path, n_train=5, n_test=1)
    (tmp_path / "data_batch_4").unlink()
    (tmp_path / "data_batch_5").unlink()
    with pytest.raises(DatasetNotFoundError) as info:
        find_dataset_files(CIFAR10_SOURCE, [SearchPlace("data_dir", tmp_path)])
    message = str(info.value)
    assert message.startswith(f"Incomplete CIFAR-10 in {tmp_path} (data_dir)")
    assert "lacks data_batch_4, data_batch_5" in message


def test_not_found_lists_every_place_in_order_and_how_to_get_the_data(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("")
    places = [
        SearchPlace("data_dir", tmp_path / "missing"),
        SearchPlace("$GOALBRAKE_DATA", tmp_path / "empty"),
        SearchPlace("Debian package dataset-fashion-mnist", tmp_path / "file"),
        SearchPlace("user cache", tmp_path / "cache"),
    ]
    with pytest.raises(DatasetNotFoundError) as info:
        find_dataset_files(FASHION_MNIST_SOURCE, places)
    lines = str(info.value).splitlines()
    assert lines[:5] == [
        "FashionMNIST not found. Searched, in order:",
        f"  1. data_dir: {tmp_path / 'missing'} (does not exist)",
        f"  2. $GOALBRAKE_DATA: {tmp_path / 'empty'} (no dataset files)",
        f"  3. Debian package dataset-fashion-mnist: {tmp_path / 'file'} (not a directory)",
        f"  4. user cache: {tmp_path / 'cache'} (does not exist)",
    ]
    text = str(info.value)
    assert "under fashion-mnist/ or FashionMNIST/raw/" in text
    assert "train-images-idx3-ubyte" in text
    assert "apt-get install dataset-fashion-mnist" in text
    assert "download=True (on the command line: --data.download true)" in text
    assert "$GOALBRAKE_DATA" in text


def test_cifar_message_has_no_apt_hint(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        find_dataset_files(CIFAR10_SOURCE, [SearchPlace("data_dir", tmp_path / "x")])
    assert "apt-get" not in str(info.value)
    assert "download=True" in str(info.value)


@pytest.fixture
def nowhere(monkeypatch, tmp_path):
    """No place holds any dataset: environment and cache point into tmp_path, and the
    Debian directory is taken out of the search (it may be installed on this machine)."""
    monkeypatch.setenv("GOALBRAKE_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for cls in (FashionMNISTDataModule, CIFAR10DataModule):
        monkeypatch.setattr(cls, "source", _source_without_system_places(cls.source))
    return tmp_path


@pytest.mark.parametrize("cls", [FashionMNISTDataModule, CIFAR10DataModule])
def test_datamodule_without_data_and_download_off_raises_the_one_error(nowhere, monkeypatch, cls):
    monkeypatch.delenv("GOALBRAKE_DATA")
    calls = []
    dm = cls()
    dm._download = calls.append  # must never be reached
    dm.prepare_data()
    with pytest.raises(DatasetNotFoundError) as info:
        dm.setup("fit")
    text = str(info.value)
    assert "1. user cache" in text
    assert calls == []


@pytest.mark.parametrize("cls", [FashionMNISTDataModule, CIFAR10DataModule])
@pytest.mark.parametrize(
    ("make", "note"),
    [
        (lambda root: None, "does not exist"),
        (lambda root: root.mkdir(), "holds no dataset files"),
        (lambda root: root.write_text(""), "is not a directory"),
    ],
)
def test_a_named_data_dir_without_the_data_is_one_line_naming_it(nowhere, cls, make, note):
    """A data_dir the user named is the only place looked in: no fall-back to another copy,
    even when another place (here $GOALBRAKE_DATA) holds the dataset."""
    writer = write_fashion_mnist if cls is FashionMNISTDataModule else write_cifar10
    writer(nowhere / "env", 20, 5)
    given = nowhere / "given"
    make(given)
    dm = cls(data_dir=str(given))
    with pytest.raises(DatasetNotFoundError) as info:
        dm.setup("fit")
    (line,) = str(info.value).splitlines()
    assert line.startswith(f"{cls.source.title} not found: data_dir {given} {note} (it must hold")
    assert "download=True" in line


def test_a_named_environment_variable_without_the_data_is_one_line_naming_it(nowhere, monkeypatch):
    write_cifar10(nowhere / "cache" / "goalbrake" / "cifar-10", 20, 5)  # another copy
    with pytest.raises(DatasetNotFoundError) as info:
        CIFAR10DataModule().setup("fit")
    (line,) = str(info.value).splitlines()
    assert line.startswith(f"CIFAR-10 not found: $GOALBRAKE_DATA {nowhere / 'env'} does not exist")


def test_download_goes_into_the_named_data_dir(nowhere):
    roots = []

    def fake_download(root):  # stands in for torchvision's download: no network in tests
        roots.append(root)
        write_fashion_mnist(root, 60, 20, layout="torchvision")

    dm = FashionMNISTDataModule(data_dir=str(nowhere / "given"), download=True, val_size=10)
    dm._download = fake_download
    dm.prepare_data()
    assert roots == [nowhere / "given"]
    dm.setup("fit")
    assert dm._splits["train"][0].shape[0] == 50


def test_the_run_says_which_folder_it_reads(nowhere, caplog):
    write_fashion_mnist(nowhere / "env", 20, 5)
    with caplog.at_level("INFO"):
        FashionMNISTDataModule(val_size=5).setup("fit")
    assert f"FashionMNIST: reading {nowhere / 'env'}" in caplog.text


@pytest.mark.parametrize(
    ("cls", "writer"),
    [
        (
            FashionMNISTDataModule,
            lambda root: write_fashion_mnist(root, 60, 20, layout="torchvision"),
        ),
        (CIFAR10DataModule, lambda root: write_cifar10(root, 60, 20, layout="torchvision")),
    ],
)
def test_download_goes_into_the_user_cache_only_when_asked(nowhere, monkeypatch, cls, writer):
    monkeypatch.delenv("GOALBRAKE_DATA")  # nothing named: the user cache
    roots = []

    def fake_download(root):  # stands in for torchvision's download: no network in tests
        roots.append(root)
        writer(root)

    dm = cls(download=True, val_size=10)
    dm._download = fake_download
    dm.prepare_data()
    assert roots == [nowhere / "cache" / "goalbrake" / cls.source.name]
    dm.setup("fit")
    assert dm._splits["train"][0].shape[0] == 50
    dm.prepare_data()  # found now: no second download
    assert len(roots) == 1


def test_environment_variable_is_searched(monkeypatch, tmp_path):
    write_cifar10(tmp_path / "env", n_train=20, n_test=5, layout="torchvision")
    monkeypatch.setenv("GOALBRAKE_DATA", str(tmp_path / "env"))
    dm = CIFAR10DataModule(val_size=5)
    dm.setup("test")
    assert dm.files["test_batch"] == tmp_path / "env" / "cifar-10-batches-py" / "test_batch"
