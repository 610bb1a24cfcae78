"""experiments/upgrade_grid_journals.py: old grid journals (parameters ``row`` and ``seed``)
get one parameter per setting; nothing else of a trial changes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState, create_trial

from goalbrake.sweep.attrs import STUDY_ATTR
from goalbrake.sweep.define import load_spec

REPO = Path(__file__).resolve().parents[2]
SPEC = importlib.util.spec_from_file_location(
    "upgrade_grid_journals", REPO / "experiments" / "upgrade_grid_journals.py"
)
upgrade_module = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(upgrade_module)


def _old_style_journal(path: Path) -> list[str]:
    spec = load_spec(REPO / "sweeps" / "paper_table2_fashionmnist.yaml")
    labels = [r.label for r in spec.rows]
    storage = JournalStorage(JournalFileBackend(str(path)))
    study = optuna.create_study(study_name=spec.study, storage=storage, direction="maximize")
    study.set_user_attr(STUDY_ATTR, {"fingerprint": spec.fingerprint()})
    for number, label in enumerate(labels[:3]):
        study.add_trial(
            create_trial(
                state=TrialState.COMPLETE,
                value=0.5 + number / 10,
                params={"row": label, "seed": number % 2},
                distributions={
                    "row": CategoricalDistribution(labels),
                    "seed": CategoricalDistribution([0, 1, 2]),
                },
                user_attrs={"config": {"row": label, "seed": number % 2}},
                system_attrs={"grid_id": number},
            )
        )
    return labels[:3]


def test_an_old_grid_journal_gets_one_parameter_per_setting(tmp_path: Path) -> None:
    journal = tmp_path / "paper_table2_fashionmnist.journal"
    labels = _old_style_journal(journal)
    assert upgrade_module.upgrade(journal) == 3
    spec = load_spec(REPO / "sweeps" / "paper_table2_fashionmnist.yaml")
    study = optuna.load_study(
        study_name=spec.study, storage=JournalStorage(JournalFileBackend(str(journal)))
    )
    assert [t.value for t in study.trials] == [0.5, 0.6, 0.7]
    assert [t.user_attrs["config"]["row"] for t in study.trials] == labels
    for trial, label in zip(study.trials, labels, strict=True):
        row = next(r for r in spec.rows if r.label == label)
        assert "row" not in trial.params and "seed" not in trial.params
        varied = {k: v for k, v in row.values.items() if k in spec.row_params()}
        assert trial.params == varied
    assert upgrade_module.upgrade(journal) == 0  # already new: left as it is


def test_no_committed_grid_journal_stores_row_or_seed_as_a_parameter() -> None:
    for journal in sorted((REPO / "experiments").glob("*/*.journal")):
        storage = JournalStorage(JournalFileBackend(str(journal)))
        for summary in optuna.get_all_study_summaries(storage):
            study = optuna.load_study(study_name=summary.study_name, storage=storage)
            stale = [t.number for t in study.trials if {"row", "seed"} & set(t.params)]
            assert stale == [], f"{journal.name}: trials {stale} (run upgrade_grid_journals.py)"
