"""The fake-data writers for tests. They live in :mod:`goalbrake.data.fake` (the benchmarks
use them too); this module re-exports its whole public API so tests keep importing
``tests.fakedata``."""

# A star import re-exports exactly goalbrake.data.fake's __all__, with no second list here.
from goalbrake.data.fake import *  # noqa: F403
from goalbrake.data.fake import __all__ as __all__
