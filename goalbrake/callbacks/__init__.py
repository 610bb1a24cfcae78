"""Lightning callbacks for ``lightning.pytorch`` Trainers.

The logic lives in Lightning-free base classes; this module binds them to
``lightning.pytorch.Callback`` and :mod:`goalbrake.pytorch_lightning` binds the same
bases to ``pytorch_lightning.Callback``. Objects of the two import paths must not be
mixed in one Trainer, so pick the module that matches your ``Trainer``.
"""

import lightning.pytorch as pl

from goalbrake.callbacks.energy_monitor import EnergyMonitorBase
from goalbrake.callbacks.goal_brake import GoalBrakeBase
from goalbrake.callbacks.hparams import HParamsLoggerBase

__all__ = ["EnergyMonitor", "GoalBrake", "HParamsLogger"]


class GoalBrake(GoalBrakeBase, pl.Callback):
    __doc__ = GoalBrakeBase.__doc__


class EnergyMonitor(EnergyMonitorBase, pl.Callback):
    __doc__ = EnergyMonitorBase.__doc__


class HParamsLogger(HParamsLoggerBase, pl.Callback):
    __doc__ = HParamsLoggerBase.__doc__
