"""Rewrite grid journals recorded with the old parameters ``row`` and ``seed``.

Until issue 18 a grid study stored one string parameter ``row`` (the row's label) and
``seed`` as its Optuna parameters, so optuna-dashboard and ``optuna.visualization`` read
"row 0.96, seed 0.04". A grid trial now stores each setting its row varies as its own
parameter (:meth:`goalbrake.sweep.define.SweepSpec.row_params`), the space's axes as
before, and no seed (the seed stays in the ``config`` user attr). This script rebuilds
such a journal trial by trial with the new parameters and everything else unchanged
(number, state, values, datetimes, user and system attrs, so ``grid_id`` and the study's
fingerprint), checks that, and replaces the file, keeping the old one as ``<name>.old``
until ``--keep-old`` is not given.

    python experiments/upgrade_grid_journals.py experiments/*/*.journal

A journal with no ``row``/``seed`` parameter is left as it is.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import FrozenTrial

from goalbrake.sweep.attrs import ROW_PARAM, SEED_PARAM
from goalbrake.sweep.define import SweepSpec, load_spec

REPO = Path(__file__).resolve().parents[1]
OLD = (ROW_PARAM, SEED_PARAM)


def study_file(journal: Path) -> Path:
    """The study file beside the journal, else the product sweep of that name."""
    own = journal.with_suffix(".yaml")
    return own if own.is_file() else REPO / "sweeps" / f"{journal.stem}.yaml"


def new_params(
    spec: SweepSpec, trial: FrozenTrial
) -> tuple[dict[str, object], dict[str, BaseDistribution]]:
    """The parameters ``spec.suggest`` gives this trial's grid point today."""
    params = {k: v for k, v in trial.params.items() if k not in OLD}
    dists = {k: v for k, v in trial.distributions.items() if k not in OLD}
    label = trial.params.get(ROW_PARAM)
    if label is not None:
        row = next(r for r in spec.rows if r.label == label)
        for name, choices in spec.row_params().items():
            if name in row.values:
                params[name] = row.values[name]
                dists[name] = CategoricalDistribution(choices)
    return params, dists


def upgrade(journal: Path, keep_old: bool = False) -> int:
    """Rewrite ``journal``; return how many trials were rewritten (0: nothing to do)."""
    spec = load_spec(study_file(journal))
    storage = JournalStorage(JournalFileBackend(str(journal)))
    old = optuna.load_study(study_name=spec.study, storage=storage)
    if not any(set(OLD) & set(t.params) for t in old.trials):
        return 0
    target = journal.with_suffix(".journal.new")
    target.unlink(missing_ok=True)
    new_storage = JournalStorage(JournalFileBackend(str(target)))
    new = optuna.create_study(study_name=spec.study, storage=new_storage, directions=old.directions)
    for key, value in old.user_attrs.items():
        new.set_user_attr(key, value)
    for key, value in _system_attrs(old).items():
        new_storage.set_study_system_attr(new._study_id, key, value)
    for trial in old.trials:
        params, dists = new_params(spec, trial)
        new.add_trial(
            FrozenTrial(
                number=trial.number,
                state=trial.state,
                value=None,
                values=trial.values,
                datetime_start=trial.datetime_start,
                datetime_complete=trial.datetime_complete,
                params=params,
                distributions=dists,
                user_attrs=trial.user_attrs,
                system_attrs=trial.system_attrs,
                intermediate_values=trial.intermediate_values,
                trial_id=trial._trial_id,
            )
        )
    check(old, optuna.load_study(study_name=spec.study, storage=new_storage))
    if keep_old:
        journal.rename(journal.with_suffix(".journal.old"))
    target.replace(journal)
    return len(old.trials)


def _system_attrs(study: optuna.Study) -> dict[str, object]:
    return dict(study._storage.get_study_system_attrs(study._study_id))


def check(old: optuna.Study, new: optuna.Study) -> None:
    """Everything but the parameters is the same, trial by trial."""
    assert old.user_attrs == new.user_attrs and _system_attrs(old) == _system_attrs(new)
    assert len(old.trials) == len(new.trials)
    for a, b in zip(old.trials, new.trials, strict=True):
        same = (a.number, a.state, a.values, a.user_attrs, a.system_attrs)
        assert same == (b.number, b.state, b.values, b.user_attrs, b.system_attrs), a.number
        assert a.intermediate_values == b.intermediate_values, a.number
        assert (a.datetime_start, a.datetime_complete) == (b.datetime_start, b.datetime_complete)
        assert not set(OLD) & set(b.params), b.number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("journals", nargs="+", type=Path)
    parser.add_argument("--keep-old", action="store_true", help="keep <name>.journal.old")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for journal in args.journals:
        n = upgrade(journal, keep_old=args.keep_old)
        print(f"{journal}: {'rewrote ' + str(n) + ' trials' if n else 'nothing to do'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
