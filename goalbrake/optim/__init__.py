"""The port-Hamiltonian optimizer family: :class:`PHS`, its schemes and kinetic energies."""

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
    "FRICTION_CONVENTIONS",
    "KINETIC_NAMES",
    "PHS",
    "SCHEMES",
    "KineticEnergy",
    "Logsumexp",
    "Normalized",
    "PNorm",
    "Quadratic",
    "Relativistic",
    "SoftClip",
    "get_kinetic",
    "phs",
]
