"""Select one benchmark arm's setting from its tuning journal; write its confirmation study
and its plain fit config (docs/benchmark.md, "Selection and confirmation").

The protocol's rule, exactly:

* the arm's **first 24 (FashionMNIST) / 12 (CIFAR-10) trials by number** (the tuning
  study file's ``n_trials``) are its candidates, whatever their state: a trial pruned by
  the NaN guard counts;
* a failed trial the sweep retried (its worker was stopped or died; the retry is a later
  trial with the same parameters) is skipped, and its retry counts in its place
  (the protocol's first deviation; :func:`goalbrake.sweep.run.recovery.in_retry_order`);
* the setting is the COMPLETE candidate with the best value (the lowest number on a tie),
  its parameters exactly as stored (no rounding); a goal measured on earlier trials
  (``brake.goal: {from_trials: ...}``, arm 8) is the goal the trial ran with, from its
  ``config`` record;
* until every candidate has finished, nothing is selected: one line names the study and
  the count.

From the selection this writes

* ``experiments/benchmark/<ds>_<arm>_confirm.yaml``: a grid study on the arm's base config,
  one row fixing the chosen values, seeds 0 … 4 (``data.seed``) with ``data.split_seed:
  null`` (the validation split follows the seed), ``test: true``, ``checkpoint: true``
  (final weights and best-val checkpoint), no pruner;
* ``configs/benchmark/<ds>_<arm>.yaml``: the selected trial's own fit config (seed 0,
  split 0), a plain ``goalbrake fit --config`` file.

An existing file with other contents is never replaced (nothing is re-chosen after test is
read); ``--force`` says so on purpose.

    python experiments/benchmark/selection.py --dataset fashionmnist --arm phs_goal
    python experiments/benchmark/selection.py --dataset fashionmnist --arm all

(Not ``select.py``: a script of that name shadows the standard library's ``select`` for
every import of ``subprocess`` behind it.)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import FrozenTrial, TrialState

from goalbrake.sweep.attrs import CONFIG, STUDY_ATTR
from goalbrake.sweep.define import SweepSpec, load_spec
from goalbrake.sweep.define.params import GOAL_PARAM, Scalar
from goalbrake.sweep.define.spec import Config, TrialSetting
from goalbrake.sweep.run.recovery import in_retry_order

REPO = Path(__file__).resolve().parents[2]
BENCHMARK = REPO / "experiments" / "benchmark"
CONFIGS = REPO / "configs" / "benchmark"
DATASETS = ("fashionmnist", "cifar10")
#: The protocol's arms, in its order (arm 6, ``phs_goal``, is the reference).
ARMS = (
    "sgd",
    "sgd_cosine",
    "sgd_step",
    "adamw_cosine",
    "phs",
    "phs_goal",
    "phs_step",
    "phs_goal_measured",
)
REFERENCE = "phs_goal"
#: Confirmation seeds 0 … 4; the validation split follows each.
CONFIRM_SEEDS = 5
SPLIT_SEED = "data.split_seed"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)

__all__ = [
    "ARMS",
    "DATASETS",
    "REFERENCE",
    "Selection",
    "SelectionError",
    "candidates",
    "confirm_name",
    "confirm_spec",
    "load_journal",
    "main",
    "select",
    "select_arm",
    "tuned_config",
    "write_selection",
]


class SelectionError(ValueError):
    """No selection (yet): the message is one line naming the study and why."""


@dataclass(frozen=True)
class Selection:
    """One arm's chosen trial and the values its confirmation fixes."""

    dataset: str
    arm: str
    spec: SweepSpec
    trial: FrozenTrial
    #: The first ``n_trials`` counted trials, by number.
    candidates: tuple[FrozenTrial, ...]
    #: Every reported parameter's value as the trial ran it, in the spec's order.
    values: dict[str, Scalar]

    @property
    def label(self) -> str:
        """The confirmation row's name: ``trial<number>``."""
        return f"trial{self.trial.number}"

    def describe(self) -> str:
        """``trial 6 (val/acc 0.9046, best of the first 24 counted)``."""
        return (
            f"trial {self.trial.number} ({self.spec.metric} {self.trial.value:.4f}, best of "
            f"the first {len(self.candidates)} counted)"
        )


# ----------------------------------------------------------------------------- the rule
def candidates(trials: Sequence[FrozenTrial], n: int) -> list[FrozenTrial]:
    """The first ``n`` trials that count, each retried attempt replaced by its retry."""
    return in_retry_order(trials)[:n]


def _chosen_values(spec: SweepSpec, trial: FrozenTrial) -> dict[str, Scalar]:
    """The trial's parameters as stored, and a measured goal from its ``config`` record."""
    where = f"{spec.study}: trial {trial.number}"
    if set(trial.params) != set(spec.space):
        raise SelectionError(
            f"{where} has parameters {sorted(trial.params)}, the study file searches "
            f"{sorted(spec.space)}"
        )
    values: dict[str, Scalar] = dict(trial.params)
    if spec.goal_rule is not None:
        goal = (trial.user_attrs.get(CONFIG) or {}).get(GOAL_PARAM)
        if goal is None:
            raise SelectionError(f"{where} has no measured {GOAL_PARAM} in its config record")
        values[GOAL_PARAM] = goal
    return {name: values[name] for name in spec.param_names()}


def select(study: optuna.Study, spec: SweepSpec, dataset: str, arm: str) -> Selection:
    """The protocol's choice among the study's first ``spec.n_trials`` counted trials.

    Raises:
        SelectionError: a study another study file made, candidates still unfinished, or
            no COMPLETE candidate.

    Example:
        >>> choice = select(study, spec, "fashionmnist", "phs_goal")  # doctest: +SKIP
        >>> choice.describe()  # doctest: +SKIP
        'trial 6 (val/acc 0.9046, best of the first 24 counted)'
    """
    stored = (study.user_attrs.get(STUDY_ATTR) or {}).get("fingerprint")
    if stored != spec.fingerprint():
        raise SelectionError(
            f"{study.study_name}: the journal was made by another study file (fingerprint "
            f"{stored}, {spec.path} has {spec.fingerprint()})"
        )
    n = spec.target_trials()
    first = candidates(study.get_trials(deepcopy=False), n)
    finished = sum(t.state in FINISHED for t in first)
    if finished < n:
        raise SelectionError(
            f"{study.study_name}: {finished} of the first {n} counted trials have finished "
            f"(the selection needs all {n})"
        )
    complete = [t for t in first if t.state == TrialState.COMPLETE and t.value is not None]
    if not complete:
        raise SelectionError(
            f"{study.study_name}: none of the first {n} counted trials is COMPLETE"
        )
    sign = -1.0 if spec.direction == "maximize" else 1.0
    best = min(complete, key=lambda t: (sign * float(t.value), t.number))  # type: ignore[arg-type]
    return Selection(dataset, arm, spec, best, tuple(first), _chosen_values(spec, best))


# ----------------------------------------------------------------------------- reading
@contextmanager
def load_journal(path: Path, study: str) -> Iterator[optuna.Study]:
    """The study in the journal at ``path``, read from a private copy (the original, maybe
    being written by running workers, is never opened for writing).

    Raises:
        SelectionError: no such journal or study.
    """
    if not path.is_file():
        raise SelectionError(f"{study}: no journal at {path}")
    with tempfile.TemporaryDirectory(prefix="benchmark_") as tmp:
        copy = Path(tmp) / path.name
        shutil.copyfile(path, copy)
        storage = JournalStorage(JournalFileBackend(str(copy)))
        try:
            loaded = optuna.load_study(study_name=study, storage=storage)
        except KeyError:
            raise SelectionError(f"{study}: not in {path}") from None
        yield loaded


def tuning_file(dataset: str, arm: str, root: Path = BENCHMARK) -> Path:
    return root / f"{dataset}_{arm}.yaml"


def select_arm(dataset: str, arm: str, journal: Path | None = None) -> Selection:
    """The selection of ``arm`` on ``dataset`` from its committed tuning journal (or
    ``journal``).

    Raises:
        SelectionError: see :func:`select`.
    """
    spec = load_spec(tuning_file(dataset, arm))
    path = journal or tuning_file(dataset, arm).with_suffix(".journal")
    with load_journal(path, spec.study) as study:
        return select(study, spec, dataset, arm)


# ----------------------------------------------------------------------------- writing
def confirm_name(dataset: str, arm: str) -> str:
    """The confirmation study file's stem (and journal's): ``<ds>_<arm>_confirm``."""
    return f"{dataset}_{arm}_confirm"


def _header(prose: str, commands: Sequence[str]) -> str:
    """A YAML comment: ``prose`` wrapped to 90 columns, a blank line, the commands."""
    lines = [*textwrap.wrap(prose, 90), "", *(f"  {c}" for c in commands)]
    return "".join(f"# {line}".rstrip() + "\n" for line in lines)


def confirm_spec(selection: Selection, out_dir: Path = BENCHMARK) -> dict[str, Any]:
    """The confirmation study of ``selection`` as a sweep-file mapping (base relative to
    ``out_dir``)."""
    spec = selection.spec
    base = os.path.relpath(spec.base_files[spec.base], out_dir)
    return {
        "study": f"benchmark_{confirm_name(selection.dataset, selection.arm)}",
        "description": f"{selection.arm} on {selection.dataset}: {selection.describe()} of "
        f"{spec.study}, {CONFIRM_SEEDS} seeds, the split follows the seed, tested",
        "base": base,
        "objective": {"metric": spec.metric, "direction": spec.direction},
        "sampler": "grid",
        "pruner": "none",
        "seeds": CONFIRM_SEEDS,
        "seed": 0,
        "checkpoint": True,
        "test": True,
        "fixed": {**spec.fixed, SPLIT_SEED: None},
        "rows": [{"name": selection.label, **selection.values}],
    }


def confirm_text(selection: Selection, out_dir: Path = BENCHMARK) -> str:
    """The confirmation study file, with a header saying where it comes from."""
    name = confirm_name(selection.dataset, selection.arm)
    where = os.path.relpath(out_dir, REPO)
    header = _header(
        f'Benchmark arm "{selection.arm}" on {selection.dataset}: the {CONFIRM_SEEDS}-seed '
        f"confirmation of its tuning study's choice, {selection.describe()} of "
        f"{selection.spec.study}. Written from the tuning journal by "
        'experiments/benchmark/selection.py (docs/benchmark.md, "Running it"); do not edit. '
        "Seed s trains with data.seed = s on validation split s; test is read here, once "
        "per trial, after its fit.",
        [
            f"goalbrake sweep --config {where}/{name}.yaml --workers 2 \\",
            f"    --storage journal:{where}/{name}.journal",
        ],
    )
    return header + yaml.safe_dump(confirm_spec(selection, out_dir), sort_keys=False)


def tuned_config(selection: Selection) -> Config:
    """The selected trial's fit config (seed and split as it ran), without the sweep's
    logger and checkpoint: what ``goalbrake fit --config`` runs."""
    spec = selection.spec
    setting = TrialSetting(base=spec.base, values=selection.values, seed=spec.seed)
    return spec.trial_config(setting)


def config_text(selection: Selection) -> str:
    """configs/benchmark/<ds>_<arm>.yaml, with a header saying where it comes from."""
    name = f"{selection.dataset}_{selection.arm}"
    header = _header(
        f'Benchmark arm "{selection.arm}" on {selection.dataset}, as its tuning chose it: '
        f"{selection.describe()} of {selection.spec.study}, with its seed 0 and validation "
        "split 0 (docs/benchmark.md). Written by experiments/benchmark/selection.py; "
        "tests/test_benchmark_configs.py keeps it equal to the trial.",
        [f"goalbrake fit --config configs/benchmark/{name}.yaml"],
    )
    return header + yaml.safe_dump(tuned_config(selection), sort_keys=False)


def _differs(path: Path, text: str) -> bool:
    return path.is_file() and path.read_text() != text


def write_selection(
    selection: Selection,
    out_dir: Path = BENCHMARK,
    configs_dir: Path = CONFIGS,
    force: bool = False,
) -> list[str]:
    """Write the confirmation study and the plain config; one line per file.

    Raises:
        SelectionError: a file exists with other contents and not ``force``.
    """
    name = f"{selection.dataset}_{selection.arm}"
    confirm = out_dir / f"{confirm_name(selection.dataset, selection.arm)}.yaml"
    config = configs_dir / f"{name}.yaml"
    texts = {confirm: confirm_text(selection, out_dir), config: config_text(selection)}
    for path, text in texts.items():  # refuse before writing either
        if _differs(path, text) and not force:
            raise SelectionError(
                f"{path} exists with other contents (nothing is re-chosen after test is "
                "read; --force replaces it)"
            )
    lines = []
    for path, text in texts.items():
        if path.is_file() and not _differs(path, text):
            lines.append(f"{path}: unchanged")
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        lines.append(f"{path}: written")
    load_spec(confirm)  # the sweep's own check of the file just written
    return lines


# ----------------------------------------------------------------------------- command
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python experiments/benchmark/selection.py",
        description="Select a benchmark arm's setting from its tuning journal and write its "
        "confirmation study and config (docs/benchmark.md).",
    )
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--arm", required=True, choices=(*ARMS, "all"))
    p.add_argument("--journal", type=Path, help="read this tuning journal (default: committed)")
    p.add_argument("--dry-run", action="store_true", help="print the selection, write nothing")
    p.add_argument("--force", action="store_true", help="replace files with other contents")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Select and write; exit status 1 when an arm named alone cannot be selected."""
    args = _parser().parse_args(argv)
    arms = ARMS if args.arm == "all" else (args.arm,)
    if args.journal is not None and len(arms) > 1:
        print("error: --journal needs one --arm", file=sys.stderr)
        return 2
    refused = 0
    for arm in arms:
        try:
            selection = select_arm(args.dataset, arm, args.journal)
            print(f"{selection.spec.study}: {selection.describe()}")
            for name, value in selection.values.items():
                print(f"  {name}: {value!r}")
            if not args.dry_run:
                for line in write_selection(selection, force=args.force):
                    print(f"  {line}")
        except SelectionError as err:
            refused += 1
            print(f"not selected: {err}", file=sys.stderr)
    return 1 if refused and args.arm != "all" else 0


if __name__ == "__main__":
    sys.exit(main())
