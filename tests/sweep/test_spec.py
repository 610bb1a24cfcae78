"""The sweep YAML: parsing, grids with rows and seeds, and one-line errors before any trial."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution

from goalbrake.sweep.define import SweepSpecError, load_spec
from goalbrake.sweep.define.params import Choices, FloatRange, IntRange
from goalbrake.sweep.define.spec import method_of
from goalbrake.sweep.run.command import main as sweep_main
from goalbrake.sweep.run.study import make_sampler, progress


def test_tpe_space(make_sweep: Callable[..., Path]) -> None:
    path = make_sweep(
        {
            "objective": {"metric": "val/acc"},
            "pruner": {"name": "median", "n_startup_trials": 2},
            "n_trials": 5,
            "space": {
                "optimizer.init_args.lr": {"low": "1e-3", "high": 0.5, "log": True},
                "brake.factor": {"type": "int", "low": 2, "high": 100, "log": True},
                "brake.mode": ["remaining", "reduction"],
            },
        }
    )
    spec = load_spec(path)
    assert spec.study == "sweep" and spec.direction == "maximize"
    assert spec.space == {
        "optimizer.lr": FloatRange(1e-3, 0.5, log=True),
        "brake.factor": IntRange(2, 100, log=True),
        "brake.mode": Choices(("remaining", "reduction")),
    }
    assert spec.target_trials() == 5
    assert spec.pruner == "median" and spec.pruner_args == {"n_startup_trials": 2}


def test_grid_rows_and_seeds(make_sweep: Callable[..., Path]) -> None:
    path = make_sweep(
        {
            "sampler": "grid",
            "seeds": 3,
            "rows": [
                {"name": "sgd-ish", "optimizer.lr": [0.1, 0.01], "optimizer.mass": 0.1},
                {"optimizer.lr": 0.1, "brake.goal": 0.15, "brake.factor": [10, 50]},
            ],
            "space": {"brake.mode": ["remaining", "reduction"]},
        }
    )
    spec = load_spec(path)
    labels = [r.label for r in spec.rows]
    assert labels == [
        "sgd-ish lr=0.1",
        "sgd-ish lr=0.01",
        "base lr=0.1, goal=0.15, factor=10",
        "base lr=0.1, goal=0.15, factor=50",
    ]
    assert spec.grid_size() == 4 * 2 * 3 == spec.target_trials()
    assert spec.grid_space()["seed"] == [0, 1, 2]
    assert spec.param_names() == [
        "optimizer.lr",
        "optimizer.mass",
        "brake.goal",
        "brake.factor",
        "brake.mode",
    ]

    study = optuna.create_study(sampler=make_sampler(spec))
    trial = study.ask()
    setting = spec.suggest(trial)
    config = spec.trial_config(setting)
    assert config["seed_everything"] == setting.seed == config["data"]["init_args"]["seed"]
    assert config["trainer"]["callbacks"][0]["init_args"]["mode"] == setting.values["brake.mode"]


def test_grid_trials_store_each_varying_setting_as_a_parameter_and_not_the_seed(
    make_sweep: Callable[..., Path],
) -> None:
    """optuna-dashboard and optuna.visualization read lr, factor, ... (issue 18), not a row."""
    path = make_sweep(
        {
            "sampler": "grid",
            "seeds": 2,
            "rows": [
                {"name": "slow", "optimizer.lr": 0.01, "brake.goal": 0.15},
                {"name": "fast", "optimizer.lr": [0.1, 0.2], "brake.goal": 0.15},
            ],
            "space": {"brake.mode": ["remaining", "reduction"]},
        }
    )
    spec = load_spec(path)
    assert spec.row_params() == {"optimizer.lr": (0.01, 0.1, 0.2)}  # brake.goal never varies
    settings = {}

    def objective(trial: optuna.Trial) -> float:
        settings[trial.number] = spec.suggest(trial)
        return 0.5

    study = optuna.create_study(sampler=make_sampler(spec))
    study.optimize(objective, n_trials=spec.grid_size())
    for frozen in study.trials:
        setting = settings[frozen.number]
        assert frozen.params == {
            "optimizer.lr": setting.values["optimizer.lr"],
            "brake.mode": setting.values["brake.mode"],
        }
        assert frozen.distributions["optimizer.lr"] == CategoricalDistribution((0.01, 0.1, 0.2))
    seen = {
        (s.row, s.values["optimizer.lr"], s.values["brake.mode"], s.seed) for s in settings.values()
    }
    assert len(seen) == spec.grid_size() == 3 * 2 * 2  # every point and seed once
    assert progress(study, spec).done


def test_a_grid_study_recorded_with_row_and_seed_parameters_resumes(
    make_sweep: Callable[..., Path],
) -> None:
    """Before issue 18 a grid trial's parameters were ``row`` and ``seed``: the grid ids
    are the same, so such a study's finished points count and the rest still run."""
    path = make_sweep(
        {
            "sampler": "grid",
            "seeds": 2,
            "rows": [{"optimizer.lr": 0.01}, {"optimizer.lr": 0.1}],
        }
    )
    spec = load_spec(path)
    sampler = make_sampler(spec)

    def old_objective(trial: optuna.Trial) -> float:
        # Recorded as before issue 18: the row label and the seed as the parameters.
        point = sampler.point_of(trial)
        assert trial.suggest_categorical("row", spec.grid_space()["row"]) == point["row"]
        assert trial.suggest_categorical("seed", spec.grid_space()["seed"]) == point["seed"]
        return 0.5

    study = optuna.create_study(sampler=sampler)
    study.optimize(old_objective, n_trials=1)
    assert set(study.trials[0].params) == {"row", "seed"}
    assert progress(study, spec).unfinished_points == 3
    study.optimize(lambda trial: spec.suggest(trial) and 0.5, n_trials=3)
    assert progress(study, spec).done
    ids = sorted(t.system_attrs["grid_id"] for t in study.trials)
    assert ids == [0, 1, 2, 3]


BAD = [
    ({"space": {"optimizer.lrr": [0.1]}}, "unknown parameter 'optimizer.lrr': PHS takes lr, mass"),
    ({"spcae": {}}, "unknown key 'spcae' (allowed: study, description, base"),
    (
        {"space": {"optimizer.lr": {"low": 0.5, "high": 0.1}}},
        "empty range for optimizer.lr: low 0.5 >= high 0.1",
    ),
    (
        {"space": {"optimizer.lr": {"low": 0.0, "high": 0.1, "log": True}}},
        "log range for optimizer.lr needs low > 0, got low 0.0",
    ),
    (
        {"sampler": "cmaes", "space": {"optimizer.lr": [0.1]}},
        "unknown sampler 'cmaes' (allowed: tpe, random, grid)",
    ),
    (
        {"pruner": "patient", "space": {"optimizer.lr": [0.1]}},
        "unknown pruner 'patient' (allowed: none, median, percentile, successive_halving, "
        "hyperband, threshold)",
    ),
    (
        {"sampler": {"name": "tpe", "n_startup": 3}, "space": {"optimizer.lr": [0.1]}},
        "unknown sampler argument 'n_startup' for tpe",
    ),
    (
        {"sampler": "grid", "space": {"optimizer.lr": {"low": 0.01, "high": 0.1}}},
        "sampler grid needs a list of values for optimizer.lr",
    ),
    ({"seeds": 3, "space": {"optimizer.lr": [0.1]}}, "seeds: 3 needs sampler: grid"),
    ({"space": {"optimizer.lr": []}}, "empty value list for optimizer.lr"),
    (
        {"objective": {"metric": "val/acc", "direction": "up"}, "space": {"optimizer.lr": [0.1]}},
        "invalid objective direction 'up' (allowed: maximize, minimize)",
    ),
    (
        {"space": {"brake.factor": {"type": "int", "low": 1.5, "high": 4}}},
        "invalid low 1.5 for int brake.factor",
    ),
    (
        {"rows": [{"optimizer.lr": 0.1}], "space": {"brake.mode": ["remaining"]}},
        "rows: needs sampler: grid",
    ),
    ({"space": {}}, "empty search space"),
    (
        {"test": True, "space": {"optimizer.lr": [0.1]}},
        "test: true needs sampler: grid (got 'tpe')",
    ),
    (
        {"sampler": "grid", "test": "yes", "space": {"optimizer.lr": [0.1]}},
        "invalid test 'yes' (true or false)",
    ),
]


@pytest.mark.parametrize(("spec", "message"), BAD, ids=[m.split(" (")[0][:40] for _, m in BAD])
def test_bad_spec(make_sweep: Callable[..., Path], spec: dict, message: str) -> None:
    path = make_sweep(spec)
    with pytest.raises(SweepSpecError) as info:
        load_spec(path)
    assert message in str(info.value)
    assert str(info.value).startswith(str(path))
    assert "\n" not in str(info.value)


MODES = "remaining, reduction, absolute"


def _refused(path: Path, runs: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> list[str]:
    """``goalbrake sweep`` on ``path`` exits 1; its stderr lines."""
    assert sweep_main(["--config", str(path), "--runs-dir", str(runs), *flags]) == 1
    return capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"space": {"optimizer.lrr": [0.1]}}, "unknown parameter 'optimizer.lrr'"),
        ({"space": {"optimizer.lr": {"low": 0.2, "high": 0.2}}}, "empty range for optimizer.lr"),
        ({"sampler": "annealing", "space": {"optimizer.lr": [0.1]}}, "unknown sampler 'annealing'"),
        # The goal from earlier trials (issue 19): its rule, in one line.
        (
            {
                "sampler": "random",
                "space": {
                    "optimizer.lr": [0.1],
                    "brake.goal": {"from_trials": {"startup": 0, "startup_goal": 0.15}},
                },
            },
            "invalid startup 0 for brake.goal: from_trials (must be an integer >= 1)",
        ),
        # Caught by building the trial configs, before the study is created.
        (
            {"sampler": "grid", "space": {"optimizer.lr": ["fast"]}},
            "does not build: optimizer.lr: Expected a <class 'float'>",
        ),
        # Every class is instantiated once per value (issue 18): one line names the address
        # and the value a constructor refuses.
        # The high end of a range: only the low end was built before.
        (
            {"space": {"brake.goal": {"low": 0.05, "high": 1.5}}},
            "brake.goal=1.5 does not build: Invalid goal value: 1.5 for mode 'remaining' "
            "(must be in (0, 1))",
        ),
        # A later grid value, and the first one (the first trial's full build fails).
        (
            {"sampler": "grid", "space": {"brake.factor": [50, 0]}},
            "brake.factor=0 does not build: Invalid factor value: 0.0 (must be > 0)",
        ),
        (
            {"sampler": "grid", "space": {"brake.factor": [0, 50], "optimizer.lr": [0.1]}},
            "brake.factor=0 does not build: Invalid factor value: 0.0 (must be > 0)",
        ),
        # A categorical choice: the constructor's reason, not jsonargparse's type noise.
        (
            {"sampler": "grid", "space": {"brake.mode": ["remaining", "remaning"]}},
            f"brake.mode=remaning does not build: Invalid mode value: 'remaning' (must be one "
            f"of {MODES})",
        ),
        # A row's value, checked with that row.
        (
            {
                "sampler": "grid",
                "rows": [{"brake.factor": 50}, {"name": "weak", "brake.factor": -1}],
            },
            "brake.factor=-1 does not build: Invalid factor value: -1.0 (must be > 0)",
        ),
    ],
)
def test_command_stops_before_any_trial(
    make_sweep: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    spec: dict,
    message: str,
) -> None:
    path = make_sweep(spec)
    runs = tmp_path / "runs"
    err = _refused(path, runs, capsys, "--workers", "0")
    assert err[-1].startswith(f"goalbrake sweep: error: {path}: ") and message in err[-1], err
    # No study, no trial: the storage was never opened.
    assert not (runs / "sweep" / "study.journal").exists()


@pytest.mark.parametrize(
    "argv",
    [["--workers", "two"], ["--n-trials", "0"], ["--timeout", "-5"], ["--bogus"]],
)
def test_bad_arguments_exit_2(
    make_sweep: Callable[..., Path], argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_sweep({"space": {"optimizer.lr": [0.1]}})
    assert sweep_main(["--config", str(path), *argv]) == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("optimizer", "brake", "method"),
    [
        ("torch.optim.SGD", None, "sgd"),
        ("goalbrake.PHS", None, "phs"),
        ("goalbrake.PHS", {"goal": 0.1}, "goal"),
        ("goalbrake.PHS", {"at_step": 100, "factor": 5.0}, "step"),
        ("torch.optim.AdamW", None, "adamw"),
    ],
)
def test_method_of_names_the_arm(optimizer: str, brake: dict | None, method: str) -> None:
    callbacks = [] if brake is None else [{"class_path": "goalbrake.GoalBrake", "init_args": brake}]
    config = {"optimizer": {"class_path": optimizer}, "trainer": {"callbacks": callbacks}}
    assert method_of(config) == method
