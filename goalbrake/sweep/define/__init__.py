"""The define wing: a sweep file read, validated, and every trial's fit config.

* :mod:`~goalbrake.sweep.define.addressing`: dotted addresses of fit arguments (``brake.goal``);
* :mod:`~goalbrake.sweep.define.params`: ranges and choices of the search space;
* :mod:`~goalbrake.sweep.define.spec`: the validated :class:`SweepSpec` and trial configs;
* :mod:`~goalbrake.sweep.define.load`: :func:`load_spec`, addresses resolved once;
* :mod:`~goalbrake.sweep.define.validate`: the checks that build trial configs.
"""

from goalbrake.sweep.define.load import load_spec
from goalbrake.sweep.define.params import SweepSpecError
from goalbrake.sweep.define.spec import SweepSpec

__all__ = ["SweepSpec", "SweepSpecError", "load_spec"]
