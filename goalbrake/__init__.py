"""goalbrake: goal-oriented training with port-Hamiltonian dynamics.

``PHS`` is the optimizer (a heavy ball with mass and friction), ``GoalBrake`` multiplies
its friction once the training loss reaches a goal, and ``EnergyMonitor`` logs the energy
of the system for TensorBoard, and ``HParamsLogger`` writes a run's settings and results
for TensorBoard's HParams tab. The callbacks are for ``lightning.pytorch`` Trainers; the
same classes for ``pytorch_lightning`` Trainers are in :mod:`goalbrake.pytorch_lightning`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from goalbrake.optim import PHS

if TYPE_CHECKING:
    from goalbrake.callbacks import EnergyMonitor, GoalBrake, HParamsLogger

__all__ = ["PHS", "EnergyMonitor", "GoalBrake", "HParamsLogger"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # The callbacks import Lightning; load them on first use so `import goalbrake` stays light.
    if name in ("GoalBrake", "EnergyMonitor", "HParamsLogger"):
        from goalbrake import callbacks

        return getattr(callbacks, name)
    raise AttributeError(f"module 'goalbrake' has no attribute {name!r}")
