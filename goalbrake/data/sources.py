"""Where goalbrake looks for dataset files, and the one error when they are nowhere.

A place the user names, the ``data_dir`` argument or else ``$GOALBRAKE_DATA``, is the only
place looked in: when it does not hold the dataset that is an error naming it
(:func:`find_named_dataset_files`), never a silent fall-back to another copy. When none is
named, places are searched in this order (:func:`search_places`):

1. the ``data_dir`` argument, when given;
2. ``$GOALBRAKE_DATA``, when set;
3. system directories: Debian's ``dataset-fashion-mnist`` package installs FashionMNIST
   in ``/usr/share/datasets/fashion-mnist``;
4. the user cache, ``$XDG_CACHE_HOME/goalbrake/<name>`` (default ``~/.cache``), which
   is also where ``download=True`` puts what torchvision downloads.

In each place the files may lie directly or in a known sub-directory (torchvision's
``FashionMNIST/raw/`` and ``cifar-10-batches-py/``), and, where the format allows it,
gzipped. A place that holds only some of the files is an error, never a smaller dataset.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from goalbrake.data.errors import DatasetNotFoundError

__all__ = [
    "CIFAR10_SOURCE",
    "DATA_ENV",
    "FASHION_MNIST_SOURCE",
    "DatasetSource",
    "SearchPlace",
    "find_dataset_files",
    "find_named_dataset_files",
    "named_place",
    "search_places",
    "user_cache_dir",
]

#: The environment variable naming a directory with datasets.
DATA_ENV = "GOALBRAKE_DATA"
#: The labels of the places a user names (searched alone when present).
NAMED_LABELS = ("data_dir", f"${DATA_ENV}")


class SearchPlace(NamedTuple):
    """A directory searched for a dataset, and why it is searched."""

    label: str
    path: Path


@dataclass(frozen=True)
class DatasetSource:
    """The files of one dataset and where they may lie.

    Attributes:
        title: the dataset's name in messages.
        name: its directory name under ``$GOALBRAKE_DATA`` and the user cache.
        files: the file names that must all be present.
        layouts: sub-directories of a place to look in, ``""`` for the place itself.
        gzip_ok: whether a file may be present as ``<name>.gz`` instead.
        system_places: directories installed by system packages.
        install_hint: how to install a system package with the files, if there is one.
    """

    title: str
    name: str
    files: tuple[str, ...]
    layouts: tuple[str, ...]
    gzip_ok: bool = False
    system_places: tuple[SearchPlace, ...] = ()
    install_hint: str | None = None


FASHION_MNIST_SOURCE = DatasetSource(
    title="FashionMNIST",
    name="fashion-mnist",
    files=(
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ),
    layouts=("", "fashion-mnist", "FashionMNIST/raw"),
    gzip_ok=True,
    system_places=(
        SearchPlace(
            "Debian package dataset-fashion-mnist", Path("/usr/share/datasets/fashion-mnist")
        ),
    ),
    install_hint="on Debian or Ubuntu: apt-get install dataset-fashion-mnist",
)

CIFAR10_SOURCE = DatasetSource(
    title="CIFAR-10",
    name="cifar-10",
    files=(*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"),
    layouts=("", "cifar-10-batches-py"),
)


def user_cache_dir(name: str, environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/goalbrake/<name>``, with ``~/.cache`` when the variable is unset."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(base) / "goalbrake" / name


def search_places(
    source: DatasetSource,
    data_dir: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[SearchPlace]:
    """The directories searched for ``source``, in the order they are searched.

    Args:
        source: :data:`FASHION_MNIST_SOURCE` or :data:`CIFAR10_SOURCE`.
        data_dir: the directory given explicitly, if any.
        environ: the environment (default ``os.environ``) for ``$GOALBRAKE_DATA`` and
            ``$XDG_CACHE_HOME``.

    Example::

        >>> [p.label for p in search_places(FASHION_MNIST_SOURCE, "/data", environ={})]
        ['data_dir', 'Debian package dataset-fashion-mnist', 'user cache']
    """
    environ = os.environ if environ is None else environ
    places: list[SearchPlace] = []
    if data_dir is not None:
        places.append(SearchPlace("data_dir", Path(data_dir).expanduser()))
    if environ.get(DATA_ENV):
        places.append(SearchPlace(f"${DATA_ENV}", Path(environ[DATA_ENV]).expanduser()))
    places.extend(source.system_places)
    places.append(SearchPlace("user cache", user_cache_dir(source.name, environ)))
    return places


def named_place(places: list[SearchPlace]) -> SearchPlace | None:
    """The first place the user named (``data_dir``, else ``$GOALBRAKE_DATA``), if any."""
    return next((place for place in places if place.label in NAMED_LABELS), None)


def find_named_dataset_files(source: DatasetSource, place: SearchPlace) -> dict[str, Path]:
    """The dataset's files in a place the user named, or a one-line error naming it.

    Raises:
        DatasetNotFoundError: the place does not exist, is not a directory, holds only some
            of the files, or holds none; the message names the place and the files.
    """
    try:
        return find_dataset_files(source, [place])
    except DatasetNotFoundError as error:
        if str(error).startswith("Incomplete"):
            raise
    if not place.path.exists():
        note = "does not exist"
    elif not place.path.is_dir():
        note = "is not a directory"
    else:
        note = "holds no dataset files"
    where = ", ".join(f"{layout}/" for layout in source.layouts if layout)
    raise DatasetNotFoundError(
        f"{source.title} not found: {place.label} {place.path} {note} (it must hold "
        f"{', '.join(source.files)}, directly or under {where}); a named location is the only "
        f"place looked in: fix or unset it, or pass download=True to download there"
    )


def _find_file(directory: Path, name: str, gzip_ok: bool) -> Path | None:
    candidates = [directory / name, directory / f"{name}.gz"] if gzip_ok else [directory / name]
    return next((c for c in candidates if c.is_file()), None)


def _files_in(source: DatasetSource, directory: Path) -> dict[str, Path | None]:
    return {name: _find_file(directory, name, source.gzip_ok) for name in source.files}


def find_dataset_files(
    source: DatasetSource, places: list[SearchPlace] | None = None
) -> dict[str, Path]:
    """The dataset's files from the first place and layout that holds all of them.

    Args:
        source: which dataset.
        places: where to look, in order (default: :func:`search_places` without a
            ``data_dir``).

    Returns:
        Each file name of ``source.files`` mapped to its path (uncompressed preferred).

    Raises:
        DatasetNotFoundError: a directory holds only some of the files (the message names
            the missing ones), or no place holds them (the message lists every place
            searched and how to get the data).
    """
    places = search_places(source) if places is None else places
    notes: list[str] = []
    for place in places:
        if not place.path.is_dir():
            notes.append("does not exist" if not place.path.exists() else "not a directory")
            continue
        for layout in source.layouts:
            directory = place.path / layout if layout else place.path
            if not directory.is_dir():
                continue
            found = _files_in(source, directory)
            present = {name: path for name, path in found.items() if path is not None}
            if len(present) == len(found):
                return present
            if present:
                missing = [name for name, path in found.items() if path is None]
                raise DatasetNotFoundError(
                    f"Incomplete {source.title} in {directory} ({place.label}): it has "
                    f"{', '.join(sorted(p.name for p in present.values()))} but lacks "
                    f"{', '.join(missing)}. Complete or remove that directory."
                )
        notes.append("no dataset files")
    raise DatasetNotFoundError(_not_found_message(source, places, notes))


def _not_found_message(source: DatasetSource, places: list[SearchPlace], notes: list[str]) -> str:
    lines = [f"{source.title} not found. Searched, in order:"]
    lines += [
        f"  {i}. {place.label}: {place.path} ({note})"
        for i, (place, note) in enumerate(zip(places, notes, strict=True), start=1)
    ]
    where = " or ".join(f"{layout}/" for layout in source.layouts if layout)
    gz = " (each may be gzipped, .gz)" if source.gzip_ok else ""
    lines.append(
        f"Each place may hold the files directly or under {where}: {', '.join(source.files)}{gz}."
    )
    lines.append("To get the data:")
    if source.install_hint:
        lines.append(f"  - {source.install_hint}")
    lines.append(
        f"  - download it with torchvision into {user_cache_dir(source.name)}: pass "
        "download=True (on the command line: --data.download true)"
    )
    lines.append(
        f"  - or point data_dir (--data.data_dir) or ${DATA_ENV} at a directory that holds it"
    )
    return "\n".join(lines)
