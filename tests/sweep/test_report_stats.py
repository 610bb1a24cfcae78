"""The report's test columns and paired comparisons, on a study written by hand.

The study has the layout a ``test: true`` paper grid leaves in its storage (trial user
attrs ``config`` and ``test``), so every number in paired.csv can be recomputed from the
trials with :func:`goalbrake.sweep.report.stats.paired`.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution

from goalbrake.sweep.attrs import STUDY_ATTR
from goalbrake.sweep.report.command import write_report
from goalbrake.sweep.report.results import collect
from goalbrake.sweep.report.stats import paired
from goalbrake.sweep.report.tables import comparisons

PARAMS = ["optimizer.lr", "optimizer.mass", "brake.mode"]
SEEDS = [0, 1, 2]
# (method, lr, mass, mode, base accuracy): two PHS masses per lr, so the best one is chosen.
POINTS = [
    ("sgd", 0.1, None, None, 0.880),
    ("phs", 0.1, 1.0, None, 0.870),
    ("phs", 0.1, 10.0, None, 0.890),
    ("goal", 0.1, 10.0, "remaining", 0.895),
    ("goal", 0.1, 10.0, "reduction", 0.860),
    ("sgd", 0.01, None, None, 0.850),
    ("phs", 0.01, 10.0, None, 0.860),
    ("goal", 0.01, 10.0, "remaining", 0.840),
]


@pytest.fixture
def study() -> optuna.Study:
    rng = random.Random(0)
    study = optuna.create_study(direction="maximize", study_name="paper")
    study.set_user_attr(
        STUDY_ATTR,
        {"metric": "val/acc", "direction": "maximize", "params": PARAMS, "seeds": 3},
    )
    for method, lr, mass, mode, acc in POINTS:
        for seed in SEEDS:
            config = {"base": f"{method}.yaml", "method": method, "optimizer.lr": lr}
            config |= {"seed": seed}
            if mass is not None:
                config["optimizer.mass"] = mass
            if mode is not None:
                config["brake.mode"] = mode
            val = acc + rng.uniform(-0.01, 0.01)
            test = {
                "final": {"test/acc": val - 0.004 + rng.uniform(-0.003, 0.003), "test/loss": 0.3},
                "best": {"test/acc": val - 0.002 + rng.uniform(-0.003, 0.003), "test/loss": 0.3},
            }
            study.add_trial(
                optuna.trial.create_trial(
                    params={"seed": seed},
                    distributions={"seed": CategoricalDistribution(SEEDS)},
                    value=val,
                    user_attrs={"config": config, "test": test, "final_value": val},
                )
            )
    return study


def _trials(study: optuna.Study, method: str, lr: float, mass: float | None, mode: str | None):
    out = {}
    for t in study.trials:
        c = t.user_attrs["config"]
        if (c["method"], c["optimizer.lr"], c.get("optimizer.mass"), c.get("brake.mode")) == (
            method,
            lr,
            mass,
            mode,
        ):
            out[c["seed"]] = t
    return [out[s] for s in SEEDS]


def test_comparisons_pick_each_arm_s_best_by_validation_and_pair_by_seed(
    study: optuna.Study,
) -> None:
    rows = comparisons(collect(study))
    at = {(r["optimizer.lr"], r["a"], r["b"]): r for r in rows}
    # lr 0.1: four arms (goal split by reading) -> 6 pairs; lr 0.01: three arms -> 3 pairs.
    assert len(rows) == 9
    assert [k[1:] for k in at if k[0] == 0.1][:3] == [
        ("goal (reduction)", "goal (remaining)"),
        ("goal (reduction)", "phs"),
        ("goal (reduction)", "sgd"),
    ]
    row = at[(0.1, "goal (remaining)", "phs")]
    assert row["b_point"].param("optimizer.mass") == 10.0  # PHS's best mass on validation
    a = _trials(study, "goal", 0.1, 10.0, "remaining")
    b = _trials(study, "phs", 0.1, 10.0, None)
    assert row["val"] == paired([t.value for t in a], [t.value for t in b])
    for kind in ("best", "final"):
        expect = paired(
            [t.user_attrs["test"][kind]["test/acc"] for t in a],
            [t.user_attrs["test"][kind]["test/acc"] for t in b],
        )
        assert row[f"test_{kind}"] == expect


def test_report_writes_test_columns_and_the_paired_table(
    study: optuna.Study, tmp_path: Path
) -> None:
    written = write_report(study, tmp_path)
    assert tmp_path / "paired.csv" in written and tmp_path / "paired.md" in written
    with (tmp_path / "trials.csv").open() as f:
        trials = {int(r["number"]): r for r in csv.DictReader(f)}
    for t in study.trials:
        assert float(trials[t.number]["test_acc_best"]) == t.user_attrs["test"]["best"]["test/acc"]
    with (tmp_path / "paired.csv").open() as f:
        table = list(csv.DictReader(f))
    assert len(table) == 9
    row = next(r for r in table if (r["optimizer.lr"], r["a"], r["b"]) == ("0.01", "phs", "sgd"))
    expect = paired(
        [t.user_attrs["test"]["best"]["test/acc"] for t in _trials(study, "phs", 0.01, 10.0, None)],
        [t.user_attrs["test"]["best"]["test/acc"] for t in _trials(study, "sgd", 0.01, None, None)],
    )
    assert float(row["test_best_mean"]) == pytest.approx(expect.mean, abs=1e-15)
    assert float(row["test_best_p"]) == pytest.approx(expect.p, abs=1e-15)
    assert int(row["test_best_wins"]) == expect.wins
    with (tmp_path / "best.csv").open() as f:
        best = list(csv.DictReader(f))
    top = best[0]  # goal (remaining) at lr 0.1 has the best mean validation accuracy
    assert top["method"] == "goal" and top["brake.mode"] == "remaining"
    tops = [
        t.user_attrs["test"]["final"]["test/acc"]
        for t in _trials(study, "goal", 0.1, 10.0, "remaining")
    ]
    assert float(top["test_acc_final_mean"]) == pytest.approx(sum(tops) / 3, abs=1e-12)
    report = (tmp_path / "report.md").read_text()
    assert "## Paired comparisons" in report and "test acc (best-val ckpt)" in report
    assert "| 0.1 | goal (remaining): mass 10 | phs: mass 10" in report


@pytest.mark.parametrize("which", ["x", "y"])
def test_log_axes_label_1_2_5_plainly_and_leave_minor_ticks_blank(which: str) -> None:
    """A short log range (0.05 … 0.7, as brake.goal's) gets readable labels, not 2×10⁻¹."""
    import matplotlib.pyplot as plt

    from goalbrake.sweep.report.plots import _log_axis

    fig, ax = plt.subplots()
    values = [0.05, 0.08, 0.3, 0.7]
    ax.plot(values, values, "o")
    _log_axis(ax, which)
    fig.canvas.draw()
    axis = ax.xaxis if which == "x" else ax.yaxis
    lo, hi = sorted(getattr(ax, f"get_{which}lim")())
    coordinate = 1 if which == "y" else 0
    major = [
        t.get_text() for t in axis.get_ticklabels() if lo <= t.get_position()[coordinate] <= hi
    ]
    minor = [t.get_text() for t in axis.get_ticklabels(minor=True) if t.get_text()]
    plt.close(fig)
    assert getattr(ax, f"get_{which}scale")() == "log"
    assert major == ["0.05", "0.1", "0.2", "0.5"]
    assert minor == []
