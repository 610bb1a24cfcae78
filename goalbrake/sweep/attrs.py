"""The one schema of what a sweep stores in Optuna: written by run/, read by report/.

Study user attr :data:`STUDY_ATTR` holds what the report needs from the sweep file
(:meth:`goalbrake.sweep.define.spec.SweepSpec.study_attrs`). Each trial's user attrs:

==================  ====================================================================
key                 value
==================  ====================================================================
``worker``          ``{host, pid, index, cuda_visible_devices}`` of the worker running it
``config``          the trial's record: every reported parameter's effective value, and
                    ``base``, ``method``, ``seed`` (``row`` in a grid of named rows)
``tensorboard``     the trial's TensorBoard run directory, relative to the runs directory
                    (``<study>/trial_<n>``)
``curve``           ``{"epoch": [...], <metric>: [...]}``, one entry per validation run
``best_epoch``      the epoch of the best objective value
``final_value``     the objective metric of the last epoch
``epochs``          how many epochs were recorded
``duration_s``      the fit's wall time
``test``            ``{"final": {"test/acc": .., "test/loss": ..}, "best": {..}}``
``prune_reason``    why a PRUNED trial was pruned
``nonfinite``       True when a non-finite loss pruned it
``fail_reason``     why a FAIL trial failed (``interrupted: ...``, ``error: ...``, ...)
``loss_ratio``      ``{"epoch": [...], "ratio": [...], "budget": max_epochs}``: the smoothed
                    L/L₀ at each recorded epoch, from the trial's logged
                    ``brake/smoothed_loss`` and ``brake/reference_loss`` (GoalBrake trials)
``goal``            with ``brake.goal: {from_trials: ...}``: ``{"goal", "how", "trials",
                    "ratios"}``, the goal the trial used, how it was found, and the numbers
                    of the COMPLETE trials (and their L/L₀) it was computed from; a retry
                    keeps its original's
==================  ====================================================================
"""

from __future__ import annotations

__all__ = [
    "ATTEMPT_ATTRS",
    "BEST_EPOCH",
    "CONFIG",
    "CURVE",
    "DURATION_S",
    "EPOCHS",
    "FAIL_REASON",
    "FINAL_VALUE",
    "GOAL",
    "LOSS_RATIO",
    "NONFINITE",
    "PRUNE_REASON",
    "RECORD_BASE",
    "RECORD_METHOD",
    "ROW_PARAM",
    "SEED_PARAM",
    "STUDY_ATTR",
    "TENSORBOARD",
    "TEST",
    "WORKER",
]

#: The study user attr that marks a study made by ``goalbrake sweep``.
STUDY_ATTR = "goalbrake"

WORKER = "worker"
CONFIG = "config"
TENSORBOARD = "tensorboard"
CURVE = "curve"
BEST_EPOCH = "best_epoch"
FINAL_VALUE = "final_value"
EPOCHS = "epochs"
DURATION_S = "duration_s"
TEST = "test"
PRUNE_REASON = "prune_reason"
NONFINITE = "nonfinite"
FAIL_REASON = "fail_reason"
LOSS_RATIO = "loss_ratio"
GOAL = "goal"

#: User attrs that describe one attempt; a retried trial starts with them cleared (it keeps
#: ``goal``: the same trial gets the same goal).
ATTEMPT_ATTRS = (
    FAIL_REASON,
    PRUNE_REASON,
    NONFINITE,
    CURVE,
    BEST_EPOCH,
    FINAL_VALUE,
    TEST,
    LOSS_RATIO,
)

#: Keys of the ``config`` record besides the parameters' addresses; the grid row and the
#: seed are also Optuna parameter names.
RECORD_BASE = "base"
RECORD_METHOD = "method"
ROW_PARAM = "row"
SEED_PARAM = "seed"
