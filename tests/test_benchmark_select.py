"""experiments/benchmark/selection.py: the protocol's selection rule, its refusals, and the
confirmation study and plain config it writes (docs/benchmark.md, "Selection and
confirmation")."""

from __future__ import annotations

import copy
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from goalbrake.app import build_config
from goalbrake.sweep.define import load_spec
from goalbrake.sweep.define.params import GOAL_PARAM
from goalbrake.sweep.define.spec import fit_config
from goalbrake.sweep.define.validate import _settings
from goalbrake.sweep.run.command import main as sweep_main
from tests.test_benchmark_journals import (
    complete_plan,
    load_script,
    open_study,
    tuning_journal,
)
from tests.twins import tiny_twin

selection = load_script("selection")


def _values(n: int) -> list[float]:
    """n distinct values below 0.8, none of them the best."""
    return [0.7 + i / 1000 for i in range(n)]


def _select(tmp_path: Path, dataset: str, arm: str, plan: list[tuple]):
    path = tmp_path / f"{dataset}_{arm}.journal"
    tuning_journal(path, dataset, arm, plan)
    return selection.select_arm(dataset, arm, path)


# ----------------------------------------------------------------------------- the rule
def test_the_first_24_counted_skip_an_interrupted_trial_and_count_its_retry_and_nan(
    tmp_path: Path,
) -> None:
    """Trial 3 is interrupted (its retry is trial 4), trial 6 NaN-pruned: the candidates are
    trials 0-2 and 4-24, so trial 24 (the 24th counted) is chosen and trial 25, better,
    is beyond them."""
    values = _values(26)
    plan = complete_plan(values)
    plan[3] = ("interrupted",)  # its retry is trial 4, which takes plan[4]
    plan[6] = ("nan",)
    plan[24] = ("complete", 0.90)
    plan[25] = ("complete", 0.95)
    chosen = _select(tmp_path, "fashionmnist", "phs_goal", plan)
    numbers = [t.number for t in chosen.candidates]
    assert numbers == [0, 1, 2, *range(4, 25)]
    assert chosen.trial.number == 24 and chosen.trial.value == 0.90
    assert chosen.trial.system_attrs.get("failed_trial") is None
    assert chosen.candidates[3].system_attrs["failed_trial"] == 3  # the retry counts
    assert chosen.describe() == "trial 24 (val/acc 0.9000, best of the first 24 counted)"
    # parameters exactly as stored, in the study file's order
    assert chosen.values == chosen.trial.params
    assert list(chosen.values) == list(chosen.spec.space)


def test_a_dead_workers_trial_is_replaced_by_its_retry_but_an_error_counts(
    tmp_path: Path,
) -> None:
    """Trial 2's worker died (KILLED, retried as trial 3), trial 5 raised (not retried): the
    12 candidates are 0, 1, 3-12; trial 12 is one of them, trial 13 is not."""
    plan = complete_plan(_values(14))
    plan[2], plan[5] = ("killed",), ("error",)
    plan[12], plan[13] = ("complete", 0.95), ("complete", 0.99)
    chosen = _select(tmp_path, "cifar10", "sgd", plan)
    assert [t.number for t in chosen.candidates] == [0, 1, *range(3, 13)]
    assert chosen.trial.number == 12


def test_a_tie_goes_to_the_lower_number_and_an_error_counts(tmp_path: Path) -> None:
    plan = complete_plan(_values(12))
    plan[2], plan[5], plan[7] = ("complete", 0.9), ("error",), ("complete", 0.9)
    chosen = _select(tmp_path, "cifar10", "sgd", plan)
    assert chosen.trial.number == 2
    assert [t.number for t in chosen.candidates] == list(range(12))


def test_arm_8_fixes_the_goal_its_trial_measured(tmp_path: Path) -> None:
    chosen = _select(tmp_path, "cifar10", "phs_goal_measured", complete_plan(_values(12)))
    assert chosen.trial.number == 11
    assert chosen.values[GOAL_PARAM] == chosen.trial.user_attrs["config"][GOAL_PARAM]
    assert chosen.values[GOAL_PARAM] == pytest.approx(0.15 + 11 / 1000)
    assert {k: v for k, v in chosen.values.items() if k != GOAL_PARAM} == chosen.trial.params


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        # 9 trials, the 10th interrupted and not yet retried to its end
        (
            [*complete_plan(_values(9)), ("interrupted",), ("running",)],
            "benchmark_fashionmnist_phs_goal: 9 of the first 24 counted trials have "
            "finished (the selection needs all 24)",
        ),
        # one of the first 24 still running, 24 finished after it
        (
            [*complete_plan(_values(10)), ("running",), *complete_plan(_values(14))],
            "benchmark_fashionmnist_phs_goal: 23 of the first 24 counted trials have "
            "finished (the selection needs all 24)",
        ),
        # an interrupted trial does not make up the 24
        (
            [*complete_plan(_values(23)), ("interrupted",)],
            "benchmark_fashionmnist_phs_goal: 23 of the first 24 counted trials have "
            "finished (the selection needs all 24)",
        ),
        (
            [("nan",)] * 24,
            "benchmark_fashionmnist_phs_goal: none of the first 24 counted trials is COMPLETE",
        ),
    ],
    ids=["nine", "running", "interrupted", "no-complete"],
)
def test_refuses_in_one_line_until_the_first_24_have_finished(
    plan: list[tuple], message: str, tmp_path: Path
) -> None:
    with pytest.raises(selection.SelectionError) as err:
        _select(tmp_path, "fashionmnist", "phs_goal", plan)
    assert str(err.value) == message


def test_refuses_a_journal_another_study_file_made(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    spec = tuning_journal(path, "cifar10", "sgd", complete_plan(_values(12)))
    study = open_study(path, spec.study)
    study.set_user_attr("goalbrake", {**study.user_attrs["goalbrake"], "fingerprint": "x"})
    with pytest.raises(selection.SelectionError) as err:
        selection.select_arm("cifar10", "sgd", path)
    assert str(err.value) == (
        f"benchmark_cifar10_sgd: the journal was made by another study file (fingerprint x, "
        f"{spec.path} has {spec.fingerprint()})"
    )
    with pytest.raises(selection.SelectionError, match=r"^benchmark_cifar10_sgd: no journal at "):
        selection.select_arm("cifar10", "sgd", tmp_path / "none.journal")


# ----------------------------------------------------------------------------- the files
def _written(tmp_path: Path, dataset: str, arm: str, plan: list[tuple]):
    chosen = _select(tmp_path, dataset, arm, plan)
    out, configs = tmp_path / "benchmark", tmp_path / "configs"
    lines = selection.write_selection(chosen, out, configs)
    confirm = out / f"{dataset}_{arm}_confirm.yaml"
    config = configs / f"{dataset}_{arm}.yaml"
    assert lines == [f"{confirm}: written", f"{config}: written"]
    return chosen, confirm, config


def test_the_confirm_study_validates_and_fixes_exactly_the_chosen_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    chosen, confirm, _ = _written(tmp_path, "cifar10", "phs_step", complete_plan(_values(12)))
    spec = load_spec(confirm)
    assert spec.study == "benchmark_cifar10_phs_step_confirm"
    assert (spec.sampler, spec.pruner, spec.seeds, spec.seed) == ("grid", "none", 5, 0)
    assert (spec.test, spec.checkpoint, spec.grid_size()) == (True, True, 5)
    assert spec.base_files[spec.base].resolve() == chosen.spec.base_files[chosen.spec.base]
    (row,) = spec.rows
    assert (row.label, dict(row.values)) == ("trial11", chosen.trial.params)
    # seed s trains with data.seed = s on split s; everything else is the chosen trial's
    tuned = selection.tuned_config(chosen)
    seeds = []
    for setting in _settings(spec):
        config = spec.trial_config(setting)
        data = config["data"]["init_args"]
        assert (config["seed_everything"], data["seed"], data["split_seed"]) == (
            setting.seed,
        ) * 2 + (None,)
        seeds.append(setting.seed)
        config["seed_everything"], data["seed"], data["split_seed"] = 0, 0, 0
        assert config == tuned
    assert sorted(seeds) == [0, 1, 2, 3, 4]
    # goalbrake sweep --check
    monkeypatch.chdir(tmp_path)
    assert sweep_main(["--config", str(confirm), "--check"]) == 0
    assert "5 trials to complete; 5 trial configs check" in capsys.readouterr().err


def test_arm_8s_confirm_study_sets_the_goal_and_the_remaining_mode(tmp_path: Path) -> None:
    chosen, confirm, _ = _written(
        tmp_path, "cifar10", "phs_goal_measured", complete_plan(_values(12))
    )
    spec = load_spec(confirm)
    assert spec.goal_rule is None
    assert dict(spec.rows[0].values) == chosen.values
    assert spec.fixed == {"brake.mode": "remaining", "data.split_seed": None}


def test_the_config_is_the_selected_trial_and_a_rewrite_changes_nothing(
    tmp_path: Path,
) -> None:
    chosen, confirm, config = _written(
        tmp_path, "fashionmnist", "sgd_step", complete_plan(_values(24))
    )
    shipped = yaml.safe_load(config.read_text())
    assert shipped == selection.tuned_config(chosen)
    # the trial's own fit config, as the sweep ran it, less the sweep's logger/checkpoint
    record = chosen.trial.user_attrs["config"]
    assert shipped["optimizer"]["init_args"]["lr"] == record["optimizer.lr"]
    assert shipped["lr_scheduler"]["init_args"]["epoch"] == record["lr_scheduler.epoch"]
    assert (shipped["seed_everything"], shipped["data"]["init_args"]["split_seed"]) == (0, 0)
    assert config.read_text().startswith('# Benchmark arm "sgd_step" on fashionmnist, as its')
    out, configs = confirm.parent, config.parent
    assert selection.write_selection(chosen, out, configs) == [
        f"{confirm}: unchanged",
        f"{config}: unchanged",
    ]
    confirm.write_text(confirm.read_text().replace("trial23", "trial7"))
    with pytest.raises(selection.SelectionError) as err:
        selection.write_selection(chosen, out, configs)
    assert str(err.value) == (
        f"{confirm} exists with other contents (nothing is re-chosen after test is read; "
        "--force replaces it)"
    )
    assert selection.write_selection(chosen, out, configs, force=True)[0] == f"{confirm}: written"


def test_the_confirm_studys_first_trial_fits_its_tiny_twin(tmp_path: Path) -> None:
    _, confirm, _ = _written(tmp_path, "fashionmnist", "phs_goal", complete_plan(_values(24)))
    spec = load_spec(confirm)
    setting = next(s for s in _settings(spec) if s.seed == 3)
    full = tmp_path / "trial.yaml"
    full.write_text(yaml.safe_dump(fit_config(spec, setting, tmp_path / "runs", 0)))
    twin = tiny_twin(full, tmp_path / "twin", max_steps=2)
    twin["trainer"]["val_check_interval"] = 2
    cli = build_config(copy.deepcopy(twin))
    assert (cli.datamodule.seed, cli.datamodule.split_seed_used) == (3, 3)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.global_step == 2
    assert "val/acc" in cli.trainer.callback_metrics


def test_the_command_prints_the_choice_or_refuses_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "j.journal"
    tuning_journal(path, "cifar10", "sgd", complete_plan(_values(11)))
    argv = ["--dataset", "cifar10", "--arm", "sgd", "--journal", str(path), "--dry-run"]
    assert selection.main(argv) == 1
    assert capsys.readouterr().err == (
        "not selected: benchmark_cifar10_sgd: 11 of the first 12 counted trials have finished "
        "(the selection needs all 12)\n"
    )
    tuning_journal(path.with_name("k.journal"), "cifar10", "sgd", complete_plan(_values(12)))
    argv[5] = str(path.with_name("k.journal"))
    assert selection.main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert (
        out[0] == "benchmark_cifar10_sgd: trial 11 (val/acc 0.7110, best of the first 12 counted)"
    )
    assert out[1].startswith("  optimizer.lr: ")


# experiments/benchmark/run.sh: the arm-by-arm runner, with recording stand-ins for the
# goalbrake and python commands (what it runs, in which order, and when it refuses).

RUN_SH = selection.BENCHMARK / "run.sh"


def _run_sh(tmp_path: Path, *args: str, stop: bool = False):
    calls = tmp_path / "calls"
    recorder = tmp_path / "recorder"
    recorder.write_text(f'#!/bin/sh\necho "$(basename "$0") $*" >> {calls}\n')
    recorder.chmod(0o755)
    (tmp_path / "goalbrake").symlink_to(recorder)
    (tmp_path / "python").symlink_to(recorder)
    env = {
        **os.environ,
        "GOALBRAKE": str(tmp_path / "goalbrake"),
        "PYTHON": str(tmp_path / "python"),
        "BENCHMARK_LOGS": str(tmp_path / "logs"),
        "BENCHMARK_STOP": str(tmp_path / "stop"),
    }
    if stop:
        (tmp_path / "stop").touch()
    done = subprocess.run(["bash", str(RUN_SH), *args], env=env, capture_output=True, text=True)
    lines = calls.read_text().splitlines() if calls.exists() else []
    return done, [line.split(" --workers")[0].split(" --storage")[0] for line in lines]


def test_run_sh_runs_every_arm_of_the_protocol_once_by_default():
    text = RUN_SH.read_text()
    order = text.split("RUN_ORDER=(", 1)[1].split(")", 1)[0].split()
    assert sorted(order) == sorted(selection.ARMS)
    assert len(order) == len(set(order))


def test_run_sh_tunes_selects_and_confirms_each_arm_in_turn_then_reports(tmp_path):
    done, calls = _run_sh(tmp_path, "cifar10", "sgd", "sgd_cosine")
    assert done.returncode == 0, done.stderr
    study = "goalbrake sweep --config experiments/benchmark/cifar10_{}.yaml"
    select = "python experiments/benchmark/selection.py --dataset cifar10 --arm {}"
    assert calls == [
        study.format("sgd"),
        select.format("sgd"),
        study.format("sgd_confirm"),
        study.format("sgd_cosine"),
        select.format("sgd_cosine"),
        study.format("sgd_cosine_confirm"),
        "python experiments/benchmark/report.py --dataset cifar10",
    ]


def test_run_sh_keeps_a_written_selection(tmp_path):
    # arm 6 on FashionMNIST has its confirmation study committed: no selection runs again
    done, calls = _run_sh(tmp_path, "fashionmnist", "phs_goal")
    assert done.returncode == 0, done.stderr
    assert not any("selection.py" in call for call in calls)
    assert (
        calls[1]
        == "goalbrake sweep --config experiments/benchmark/fashionmnist_phs_goal_confirm.yaml"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("mnist",), "run.sh: unknown dataset 'mnist'; use fashionmnist or cifar10"),
        (
            ("cifar10", "sgd", "sgd_cosin"),
            "run.sh: unknown arm 'sgd_cosin'; use one of: phs_goal phs_step",
        ),
    ],
)
def test_run_sh_refuses_bad_names_before_any_study(tmp_path, args, message):
    done, calls = _run_sh(tmp_path, *args)
    assert done.returncode == 2
    assert done.stderr.startswith(message)
    assert calls == []


def test_run_sh_stop_file_stops_before_the_next_study(tmp_path):
    done, calls = _run_sh(tmp_path, "fashionmnist", "sgd", stop=True)
    assert done.returncode == 0
    assert "stop file" in done.stdout
    assert calls == []
