"""A Lightning callback that holds a trial after its first epoch until a gate file exists.

The SIGKILL and Ctrl-C tests need a trial that is *certainly* mid-training when they strike;
on a fast machine a tiny trial finishes between two polls of the study. Worker processes
import this module by its class path (``tests.sweep.gate.Gate``; the sweep tests put the
repository on ``PYTHONPATH``).
"""

from __future__ import annotations

import time
from pathlib import Path

import lightning.pytorch as pl

from goalbrake.sweep.run.trial_callbacks import StopCheck


class Gate(pl.Callback):
    """At the start of every epoch after the first (whose validation the trial has recorded
    by then), wait until ``path`` exists or the worker is asked to stop, polling every 50 ms.

    A stop request ends the wait like a slow batch ends: the worker's :class:`StopCheck`
    then raises at the next batch boundary, as it would in a real trial.
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == 0:
            return
        stops = [c.stop for c in trainer.callbacks if isinstance(c, StopCheck)]
        while not self.path.exists() and not any(s.is_set() for s in stops):
            time.sleep(0.05)
