"""Shared test settings: small thread pools (CI has 2 cores) and deterministic seeds."""

import os

import pytest
import torch

# A $GOALBRAKE_DATA of the developer's is a named place, searched alone: tests name theirs.
os.environ.pop("GOALBRAKE_DATA", None)
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
