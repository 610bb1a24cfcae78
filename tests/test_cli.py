"""The `goalbrake` command end to end: real subprocesses on tiny data in the real formats."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from goalbrake.app import close_process_group
from goalbrake.cli import main
from tests.callbacks.test_hparams import read_hparams
from tests.twins import REPO, tiny_twin, write_twin

GOALBRAKE = [sys.executable, "-m", "goalbrake.cli"]


@pytest.fixture(autouse=True)
def _console_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    # In-process main(args) runs as the console script would: no stray sys.argv words.
    monkeypatch.setattr(sys, "argv", ["goalbrake"])


def run_goalbrake(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    return subprocess.run(
        [*GOALBRAKE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


@pytest.mark.parametrize("dataset", ["fashionmnist", "cifar10"])
def test_fit_subprocess_trains_checkpoints_logs_and_brakes(tmp_path: Path, dataset: str) -> None:
    twin = tiny_twin(
        REPO / "configs" / dataset / "goal.yaml", tmp_path, max_steps=60, fast_optimizer=True
    )
    # Reading "braking at 0.3" as: the loss has fallen by 30% (reachable in 60 tiny steps).
    brake = twin["trainer"]["callbacks"][0]["init_args"]
    brake.update(goal=0.3, mode="reduction")
    config = write_twin(twin, tmp_path / "goal.yaml")

    result = run_goalbrake("fit", "--config", str(config), cwd=tmp_path)

    assert result.returncode == 0, result.stderr[-3000:]
    assert "GoalBrake: braked at step" in result.stderr + result.stdout
    (log_dir,) = (tmp_path / "runs" / f"{dataset}_goal").glob("version_*")
    assert list(log_dir.glob("checkpoints/best-*.ckpt")), "no best-val-acc checkpoint"
    assert (log_dir / "checkpoints" / "last.ckpt").is_file()
    # The end of fit says where the best and the last checkpoint are.
    printed = dict(
        line.split(": ", 1) for line in result.stdout.splitlines() if " checkpoint: " in line
    )
    best = printed["Best checkpoint"].partition(" (val/acc ")[0]
    assert Path(best).parent == log_dir / "checkpoints" and Path(best).name.startswith("best-")
    assert Path(printed["Last checkpoint"]) == log_dir / "checkpoints" / "last.ckpt"
    series = scalars(log_dir)
    braked = [v for _, v in series["brake/braked"]]
    assert braked[0] == 0 and braked[-1] == 1  # braked once, mid-run
    friction = [v for _, v in series["optim/friction"]]
    assert friction[0] == pytest.approx(1.0)
    assert friction[-1] == pytest.approx(50.0 if dataset == "fashionmnist" else 49.0)
    assert "val/acc" in series and "energy/total" in series
    # The HParams tab: the optimizer's and GoalBrake's settings, the brake and the accuracy.
    params, tags, last = read_hparams(log_dir)
    assert params["optimizer"] == "PHS" and params["goal"] == pytest.approx(0.3)
    assert params["mode"] == "reduction" and params["brake_step"] > 0
    assert {"hp/val_acc_best", "hp/val_acc_final", "hp/test_acc"} <= set(tags)
    assert last["hp/val_acc_best"] == pytest.approx(max(v for _, v in series["val/acc"]))


def test_a_config_with_its_own_hparams_logger_fits(tmp_path: Path) -> None:
    twin = tiny_twin(REPO / "configs/fashionmnist/phs.yaml", tmp_path, max_steps=4)
    twin["trainer"]["val_check_interval"] = 4  # validate once, at the last step
    twin["trainer"].setdefault("callbacks", []).append(
        {
            "class_path": "goalbrake.HParamsLogger",
            "init_args": {"monitor": "val/loss", "mode": "min"},
        }
    )
    config = write_twin(twin, tmp_path / "phs.yaml")
    assert main(["fit", "--config", str(config)]) == 0
    (log_dir,) = (tmp_path / "runs").glob("*/version_*")
    _, tags, _ = read_hparams(log_dir)
    assert "hp/val_loss_best" in tags and "hp/val_acc_best" not in tags


def test_bad_mass_exits_nonzero_with_one_line(tmp_path: Path) -> None:
    config = write_twin(
        tiny_twin(REPO / "configs/fashionmnist/phs.yaml", tmp_path), tmp_path / "phs.yaml"
    )
    result = run_goalbrake("fit", "--config", str(config), "--optimizer.mass", "-1", cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("goalbrake:")]
    assert errors == ["goalbrake: error: Invalid mass value: -1.0 (must be > 0)"]
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("*.ckpt"))


@pytest.mark.parametrize(
    ("extra", "status", "message"),
    [
        (
            ["--model.backbone", "goalbrake.models.NoSuchNet"],
            2,
            "Problem with given class_path 'goalbrake.models.NoSuchNet'",
        ),
        (
            ["--optimizer", "torch.optim.NoSuchOpt"],
            2,
            "Problem with given class_path 'torch.optim.NoSuchOpt'",
        ),
        (["--trainer.no_such_key", "1"], 2, "unrecognized arguments: --trainer.no_such_key 1"),
        (["--optimizer.friction", "-0.1"], 1, "Invalid friction value: -0.1 (must be >= 0)"),
        (["--optimizer.scheme", "leapfrog"], 1, "Invalid scheme value: 'leapfrog'"),
    ],
)
def test_bad_input_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], status: int, message: str
) -> None:
    config = write_twin(
        tiny_twin(REPO / "configs/fashionmnist/phs.yaml", tmp_path), tmp_path / "phs.yaml"
    )
    assert main(["fit", "--config", str(config), *extra]) == status
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("goalbrake: error:")]
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err


def test_unknown_config_key_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    twin = tiny_twin(REPO / "configs/fashionmnist/phs.yaml", tmp_path)
    twin["model"]["init_args"] = {"dropout": 0.5}
    config = write_twin(twin, tmp_path / "phs.yaml")
    assert main(["fit", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "goalbrake: error:" in err and "dropout" in err


def test_missing_dataset_with_download_off_lists_where_it_looked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    twin = tiny_twin(REPO / "configs/cifar10/sgd.yaml", tmp_path)
    twin["data"]["init_args"]["data_dir"] = str(tmp_path / "empty")
    config = write_twin(twin, tmp_path / "sgd.yaml")
    assert main(["fit", "--config", str(config)]) == 1
    (line,) = [x for x in capsys.readouterr().err.splitlines() if x.startswith("goalbrake:")]
    assert "CIFAR-10" in line and str(tmp_path / "empty") in line and "download" in line


def test_truncated_idx_file_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    twin = tiny_twin(REPO / "configs/fashionmnist/sgd.yaml", tmp_path)
    images = Path(twin["data"]["init_args"]["data_dir"]) / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[: len(images.read_bytes()) // 2])
    config = write_twin(twin, tmp_path / "sgd.yaml")
    assert main(["fit", "--config", str(config)]) == 1
    (line,) = [x for x in capsys.readouterr().err.splitlines() if x.startswith("goalbrake:")]
    assert "train-images-idx3-ubyte.gz" in line


def test_print_config_round_trips_the_shipped_config(tmp_path: Path) -> None:
    result = run_goalbrake(
        "fit",
        "--print_config",
        "--config",
        str(REPO / "configs/fashionmnist/goal.yaml"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    printed = yaml.safe_load(result.stdout)
    assert printed["optimizer"]["init_args"]["mass"] == 10.0
    brake = [c for c in printed["trainer"]["callbacks"] if c["class_path"].endswith("GoalBrake")]
    assert brake[0]["init_args"]["goal"] == 0.15 and brake[0]["init_args"]["factor"] == 50.0


REAL_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.realdata
@pytest.mark.skipif(
    not REAL_FASHION_MNIST.is_dir(),
    reason="needs Debian's dataset-fashion-mnist (.ci/setup installs it)",
)
def test_short_real_fit_on_fashion_mnist_beats_chance(tmp_path: Path) -> None:
    twin = tiny_twin(
        REPO / "configs/fashionmnist/goal.yaml", tmp_path, max_steps=300, fast_optimizer=True
    )
    data = twin["data"]["init_args"]
    data.update(
        data_dir=str(REAL_FASHION_MNIST),
        train_subset=10000,
        val_size=2000,
        batch_size=64,
        eval_batch_size=1000,
    )
    twin["trainer"]["limit_val_batches"] = 2
    config = write_twin(twin, tmp_path / "goal.yaml")
    result = run_goalbrake("fit", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (log_dir,) = (tmp_path / "runs" / "fashionmnist_goal").glob("version_*")
    val_acc = scalars(log_dir)["val/acc"][-1][1]
    assert val_acc > 0.6  # chance is 0.1


@pytest.mark.parametrize("own", ["checkpoint", "disabled", "default"])
def test_a_config_s_own_checkpoint_replaces_the_default(tmp_path: Path, own: str) -> None:
    """The default best-val checkpoint steps aside for a configured one (a sweep trial's saved
    config.yaml has one) or for ``enable_checkpointing: false``; Lightning refuses both."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from goalbrake.app import build

    twin = tiny_twin(REPO / "configs/fashionmnist/goal.yaml", tmp_path)
    if own == "checkpoint":
        twin["trainer"]["callbacks"].append(
            {
                "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                "init_args": {"monitor": "val/loss", "filename": "mine"},
            }
        )
    elif own == "disabled":
        twin["trainer"]["enable_checkpointing"] = False
    cli = build(twin, run=False)
    found = [c for c in cli.trainer.callbacks if isinstance(c, ModelCheckpoint)]
    expected = {"checkpoint": ["val/loss"], "disabled": [], "default": ["val/acc"]}[own]
    assert [c.monitor for c in found] == expected
    assert cli.trainer_defaults["callbacks"][0].monitor == "val/acc"  # defaults untouched


def test_close_process_group_destroys_an_open_group_and_is_a_no_op_without_one(
    tmp_path: Path,
) -> None:
    import torch.distributed as dist

    close_process_group()  # nothing open: nothing to do
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    assert dist.is_initialized()
    close_process_group()
    assert not dist.is_initialized()


def test_help_lists_every_subcommand(tmp_path: Path) -> None:
    result = run_goalbrake("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    usage = result.stdout.splitlines()[0]
    for sub in ("fit", "validate", "test", "predict", "sweep", "report"):
        assert sub in usage, usage


def test_predict_subprocess_runs_a_config(tmp_path: Path) -> None:
    config = write_twin(
        tiny_twin(REPO / "configs/fashionmnist/goal.yaml", tmp_path), tmp_path / "goal.yaml"
    )
    result = run_goalbrake("predict", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr


def _truncated_checkpoint(tmp: Path) -> list[str]:
    path = tmp / "truncated.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, path)
    path.write_bytes(path.read_bytes()[:2000])
    return ["--ckpt_path", str(path)]


def _random_checkpoint(tmp: Path) -> list[str]:
    path = tmp / "random.ckpt"
    path.write_bytes(torch.randint(0, 256, (3000,), dtype=torch.uint8).numpy().tobytes())
    return ["--ckpt_path", str(path)]


def _callback_setting(key: str, value: object) -> Callable[[Path], list[str]]:
    def extra(tmp: Path) -> list[str]:
        twin = yaml.safe_load((tmp / "goal.yaml").read_text())
        twin["trainer"]["callbacks"][0]["init_args"][key] = value
        return ["--config", str(write_twin(twin, tmp / "edited.yaml"))]

    return extra


_NOT_A_CHECKPOINT = (
    "(not a complete checkpoint: the file is truncated or was not written by torch.save)"
)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            lambda tmp: ["--optimizer", "Adam"],
            "GoalBrake supports goalbrake.PHS, goalbrake.optim.PHSFlow and torch.optim.SGD "
            "with momentum > 0, got Adam",
        ),
        (
            lambda tmp: ["--trainer.logger", "false"],
            "Cannot use EnergyMonitor with a Trainer that has no logger: pass one, e.g. "
            "Trainer(logger=TensorBoardLogger('logs')), or remove the callback",
        ),
        (
            _truncated_checkpoint,
            "Invalid ckpt_path value: '{tmp}/truncated.ckpt' " + _NOT_A_CHECKPOINT,
        ),
        (_random_checkpoint, "Invalid ckpt_path value: '{tmp}/random.ckpt' " + _NOT_A_CHECKPOINT),
        (
            _callback_setting("goal", -1),
            "Invalid goal value: -1.0 for mode 'remaining' (must be in (0, 1))",
        ),
        (
            _callback_setting("mode", "bogus"),
            "Invalid mode value: 'bogus' (must be one of remaining, reduction, absolute)",
        ),
        (
            lambda tmp: ["--trainer.strategy", "ddp_spawn", "--trainer.devices", "2"],
            "Invalid trainer.strategy value: 'ddp_spawn' (its spawned processes lose the "
            "--optimizer that LightningCLI attaches to the model; use --trainer.strategy ddp)",
        ),
    ],
    ids=[
        "adam-with-goalbrake",
        "no-logger",
        "truncated-ckpt",
        "random-ckpt",
        "goal",
        "mode",
        "ddp-spawn",
    ],
)
def test_every_error_is_one_line_and_exit_status_one(
    tmp_path: Path, extra: Callable[[Path], list[str]], message: str
) -> None:
    config = write_twin(
        tiny_twin(REPO / "configs/fashionmnist/goal.yaml", tmp_path), tmp_path / "goal.yaml"
    )
    result = run_goalbrake("fit", "--config", str(config), *extra(tmp_path), cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1] == "goalbrake: error: " + message.format(tmp=tmp_path), result.stderr[-3000:]
    # Besides it only Lightning's and the data module's info lines (seed, devices, files).
    assert len(lines) <= 6 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert not list(tmp_path.rglob("*.ckpt")) or "ckpt" in message


def test_a_diverging_fit_stops_with_one_line_and_keeps_the_best_checkpoint(
    tmp_path: Path,
) -> None:
    twin = tiny_twin(REPO / "configs/fashionmnist/phs.yaml", tmp_path, max_steps=80)
    twin["trainer"]["limit_train_batches"] = 10  # validation (and checkpoints) every 10 steps
    # lr 0.1 in epoch 0 (validated and checkpointed), then an infinite lr: the weights turn
    # NaN at step 10 (lr 50 only blows the tiny twin's loss up to 1e28, finite).
    twin["lr_scheduler"] = {
        "class_path": "torch.optim.lr_scheduler.StepLR",
        "init_args": {"step_size": 1, "gamma": float("inf")},
    }
    config = write_twin(twin, tmp_path / "phs.yaml")
    result = run_goalbrake("fit", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1] == (
        "goalbrake: error: Training diverged at step 11: train/loss is nan (lr=inf, mass=10, "
        "friction=0.1); the checkpoints keep the last finite state"
    )
    assert len(lines) <= 6
    assert "Traceback" not in result.stderr
    (checkpoints,) = (tmp_path / "runs").rglob("checkpoints")
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best-epoch00.ckpt", "last.ckpt"]
    for path in checkpoints.iterdir():
        saved = torch.load(path, weights_only=True)
        assert saved["epoch"] == 0 and saved["global_step"] == 10
        assert all(torch.isfinite(t).all() for t in saved["state_dict"].values())
