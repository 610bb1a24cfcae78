"""goalbrake: goal-oriented training with port-Hamiltonian dynamics.

``PHS`` is the optimizer (a heavy ball with mass and friction), ``GoalBrake`` multiplies
its friction once the training loss reaches a goal, and ``EnergyMonitor`` logs the energy
of the system for TensorBoard.
"""

from goalbrake.optim import PHS

__all__ = ["PHS"]
__version__ = "0.1.0"
