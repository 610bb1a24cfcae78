"""PED-ANOVA parameter importances of a study, per method (Optuna's evaluator)."""

from __future__ import annotations

import warnings

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution
from optuna.exceptions import ExperimentalWarning

from goalbrake.sweep.report.results import StudyResults, TrialRow

__all__ = ["MIN_TRIALS_FOR_IMPORTANCE", "importances"]

#: Fewest COMPLETE trials for parameter importances.
MIN_TRIALS_FOR_IMPORTANCE = 4


def _importances_of(
    rows: list[TrialRow], names: list[str], direction: str
) -> tuple[dict[str, float], str]:
    """PED-ANOVA importances of ``names`` over ``rows`` (COMPLETE trials that all have them)."""
    if len(rows) < MIN_TRIALS_FOR_IMPORTANCE:
        return {}, f"needs at least {MIN_TRIALS_FOR_IMPORTANCE} complete trials (has {len(rows)})"
    dists: dict[str, BaseDistribution] = {}
    for name in names:
        values = [r.config[name] for r in rows]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            low, high = float(min(values)), float(max(values))
            if low < high:
                dists[name] = FloatDistribution(low, high, log=low > 0 and high / low >= 20)
        else:
            choices = sorted({str(v) for v in values})
            if len(choices) > 1:
                dists[name] = CategoricalDistribution(choices)
    if not dists:
        return {}, "no hyperparameter varies"
    copy_study = optuna.create_study(direction=direction)
    for r in rows:
        params = {
            name: float(r.config[name])
            if isinstance(dist, FloatDistribution)
            else str(r.config[name])
            for name, dist in dists.items()
        }
        copy_study.add_trial(
            optuna.trial.create_trial(params=params, distributions=dists, value=r.value)
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        warnings.simplefilter("ignore", UserWarning)
        try:
            evaluator = optuna.importance.PedAnovaImportanceEvaluator()
            out = optuna.importance.get_param_importances(copy_study, evaluator=evaluator)
        except (ValueError, RuntimeError, ZeroDivisionError) as err:
            return {}, f"failed: {err}"
    return dict(out), f"PED-ANOVA over {len(rows)} complete trials"


def importances(results: StudyResults) -> tuple[dict[str, dict[str, float]], str]:
    """PED-ANOVA importances of the hyperparameters, per method.

    Computed on an in-memory copy of the COMPLETE trials whose parameters are the values
    the fits used (so a grid of named rows gets importances of lr, mass, ... rather than of
    the row label), separately for each method (SGD, PHS, goal) over the parameters every
    trial of that method has: across methods a parameter such as ``brake.goal`` exists only
    for some trials, and its importance would measure the method instead.

    Returns:
        ``({method: {parameter: importance}}, note)``; methods without enough trials or
        without a varying parameter are left out, and the note says why.
    """
    complete = [r for r in results.rows if r.state == "COMPLETE" and r.value is not None]
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
        return {}, (
            f"parameter importances need at least {MIN_TRIALS_FOR_IMPORTANCE} complete trials "
            f"(have {len(complete)})"
        )
    varying = results.varying()
    out: dict[str, dict[str, float]] = {}
    notes = []
    for method in sorted({r.method for r in complete}):
        rows = [r for r in complete if r.method == method]
        names = [n for n in varying if all(n in r.config for r in rows)]
        values, note = _importances_of(rows, names, results.direction)
        if values:
            out[method] = values
        notes.append(f"{method}: {note}")
    return out, "; ".join(notes)
