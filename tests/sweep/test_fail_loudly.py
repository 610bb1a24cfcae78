"""Sweeps that did not do what was asked say so, and exit non-zero (issue 18).

DDP inside a trial is refused at ``--check``; a TPE/random study whose trials all fail or
all diverge exits 1 with the causes counted; ``goalbrake report`` finds a committed journal.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from goalbrake.sweep.report.command import main as report_main
from goalbrake.sweep.run.command import main as sweep_main
from goalbrake.sweep.run.worker import MAX_CONSECUTIVE_DIVERGED, MAX_CONSECUTIVE_ERRORS
from tests.sweep.helpers import REPO, explain, run_sweep


def _last_lines(err: str, n: int) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("goalbrake ")][-n:]


# ----------------------------------------------------------------- DDP inside a trial
@pytest.mark.parametrize("storage", [None, "sqlite:///study.db"])
def test_ddp_inside_a_trial_is_refused_at_check(
    make_sweep: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    storage: str | None,
) -> None:
    """ddp_spawn on an RDB storage was said to work; it fails with ``cannot pickle
    '_thread.lock' object``. Now refused for every storage, before any trial."""
    path = make_sweep(
        {
            "sampler": "random",
            "n_trials": 1,
            "fixed": {"trainer.strategy": "ddp_spawn", "trainer.devices": 2},
            "space": {"optimizer.lr": {"low": 0.01, "high": 0.1, "log": True}},
        },
        name="ddp",
    )
    monkeypatch.chdir(tmp_path)
    args = ["--config", str(path), "--check"] + (["--storage", storage] if storage else [])
    assert sweep_main(args) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"goalbrake sweep: error: {path}: trial (optimizer.lr=0.01) trains on several devices "
        "(trainer.devices=2, trainer.strategy='ddp_spawn'); DDP inside a sweep trial is not "
        "supported: train each trial on one device and run one worker per GPU (--workers auto)"
    ]
    assert not (tmp_path / "study.db").exists() and not (tmp_path / "runs").exists()


def test_several_nodes_in_a_grid_row_are_refused(
    make_sweep: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = make_sweep({"sampler": "grid", "space": {"trainer.num_nodes": [1, 2]}}, name="nodes")
    monkeypatch.chdir(tmp_path)
    assert sweep_main(["--config", str(path), "--check"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"goalbrake sweep: error: {path}: trial (trainer.num_nodes=2) trains on several "
        "devices (trainer.num_nodes=2, trainer.strategy='auto'); DDP inside a sweep trial"
    ), err


# ----------------------------------------------------------------- studies that fall short
@pytest.mark.slow
def test_a_random_study_whose_trials_all_fail_exits_1_with_causes(
    make_sweep: Callable[..., Path], tmp_path: Path
) -> None:
    spec = {
        "sampler": "random",
        "n_trials": 2,
        "objective": {"metric": "val/nothing", "direction": "maximize"},
        "space": {"optimizer.lr": {"low": 0.05, "high": 0.1}},
    }
    path = make_sweep(spec, name="allfail", epochs=1, batches=2)
    proc = run_sweep("--config", str(path), "--workers", "1", "--runs-dir", "runs", cwd=tmp_path)
    assert proc.returncode == 1, explain(proc)
    n = MAX_CONSECUTIVE_ERRORS
    last = _last_lines(proc.stderr, 3)
    assert last[0] == "goalbrake sweep: no complete trial yet", explain(proc)
    assert last[1] == f"goalbrake sweep: error: 0 of 2 trials complete; {n} failed, 0 pruned:"
    assert last[2].startswith(
        f"goalbrake sweep:   {n} × error: ValueError: the objective metric 'val/nothing' "
        "was never logged (logged: "
    ), last[2]


@pytest.mark.slow
def test_a_random_study_that_only_diverges_stops_and_exits_1(
    make_sweep: Callable[..., Path], tmp_path: Path
) -> None:
    """An lr so large the loss is NaN: every trial is pruned and replaced; the worker
    gives up after a streak of them instead of running forever."""
    spec = {
        "sampler": "random",
        "n_trials": 2,
        "space": {"optimizer.lr": {"low": 1.0e6, "high": 1.0e7, "log": True}},
    }
    path = make_sweep(spec, name="nan", epochs=1, batches=2)
    proc = run_sweep("--config", str(path), "--workers", "0", "--runs-dir", "runs", cwd=tmp_path)
    assert proc.returncode == 1, explain(proc)
    n = MAX_CONSECUTIVE_DIVERGED
    last = _last_lines(proc.stderr, 5)
    assert last[0].startswith(
        f"goalbrake sweep: error: {n} trials in a row diverged; last: non-finite train/loss"
    ), explain(proc)
    assert last[1:] == [
        f"goalbrake sweep: study 'nan': 0/2 complete, {n} pruned",
        "goalbrake sweep: no complete trial yet",
        f"goalbrake sweep: error: 0 of 2 trials complete; 0 failed, {n} pruned:",
        f"goalbrake sweep:   {n} × pruned: non-finite train/loss (nan)",
    ], explain(proc)


@pytest.mark.slow
def test_a_timeout_short_of_the_trials_asked_exits_1(
    make_sweep: Callable[..., Path], tmp_path: Path
) -> None:
    spec = {
        "sampler": "random",
        "n_trials": 5,
        "space": {"optimizer.lr": {"low": 0.05, "high": 0.1}},
    }
    path = make_sweep(spec, name="short", epochs=1, batches=2)
    args = ("--config", str(path), "--workers", "0", "--runs-dir", "runs", "--timeout", "1")
    proc = run_sweep(*args, cwd=tmp_path)
    assert proc.returncode == 1, explain(proc)
    last = _last_lines(proc.stderr, 1)[0]
    assert last.startswith("goalbrake sweep: error: "), explain(proc)
    assert last.endswith(" of 5 trials complete when --timeout passed"), explain(proc)


# ----------------------------------------------------------------- report on a fresh clone
def test_report_without_any_journal_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert report_main(["--study", "fashionmnist_goal"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "goalbrake report: error: no study storage at runs/fashionmnist_goal/study.journal "
        "(nor a committed journal at experiments/fashionmnist_goal/fashionmnist_goal.journal); "
        "pass --storage"
    ]


@pytest.mark.slow
def test_report_reads_the_committed_journal_of_a_fresh_clone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    committed = Path("experiments") / "fashionmnist_goal" / "fashionmnist_goal.journal"
    (tmp_path / committed.parent).mkdir(parents=True)
    shutil.copyfile(REPO / committed, tmp_path / committed)
    monkeypatch.chdir(tmp_path)
    assert report_main(["--study", "fashionmnist_goal"]) == 0
    out = capsys.readouterr()
    assert out.err.splitlines()[0] == f"goalbrake report: reading the committed journal {committed}"
    assert "runs/fashionmnist_goal/report/report.md" in out.out.splitlines()
    assert (tmp_path / committed).read_bytes() == (REPO / committed).read_bytes()
