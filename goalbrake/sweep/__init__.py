"""Optuna sweeps of goalbrake fits: ``goalbrake sweep`` and ``goalbrake report``.

The three wings follow a study's data:

* :mod:`goalbrake.sweep.define`: the sweep YAML (search space, sampler, pruner, seeds),
  loaded with its addresses resolved once, and validated;
* :mod:`goalbrake.sweep.run`: the objective (one trial = one fit built by
  :func:`goalbrake.app.build_config`), trial callbacks, workers and their supervisor,
  storage, recovery, study; ``goalbrake sweep`` is :mod:`goalbrake.sweep.run.command`;
* :mod:`goalbrake.sweep.report`: results read from the storage alone, statistics, plots,
  tables; ``goalbrake report`` is :mod:`goalbrake.sweep.report.command`.

:mod:`goalbrake.sweep.attrs` is the one schema of what run/ writes and report/ reads.
See docs/sweeps.md.
"""

from goalbrake.sweep.define import SweepSpec, SweepSpecError, load_spec

__all__ = ["SweepSpec", "SweepSpecError", "load_spec"]
