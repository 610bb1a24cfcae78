"""The port-Hamiltonian optimizer family: :class:`PHS`, its schemes and kinetic energies.

:class:`PHS` (discrete schemes) and :class:`PHSFlow` (the ODE flow) are siblings over
:class:`PHSBase`, the books they share.
"""

from goalbrake.optim.base import PHSBase
from goalbrake.optim.flow import FLOW_SOLVERS, PHSFlow, phs_flow_field
from goalbrake.optim.kinetic import (
    KINETIC_NAMES,
    KineticEnergy,
    Logsumexp,
    Normalized,
    PNorm,
    Quadratic,
    Relativistic,
    SoftClip,
    get_kinetic,
)
from goalbrake.optim.phs import FRICTION_CONVENTIONS, PHS, SCHEMES, phs

__all__ = [
    "FLOW_SOLVERS",
    "FRICTION_CONVENTIONS",
    "KINETIC_NAMES",
    "PHS",
    "SCHEMES",
    "KineticEnergy",
    "Logsumexp",
    "Normalized",
    "PHSBase",
    "PHSFlow",
    "PNorm",
    "Quadratic",
    "Relativistic",
    "SoftClip",
    "get_kinetic",
    "phs",
    "phs_flow_field",
]
