"""Benchmark: sweep throughput with 1 vs 2 CPU workers, and what the pruner saves.

Not a test. Runs the real ``goalbrake sweep`` command (workers are real processes) on
FashionMNIST (Debian's ``dataset-fashion-mnist``/``$GOALBRAKE_DATA``/``--data-dir``; tiny
fake files in the real format with ``--fake``), LeNet + PHS + GoalBrake on a training
subset, and reports:

1. **workers**: one grid of ``--grid`` short trials run with ``--workers 1`` (all cores to
   one process) and ``--workers 2`` (half the threads each): wall time of the whole command
   (process start, validation, trials) and trials per hour; the ratio is 2 workers / 1.
2. **pruner**: the same TPE study of ``--n-trials`` trials (seed 0, one worker) without a
   pruner and with the median pruner (``n_startup_trials=5, n_warmup_steps=2``): epochs
   trained in all, epochs per explored trial, wall time, the best validation accuracy, and
   the epochs each study trained until it first reached the lower of the two bests (minus
   0.002): compute to equal accuracy. Pruned trials do not count toward ``n_trials``, so the
   pruned study explores more settings for its epochs.

Numbers depend on the machine and on what else runs on it; the table names the hardware.

Usage::

    python benchmarks/sweep_throughput.py                     # about 15 minutes on 2 cores
    python benchmarks/sweep_throughput.py --quick --fake      # a 1-minute smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
import torch
import yaml
from optuna.storages.journal import JournalFileBackend, JournalStorage

from goalbrake.data.fake import write_fashion_mnist

REPO = Path(__file__).resolve().parents[1]


def base_config(data_dir: str | None, subset: int, epochs: int) -> dict[str, Any]:
    data: dict[str, Any] = {
        "batch_size": 64,
        "val_size": 1000,
        "eval_batch_size": 1000,
        "train_subset": subset,
    }
    if data_dir:
        data["data_dir"] = data_dir
    return {
        "seed_everything": 0,
        "trainer": {
            "max_epochs": epochs,
            "accelerator": "cpu",
            "log_every_n_steps": 10,
            "num_sanity_val_steps": 0,
            "callbacks": [
                {
                    "class_path": "goalbrake.GoalBrake",
                    "init_args": {"goal": 0.5, "factor": 10.0, "mode": "remaining"},
                }
            ],
        },
        "model": {
            "backbone": {
                "class_path": "goalbrake.models.LeNet",
                "init_args": {"in_channels": 1, "image_size": 28},
            }
        },
        "data": {"class_path": "goalbrake.data.FashionMNISTDataModule", "init_args": data},
        "optimizer": {
            "class_path": "goalbrake.PHS",
            "init_args": {"lr": 0.1, "mass": 1.0, "friction": 1.0},
        },
    }


def run(root: Path, name: str, spec: dict[str, Any], workers: int) -> dict[str, Any]:
    """One ``goalbrake sweep`` to the end; wall time and what the study holds."""

    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"base": "base.yaml", **spec}, sort_keys=False))
    env = dict(os.environ, PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="")
    start = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "goalbrake.cli",
            "sweep",
            "--config",
            str(path),
            "--workers",
            str(workers),
            "--runs-dir",
            "runs",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(
            f"{name}: goalbrake sweep failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
        )

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name=name,
        storage=JournalStorage(JournalFileBackend(str(root / "runs" / name / "study.journal"))),
    )
    trials = study.trials
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    return {
        "name": name,
        "workers": workers,
        "wall_s": wall,
        "complete": len(complete),
        "pruned": sum(t.state.name == "PRUNED" for t in trials),
        "trials": len(trials),
        "epochs": sum(len((t.user_attrs.get("curve") or {}).get("epoch", [])) for t in trials),
        "trial_s": sum(t.user_attrs.get("duration_s") or 0.0 for t in trials),
        "best": max((t.value for t in complete), default=float("nan")),
        # (number, epochs, value or None) in trial order, for "epochs to reach an accuracy".
        "history": [
            (
                t.number,
                len((t.user_attrs.get("curve") or {}).get("epoch", [])),
                t.value if t.state.name == "COMPLETE" else None,
            )
            for t in sorted(trials, key=lambda t: t.number)
        ],
    }


def epochs_to_reach(result: dict[str, Any], target: float) -> int | None:
    """Epochs trained, in trial order, until a complete trial reached ``target``."""
    spent = 0
    for _, epochs, value in result["history"]:
        spent += epochs
        if value is not None and value >= target:
            return spent
    return None


def print_workers(args: argparse.Namespace, results: dict[str, Any]) -> None:

    print(
        f"# sweep throughput: {platform.processor() or platform.machine()}, "
        f"{len(os.sched_getaffinity(0))} cores, torch {torch.__version__}, "
        f"optuna {optuna.__version__}, Python {platform.python_version()}"
    )
    print(
        f"data: {'fake' if args.fake else 'FashionMNIST'}, train_subset {args.subset}, "
        "batch 64, LeNet + PHS + GoalBrake, CPU\n"
    )
    print("| workers | trials | wall (s) | trials/hour | vs 1 worker |")
    print("|---|---|---|---|---|")
    one = results["workers"][0]
    for r in results["workers"]:
        rate = r["complete"] / r["wall_s"] * 3600
        base = one["complete"] / one["wall_s"] * 3600
        print(
            f"| {r['workers']} | {r['complete']} | {r['wall_s']:.1f} | {rate:.0f} "
            f"| {rate / base:.2f}× |"
        )
    print()
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", help="directory with the FashionMNIST IDX files")
    p.add_argument("--fake", action="store_true", help="tiny fake FashionMNIST")
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    p.add_argument("--grid", type=int, default=8, help="trials of the workers comparison")
    p.add_argument("--n-trials", type=int, default=12, help="trials of the pruner comparison")
    p.add_argument("--subset", type=int, default=2000, help="training images per trial")
    p.add_argument("--epochs", type=int, default=5, help="epochs per trial (pruner study)")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    if args.quick:
        args.grid, args.n_trials, args.subset, args.epochs = 4, 6, 600, 3
    with tempfile.TemporaryDirectory(prefix="goalbrake-sweepbench-") as tmp:
        root = Path(tmp)
        data_dir = args.data_dir
        if args.fake:
            data_dir = str(
                write_fashion_mnist(root / "fm", n_train=max(args.subset + 1200, 2000), n_test=100)
            )
        results: dict[str, Any] = {}

        # 1. workers: the same short grid with 1 and 2 worker processes.
        (root / "base.yaml").write_text(yaml.safe_dump(base_config(data_dir, args.subset, 2)))
        lrs = [0.05, 0.1, 0.2, 0.3][: max(1, args.grid // 2)]
        grid = {
            "sampler": "grid",
            "seeds": max(1, args.grid // len(lrs)),
            "space": {"optimizer.lr": lrs},
        }
        results["workers"] = [run(root, f"w{k}", grid, k) for k in (1, 2)]
        print_workers(args, results)

        # 2. pruner: one TPE study without and with the median pruner.
        (root / "base.yaml").write_text(
            yaml.safe_dump(base_config(data_dir, args.subset, args.epochs))
        )
        space = {
            "optimizer.lr": {"low": 0.01, "high": 0.5, "log": True},
            "optimizer.mass": {"low": 0.3, "high": 30.0, "log": True},
            "optimizer.friction": {"low": 0.1, "high": 3.0, "log": True},
            "brake.goal": {"low": 0.1, "high": 0.7},
        }
        tpe = {
            "sampler": {"name": "tpe", "n_startup_trials": 5},
            "seed": 0,
            "n_trials": args.n_trials,
            "space": space,
        }
        results["pruner"] = [
            run(root, "nopruner", {**tpe, "pruner": "none"}, 1),
            run(
                root,
                "median",
                {**tpe, "pruner": {"name": "median", "n_startup_trials": 5, "n_warmup_steps": 2}},
                1,
            ),
        ]

    off, on = results["pruner"]
    target = min(off["best"], on["best"]) - 0.002
    print(
        "| pruner | trials (complete/pruned) | epochs | epochs/trial | wall (s) | best val/acc "
        f"| epochs to val/acc ≥ {target:.4f} |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in results["pruner"]:
        reach = epochs_to_reach(r, target)
        r["epochs_to_target"] = reach
        print(
            f"| {r['name']} | {r['trials']} ({r['complete']}/{r['pruned']}) | {r['epochs']} | "
            f"{r['epochs'] / r['trials']:.2f} | {r['wall_s']:.1f} | {r['best']:.4f} | {reach} |"
        )
    print(
        f"\nmedian pruner: {on['epochs'] / on['trials']:.2f} vs "
        f"{off['epochs'] / off['trials']:.2f} epochs per trial explored; to val/acc "
        f"≥ {target:.4f}: {on['epochs_to_target']} vs {off['epochs_to_target']} epochs"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
