"""Optuna sweeps of goalbrake fits: ``goalbrake sweep`` and ``goalbrake report``.

* :mod:`~goalbrake.sweep.spec`: the sweep YAML (search space, sampler, pruner, seeds);
* :mod:`~goalbrake.sweep.addressing`: dotted addresses of fit arguments (``brake.goal``);
* :mod:`~goalbrake.sweep.storage`: the embedded journal file or an RDB URL, and the locks;
* :mod:`~goalbrake.sweep.study`: samplers, pruners, the start/stop rule;
* :mod:`~goalbrake.sweep.objective`: one trial = one Lightning fit via ``goalbrake.cli.build``;
* :mod:`~goalbrake.sweep.worker` / :mod:`~goalbrake.sweep.command`: worker processes and
  their supervisor; :mod:`~goalbrake.sweep.recovery`: failing and retrying lost trials;
* :mod:`~goalbrake.sweep.report`: tables and plots from the storage alone.

See docs/sweeps.md.
"""

from goalbrake.sweep.spec import SweepSpec, SweepSpecError, load_spec

__all__ = ["SweepSpec", "SweepSpecError", "load_spec"]
