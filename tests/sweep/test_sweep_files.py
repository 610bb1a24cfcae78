"""Every study file validates and its first trial fits on tiny data in the real format (the
config's tiny twin); every committed journal is the one its study file made and still
yields the numbers its experiment's README states.

sweeps/ holds what a user runs; experiments/<name>/ holds a study's journal, its README
and, unless it is a sweep of sweeps/, its study file. A README states its numbers in a
fenced ``numbers`` block, one per line::

    SELECTOR: QUANTITY = VALUE

* SELECTOR: ``key=value`` tokens (shell-quoted where a value has spaces) that a trial's
  config must all match (``row=goal_trial33``, ``optimizer.lr=0.1``, ``trial=37`` for a
  trial number; ``with=NAME`` adds the matching trials of experiment NAME's journal, for
  seeds split over two studies), ``best`` for the best point on the objective, ``study``
  for the whole study, ``A vs B`` for A − B paired seed by seed, or ``A vs 91.02 %`` for
  A against a constant (the paper's single run).
* QUANTITY: the study's metric (``val/acc``: each trial's objective value, its best
  epoch's), the metric's ``last`` (its last epoch's: ``val/acc last``), ``test/acc
  final`` or ``test/acc best`` (the final weights, the best-val checkpoint), ``trial``
  (the number of the one trial selected), or, for ``study``, ``trials``, ``complete``,
  ``pruned``, ``fail``. A metric followed by ``ci`` is the 95 % Student-t interval of the
  mean (of the paired differences for ``vs``), by ``p`` the two-sided t-test's p of a
  ``vs`` line (paired, or one-sample against the constant), by ``wins`` the seeds on
  which A is the higher.
* VALUE: a mean, optionally ``± std``: ``0.9095 ± 0.0027`` (as stored), ``91.06 ± 0.17 %``
  (in percent), ``+0.47 pp`` (a paired difference in percentage points), or a count; an
  interval ``91.11 … 91.49 %``; a p ``0.0017``; wins ``5/5``. It must agree with the
  journal to the digits written.

An experiment that is prepared but not yet run (its README says ``**Queued, not run.**``)
has no journal and no ``numbers`` block; its README states its study file's fingerprint,
which the journal will carry once it runs.
"""

from __future__ import annotations

import math
import re
import shlex
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.storages.journal import JournalFileBackend, JournalStorage

from goalbrake.app import build_config as build_trial
from goalbrake.sweep.attrs import STUDY_ATTR
from goalbrake.sweep.define import SweepSpec, load_spec
from goalbrake.sweep.define.spec import fit_config
from goalbrake.sweep.define.validate import _settings, check_configs
from goalbrake.sweep.report.results import StudyResults, TrialRow, collect
from goalbrake.sweep.report.stats import paired
from tests.twins import tiny_twin

REPO = Path(__file__).resolve().parents[2]
SWEEPS = sorted((REPO / "sweeps").glob("*.yaml"))
#: What a user runs: the paper's tables, Fig. 1, one TPE search per dataset, PostgreSQL.
PRODUCT = {
    "paper_table1_cifar10",
    "paper_table2_fashionmnist",
    "fashionmnist_mass_friction",
    "fashionmnist_goal",
    "cifar10_goal",
    "cifar10_goal_postgres",
}
#: The equal-budget benchmark (docs/benchmark.md): one folder of many studies, one per arm
#: and dataset, each ``<dataset>_<arm>.yaml`` with its journal beside it.
BENCHMARK = REPO / "experiments" / "benchmark"
# experiments/configs links to ../configs, so moved study files keep their base paths.
EXPERIMENTS = sorted(
    d
    for d in (REPO / "experiments").iterdir()
    if d.is_dir() and not d.is_symlink() and d != BENCHMARK
)
# The tuning studies; each arm's confirmation (*_confirm.yaml, written by
# experiments/benchmark/selection.py once the arm is tuned) is validated with the others.
BENCHMARK_STUDIES = sorted(p for p in BENCHMARK.glob("*.yaml") if not p.stem.endswith("_confirm"))
BENCHMARK_CONFIRMS = sorted(BENCHMARK.glob("*_confirm.yaml"))
STUDY_FILES = (
    SWEEPS
    + [d / f"{d.name}.yaml" for d in EXPERIMENTS if (d / f"{d.name}.yaml").is_file()]
    + BENCHMARK_STUDIES
    + BENCHMARK_CONFIRMS
)


def _study_file(experiment: Path) -> Path:
    """The study file of an experiment: in its folder, else the product sweep of its name."""
    own = experiment / f"{experiment.name}.yaml"
    return own if own.is_file() else REPO / "sweeps" / f"{experiment.name}.yaml"


def _journal(experiment: Path) -> optuna.Study:
    storage = JournalStorage(JournalFileBackend(str(experiment / f"{experiment.name}.journal")))
    return optuna.load_study(study_name=experiment.name, storage=storage)


def test_sweeps_hold_what_a_user_runs_and_no_journal() -> None:
    assert {p.stem for p in SWEEPS} == PRODUCT
    assert sorted(p.name for p in (REPO / "sweeps").iterdir() if p.suffix != ".yaml") == []


# A refit (data.val_size: 0) trains without validation; Lightning says so, rightly.
@pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`")
@pytest.mark.parametrize("path", STUDY_FILES, ids=[p.stem for p in STUDY_FILES])
def test_sweep_file(path: Path, tmp_path: Path) -> None:
    spec = load_spec(path)
    assert check_configs(spec, str(tmp_path / "runs")) >= 1
    if spec.is_grid:
        assert spec.target_trials() == spec.grid_size()
    # The first trial of each base config, shrunk to its tiny twin, fits.
    seen: set[str] = set()
    for setting in _settings(spec):
        if setting.base in seen:
            continue
        seen.add(setting.base)
        config = fit_config(spec, setting, tmp_path / "runs", 0)
        full = tmp_path / f"trial_{len(seen)}.yaml"
        full.write_text(yaml.safe_dump(config, sort_keys=False))
        twin = tiny_twin(full, tmp_path / f"twin_{len(seen)}", max_steps=2)
        twin["trainer"]["val_check_interval"] = 2  # validate once, at the last step
        cli = build_trial(twin)
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        assert cli.trainer.global_step == 2
        assert spec.metric in cli.trainer.callback_metrics


def test_paper_tables_hold_the_papers_best_rows() -> None:
    table2 = load_spec(REPO / "sweeps" / "paper_table2_fashionmnist.yaml")
    best2 = {
        "optimizer.lr": 0.1,
        "optimizer.mass": 10.0,
        "optimizer.friction": 0.1,
        "brake.goal": 0.15,
        "brake.factor": 50.0,
    }
    rows2 = [r for r in table2.rows if all(r.values.get(k) == v for k, v in best2.items())]
    assert sorted(r.values["brake.mode"] for r in rows2) == ["reduction", "remaining"]
    assert table2.seeds == 3 and table2.grid_size() == 32 * 3
    table1 = load_spec(REPO / "sweeps" / "paper_table1_cifar10.yaml")
    best1 = {
        "optimizer.lr": 0.1,
        "optimizer.mass": 100.0,
        "optimizer.friction": 0.1,
        "brake.goal": 0.65,
        "brake.factor": 49.0,
    }
    rows1 = [r for r in table1.rows if all(r.values.get(k) == v for k, v in best1.items())]
    assert sorted(r.values["brake.mode"] for r in rows1) == ["reduction", "remaining"]


# ------------------------------------------------------------------ the numbers block
_NUMBER = r"[+-]?\d+(?:\.\d+)?"
_VALUE = re.compile(rf"^({_NUMBER})(?: ± (\d+(?:\.\d+)?))?(?: (%|pp))?$")
_INTERVAL = re.compile(rf"^({_NUMBER}) … ({_NUMBER})(?: (%|pp))?$")
_WINS = re.compile(r"^(\d+)/(\d+)$")
_CONSTANT = re.compile(rf"^({_NUMBER}) %$")
_COUNTS = {"trials": None, "complete": "COMPLETE", "pruned": "PRUNED", "fail": "FAIL"}
#: What a queued experiment's README says, in place of a numbers block.
QUEUED = "**Queued, not run.**"
_FINGERPRINT = re.compile(r"fingerprint `([0-9a-f]{16})`")
#: Another experiment's results by its name (``with=NAME``).
Journals = Callable[[str], StudyResults]


def numbers_block(readme: str) -> list[str]:
    """The lines of the README's fenced ``numbers`` block."""
    match = re.search(r"^```numbers\n(.*?)^```", readme, re.S | re.M)
    return [] if match is None else [ln for ln in match.group(1).splitlines() if ln.strip()]


def _matches(row: TrialRow, tokens: Sequence[str]) -> bool:
    for token in tokens:
        key, _, want = token.partition("=")
        have = row.number if key == "trial" else row.config.get(key)
        try:
            if not math.isclose(float(have), float(want), rel_tol=1e-9):
                return False
        except (TypeError, ValueError):
            if str(have) != want:
                return False
    return True


def _no_other(name: str) -> StudyResults:
    raise ValueError(f"with={name} needs the other experiments' journals")


def _select(results: StudyResults, selector: str, journals: Journals = _no_other) -> list[TrialRow]:
    if selector == "best":
        return results.points()[0].complete
    tokens = shlex.split(selector)
    pool = list(results.rows)
    for token in [t for t in tokens if t.startswith("with=")]:
        pool += journals(token.removeprefix("with=")).rows
    tokens = [t for t in tokens if not t.startswith("with=")]
    rows = [r for r in pool if r.state == "COMPLETE" and _matches(r, tokens)]
    if not rows:
        raise ValueError(f"no complete trial matches {selector!r}")
    return rows


def _quantity(row: TrialRow, quantity: str, metric: str) -> float | None:
    if quantity == metric:
        return row.value
    if quantity == f"{metric} last":
        return row.final_value
    name, _, kind = quantity.rpartition(" ")
    if kind in ("final", "best") and name:
        return row.test_value(kind, name)
    raise ValueError(
        f"unknown quantity {quantity!r} (allowed: {metric}, {metric} last, test/acc final|best)"
    )


def _paired(
    results: StudyResults, selector: str, quantity: str, journals: Journals
) -> tuple[list[float], list[float]]:
    """A's values and B's, seed by seed; B a constant where it reads ``91.02 %``."""
    side_a, side_b = selector.split(" vs ")
    a = _select(results, side_a, journals)
    constant = _CONSTANT.match(side_b)
    if constant is not None:
        values = [_quantity(row, quantity, results.metric) for row in a]
        kept = [v for v in values if v is not None]
        return kept, [float(constant.group(1)) / 100.0] * len(kept)
    b = _select(results, side_b, journals)
    by_seed = {row.seed: row for row in b}
    if len(by_seed) != len(b) or len({row.seed for row in a}) != len(a):
        raise ValueError(f"{selector!r} pairs by seed, and a side has two trials of one seed")
    xs, ys = [], []
    for row in a:
        x = _quantity(row, quantity, results.metric)
        y = _quantity(by_seed[row.seed], quantity, results.metric)
        if x is not None and y is not None:
            xs.append(x)
            ys.append(y)
    return xs, ys


def _measure(
    results: StudyResults, selector: str, quantity: str, journals: Journals
) -> list[float]:
    """The values whose mean (and std) a line states."""
    if selector == "study":
        state = _COUNTS[quantity]
        return [float(sum(state is None or r.state == state for r in results.rows))]
    if " vs " in selector:
        a, b = _paired(results, selector, quantity, journals)
        return [x - y for x, y in zip(a, b, strict=True)]
    rows = _select(results, selector, journals)
    if quantity == "trial":
        (row,) = rows
        return [float(row.number)]
    values = [_quantity(r, quantity, results.metric) for r in rows]
    return [v for v in values if v is not None]


def _agrees(stated: str, computed: float, scale: float) -> bool:
    """``computed`` × ``scale`` rounds to ``stated`` (half a unit of its last digit)."""
    decimals = len(stated.split(".")[1]) if "." in stated else 0
    return abs(computed * scale - float(stated)) <= 0.5 * 10**-decimals + 1e-9


def _check_statistic(
    results: StudyResults, selector: str, quantity: str, value: str, journals: Journals
) -> str | None:
    """What the journal gives for a ``ci``, ``p`` or ``wins`` line, None where it agrees."""
    metric, _, statistic = quantity.rpartition(" ")
    if " vs " in selector:
        a, b = _paired(results, selector, metric, journals)
    else:
        a = _measure(results, selector, metric, journals)
        b = [0.0] * len(a)
    test = paired(a, b)
    if statistic == "wins":
        wins = _WINS.match(value)
        if wins is None:
            raise ValueError(f"malformed wins {value!r} (WON/SEEDS)")
        got = f"{test.wins}/{test.n}"
        return None if value == got else got
    if statistic == "p":
        if " vs " not in selector or _VALUE.match(value) is None or test.p is None:
            raise ValueError(f"a p needs 'A vs B' and a number, and two seeds: {value!r}")
        return None if _agrees(value, test.p, 1.0) else f"{test.p:.6g}"
    interval = _INTERVAL.match(value)
    if interval is None or test.ci95 is None:
        raise ValueError(f"malformed interval {value!r} (LOW … HIGH, with two seeds or more)")
    low, high, unit = interval.groups()
    scale = 100.0 if unit else 1.0
    ok = _agrees(low, test.ci95[0], scale) and _agrees(high, test.ci95[1], scale)
    return None if ok else f"{test.ci95[0] * scale:.6g} … {test.ci95[1] * scale:.6g}"


def check_numbers(
    results: StudyResults, lines: Sequence[str], journals: Journals = _no_other
) -> list[str]:
    """Each stated number the journal does not give, as ``line (journal: value)``."""
    wrong = []
    for line in lines:
        selector, _, rest = line.rpartition(": ")
        quantity, _, value = rest.partition(" = ")
        value = value.strip()
        if quantity.rpartition(" ")[2] in ("ci", "p", "wins") and selector:
            got = _check_statistic(results, selector, quantity, value, journals)
            if got is not None:
                wrong.append(f"{line} (journal: {got})")
            continue
        match = _VALUE.match(value)
        if not selector or match is None:
            raise ValueError(f"malformed numbers line {line!r} (SELECTOR: QUANTITY = VALUE)")
        mean, std, unit = match.groups()
        values = _measure(results, selector, quantity, journals)
        scale = 100.0 if unit else 1.0
        got_mean = statistics.fmean(values)
        got = f"{got_mean * scale:.6g}"
        ok = _agrees(mean, got_mean, scale)
        if std is not None:
            got_std = statistics.stdev(values) if len(values) > 1 else 0.0
            got += f" ± {got_std * scale:.6g}"
            ok = ok and _agrees(std, got_std, scale)
        if not ok:
            wrong.append(f"{line} (journal: {got})")
    return wrong


def _results(name: str) -> StudyResults:
    return collect(_journal(REPO / "experiments" / name))


RUN = [d for d in EXPERIMENTS if (d / f"{d.name}.journal").is_file()]
QUEUED_EXPERIMENTS = [d for d in EXPERIMENTS if d not in RUN]


@pytest.mark.parametrize("experiment", RUN, ids=[d.name for d in RUN])
def test_experiment_journal_is_its_study_files_and_yields_its_readmes_numbers(
    experiment: Path,
) -> None:
    """The journal was made from the study file as it stands (so the study resumes), and
    every number of the README's ``numbers`` block comes out of it."""
    readme = (experiment / "README.md").read_text()
    lines = numbers_block(readme)
    assert lines, f"{experiment.name}/README.md has no ```numbers block"
    assert QUEUED not in readme
    study = _journal(experiment)
    spec = load_spec(_study_file(experiment))
    assert study.user_attrs[STUDY_ATTR]["fingerprint"] == spec.fingerprint()
    assert check_numbers(collect(study), lines, _results) == []


@pytest.mark.parametrize("experiment", QUEUED_EXPERIMENTS, ids=[d.name for d in QUEUED_EXPERIMENTS])
def test_an_experiment_without_a_journal_is_queued_with_its_command(experiment: Path) -> None:
    """A prepared study says it is queued, states no numbers yet, and gives the command
    that runs it into its folder and the fingerprint its journal will carry."""
    readme = (experiment / "README.md").read_text()
    assert QUEUED in readme
    assert numbers_block(readme) == []
    study_file = experiment / f"{experiment.name}.yaml"
    assert study_file.is_file()
    assert f"--config experiments/{experiment.name}/{study_file.name}" in readme
    assert f"journal:experiments/{experiment.name}/{experiment.name}.journal" in readme
    assert _FINGERPRINT.findall(readme) == [load_spec(study_file).fingerprint()]


def test_the_queued_velocity_row_is_the_papers_best_fashionmnist_row() -> None:
    """The queued row is Table 2's best row as run in paper_table2_fashionmnist, with the
    friction on the velocity and the goal read as ``reduction``, on the same seeds."""
    queued = load_spec(
        REPO
        / "experiments"
        / "paper_table2_velocity_reduction"
        / "paper_table2_velocity_reduction.yaml"
    )
    table2 = load_spec(REPO / "sweeps" / "paper_table2_fashionmnist.yaml")
    (row,) = queued.rows
    best = {"optimizer.lr": 0.1, "optimizer.mass": 10.0, "optimizer.friction": 0.1}
    best |= {"brake.goal": 0.15, "brake.factor": 50.0, "brake.mode": "reduction"}
    assert row.values == best | {"optimizer.friction_on": "velocity"}
    assert any(r.base == row.base and r.values == best for r in table2.rows)
    assert (queued.seed, queued.seeds, queued.test) == (table2.seed, table2.seeds, True)
    base = yaml.safe_load((queued.base_files[row.base]).read_text())
    assert base["optimizer"]["init_args"]["friction_on"] == "momentum"
    assert base["trainer"]["max_epochs"] == 20


def test_benchmark_has_its_protocols_arms_on_both_datasets() -> None:
    """Every arm of docs/benchmark.md on both datasets, tuned by TPE with no pruner and the
    same number of trials within a dataset, on split 0, never tested."""
    arms = {"sgd", "sgd_cosine", "sgd_step", "adamw_cosine", "phs", "phs_goal", "phs_step"}
    arms |= {"phs_goal_measured"}
    specs = {p.stem: load_spec(p) for p in BENCHMARK_STUDIES}
    assert set(specs) == {f"{ds}_{arm}" for ds in ("fashionmnist", "cifar10") for arm in arms}
    for name, spec in specs.items():
        assert spec.study == f"benchmark_{name}"
        assert (spec.sampler, spec.pruner, spec.test) == ("tpe", "none", False)
        assert spec.n_trials == (24 if name.startswith("fashionmnist") else 12)
        data = yaml.safe_load((BENCHMARK / spec.base).read_text())["data"]
        assert (data["init_args"]["split_seed"], data["init_args"]["batch_size"]) == (0, 64)


TUNING_JOURNALS = sorted(p for p in BENCHMARK.glob("*.journal") if not p.stem.endswith("_confirm"))


@pytest.mark.parametrize("journal", TUNING_JOURNALS, ids=lambda p: p.stem)
def test_benchmark_journal_is_its_study_files_and_never_read_test(journal: Path) -> None:
    spec = load_spec(journal.with_suffix(".yaml"))
    storage = JournalStorage(JournalFileBackend(str(journal)))
    study = optuna.load_study(study_name=spec.study, storage=storage)
    assert study.user_attrs[STUDY_ATTR]["fingerprint"] == spec.fingerprint()
    assert all("test" not in t.user_attrs for t in study.trials)


def test_check_numbers_names_each_number_the_journal_does_not_give() -> None:
    results = collect(_journal(REPO / "experiments" / "fashionmnist_goal_confirm"))
    lines = [
        "row=goal_trial33: test/acc final = 91.06 ± 0.17 %",
        "row=goal_trial33: test/acc final = 91.16 ± 0.17 %",
        "row=goal_trial33 vs row=phs_trial33: test/acc best = +0.47 pp",
        "study: complete = 21",
    ]
    assert check_numbers(results, lines) == [
        "row=goal_trial33: test/acc final = 91.16 ± 0.17 % (journal: 91.062 ± 0.166042)",
        "study: complete = 21 (journal: 20)",
    ]
    with pytest.raises(ValueError, match=r"^malformed numbers line 'best: val/acc 0\.91'"):
        check_numbers(results, ["best: val/acc 0.91"])


def test_check_numbers_recomputes_intervals_p_wins_and_constants() -> None:
    results = collect(_journal(REPO / "experiments" / "fashionmnist_goal_confirm"))
    pair = "row=goal_trial33 vs row=phs_trial33"
    lines = [
        f"{pair}: test/acc best ci = +0.29 … +0.64 pp",
        f"{pair}: test/acc best ci = +0.29 … +0.74 pp",
        f"{pair}: test/acc best p = 0.0017",
        f"{pair}: test/acc best p = 0.017",
        f"{pair}: test/acc best wins = 5/5",
        f"{pair}: test/acc best wins = 4/5",
        "row=goal_trial33: test/acc final ci = 90.86 … 91.27 %",
        "row=goal_trial33 vs 91.02 %: test/acc final = +0.04 pp",
        "row=goal_trial33 vs 91.02 %: test/acc final = +0.14 pp",
        "row=goal_trial33 vs 91.02 %: test/acc final p = 0.60",
    ]
    assert check_numbers(results, lines) == [
        f"{pair}: test/acc best ci = +0.29 … +0.74 pp (journal: 0.294264 … 0.637736)",
        f"{pair}: test/acc best p = 0.017 (journal: 0.0016624)",
        f"{pair}: test/acc best wins = 4/5 (journal: 5/5)",
        "row=goal_trial33 vs 91.02 %: test/acc final = +0.14 pp (journal: 0.0419998)",
    ]
    joined = check_numbers(
        results,
        ["row=goal_trial33 with=fashionmnist_ema_confirm: test/acc final = 91.06 %"],
        _results,
    )
    assert joined == []
    with pytest.raises(ValueError, match=r"a side has two trials of one seed$"):
        check_numbers(
            results,
            ["row=goal_trial33 with=fashionmnist_ema_confirm vs row=phs_trial33: val/acc = 0 pp"],
            _results,
        )
    with pytest.raises(ValueError, match=r"^with=fashionmnist_ema_confirm needs the other"):
        check_numbers(results, ["row=goal_trial33 with=fashionmnist_ema_confirm: val/acc = 0.9"])
    with pytest.raises(ValueError, match=r"^malformed interval '\+0\.29 - \+0\.64 pp'"):
        check_numbers(results, [f"{pair}: test/acc best ci = +0.29 - +0.64 pp"])
    with pytest.raises(ValueError, match=r"^a p needs 'A vs B' and a number, and two seeds"):
        check_numbers(results, ["row=goal_trial33: test/acc best p = 0.5"])


# ------------------------------------------- shipped configs equal their study's row
def _trial(spec: SweepSpec, row: str, tmp_path: Path) -> dict[str, Any]:
    """The fit config of ``row``'s seed-0 trial."""
    (setting,) = [s for s in _settings(spec) if s.row == row and s.seed == 0]
    return fit_config(spec, setting, tmp_path / "runs", 0)


def _callbacks(config: dict[str, Any], name: str) -> list[Any]:
    return [c for c in config["trainer"]["callbacks"] if c["class_path"].endswith(name)]


def _fit(config: dict[str, Any]) -> dict[str, Any]:
    """What decides a fit: model, data, optimizer, brake, average and budget."""
    return {
        **{key: config[key] for key in ("model", "data", "optimizer")},
        "brake": _callbacks(config, "GoalBrake"),
        "average": _callbacks(config, "EMAWeightAveraging"),
        "epochs": config["trainer"]["max_epochs"],
    }


def _shipped(name: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / "configs" / name).read_text())


@pytest.mark.parametrize(
    ("config", "experiment", "row"),
    [
        # the best CIFAR-10 setting: classic LeNet-5, λ = 1e-2, 50 epochs
        ("cifar10/lenet5_wd_goal.yaml", "cifar10_lenet5_wd_long", "goal_trial52_wd1e-2"),
        # the best FashionMNIST setting: TPE trial 33's braking with an EMA, d = 0.99
        ("fashionmnist/goal_ema.yaml", "fashionmnist_ema_confirm", "goal_ema_0.99"),
    ],
)
def test_shipped_config_is_its_studys_row(
    config: str, experiment: str, row: str, tmp_path: Path
) -> None:
    """The shipped config fits what the study's row fitted (the setting its experiment
    reports): the same model, data, optimizer, brake, weight average and budget."""
    spec = load_spec(REPO / "experiments" / experiment / f"{experiment}.yaml")
    trial = _fit(_trial(spec, row, tmp_path))
    assert _fit(_shipped(config)) == trial
    assert trial["brake"] != []
