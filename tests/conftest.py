"""Shared test settings: small thread pools (CI has 2 cores) and deterministic seeds."""

import os

import pytest
import torch

os.environ.setdefault("GOALBRAKE_DATA", "/nonexistent-goalbrake-test-data")
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
