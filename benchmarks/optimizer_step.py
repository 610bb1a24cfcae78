"""Benchmark: ``PHS.step()`` against ``torch.optim.SGD(momentum)`` on real parameter shapes.

Not a test. Times one optimizer step of every PHS scheme (quadratic kinetic energy) and
of the non-quadratic kinetic energies against torch SGD with momentum (``foreach=True``;
also ``fused=True``, informative) on the same parameter list in one process, and sets the
bytes each step moves against the memory bandwidth measured in the same process.

Parameter sets (float32, the shapes of the models goalbrake trains):

- ``lenet``: the paper's LeNet-5-like net for 28x28 inputs: conv1 (6,1,5,5)+(6,),
  conv2 (16,6,5,5)+(16,), one 2x2 pooling (24 -> 12 before conv2, 8x8 after it), fc1
  (40, 16*8*8)+(40,), fc2 (10,40)+(10,): 8 tensors, 43,982 weights.
- ``vgg16``: CIFAR VGG-16 without batch norm, cfg [64,64,M,128,128,M,256,256,256,M,
  512,512,512,M,512,512,512,M], 3x3 convolutions with bias, classifier 512 -> 10:
  28 tensors, 14,719,818 weights.

Method: every optimizer gets a warm-up, then ``--repeats`` rounds. In each round every
PHS case runs a block of steps interleaved step by step with its SGD baseline (which one
goes first alternates from round to round), and the ratio of the two median step times
is taken; the table reports the median and the interquartile range of these ratios over
the rounds, so load from other processes on a shared machine cancels as far as it can.
Before every step the gradients are restored from a fixed copy outside the timed region
(SGD's foreach nesterov path adds into ``p.grad``). A block is calibrated to about 10 ms
of SGD steps (7 steps at least); each step is timed alone, with a device synchronize on
both ends on CUDA.

Bytes per step count the tensor passes of each path (a read or a write of one tensor the
size of the parameters), e.g. SGD's foreach momentum step is ``buf *= μ`` (R buf, W buf),
``buf += g`` (R buf, R g, W buf), ``θ -= lr buf`` (R θ, R buf, W θ): 8 passes. The
physical limit is one read of θ, g, p and one write of θ, p: 5 passes (a fused kernel).
The bandwidth is that of an in-place ``a.add_(b)`` (the foreach ops' access pattern) over
a working set of the size of the step's (θ, g, p), timed in every round next to the
optimizers (``Stream``).

Usage::

    python benchmarks/optimizer_step.py                    # CPU, and CUDA when available
    python benchmarks/optimizer_step.py --device cpu --repeats 31 --threads 1
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.optim import SGD, Optimizer

import goalbrake
from goalbrake.optim import PHS

VGG16_CFG: list[int | str] = [
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
]  # fmt: skip


def lenet_shapes() -> list[tuple[int, ...]]:
    """The ≈44k-weight LeNet-5-like net: two 5x5 convolutions, one pooling, two linear."""
    return [(6, 1, 5, 5), (6,), (16, 6, 5, 5), (16,), (40, 16 * 8 * 8), (40,), (10, 40), (10,)]


def vgg16_shapes() -> list[tuple[int, ...]]:
    """CIFAR VGG-16 (no batch norm): 13 3x3 convolutions with bias and a 512 -> 10 head."""
    shapes: list[tuple[int, ...]] = []
    channels = 3
    for v in VGG16_CFG:
        if v == "M":
            continue
        shapes += [(int(v), channels, 3, 3), (int(v),)]
        channels = int(v)
    return [*shapes, (10, 512), (10,)]


MODELS: dict[str, Callable[[], list[tuple[int, ...]]]] = {
    "lenet": lenet_shapes,
    "vgg16": vgg16_shapes,
}

#: PHS settings: α = 0.1, m = 1, γ = 1, so x = αγ/m = 0.1 (stable for every scheme).
LR, MASS, FRICTION = 0.1, 1.0, 1.0
#: The torch SGD of the same dynamics (conformal): lr = α²/m, momentum = e^(−αγ/m).
SGD_LR, SGD_MOMENTUM = LR**2 / MASS, math.exp(-LR * FRICTION / MASS)

#: Tensor passes per step (see the module docstring), float hyperparameters, no weight
#: decay; None where the count depends on the kinetic energy's internals or the device
#: (tensor lr/friction: 8 on CPU, where they are read as numbers; 12 on CUDA).
PASSES: dict[str, int | None] = {
    "SGD foreach": 8,
    "SGD foreach nesterov": 11,  # + g += μ buf (R g, R buf, W g)
    "SGD fused": 5,
    "SGD fused nesterov": 5,
    "conformal": 8,
    "symplectic_euler": 8,
    "stormer_verlet": 8,
    "euler": 8,  # θ += (α/m) p first (3), then p = a p − b g (5)
    "nesterov": 11,  # + θ += (α/m) a p⁺ (3), θ −= (α/m) b g (3)
    "conformal, tensor lr/friction": None,
    "relativistic": None,
    "normalized": None,
    "soft_clip": None,
    "logsumexp": None,
    "pnorm": None,
}


@dataclass
class Case:
    """One optimizer to time, and the baseline its ratio is taken against."""

    name: str
    make: Callable[[list[torch.Tensor]], Optimizer]
    baseline: str | None  # None: it is a baseline


def cases(device: torch.device) -> list[Case]:
    def sgd(**kw: object) -> Callable[[list[torch.Tensor]], Optimizer]:
        return lambda ps: SGD(ps, lr=SGD_LR, momentum=SGD_MOMENTUM, **kw)  # type: ignore[arg-type]

    def phs(**kw: object) -> Callable[[list[torch.Tensor]], Optimizer]:
        return lambda ps: PHS(ps, **{"lr": LR, "mass": MASS, "friction": FRICTION, **kw})  # type: ignore[arg-type]

    out = [
        Case("SGD foreach", sgd(foreach=True), None),
        Case("SGD foreach nesterov", sgd(foreach=True, nesterov=True), None),
        Case("SGD fused", sgd(fused=True), None),
        Case("SGD fused nesterov", sgd(fused=True, nesterov=True), None),
    ]
    for scheme in ("conformal", "symplectic_euler", "stormer_verlet", "nesterov", "euler"):
        base = "SGD foreach nesterov" if scheme == "nesterov" else "SGD foreach"
        out.append(Case(scheme, phs(scheme=scheme), base))

    def tensor_hyper(ps: list[torch.Tensor]) -> Optimizer:
        lr = torch.tensor(LR, device=device)
        friction = torch.tensor(FRICTION, device=device)
        return PHS(ps, lr=lr, mass=MASS, friction=friction)

    out.append(Case("conformal, tensor lr/friction", tensor_hyper, "SGD foreach"))
    for kinetic in ("relativistic", "normalized", "soft_clip", "logsumexp", "pnorm"):
        out.append(Case(kinetic, phs(kinetic=kinetic), "SGD foreach"))
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_params(shapes: list[tuple[int, ...]], device: torch.device) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    params = []
    for shape in shapes:
        p = torch.nn.Parameter((0.05 * torch.randn(shape, generator=gen)).to(device))
        p.grad = (1e-3 * torch.randn(shape, generator=gen)).to(device)
        params.append(p)
    return params


class Stream:
    """Not an optimizer: ``a.add_(b)`` over the step's working set, for the bandwidth.

    The access pattern of the optimizers' in-place foreach ops (2 reads, 1 write, no
    write-allocate read as a copy into a fresh buffer has). ``a`` and ``b`` hold 1.5
    parameter-sizes each, so one add moves 4.5 tensor passes over a footprint of three,
    that of θ, g and p: in cache for LeNet, DRAM for VGG-16.
    """

    def __init__(self, numel: int, device: torch.device) -> None:
        self.a = torch.zeros(numel * 3 // 2, device=device)
        self.b = torch.zeros_like(self.a)
        self.nbytes = 3 * self.a.numel() * self.a.element_size()

    def step(self) -> None:
        self.a.add_(self.b)


def time_steps(
    opts: list[Optimizer | Stream],
    steps: int,
    device: torch.device,
    grads: list[torch.Tensor],
    fixed: list[torch.Tensor],
) -> list[float]:
    """Median seconds per step of each of ``opts``, their steps interleaved one by one.

    Interleaving puts the steps of a PHS case and of its baseline milliseconds apart, so
    load from other processes hits both alike. The gradients are restored before every
    step: SGD's foreach nesterov path adds the momentum into ``p.grad`` in place, so
    without the restore its gradients (and every optimizer sharing them) would grow to inf.
    """
    times: list[list[float]] = [[] for _ in opts]
    for _ in range(steps):
        for opt, out in zip(opts, times, strict=True):
            torch._foreach_copy_(grads, fixed)
            sync(device)
            start = time.perf_counter()
            opt.step()
            sync(device)
            out.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def run(model: str, device: torch.device, repeats: int) -> None:
    params = make_params(MODELS[model](), device)
    grads = [p.grad for p in params]
    fixed = [g.clone() for g in grads]
    numel = sum(p.numel() for p in params)
    elem = params[0].element_size()
    all_cases = cases(device)
    opts = {c.name: c.make(params) for c in all_cases}
    stream = Stream(numel, device)
    # Warm-up: allocates the momenta and the caches of every path.
    time_steps([*opts.values(), stream], 5, device, grads, fixed)
    (per_step,) = time_steps([opts["SGD foreach"]], 5, device, grads, fixed)
    steps = max(7, min(200, round(0.01 / per_step)))

    # Each round times every case right next to its baseline (order alternating), so a
    # ratio compares two measurements a few milliseconds apart on a shared machine.
    times: dict[str, list[float]] = {c.name: [] for c in all_cases}
    ratios: dict[str, list[float]] = {c.name: [] for c in all_cases if c.baseline}
    for r in range(repeats):
        for c in all_cases:
            if c.baseline is None:
                if not c.name.startswith("SGD foreach"):  # fused: timed alone
                    times[c.name] += time_steps([opts[c.name]], steps, device, grads, fixed)
                continue
            pair = (c.baseline, c.name) if r % 2 == 0 else (c.name, c.baseline)
            medians = time_steps([opts[name] for name in pair], steps, device, grads, fixed)
            t = dict(zip(pair, medians, strict=True))
            times[c.name].append(t[c.name])
            times[c.baseline].append(t[c.baseline])
            ratios[c.name].append(t[c.name] / t[c.baseline])
        times.setdefault("stream", []).extend(time_steps([stream], steps, device, grads, fixed))
    bw = stream.nbytes / statistics.median(times["stream"])

    print(
        f"\n## {model} on {device.type}: {len(params)} tensors, {numel:,} weights "
        f"({numel * elem / 2**20:.2f} MiB per tensor pass), median of {steps} steps per "
        f"block, {repeats} rounds; in-place add bandwidth over the same working set "
        f"{bw / 1e9:.1f} GB/s"
    )
    print(
        f"| {'optimizer':30s} | {'µs/step':>9s} | {'ratio':>6s} | {'IQR of ratio':>13s} "
        f"| {'vs':>20s} | {'passes':>6s} | {'MiB/step':>8s} | {'GB/s':>5s} | {'of add':>7s} |"
    )
    print("|" + "|".join("-" * w for w in (32, 11, 8, 15, 22, 8, 10, 7, 9)) + "|")
    for c in all_cases:
        t = statistics.median(times[c.name])
        if c.baseline:
            q = statistics.quantiles(ratios[c.name], n=4)
            ratio, spread = f"{statistics.median(ratios[c.name]):.3f}", f"{q[0]:.3f}-{q[2]:.3f}"
        else:
            ratio, spread = "-", "-"
        passes = PASSES[c.name]
        if passes is None:
            traffic = rate = share = "-"
        else:
            moved = passes * numel * elem
            traffic = f"{moved / 2**20:.1f}"
            rate = f"{moved / t / 1e9:.1f}"
            share = f"{moved / t / bw:.0%}"
        print(
            f"| {c.name:30s} | {t * 1e6:9.1f} | {ratio:>6s} | {spread:>13s} "
            f"| {c.baseline or '(baseline)':>20s} | {passes if passes is not None else '-':>6} "
            f"| {traffic:>8s} | {rate:>5s} | {share:>7s} |"
        )
    limit = 5 * numel * elem / bw
    print(f"physical limit (5 passes at the add bandwidth): {limit * 1e6:.1f} µs/step")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--repeats", type=int, default=21, help="timed rounds (default 21)")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for torch (default: torch's choice); 1 on a machine shared with "
        "other jobs, where a second thread waits on a busy core",
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    devices = []
    if args.device in ("cpu", "all"):
        devices.append(torch.device("cpu"))
    if args.device in ("cuda", "all"):
        if torch.cuda.is_available():
            devices.append(torch.device("cuda"))
        elif args.device == "cuda":
            parser.error("--device cuda: no CUDA device available")

    print(
        f"goalbrake {goalbrake.__version__}, torch {torch.__version__}, "
        f"Python {platform.python_version()}, {torch.get_num_threads()} CPU threads, "
        f"CPU: {cpu_model()}"
    )
    for device in devices:
        if device.type == "cuda":
            print(f"CUDA: {torch.cuda.get_device_name(device)}")
        for model in args.models:
            run(model, device, args.repeats)


if __name__ == "__main__":
    main()
