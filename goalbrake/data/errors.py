"""The two ways a dataset can fail to load: not found, or found but not valid."""

from __future__ import annotations

__all__ = ["CorruptDatasetError", "DatasetNotFoundError"]


class DatasetNotFoundError(FileNotFoundError):
    """No place searched holds the dataset's files (and downloading is off).

    The message lists every place searched, in order, and how to get the data.
    """


class CorruptDatasetError(ValueError):
    """A dataset file exists but cannot be parsed, or its contents are inconsistent.

    The message names the file and what is wrong with it.
    """
