"""Every shipped sweep file parses, every trial config it can produce builds, and its first
trial fits two steps on tiny data in the real format (the config's tiny twin)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from goalbrake.sweep.objective import build_trial, fit_config
from goalbrake.sweep.spec import SweepSpec, load_spec
from goalbrake.sweep.validate import _settings, check_configs
from tests.twins import tiny_twin

REPO = Path(__file__).resolve().parents[2]
SWEEPS = sorted((REPO / "sweeps").glob("*.yaml"))


def _sweep(name: str) -> SweepSpec:
    """The shipped sweep file sweeps/<name>.yaml, parsed."""
    return load_spec(REPO / "sweeps" / f"{name}.yaml")


def _rows(spec: SweepSpec) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each grid row's label mapped to its base config and its values."""
    return {r.label: (r.base, dict(r.values)) for r in spec.rows}


def _without_lambda(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k != "optimizer.weight_decay"}


def test_there_are_sweep_files() -> None:
    names = {p.name for p in SWEEPS}
    assert {
        "fashionmnist_goal.yaml",
        "cifar10_goal.yaml",
        "paper_table1_cifar10.yaml",
        "paper_table2_fashionmnist.yaml",
    } <= names


# A refit (data.val_size: 0) trains without validation; Lightning says so, rightly.
@pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`")
@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
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
    table2 = _sweep("paper_table2_fashionmnist")
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
    table1 = _sweep("paper_table1_cifar10")
    best1 = {
        "optimizer.lr": 0.1,
        "optimizer.mass": 100.0,
        "optimizer.friction": 0.1,
        "brake.goal": 0.65,
        "brake.factor": 49.0,
    }
    rows1 = [r for r in table1.rows if all(r.values.get(k) == v for k, v in best1.items())]
    assert sorted(r.values["brake.mode"] for r in rows1) == ["reduction", "remaining"]


@pytest.mark.parametrize(
    ("name", "mode", "seeds"),
    [("fashionmnist_goal_confirm", "remaining", 5), ("cifar10_goal_confirm", "reduction", 3)],
)
def test_confirm_grid_pairs_each_braking_setting_with_phs_at_the_same_settings(
    name: str, mode: str, seeds: int
) -> None:
    """Braking vs PHS in a confirmation grid is paired: same lr, mass, friction, seeds."""
    spec = _sweep(name)
    optimizer = ("optimizer.lr", "optimizer.mass", "optimizer.friction")
    by_label = {r.label: r for r in spec.rows}
    goals = [label for label in by_label if label.startswith("goal_")]
    assert goals
    for label in goals:
        phs = by_label[label.replace("goal_", "phs_", 1)]
        goal = by_label[label]
        assert [phs.values[k] for k in optimizer] == [goal.values[k] for k in optimizer]
        assert not any(k.startswith("brake.") for k in phs.values)
        assert goal.values["brake.mode"] == mode
    assert spec.test and spec.seeds == seeds


def test_fig1_grids_share_their_cells() -> None:
    """The short, one-seed and full Fig. 1 grids cover the same mass × friction cells, so
    their heatmaps compare cell by cell; they differ only in budget, lrs and seeds."""
    specs = {name: _sweep(f"fashionmnist_mass_friction{name}") for name in ("", "_1seed", "_short")}
    cells = {
        name: {k: spec.grid_space()[k] for k in ("optimizer.mass", "optimizer.friction")}
        for name, spec in specs.items()
    }
    assert cells[""] == cells["_1seed"] == cells["_short"]
    assert specs["_1seed"].grid_space()["optimizer.lr"] == specs[""].grid_space()["optimizer.lr"]
    assert (specs[""].seeds, specs["_1seed"].seeds, specs["_short"].seeds) == (3, 1, 1)
    assert specs["_1seed"].grid_size() == specs[""].grid_size() // 3 == 50
    assert all(s.pruner == "none" for s in specs.values())


@pytest.mark.parametrize(("dataset", "trial"), [("fashionmnist", 33), ("cifar10", 52)])
def test_lenet5_grids_repeat_the_one_pool_settings(dataset: str, trial: int) -> None:
    """The classic-LeNet-5 grids change the network and nothing else: the chosen TPE
    setting and its PHS twin are the confirmation study's rows, value for value, and the
    paper's best braking row is the one in the paper-table grid."""
    lenet5 = _sweep(f"{dataset}_lenet5")
    confirm = _sweep(f"{dataset}_goal_confirm")
    table = "paper_table2_fashionmnist" if dataset == "fashionmnist" else "paper_table1_cifar10"
    paper = _sweep(table)
    assert lenet5.fixed == {"model.backbone.layout": "lenet5"}
    assert all("model.backbone.layout" not in r.values for r in lenet5.rows)
    assert "model.backbone.layout" not in confirm.fixed
    rows = {r.label: r for r in lenet5.rows}
    for name in (f"goal_trial{trial}", f"phs_trial{trial}"):
        (twin,) = [r for r in confirm.rows if r.label == name]
        assert (rows[name].base, dict(rows[name].values)) == (twin.base, dict(twin.values))
    paper_goal = rows["goal_paper"]

    def covers(row: Any) -> bool:  # a paper-table row's small grid holds this point
        values = {k: v if isinstance(v, list) else [v] for k, v in row.values.items()}
        point = paper_goal.values
        return values.keys() == point.keys() and all(point[k] in values[k] for k in point)

    assert any(r.base == paper_goal.base and covers(r) for r in paper.rows)
    assert lenet5.test and lenet5.seeds == 3 and lenet5.pruner == "none"


def test_weight_decay_grids_change_only_lambda() -> None:
    """The CIFAR-10 weight-decay grids repeat cifar10_lenet5's trial-52 rows with λ added
    and nothing else changed, and together try distinct values of λ, so the λ = 0 runs of
    cifar10_lenet5 complete the curve seed by seed."""
    lenet5 = {r.label: r for r in _sweep("cifar10_lenet5").rows}
    lambdas: list[float] = []
    for suffix in ("", "_strong", "_stronger"):
        spec = _sweep(f"cifar10_lenet5_wd{suffix}")
        assert spec.fixed == {"model.backbone.layout": "lenet5"}
        assert (spec.seeds, spec.seed, spec.test) == (3, 0, True)
        by_row: dict[str, list[float]] = {}
        for row in spec.rows:  # a list of λ expands into one row per value
            wd = row.values["optimizer.weight_decay"]
            name = row.label.split()[0]
            assert (row.base, _without_lambda(dict(row.values))) == (
                lenet5[name].base,
                dict(lenet5[name].values),
            )
            by_row.setdefault(name, []).extend(wd if isinstance(wd, list) else [wd])
        assert sorted(by_row) == ["goal_trial52", "phs_trial52"]
        assert by_row["goal_trial52"] == by_row["phs_trial52"]  # both rows try the same λ
        lambdas += by_row["goal_trial52"]
    assert len(lambdas) == len(set(lambdas)) and 0.0 not in lambdas
    assert lambdas == sorted(lambdas)


def test_long_budget_grid_changes_only_epochs_and_lambda() -> None:
    """cifar10_lenet5_wd_long.yaml repeats cifar10_lenet5_wd_strong's λ = 1e-2 rows with 50
    epochs instead of 30, and adds braked rows that differ from them in λ alone."""
    strong = _sweep("cifar10_lenet5_wd_strong")
    long = _sweep("cifar10_lenet5_wd_long")
    assert long.fixed == {**strong.fixed, "trainer.max_epochs": 50}
    assert (long.seeds, long.seed, long.test, long.pruner) == (3, 0, True, "none")
    before = _rows(strong)
    lambdas = []
    for label, (base, values) in _rows(long).items():
        name, suffix = label.split("_wd")
        lam = values["optimizer.weight_decay"]
        old_base, old_values = before[name]
        assert float(suffix) == lam and old_values["optimizer.weight_decay"] == 1e-2
        assert (base, _without_lambda(values)) == (old_base, _without_lambda(old_values))
        lambdas.append((name, lam))
    assert ("goal_trial52", 1e-2) in lambdas and ("phs_trial52", 1e-2) in lambdas
    assert len({lam for name, lam in lambdas if name == "goal_trial52"}) == 3


def test_extra_seeds_rerun_the_chosen_rows_with_new_seeds() -> None:
    """cifar10_lenet5_wd_long_more.yaml runs the chosen λ = 1e-2 rows of
    cifar10_lenet5_wd_long.yaml unchanged, with seeds that study did not use."""
    long = _sweep("cifar10_lenet5_wd_long")
    more = _sweep("cifar10_lenet5_wd_long_more")
    chosen = {k: v for k, v in _rows(long).items() if k.endswith("_wd1e-2")}
    assert _rows(more) == chosen
    assert more.fixed == long.fixed and more.test
    used, new = ({s.seed for s in _settings(spec)} for spec in (long, more))
    assert new and not used & new


def test_shipped_lenet5_wd_config_is_the_chosen_setting(tmp_path: Path) -> None:
    """configs/cifar10/lenet5_wd_goal.yaml is the λ = 1e-2 braking row of
    cifar10_lenet5_wd_long.yaml (the setting docs/results.md reports): the sweep's own
    trial config for that row has the same model, data, optimizer, brake and budget."""
    spec = _sweep("cifar10_lenet5_wd_long")
    (setting,) = [s for s in _settings(spec) if s.row == "goal_trial52_wd1e-2" and s.seed == 0]
    trial = fit_config(spec, setting, tmp_path / "runs", 0)
    shipped = yaml.safe_load((REPO / "configs" / "cifar10" / "lenet5_wd_goal.yaml").read_text())

    def brake(config: dict[str, Any]) -> list[Any]:
        return [c for c in config["trainer"]["callbacks"] if c["class_path"].endswith("GoalBrake")]

    for key in ("model", "data", "optimizer"):
        assert shipped[key] == trial[key]
    assert brake(shipped) == brake(trial) != []
    assert shipped["trainer"]["max_epochs"] == trial["trainer"]["max_epochs"]


def _trial(spec: SweepSpec, row: str, tmp_path: Path) -> dict[str, Any]:
    """The fit config of ``row``'s seed-0 trial."""
    (setting,) = [s for s in _settings(spec) if s.row == row and s.seed == 0]
    return fit_config(spec, setting, tmp_path / "runs", 0)


def _callbacks(config: dict[str, Any], name: str) -> list[Any]:
    return [c for c in config["trainer"]["callbacks"] if c["class_path"].endswith(name)]


def test_ema_confirm_adds_only_the_average_to_the_confirmed_setting(tmp_path: Path) -> None:
    """In fashionmnist_ema_confirm.yaml, every EMA row is the no-EMA row's fit (model, data,
    optimizer, brake, budget) plus EMAWeightAveraging with its decay, and the no-EMA row is
    goal_trial33 of fashionmnist_goal_confirm.yaml: the gain is the average's alone. The
    shipped configs/fashionmnist/goal_ema.yaml is the row chosen on validation (d = 0.99)."""
    ema = _sweep("fashionmnist_ema_confirm")
    plain = _trial(ema, "goal_trial33", tmp_path)
    before = _trial(_sweep("fashionmnist_goal_confirm"), "goal_trial33", tmp_path)
    shipped = yaml.safe_load((REPO / "configs" / "fashionmnist" / "goal_ema.yaml").read_text())
    for decay in (0.99, 0.999):
        averaged = _trial(ema, f"goal_ema_{decay}", tmp_path)
        for config in (plain, before, shipped):
            for key in ("model", "data", "optimizer"):
                assert averaged[key] == config[key], key
            assert _callbacks(averaged, "GoalBrake") == _callbacks(config, "GoalBrake") != []
            assert averaged["trainer"]["max_epochs"] == config["trainer"]["max_epochs"]
        (average,) = _callbacks(averaged, "EMAWeightAveraging")
        assert average["init_args"]["decay"] == decay
        assert _callbacks(plain, "EMAWeightAveraging") == []
    (average,) = _callbacks(shipped, "EMAWeightAveraging")
    assert average["init_args"]["decay"] == 0.99


def _fit(config: dict[str, Any]) -> dict[str, Any]:
    """What decides a fit: model, data, optimizer, brake, average and budget."""
    return {
        **{key: config[key] for key in ("model", "data", "optimizer")},
        "brake": _callbacks(config, "GoalBrake"),
        "average": _callbacks(config, "EMAWeightAveraging"),
        "epochs": config["trainer"]["max_epochs"],
    }


def test_label_smoothing_grid_changes_only_epsilon_and_goal(tmp_path: Path) -> None:
    """fashionmnist_ema_ls_confirm.yaml is goal_ema_0.99 of fashionmnist_ema_confirm.yaml
    with ε and the loss goal changed, nothing else, on the same seeds: the rows pair."""
    ls = _sweep("fashionmnist_ema_ls_confirm")
    ema = _sweep("fashionmnist_ema_confirm")
    chosen = _fit(_trial(ema, "goal_ema_0.99", tmp_path))
    assert chosen["model"].get("label_smoothing", 0.0) == 0.0
    chosen_goal = chosen["brake"][0]["init_args"].pop("goal")
    for label, eps in (("goal_ema_ls0.05", 0.05), ("goal_ema_ls0.1", 0.1)):
        row = _fit(_trial(ls, label, tmp_path))
        assert row["model"].pop("label_smoothing") == eps
        (brake,) = row["brake"]
        # The goal moves up with ε: the smoothed loss cannot reach the chosen one.
        assert chosen_goal < brake["init_args"].pop("goal") < 1.0
        assert row == chosen, label
    assert {s.seed for s in _settings(ls)} == {s.seed for s in _settings(ema)}
    assert ls.test and ls.checkpoint


def test_ema_refit_is_the_chosen_setting_on_all_training_images(tmp_path: Path) -> None:
    """fashionmnist_ema_refit.yaml fits configs/fashionmnist/goal_ema.yaml unchanged but for
    the validation split, and differs from the refit without the average
    (goal_trial33 of fashionmnist_goal_refit.yaml) only by the average: they pair."""
    refit = _sweep("fashionmnist_ema_refit")
    averaged = _fit(_trial(refit, "goal_ema_0.99", tmp_path))
    plain = _fit(_trial(_sweep("fashionmnist_goal_refit"), "goal_trial33", tmp_path))
    chosen = _fit(_trial(_sweep("fashionmnist_ema_confirm"), "goal_ema_0.99", tmp_path))
    assert averaged["data"]["init_args"]["val_size"] == 0
    assert chosen["data"]["init_args"]["val_size"] == 5000
    chosen["data"]["init_args"]["val_size"] = 0
    assert averaged == chosen
    assert [a["init_args"]["decay"] for a in averaged.pop("average")] == [0.99]
    assert plain.pop("average") == []
    assert averaged == plain
    assert refit.test and refit.seeds == 5
