"""Test accuracy after one epoch vs learning rate: PHSFlow, PHS (conformal), SGD momentum.

The shape of Fig. 2 of "Port-Hamiltonian Gradient Flows" (Poli, Massaroli et al.): a
2-layer MLP (784 → hidden → 10) on FashionMNIST, trained for ONE epoch at each learning
rate of a log-spaced grid (for PHSFlow the lr is the integration time per batch), with the
test accuracy, the function evaluations (forward + backward passes) per step and the wall
time per step of each method. A run *diverges* when its loss turns NaN/inf, when PHSFlow's
solver gives up (more than --max-evals evaluations in one step, or a non-finite state),
or when its test accuracy stays at chance (< 15%).

Every method starts from the same initial weights and sees the same batches (one seed per
repetition). Data: the real FashionMNIST from Debian's ``dataset-fashion-mnist`` package
(``apt-get install dataset-fashion-mnist``) or --data-dir; without it the script exits.

    python benchmarks/ode_lr_sweep.py                    # reduced: 10k train samples
    python benchmarks/ode_lr_sweep.py --train-size 0     # the full 60k (slow on a CPU)
    python benchmarks/ode_lr_sweep.py --seeds 3 --json results.json

Not a test: it prints a Markdown table (mean ± std over seeds) for docs/ode.md.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import goalbrake
from goalbrake.data import read_idx
from goalbrake.optim import PHS, PHSFlow

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
METHODS = ("phsflow", "phs_conformal", "sgd_momentum")
CHANCE = 0.15  # a test accuracy below this is "at chance" (10 classes)
DIVERGED = ("nan loss", "nan output", "loss blew up", "max_evals", "solver failed")


# --------------------------------------------------------------------------------- data
def _find(directory: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def load_fashion_mnist(directory: Path) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(train_x, train_y, test_x, test_y): images as float in [0, 1], flattened to 784."""
    stems = [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ]
    paths = [_find(directory, stem) for stem in stems]
    if any(p is None for p in paths):
        missing = [s for s, p in zip(stems, paths, strict=True) if p is None]
        sys.exit(
            f"ode_lr_sweep: FashionMNIST not found in {directory} (missing {', '.join(missing)}); "
            "install Debian's package (apt-get install dataset-fashion-mnist) or pass --data-dir"
        )
    train_x, train_y, test_x, test_y = (read_idx(p) for p in paths)
    # Standardize with the training set's statistics, as in the usual FashionMNIST setup.
    mean, std = 0.2860, 0.3530

    def images(x: Tensor) -> Tensor:
        return ((x.reshape(len(x), -1).float() / 255.0) - mean) / std

    return images(train_x), train_y.long(), images(test_x), test_y.long()


# -------------------------------------------------------------------------------- model
def mlp(hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def make_optimizer(method: str, model: nn.Module, lr: float, args: argparse.Namespace):
    if method == "phsflow":
        return PHSFlow(
            model.parameters(),
            lr=lr,
            mass=args.mass,
            friction=args.friction,
            solver=args.solver,
            rtol=args.rtol,
            atol=args.atol,
            max_evals=args.max_evals,
        )
    if method == "phs_conformal":
        return PHS(
            model.parameters(), lr=lr, mass=args.mass, friction=args.friction, scheme="conformal"
        )
    if method == "sgd_momentum":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    raise ValueError(f"Invalid method value: {method!r} (must be one of {', '.join(METHODS)})")


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    correct = 0
    for i in range(0, len(x), 2000):
        logits = model(x[i : i + 2000])
        if not torch.isfinite(logits).all():
            return float("nan")
        correct += int((logits.argmax(1) == y[i : i + 2000]).sum())
    return correct / len(x)


def one_epoch(
    method: str, lr: float, seed: int, data: tuple[Tensor, ...], args: argparse.Namespace
) -> dict[str, Any]:
    train_x, train_y, test_x, test_y = data
    torch.manual_seed(seed)
    model = mlp(args.hidden)
    opt = make_optimizer(method, model, lr, args)
    order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(seed))
    steps, evaluations, status = 0, 0, "ok"
    last_loss = float("nan")
    start = time.perf_counter()
    for i in range(0, len(order), args.batch_size):
        index = order[i : i + args.batch_size]
        x, y = train_x[index], train_y[index]

        def closure(x: Tensor = x, y: Tensor = y) -> Tensor:
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            return loss

        try:
            loss = opt.step(closure)
        except RuntimeError as error:  # PHSFlow gave up: too many evaluations, or NaN
            status = "max_evals" if "more than" in str(error) else "solver failed"
            break
        steps += 1
        evaluations += opt.last_nfe if method == "phsflow" else 1
        last_loss = float(loss.detach())
        if not math.isfinite(last_loss):
            status = "nan loss"
            break
    seconds = time.perf_counter() - start
    acc = accuracy(model, test_x, test_y) if status == "ok" else float("nan")
    if status == "ok" and not math.isfinite(acc):
        status = "nan output"
    elif status == "ok" and acc < CHANCE:
        # At chance: a loss far above ln 10 (the loss of a uniform guess) blew up; one
        # near it means a uniform guess (nothing learned at a tiny lr, or a collapse).
        status = "loss blew up" if last_loss > 2.0 * math.log(10.0) else "at chance"
    return {
        "method": method,
        "lr": lr,
        "seed": seed,
        "test_acc": acc,
        "status": status,
        "steps": steps,
        "nfe_per_step": evaluations / max(steps, 1),
        "ms_per_step": 1000.0 * seconds / max(steps, 1),
        "last_train_loss": last_loss,
    }


# ------------------------------------------------------------------------------- report
def _mean_std(values: list[float], fmt: str) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "–"
    if len(finite) == 1:
        return format(finite[0], fmt)
    return f"{format(statistics.mean(finite), fmt)} ± {format(statistics.stdev(finite), fmt)}"


def table(results: list[dict[str, Any]], lrs: list[float], methods: list[str]) -> str:
    lines = [
        "| lr | "
        + " | ".join(f"{m} acc" for m in methods)
        + " | phsflow nfe/step | "
        + " | ".join(f"{m} ms/step" for m in methods)
        + " |",
        "|---" * (1 + 2 * len(methods) + 1) + "|",
    ]
    for lr in lrs:
        cells_acc, cells_ms, nfe = [], [], "–"
        for m in methods:
            runs = [r for r in results if r["method"] == m and r["lr"] == lr]
            accs = [100.0 * r["test_acc"] for r in runs]
            cell = _mean_std(accs, ".1f")
            bad = [r["status"] for r in runs if r["status"] != "ok"]
            if bad:
                counts = ", ".join(f"{bad.count(b)}/{len(runs)} {b}" for b in sorted(set(bad)))
                cell = f"{cell} ({counts})" if cell != "–" else counts
            cells_acc.append(cell)
            cells_ms.append(_mean_std([r["ms_per_step"] for r in runs], ".1f"))
            if m == "phsflow":
                nfe = _mean_std([r["nfe_per_step"] for r in runs], ".1f")
        lines.append(
            f"| {lr:.3g} | " + " | ".join(cells_acc) + f" | {nfe} | " + " | ".join(cells_ms) + " |"
        )
    return "\n".join(lines)


def divergence(results: list[dict[str, Any]], lrs: list[float], methods: list[str]) -> str:
    out = []
    for m in methods:
        parts = []
        for lr in lrs:
            runs = [r for r in results if r["method"] == m and r["lr"] == lr]
            diverged = [r["status"] for r in runs if r["status"] in DIVERGED]
            chance = [r for r in runs if r["status"] == "at chance"]
            if diverged:
                why = ", ".join(sorted(set(diverged)))
                parts.append(f"lr = {lr:.3g}: {len(diverged)}/{len(runs)} diverged ({why})")
            if chance:
                parts.append(f"lr = {lr:.3g}: {len(chance)}/{len(runs)} at chance")
        out.append(f"- {m}: " + ("; ".join(parts) if parts else "learns at every lr of the grid"))
    return "\n".join(out)


def report(results: list[dict[str, Any]], lrs: list[float], methods: list[str]) -> None:
    print()
    print("Test accuracy (%, mean ± std over the seeds with a finite result), PHSFlow's")
    print("evaluations per step, and wall time per step:")
    print()
    print(table(results, lrs, methods))
    print()
    print("Diverged (NaN/inf loss or output, solver gave up, or accuracy < 15% with the loss")
    print("above 2 ln 10) and at chance (accuracy < 15% with the loss near ln 10: the net")
    print("predicts a uniform guess, from too small an lr or from a collapse after too large")
    print("a step):")
    print(divergence(results, lrs, methods))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEBIAN_DIR)
    parser.add_argument(
        "--train-size",
        type=int,
        default=10_000,
        help="training samples used (the first N of a fixed permutation); 0: all",
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument(
        "--lrs", type=float, nargs="+", default=[float(v) for v in torch.logspace(-3, 1, 7)]
    )
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--mass", type=float, default=1.0)
    parser.add_argument("--friction", type=float, default=1.0)
    parser.add_argument("--solver", default="dopri5")
    parser.add_argument("--rtol", type=float, default=1e-3)
    parser.add_argument("--atol", type=float, default=1e-6)
    parser.add_argument("--max-evals", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="write every run here")
    parser.add_argument(
        "--report",
        type=Path,
        default=None,
        help="print the tables of an earlier --json file and exit",
    )
    args = parser.parse_args(argv)
    if args.report:
        results = json.loads(args.report.read_text())["results"]
        lrs = sorted({r["lr"] for r in results})
        methods = [m for m in METHODS if any(r["method"] == m for r in results)]
        report(results, lrs, methods)
        return

    torch.set_num_threads(args.threads)
    train_x, train_y, test_x, test_y = load_fashion_mnist(args.data_dir)
    if args.train_size:
        keep = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(1234))
        keep = keep[: args.train_size]
        train_x, train_y = train_x[keep], train_y[keep]
    data = (train_x, train_y, test_x, test_y)
    print(
        f"# FashionMNIST: {len(train_x)} train / {len(test_x)} test samples, batch "
        f"{args.batch_size}, MLP 784-{args.hidden}-10, one epoch; PHS/PHSFlow mass "
        f"{args.mass}, friction {args.friction} (velocity); PHSFlow {args.solver} "
        f"rtol={args.rtol:g} atol={args.atol:g} max_evals={args.max_evals}; seeds {args.seeds}",
        flush=True,
    )
    print(
        f"# {cpu_model()}, {args.threads} thread(s); python {platform.python_version()}, "
        f"torch {torch.__version__}, goalbrake {goalbrake.__version__}",
        flush=True,
    )
    results = []
    for lr in args.lrs:
        for method in args.methods:
            for seed in range(args.seeds):
                r = one_epoch(method, lr, seed, data, args)
                results.append(r)
                print(
                    f"lr={lr:<8.3g} {method:<14} seed={seed} acc={100 * r['test_acc']:5.1f}% "
                    f"status={r['status']:<13} nfe/step={r['nfe_per_step']:6.1f} "
                    f"ms/step={r['ms_per_step']:7.1f} loss={r['last_train_loss']:.3g}",
                    flush=True,
                )
    report(results, args.lrs, args.methods)
    if args.json:
        args.json.write_text(
            json.dumps(
                {"args": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=1
            )
        )


if __name__ == "__main__":
    main()
