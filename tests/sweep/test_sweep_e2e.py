"""``goalbrake sweep`` end to end: real worker processes on tiny FashionMNIST files.

Each test runs the real command in a subprocess (its own warnings and signals), then reads
the study back from its storage the way a new process would.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState

from goalbrake.sweep.run.recovery import retried_from
from tests.sweep.helpers import (
    explain,
    journal_study,
    run_sweep,
    start_sweep,
    tiny_base,
    trained_trial,
    wait_for,
)

pytestmark = pytest.mark.slow


def write(root: Path, fm_dir: Path, spec: dict[str, Any], name: str, **base: Any) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "base.yaml").write_text(yaml.safe_dump(tiny_base(fm_dir, **base)))
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"base": "base.yaml", **spec}, sort_keys=False))
    return path


def read_hparams(run_dir: Path) -> tuple[dict[str, Any], set[str]]:
    """The TensorBoard HPARAMS of a run (from its event files) and its scalar tags."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = {}
    for key, value in start.session_start_info.hparams.items():
        kind = value.WhichOneof("kind")
        hparams[key] = getattr(value, kind)
    return hparams, set(acc.Tags()["scalars"])


# ----------------------------------------------------------------- 6 trials, 2 workers
GRID6 = {
    "sampler": "grid",
    "seeds": 2,
    "space": {"optimizer.lr": [0.05, 0.1, 0.2]},
    "checkpoint": True,
    "test": True,
}


@pytest.fixture(scope="module")
def grid6(tmp_path_factory: pytest.TempPathFactory, fm_dir: Path) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("grid6")
    path = write(root, fm_dir, GRID6, "grid6")
    proc = run_sweep("--config", str(path), "--workers", "2", "--runs-dir", "runs", cwd=root)
    return {"root": root, "proc": proc, "journal": root / "runs" / "grid6" / "study.journal"}


def test_two_workers_complete_a_grid_exactly(grid6: dict[str, Any]) -> None:
    proc = grid6["proc"]
    assert proc.returncode == 0, explain(proc)
    assert "LeafSpec" not in proc.stderr + proc.stdout, "dependency noise in the workers' output"
    study = journal_study(grid6["journal"], "grid6")
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 6
    points = {(t.params["optimizer.lr"], t.user_attrs["config"]["seed"]) for t in trials}
    assert points == {(lr, s) for lr in (0.05, 0.1, 0.2) for s in (0, 1)}  # no duplicates
    pids = {t.user_attrs["worker"]["pid"] for t in trials}
    assert len(pids) == 2, "both worker processes ran trials"
    for t in trials:
        run = grid6["root"] / "runs" / "grid6" / f"trial_{t.number}"
        hparams, scalars = read_hparams(run)
        assert hparams["optimizer.lr"] == pytest.approx(t.params["optimizer.lr"])
        assert hparams["seed"] == t.user_attrs["config"]["seed"] and hparams["trial"] == t.number
        assert set(t.params) == {"optimizer.lr"}  # the seed is not a tuned parameter
        assert hparams["method"] == "goal"
        assert {"hp/objective", "hp/final", "val/acc", "train/loss"} <= scalars
        assert t.value == max(t.user_attrs["curve"]["val/acc"])
        assert t.user_attrs["final_value"] == t.user_attrs["curve"]["val/acc"][-1]
        assert (run / "config.yaml").is_file()


# Testing with the logger off moves the checkpoint callback's dirpath; Lightning says so.
@pytest.mark.filterwarnings("ignore:The dirpath has changed:UserWarning")
def test_test_true_tests_the_final_weights_and_the_best_checkpoint(
    grid6: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``test: true``: both test accuracies are in the storage, and the best one is what
    ``goalbrake test`` gives for the trial's config and best-val checkpoint."""
    from goalbrake.app import build

    study = journal_study(grid6["journal"], "grid6")
    for t in study.trials:
        test = t.user_attrs["test"]
        assert set(test) == {"final", "best"}
        for kind in ("final", "best"):
            assert 0.0 <= test[kind]["test/acc"] <= 1.0
            assert math.isfinite(test[kind]["test/loss"])
    monkeypatch.chdir(tmp_path)  # logger false: the test run's config.yaml lands here
    monkeypatch.setattr(sys, "argv", ["goalbrake"])  # the words come as args
    for t in study.trials[:2]:
        # Relative to the runs directory, so a study's storage moves with its runs.
        assert t.user_attrs["tensorboard"] == f"grid6/trial_{t.number}"
        run = grid6["root"] / "runs" / t.user_attrs["tensorboard"]
        (best,) = (run / "checkpoints").glob("best-*.ckpt")
        assert best.name == f"best-epoch{t.user_attrs['best_epoch']:02d}.ckpt"
        cli = build(
            [
                "test",
                *("--config", str(run / "config.yaml")),
                *("--ckpt_path", str(best)),
                *("--trainer.logger", "false"),
            ],
            run=True,
        )
        again = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
        assert again["test/acc"] == pytest.approx(t.user_attrs["test"]["best"]["test/acc"])
        assert again["test/loss"] == pytest.approx(
            t.user_attrs["test"]["best"]["test/loss"], rel=1e-5
        )


def _goalbrake_test(run: Path, ckpt: Path) -> dict[str, float]:
    """``goalbrake test`` of a trial's config and a checkpoint, in a fresh Trainer."""
    from goalbrake.app import build

    cli = build(
        [
            "test",
            *("--config", str(run / "config.yaml")),
            *("--ckpt_path", str(ckpt)),
            *("--trainer.logger", "false"),
        ],
        run=True,
    )
    return {k: float(v) for k, v in cli.trainer.callback_metrics.items()}


@pytest.mark.filterwarnings("ignore:The dirpath has changed:UserWarning")
@pytest.mark.filterwarnings("ignore:You're using the WeightAveraging callback:UserWarning")
def test_test_true_scores_the_averaged_weights_validation_saw(
    tmp_path: Path, fm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With Lightning's EMAWeightAveraging, validation and the best-val checkpoint hold the
    averaged weights; the stored best test accuracy must be theirs, not the raw weights'
    (which that callback would restore if the fitting Trainer reloaded the checkpoint)."""
    spec = {"sampler": "grid", "space": {"optimizer.lr": [0.1]}, "checkpoint": True, "test": True}
    path = write(tmp_path / "sweep", fm_dir, spec, "ema", epochs=3, ema_decay=0.8)
    proc = run_sweep("--config", str(path), "--runs-dir", "runs", cwd=path.parent)
    assert proc.returncode == 0, explain(proc)
    (t,) = journal_study(path.parent / "runs" / "ema" / "study.journal", "ema").trials
    run = path.parent / "runs" / t.user_attrs["tensorboard"]
    (best,) = (run / "checkpoints").glob("best-*.ckpt")
    checkpoint = torch.load(best, weights_only=False)
    raw = checkpoint["current_model_state"]
    assert any(not torch.equal(raw[k], v) for k, v in checkpoint["state_dict"].items())

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["goalbrake"])
    # A fresh Trainer never fitted, so the callback keeps out of the way: the averaged weights.
    averaged = _goalbrake_test(run, best)
    stored = t.user_attrs["test"]["best"]
    assert stored["test/loss"] == pytest.approx(averaged["test/loss"], rel=1e-5)
    assert stored["test/acc"] == pytest.approx(averaged["test/acc"])
    torch.save({**checkpoint, "state_dict": raw}, tmp_path / "raw.ckpt")
    assert _goalbrake_test(run, tmp_path / "raw.ckpt")["test/loss"] != pytest.approx(
        stored["test/loss"], rel=1e-5
    ), "the raw and the averaged weights must score apart for this test to mean anything"


def test_a_refit_without_validation_records_train_acc_per_epoch(
    tmp_path: Path, fm_dir: Path
) -> None:
    """``data.val_size: 0`` with a ``train/...`` objective (a refit on all training images):
    one curve entry per epoch, each equal to the train/acc that epoch logged to TensorBoard,
    and the final weights tested (no best-val checkpoint exists)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    spec = {
        "objective": {"metric": "train/acc", "direction": "maximize"},
        "sampler": "grid",
        "space": {"optimizer.lr": [0.1]},
        "fixed": {"data.val_size": 0},
        "checkpoint": False,
        "test": True,
    }
    path = write(tmp_path, fm_dir, spec, "refit", epochs=3)
    proc = run_sweep("--config", str(path), "--workers", "1", "--runs-dir", "runs", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    (t,) = journal_study(tmp_path / "runs" / "refit" / "study.journal", "refit").trials
    assert t.state == TrialState.COMPLETE
    curve = t.user_attrs["curve"]
    assert curve["epoch"] == [0, 1, 2] and "val/acc" not in curve
    acc = EventAccumulator(
        str(tmp_path / "runs" / t.user_attrs["tensorboard"]), size_guidance={"scalars": 0}
    )
    acc.Reload()
    logged = [e.value for e in acc.Scalars("train/acc")]
    assert curve["train/acc"] == pytest.approx(logged)
    assert t.value == max(logged) and t.user_attrs["final_value"] == curve["train/acc"][-1]
    assert set(t.user_attrs["test"]) == {"final"}
    assert 0.0 <= t.user_attrs["test"]["final"]["test/acc"] <= 1.0


def test_rerun_of_a_finished_study_starts_nothing(grid6: dict[str, Any]) -> None:
    proc = run_sweep(
        "--config",
        str(grid6["root"] / "grid6.yaml"),
        "--workers",
        "2",
        "--runs-dir",
        "runs",
        cwd=grid6["root"],
    )
    assert proc.returncode == 0, explain(proc)
    assert "6/6 complete" in proc.stderr and "worker 0" not in proc.stderr
    assert len(journal_study(grid6["journal"], "grid6").trials) == 6


def test_report_tables_equal_the_storage(grid6: dict[str, Any], tmp_path: Path) -> None:
    import csv

    from goalbrake.sweep.report.command import main as report_main

    journal = grid6["journal"]
    out = tmp_path / "report"
    assert report_main(["--study", "grid6", "--storage", str(journal), "--out", str(out)]) == 0
    for name in (
        "report.md",
        "best.md",
        "best.csv",
        "trials.csv",
        "importances.csv",
        "objective_vs_params.png",
        "curves.png",
        "history.png",
        "importances.png",
    ):
        assert (out / name).is_file(), name
        if name.endswith(".png"):
            data = (out / name).read_bytes()
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name
    study = journal_study(journal, "grid6")
    by_number = {t.number: t for t in study.trials}
    with (out / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6
    for row in rows:
        t = by_number[int(row["number"])]
        assert float(row["value"]) == t.value
        assert float(row["final_value"]) == t.user_attrs["final_value"]
        assert float(row["optimizer.lr"]) == t.params["optimizer.lr"]
    with (out / "best.csv").open() as f:
        best = list(csv.DictReader(f))
    assert len(best) == 3  # one row per lr, its 2 seeds aggregated
    import statistics

    for row in best:
        values = [by_number[int(n)].value for n in row["trials"].split()]
        assert int(row["n"]) == 2
        assert float(row["val/acc_mean"]) == pytest.approx(statistics.fmean(values), abs=1e-12)
        assert float(row["val/acc_std"]) == pytest.approx(statistics.stdev(values), abs=1e-12)
    means = [float(r["val/acc_mean"]) for r in best]
    assert means == sorted(means, reverse=True)
    assert "mass and friction do not both vary" in (out / "report.md").read_text()


# ----------------------------------------------------------------- NaN and pruning
@pytest.fixture(scope="module")
def pruned(tmp_path_factory: pytest.TempPathFactory, fm_dir: Path) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("pruned")
    spec = {
        "sampler": "grid",
        # 1e-7 learns nothing (threshold-pruned), 0.1 learns, 1e6 diverges to NaN.
        "space": {"optimizer.lr": [1.0e-7, 0.1, 1.0e6]},
        "pruner": {"name": "threshold", "lower": 0.5, "n_warmup_steps": 2},
    }
    path = write(root, fm_dir, spec, "pruned", epochs=4, batches=6)
    proc = run_sweep("--config", str(path), "--workers", "0", "--runs-dir", "runs", cwd=root)
    return {"root": root, "proc": proc, "journal": root / "runs" / "pruned" / "study.journal"}


def _by_lr(study: optuna.Study) -> dict[float, optuna.trial.FrozenTrial]:
    return {t.params["optimizer.lr"]: t for t in study.trials}


def test_diverging_trials_are_pruned_with_a_nan_reason(pruned: dict[str, Any]) -> None:
    assert pruned["proc"].returncode == 0, explain(pruned["proc"])
    trials = _by_lr(journal_study(pruned["journal"], "pruned"))
    nan = trials[1.0e6]
    assert nan.state == TrialState.PRUNED
    assert nan.user_attrs["nonfinite"] is True
    assert nan.user_attrs["prune_reason"].startswith("non-finite train/loss (nan)")
    assert trials[0.1].state == TrialState.COMPLETE


def test_pruned_trials_stop_early(pruned: dict[str, Any]) -> None:
    trials = _by_lr(journal_study(pruned["journal"], "pruned"))
    slow, good = trials[1.0e-7], trials[0.1]
    assert slow.state == TrialState.PRUNED and good.state == TrialState.COMPLETE
    assert "threshold pruner" in slow.user_attrs["prune_reason"]
    assert len(slow.user_attrs["curve"]["epoch"]) == 3 < len(good.user_attrs["curve"]["epoch"]) == 4
    assert sorted(slow.intermediate_values) == [0, 1, 2]
    _, slow_tags = read_hparams(pruned["root"] / "runs" / "pruned" / f"trial_{slow.number}")
    assert "hp/objective" in slow_tags


def test_a_grid_with_failed_points_exits_1_and_counts_them_by_cause(
    tmp_path: Path, fm_dir: Path
) -> None:
    """Every point ran, none completed: the study is over but not what was asked (issue 18)."""
    spec = {
        "sampler": "grid",
        "objective": {"metric": "val/nothing", "direction": "maximize"},
        "space": {"optimizer.lr": [0.05, 0.1]},
    }
    path = write(tmp_path, fm_dir, spec, "failing", epochs=1, batches=2)
    proc = run_sweep("--config", str(path), "--workers", "1", "--runs-dir", "runs", cwd=tmp_path)
    assert proc.returncode == 1, explain(proc)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("goalbrake sweep:")]
    assert lines[-3] == "goalbrake sweep: no complete trial yet"
    assert lines[-2] == "goalbrake sweep: error: 2 of 2 grid points failed:"
    assert lines[-1].startswith(
        "goalbrake sweep:   2 × error: ValueError: the objective metric 'val/nothing' was "
        "never logged (logged: "
    ), lines[-1]
    again = run_sweep("--config", str(path), "--workers", "1", "--runs-dir", "runs", cwd=tmp_path)
    assert again.returncode == 1 and again.stderr.splitlines()[-2:] == proc.stderr.splitlines()[-2:]


# ----------------------------------------------------------------- SIGKILL and Ctrl-C
def _journal_lines_parse(journal: Path) -> int:
    lines = journal.read_bytes().splitlines()
    for line in lines:
        json.loads(line)
    return len(lines)


def test_sigkilled_worker_trial_fails_and_is_retried(tmp_path: Path, fm_dir: Path) -> None:
    spec = {"sampler": "grid", "space": {"optimizer.lr": [0.05, 0.1, 0.2, 0.3]}}
    gate = tmp_path / "gate"
    path = write(tmp_path, fm_dir, spec, "kill", epochs=4, batches=4, gate=gate)
    journal = tmp_path / "runs" / "kill" / "study.journal"
    log = tmp_path / "sweep.log"
    proc = start_sweep(
        "--config", str(path), "--workers", "2", "--runs-dir", "runs", cwd=tmp_path, log=log
    )
    try:
        victim = wait_for(
            lambda: trained_trial(journal, "kill"),
            150,
            "a trial past its first epoch",
            proc=proc,
            log=log,
        )
        os.kill(victim.user_attrs["worker"]["pid"], signal.SIGKILL)
        gate.touch()
        assert proc.wait(timeout=240) == 0, log.read_text()[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    _journal_lines_parse(journal)
    study = journal_study(journal, "kill")
    trials = study.get_trials()
    killed = trials[victim.number]
    assert killed.state == TrialState.FAIL
    assert killed.user_attrs["fail_reason"].startswith("killed: worker pid")
    retries = [t for t in trials if retried_from(t) == victim.number]
    assert len(retries) == 1
    assert retries[0].state == TrialState.COMPLETE and retries[0].params == killed.params
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(t.params["optimizer.lr"] for t in complete) == [0.05, 0.1, 0.2, 0.3]
    assert "died (signal SIGKILL)" in log.read_text()


def test_ctrl_c_stops_cleanly_and_the_same_command_resumes(tmp_path: Path, fm_dir: Path) -> None:
    spec = {"sampler": "grid", "space": {"optimizer.lr": [0.05, 0.1, 0.2]}}
    gate = tmp_path / "gate"
    path = write(tmp_path, fm_dir, spec, "resume", epochs=4, batches=4, gate=gate)
    journal = tmp_path / "runs" / "resume" / "study.journal"
    args = ("--config", str(path), "--workers", "2", "--runs-dir", "runs")
    log = tmp_path / "first.log"
    proc = start_sweep(*args, cwd=tmp_path, log=log)
    try:
        wait_for(
            lambda: trained_trial(journal, "resume"),
            150,
            "a trial past its first epoch",
            proc=proc,
            log=log,
        )
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 130, log.read_text()[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    study = journal_study(journal, "resume")
    stopped = [t for t in study.trials if t.state == TrialState.FAIL]
    assert stopped, "a running trial ends as FAIL"
    assert all(t.user_attrs["fail_reason"].startswith("interrupted") for t in stopped)
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    waiting = [t for t in study.trials if t.state == TrialState.WAITING]
    assert sorted(retried_from(t) for t in waiting) == sorted(t.number for t in stopped)

    gate.touch()  # the resumed sweep runs through
    again = run_sweep(*args, cwd=tmp_path)
    assert again.returncode == 0, explain(again)
    study = journal_study(journal, "resume")
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert sorted(t.params["optimizer.lr"] for t in complete) == [0.05, 0.1, 0.2]
    for t in stopped:
        assert any(
            retried_from(r) == t.number and r.state == TrialState.COMPLETE for r in study.trials
        )
