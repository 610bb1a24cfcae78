"""experiments/benchmark/report.py: the protocol's table (statistics checked against SciPy
by hand, Holm by hand) and the confirmation curves figure, from synthetic journals."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from scipy import stats

from tests.sweep.helpers import explain, run_sweep
from tests.test_benchmark_journals import (
    complete_plan,
    confirm_journal,
    load_script,
    open_study,
    tuning_journal,
)
from tests.twins import tiny_twin, write_twin

selection = load_script("selection")
report = load_script("report")

DATASET = "fashionmnist"
SEEDS = range(5)
#: Each confirmed arm's test accuracies (final, best) per seed; phs_step misses seed 4.
TESTS = {
    "phs_goal": {s: (0.900 + 0.002 * s, 0.905 + 0.001 * s) for s in SEEDS},
    "sgd": {s: (0.890 + 0.003 * s + 0.001 * (s % 2), 0.897) for s in SEEDS},
    "phs": {s: (0.899 + 0.002 * s - 0.0005 * (s == 2), 0.904 + 0.0001 * s) for s in SEEDS},
    "phs_step": {s: (0.905 + 0.001 * s * s, 0.906) for s in range(4)},
}


def _curve(arm: str):
    offset = list(report.ARMS).index(arm) / 100
    return lambda seed: [0.5 + offset, 0.6 + offset + seed / 1000, 0.7 + offset]


@pytest.fixture(scope="module")
def journals(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four confirmed arms, one still tuning (sgd_cosine, 5 of 24), the rest not started."""
    root = tmp_path_factory.mktemp("benchmark")
    for arm, tests in TESTS.items():
        tuning = root / f"{DATASET}_{arm}.journal"
        tuning_journal(tuning, DATASET, arm, complete_plan([0.8 + i / 1000 for i in range(24)]))
        chosen = selection.select_arm(DATASET, arm, tuning)
        selection.write_selection(chosen, root, root / "configs")
        name = selection.confirm_name(DATASET, arm)
        confirm_journal(root / f"{name}.journal", root / f"{name}.yaml", tests, _curve(arm))
    tuning_journal(
        root / f"{DATASET}_sgd_cosine.journal", DATASET, "sgd_cosine", complete_plan([0.8] * 5)
    )
    return root


@pytest.fixture(scope="module")
def done(journals: Path):
    return report.report(DATASET, journals, journals / "fig.png")


def _by_hand(arm: str) -> tuple[list[float], list[float]]:
    """The arm's and arm 6's final-weights accuracies over the seeds both have."""
    seeds = sorted(set(TESTS[arm]) & set(TESTS["phs_goal"]))
    return [TESTS[arm][s][0] for s in seeds], [TESTS["phs_goal"][s][0] for s in seeds]


def test_holm_by_hand_on_three_p_values() -> None:
    ps = [0.04, 0.01, 0.03]
    # sorted 0.01, 0.03, 0.04: 3 × 0.01, max(that, 2 × 0.03), max(that, 1 × 0.04)
    first = 3 * 0.01
    second = max(first, 2 * 0.03)
    third = max(second, 0.04)
    assert report.holm(ps) == [third, first, second]
    assert report.holm([0.5, 0.6, 0.9]) == [1.0, 1.0, 1.0]  # capped at 1
    assert report.holm([]) == []


def test_each_arm_against_arm_6_is_scipys_paired_t_over_the_common_seeds(done) -> None:
    deltas = report.compare(done.arms)
    assert sorted(deltas) == ["phs", "phs_step", "sgd"]
    for arm, d in deltas.items():
        a, b = _by_hand(arm)
        diff = np.subtract(a, b)
        assert d.n == len(a) == (4 if arm == "phs_step" else 5)
        assert d.mean == pytest.approx(diff.mean(), abs=1e-15)
        assert d.p == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-12)
        half = stats.t.ppf(0.975, d.n - 1) * diff.std(ddof=1) / math.sqrt(d.n)
        assert d.ci95 == pytest.approx((diff.mean() - half, diff.mean() + half), rel=1e-9)
        assert d.wins == int((diff > 0).sum())


def test_the_tables_rows(done) -> None:
    rows = {r["arm"]: r for r in done.rows}
    assert list(rows) == [
        "sgd",
        "sgd_cosine",
        "sgd_step",
        "adamw_cosine",
        "phs",
        "**phs_goal**",
        "phs_step",
        "phs_goal_measured",
    ]
    deltas = report.compare(done.arms)
    arms = ["sgd", "phs", "phs_step"]
    ps = [stats.ttest_rel(*_by_hand(a)).pvalue for a in arms]
    order = np.argsort(ps)
    holm = {}
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (3 - rank) * ps[i]))
        holm[arms[i]] = running
    for arm in arms:
        row, d = rows[arm], deltas[arm]
        assert row["p"] == f"{d.p:.2g}"
        assert row["Holm p"] == f"{holm[arm]:.2g}"
        assert row["wins"] == f"{d.wins}/{d.n}"
        low, high = d.ci95
        assert row["Δ final vs arm 6 (95 % CI)"] == (
            f"{100 * d.mean:+.2f} pp [{100 * low:+.2f}, {100 * high:+.2f}]"
        )
        finals = [v[0] for v in TESTS[arm].values()]
        bests = [v[1] for v in TESTS[arm].values()]
        assert row["test, final weights"] == (
            f"{100 * np.mean(finals):.2f} ± {100 * np.std(finals, ddof=1):.2f} % "
            f"(n = {len(finals)})"
        )
        assert row["test, best-val ckpt"].startswith(f"{100 * np.mean(bests):.2f} ± ")
        assert row["val"] == "0.8230"  # the tuning value of trial 23, the best of 24
        assert row["chosen setting"].endswith("(trial 23)")
        assert row["trials run / complete"] == "24 / 24"
        assert row["wall (tune + confirm)"] == f"{60 * 300 / 3600:.1f} h + {5 * 600 / 3600:.1f} h"
    reference = rows["**phs_goal**"]
    assert reference["Δ final vs arm 6 (95 % CI)"] == "(reference)"
    assert (reference["p"], reference["wins"]) == ("", "")
    waiting = rows["sgd_cosine"]
    assert waiting["chosen setting"] == (
        "tuning: 5 of the first 24 counted trials have finished (the selection needs all 24)"
    )
    assert waiting["test, final weights"] == waiting["Δ final vs arm 6 (95 % CI)"] == "not yet"
    assert waiting["trials run / complete"] == "5 / 5"
    assert rows["adamw_cosine"]["chosen setting"] == "tuning not started"
    assert "Holm over the 3 comparisons present" in done.table
    assert done.table.count("\n| ") == 8  # a row per arm after the header


def test_the_figure_has_every_confirmed_arms_band(done, journals: Path) -> None:
    assert done.figure == journals / "fig.png"
    with Image.open(done.figure) as image:
        width, height = image.size
    assert width > 0 and height > 0 and done.figure.stat().st_size > 0
    assert sorted(done.bands) == sorted(TESTS)  # one line per confirmed arm
    for arm, band in done.bands.items():
        curves = np.array([_curve(arm)(s) for s in TESTS[arm]])
        assert band.n == len(TESTS[arm])
        assert list(band.epochs) == [1, 2, 3]
        np.testing.assert_allclose(band.mean, curves.mean(axis=0))
        np.testing.assert_allclose(band.std, curves.std(axis=0, ddof=1))


def test_no_figure_and_not_yet_rows_without_confirmations(tmp_path: Path) -> None:
    done = report.report(DATASET, tmp_path, tmp_path / "fig.png")
    assert done.figure is None and done.bands == {} and not (tmp_path / "fig.png").exists()
    assert {r["test, final weights"] for r in done.rows} == {"not yet"}


def test_a_confirmation_of_another_trial_is_refused(journals: Path, tmp_path: Path) -> None:
    # sgd's tuning journal chooses trial 23; a confirmation of trial 7 is not its own
    for name in ("fashionmnist_sgd.journal", "fashionmnist_sgd_confirm.journal"):
        (tmp_path / name).write_bytes((journals / name).read_bytes())
    tuning = tmp_path / "fashionmnist_sgd.journal"
    (tmp_path / "fashionmnist_sgd.journal").write_bytes(tuning.read_bytes())
    text = (tmp_path / "fashionmnist_sgd_confirm.journal").read_text()
    (tmp_path / "fashionmnist_sgd_confirm.journal").write_text(text.replace("trial23", "trial7"))
    with pytest.raises(selection.SelectionError) as err:
        report.read_arm(DATASET, "sgd", tmp_path)
    assert str(err.value) == (
        "benchmark_fashionmnist_sgd_confirm: confirms rows ['trial7'], the selection is trial23"
    )


def test_the_command_prints_the_table_and_writes_the_figure(
    journals: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    figure, table = tmp_path / "f.png", tmp_path / "t.md"
    argv = ["--dataset", DATASET, "--journals", str(journals), "--figure", str(figure)]
    assert report.main([*argv, "--table", str(table)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| # | arm | chosen setting | val |")
    assert out.endswith(f"table: {table}\nfigure: {figure}\n")
    assert table.read_text() in out and figure.stat().st_size > 0


@pytest.mark.slow
def test_a_real_confirmation_sweeps_journal_makes_the_arms_row(tmp_path: Path) -> None:
    """The written confirm study, its base shrunk to a tiny twin, run by ``goalbrake sweep``:
    the report reads its 5 seeds' tests and curves from what the sweep stored."""
    journals = tmp_path / "journals"
    journals.mkdir()
    tuning = journals / f"{DATASET}_phs_goal.journal"
    tuning_journal(tuning, DATASET, "phs_goal", complete_plan([0.8 + i / 1000 for i in range(24)]))
    chosen = selection.select_arm(DATASET, "phs_goal", tuning)
    selection.write_selection(chosen, tmp_path, tmp_path / "configs")
    name = selection.confirm_name(DATASET, "phs_goal")
    twin = tiny_twin(selection.BENCHMARK / chosen.spec.base, tmp_path / "twin", max_steps=-1)
    twin["trainer"].update(max_epochs=2, limit_train_batches=2, limit_val_batches=1)
    base = write_twin(twin, tmp_path / "twin_base.yaml")
    study = yaml.safe_load((tmp_path / f"{name}.yaml").read_text())
    (tmp_path / "twin.yaml").write_text(yaml.safe_dump({**study, "base": str(base)}))
    proc = run_sweep(
        *("--config", str(tmp_path / "twin.yaml"), "--workers", "0"),
        *("--storage", f"journal:{journals / name}.journal", "--runs-dir", "runs"),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, explain(proc)
    arm = report.read_arm(DATASET, "phs_goal", journals)
    assert sorted(arm.tests("final")) == sorted(arm.tests("best")) == [0, 1, 2, 3, 4]
    for trial in open_study(journals / f"{name}.journal", f"benchmark_{name}").trials:
        # each fit's own config: the split follows its seed
        run = tmp_path / "runs" / trial.user_attrs["tensorboard"] / "config.yaml"
        data = yaml.safe_load(run.read_text())["data"]["init_args"]
        assert (data["seed"], data["split_seed"]) == (trial.user_attrs["config"]["seed"], None)
    row = report.table_rows([arm])[0]
    assert row["test, final weights"].endswith("% (n = 5)")
    drawn = report.curves_figure([arm], tmp_path / "fig.png", "twin")
    assert list(drawn["phs_goal"].epochs) == [1, 2] and drawn["phs_goal"].n == 5


#: The datasets with a committed journal: their table in docs/benchmark.md is checked.
COMMITTED = sorted({p.name.partition("_")[0] for p in report.BENCHMARK.glob("*.journal")})


@pytest.mark.parametrize("dataset", COMMITTED)
def test_the_docs_table_is_what_the_report_prints_from_the_committed_journals(dataset) -> None:
    arms = [report.read_arm(dataset, arm) for arm in report.ARMS]
    table = report.markdown(report.table_rows(arms))
    doc = (report.REPO / "docs" / "benchmark.md").read_text()
    assert table in doc, f"docs/benchmark.md's {dataset} table differs from report.py's:\n{table}"
