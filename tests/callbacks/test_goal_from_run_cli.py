"""``goal_from`` from the command line and from YAML (issue 19, fit level): a real
``goalbrake fit`` takes its goal from an earlier ``goalbrake fit``'s TensorBoard folder and
says so in its log line, its ``brake/events`` text and its HParams row."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from goalbrake.callbacks.goal_from_run import goal_from_run
from goalbrake.cli import main
from tests.callbacks.test_goal_from_run import brake_texts
from tests.callbacks.test_hparams import read_hparams
from tests.twins import REPO, tiny_twin, write_twin

STEPS = 20


@pytest.fixture(autouse=True)
def _console_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    # In-process main(args) runs as the console script would: no stray sys.argv words.
    monkeypatch.setattr(sys, "argv", ["goalbrake"])


@pytest.fixture
def earlier(tmp_path: Path) -> Path:
    """The TensorBoard folder of a ``goalbrake fit`` of goal.yaml that never brakes."""
    twin = tiny_twin(
        REPO / "configs/fashionmnist/goal.yaml", tmp_path, max_steps=STEPS, fast_optimizer=True
    )
    twin["trainer"]["callbacks"][0]["init_args"].update(goal=1e-6, half_life=2.0)
    twin["trainer"]["logger"]["init_args"]["name"] = "earlier"
    assert main(["fit", "--config", str(write_twin(twin, tmp_path / "earlier.yaml"))]) == 0
    (log_dir,) = (tmp_path / "runs" / "earlier").glob("version_*")
    return log_dir


def check_run(log_dir: Path, output: str, goal: float, where: str) -> None:
    """The goal and its source in the log line, the brake/events text and the hparams."""
    line = f"GoalBrake: goal {goal:.4g} from {where}"
    assert line in output
    texts = brake_texts(log_dir)
    assert texts[0] == (0, line)
    params, _, _ = read_hparams(log_dir)
    assert params["goal_source"] == where
    assert params["goal"] == pytest.approx(goal, rel=1e-6)
    assert params["mode"] == "remaining"


def test_goal_from_on_the_command_line(earlier: Path, tmp_path: Path) -> None:
    goal, where = goal_from_run(earlier, margin=1.1)
    twin = tiny_twin(
        REPO / "configs/fashionmnist/phs.yaml", tmp_path, max_steps=STEPS, fast_optimizer=True
    )
    config = write_twin(twin, tmp_path / "phs.yaml")
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    words = [
        *("fit", "--config", str(config)),
        "--trainer.callbacks+=goalbrake.GoalBrake",
        f"--trainer.callbacks.init_args.goal_from={earlier}",
        "--trainer.callbacks.init_args.goal_margin=1.1",
        "--trainer.callbacks.init_args.reference_batches=2",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "goalbrake.cli", *words],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (log_dir,) = (tmp_path / "runs" / "fashionmnist_phs").glob("version_*")
    check_run(log_dir, result.stdout + result.stderr, goal, where)


def test_goal_from_in_a_yaml_config(
    earlier: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog
) -> None:
    goal, where = goal_from_run(earlier, at=0.5)
    twin = tiny_twin(
        REPO / "configs/fashionmnist/goal.yaml", tmp_path, max_steps=STEPS, fast_optimizer=True
    )
    brake = twin["trainer"]["callbacks"][0]["init_args"]
    del brake["goal"]
    brake.update(goal_from=str(earlier), goal_at=0.5)
    with caplog.at_level("INFO", logger="goalbrake.callbacks.goal_brake"):
        assert main(["fit", "--config", str(write_twin(twin, tmp_path / "later.yaml"))]) == 0
    (log_dir,) = (tmp_path / "runs" / "fashionmnist_goal").glob("version_*")
    check_run(log_dir, caplog.text + capsys.readouterr().err, goal, where)


def test_a_bad_goal_from_is_one_line_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    twin = tiny_twin(REPO / "configs/fashionmnist/goal.yaml", tmp_path)
    del twin["trainer"]["callbacks"][0]["init_args"]["goal"]
    missing = tmp_path / "no_such_run"
    twin["trainer"]["callbacks"][0]["init_args"]["goal_from"] = str(missing)
    assert main(["fit", "--config", str(write_twin(twin, tmp_path / "goal.yaml"))]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("goalbrake:")]
    assert lines == [
        f"goalbrake: error: Invalid goal_from value: '{missing}' (must be a metrics.csv, a "
        "folder holding one, a TensorBoard run folder or a .ckpt)"
    ], err
    assert "Traceback" not in err and not (tmp_path / "runs").exists()
