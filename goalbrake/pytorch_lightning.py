"""goalbrake's callbacks for ``pytorch_lightning`` Trainers (the standalone distribution).

Same classes, same logic as :mod:`goalbrake.callbacks`, bound to
``pytorch_lightning.Callback``::

    import pytorch_lightning as pl
    from goalbrake.pytorch_lightning import EnergyMonitor, GoalBrake

    trainer = pl.Trainer(callbacks=[GoalBrake(goal=0.15, factor=50.0), EnergyMonitor()])
"""

import pytorch_lightning as pl

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
