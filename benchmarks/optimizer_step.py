"""Benchmark: ``PHS.step()`` against ``torch.optim.SGD(momentum)`` on real parameter shapes.

Not a test. Times one optimizer step of every PHS scheme (quadratic kinetic energy, the
default ``fused=None`` path, which is torch's fused SGD kernel there) and of the
non-quadratic kinetic energies against torch SGD with momentum, both ``fused=True`` and
``foreach=True``, on the same parameter list in one process, prints both ratios, and sets
the bytes each step moves against the memory bandwidth measured in the same process. On
the CPU it also times ``PHS(fused=True)`` for ``nesterov``, ``euler`` and every
non-quadratic energy (the compiled fused step, goalbrake/optim/compiled.py); their first
step compiles and is reported apart, never in a ratio. Run it twice on a new machine: the
first run fills inductor's disk cache, the second compiles in seconds.

Parameter sets (float32, the shapes of the models goalbrake trains):

- ``lenet``: the paper's LeNet-5-like net for 28x28 inputs: conv1 (6,1,5,5)+(6,),
  conv2 (16,6,5,5)+(16,), one 2x2 pooling (24 -> 12 before conv2, 8x8 after it), fc1
  (40, 16*8*8)+(40,), fc2 (10,40)+(10,): 8 tensors, 43,982 weights.
- ``vgg16``: CIFAR VGG-16 without batch norm, cfg [64,64,M,128,128,M,256,256,256,M,
  512,512,512,M,512,512,512,M], 3x3 convolutions with bias, classifier 512 -> 10:
  28 tensors, 14,719,818 weights.

Method: every optimizer gets a warm-up, then ``--repeats`` rounds. In each round every
PHS case runs a block of steps interleaved step by step with its two SGD baselines (fused
and foreach; which one goes first rotates from round to round), and the ratios of the
median step times are taken; the table reports the median and the interquartile range of
these ratios over the rounds, so load from other processes on a shared machine cancels as
far as it can.
Before every step the gradients are restored from a fixed copy outside the timed region
(SGD's foreach nesterov path adds into ``p.grad``). A block is calibrated to about 10 ms
of SGD steps (7 steps at least); each step is timed alone, with a device synchronize on
both ends on CUDA.

Bytes per step count the tensor passes of each path (a read or a write of one tensor the
size of the parameters), e.g. SGD's foreach momentum step is ``buf *= μ`` (R buf, W buf),
``buf += g`` (R buf, R g, W buf), ``θ -= lr buf`` (R θ, R buf, W θ): 8 passes. The
physical limit is one read of θ, g, p and one write of θ, p: 5 passes (a fused kernel,
which PHS's fused path reaches for ``conformal``, ``symplectic_euler`` and
``stormer_verlet``; ``nesterov`` takes 8 and ``euler`` 6, see docs/optimizer.md).
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
#: decay; None where the count depends on the kinetic energy's internals.
PASSES: dict[str, int | None] = {
    "SGD foreach": 8,
    "SGD foreach nesterov": 11,  # + g += μ buf (R g, R buf, W g)
    "SGD fused": 5,
    "SGD fused nesterov": 5,
    "conformal": 5,  # one fused SGD kernel call with p as its buffer
    "symplectic_euler": 5,
    "stormer_verlet": 5,
    "nesterov": 8,  # + θ −= (α/m) b g: a second kernel call (R θ, R g, W θ)
    "euler": 6,  # θ += (α/m) p (3), then p = a p − b g (3)
    "conformal, foreach": 8,
    "conformal, tensor lr/friction": None,  # 5 on CPU (fused); elsewhere the foreach path
    # fused=True: nesterov, euler, relativistic and normalized from COMPILED_MIN_NUMEL
    # weights (VGG-16, not LeNet), soft_clip, logsumexp and pnorm always, take the compiled
    # step (goalbrake/optim/compiled.py); the non-separable energies as two functions.
    "nesterov, fused=True": None,  # 5 on VGG-16 (compiled), 8 on LeNet (two kernel calls)
    "euler, fused=True": None,  # 5 on VGG-16, 6 on LeNet
    "relativistic": None,
    "normalized": None,
    "soft_clip": None,
    "logsumexp": None,
    "pnorm": None,
    "relativistic, fused=True": None,  # VGG-16: 4 + 4 + a reduction over p and one over p⁺
    "normalized, fused=True": None,
    "soft_clip, fused=True": 5,  # per coordinate: one elementwise pass, no reduction
    "logsumexp, fused=True": None,
    "pnorm, fused=True": None,
}
#: The PHS rows off the CPU, where the default path is foreach (see docs/optimizer.md);
#: ``fused=True`` is refused there (no fused step off the CPU).
FOREACH_PASSES: dict[str, int | None] = {
    "conformal": 8,
    "symplectic_euler": 8,
    "stormer_verlet": 8,
    "nesterov": 11,
    "euler": 8,
}
FUSED, FOREACH = ("SGD fused", "SGD foreach")
FUSED_NESTEROV, FOREACH_NESTEROV = ("SGD fused nesterov", "SGD foreach nesterov")


@dataclass
class Case:
    """One optimizer to time, and the baselines its ratios are taken against."""

    name: str
    make: Callable[[list[torch.Tensor]], Optimizer]
    baselines: tuple[str, ...]  # empty: it is a baseline


def cases(device: torch.device) -> list[Case]:
    def sgd(**kw: object) -> Callable[[list[torch.Tensor]], Optimizer]:
        return lambda ps: SGD(ps, lr=SGD_LR, momentum=SGD_MOMENTUM, **kw)  # type: ignore[arg-type]

    def phs(**kw: object) -> Callable[[list[torch.Tensor]], Optimizer]:
        return lambda ps: PHS(ps, **{"lr": LR, "mass": MASS, "friction": FRICTION, **kw})  # type: ignore[arg-type]

    out = [
        Case(FOREACH, sgd(foreach=True), ()),
        Case(FOREACH_NESTEROV, sgd(foreach=True, nesterov=True), ()),
        Case(FUSED, sgd(fused=True), ()),
        Case(FUSED_NESTEROV, sgd(fused=True, nesterov=True), ()),
    ]
    nesterov_bases = (FUSED_NESTEROV, FOREACH_NESTEROV)
    for scheme in ("conformal", "symplectic_euler", "stormer_verlet", "nesterov", "euler"):
        bases = nesterov_bases if scheme == "nesterov" else (FUSED, FOREACH)
        out.append(Case(scheme, phs(scheme=scheme), bases))
    out.append(Case("conformal, foreach", phs(foreach=True), (FUSED, FOREACH)))
    cpu = device.type == "cpu"  # fused=True is CPU-only (refused elsewhere)
    if cpu:
        out.append(Case("nesterov, fused=True", phs(scheme="nesterov", fused=True), nesterov_bases))
        out.append(Case("euler, fused=True", phs(scheme="euler", fused=True), (FUSED, FOREACH)))

    def tensor_hyper(ps: list[torch.Tensor]) -> Optimizer:
        lr = torch.tensor(LR, device=device)
        friction = torch.tensor(FRICTION, device=device)
        return PHS(ps, lr=lr, mass=MASS, friction=friction)

    out.append(Case("conformal, tensor lr/friction", tensor_hyper, (FUSED, FOREACH)))
    for kinetic in ("relativistic", "normalized", "soft_clip", "logsumexp", "pnorm"):
        out.append(Case(kinetic, phs(kinetic=kinetic), (FUSED, FOREACH)))
        if cpu:
            fused = phs(kinetic=kinetic, fused=True)
            out.append(Case(f"{kinetic}, fused=True", fused, (FUSED, FOREACH)))
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


@dataclass
class Measured:
    """Median step times and per-round ratios of one model on one device."""

    times: dict[str, list[float]]
    ratios: dict[tuple[str, str], list[float]]  # (case, baseline) -> ratio per round
    steps: int
    bandwidth: float  # bytes per second of the in-place add
    first: dict[str, float]  # seconds of each case's first step (compiling, for fused=True)


def measure(
    params: list[torch.Tensor], all_cases: list[Case], device: torch.device, repeats: int
) -> Measured:
    """Every case interleaved with its baselines, ``repeats`` rounds (order rotating)."""
    grads = [p.grad for p in params]
    fixed = [g.clone() for g in grads]
    opts = {c.name: c.make(params) for c in all_cases}
    stream = Stream(sum(p.numel() for p in params), device)
    # Warm-up: allocates the momenta and the caches of every path, and compiles the
    # fused=True steps (their first step, timed apart, never enters a ratio).
    first = {name: time_steps([opt], 1, device, grads, fixed)[0] for name, opt in opts.items()}
    time_steps([*opts.values(), stream], 5, device, grads, fixed)
    (per_step,) = time_steps([opts[FOREACH]], 5, device, grads, fixed)
    steps = max(7, min(200, round(0.01 / per_step)))

    times: dict[str, list[float]] = {c.name: [] for c in all_cases}
    ratios: dict[tuple[str, str], list[float]] = {
        (c.name, b): [] for c in all_cases for b in c.baselines
    }
    stream_times: list[float] = []
    for r in range(repeats):
        for c in all_cases:
            if not c.baselines:
                continue
            names = [c.name, *c.baselines]
            order = names[r % len(names) :] + names[: r % len(names)]
            medians = time_steps([opts[n] for n in order], steps, device, grads, fixed)
            t = dict(zip(order, medians, strict=True))
            for name in names:
                times[name].append(t[name])
            for base in c.baselines:
                ratios[(c.name, base)].append(t[c.name] / t[base])
        stream_times += time_steps([stream], steps, device, grads, fixed)
    bandwidth = stream.nbytes / statistics.median(stream_times)
    return Measured(times, ratios, steps, bandwidth, first)


def _ratio(values: list[float]) -> str:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return f"{statistics.median(values):.3f} ({q[0]:.3f}-{q[2]:.3f})"


def run(model: str, device: torch.device, repeats: int) -> None:
    params = make_params(MODELS[model](), device)
    numel = sum(p.numel() for p in params)
    elem = params[0].element_size()
    all_cases = cases(device)
    m = measure(params, all_cases, device, repeats)
    print(
        f"\n## {model} on {device.type}: {len(params)} tensors, {numel:,} weights "
        f"({numel * elem / 2**20:.2f} MiB per tensor pass), median of {m.steps} steps per "
        f"block, {repeats} rounds; in-place add bandwidth over the same working set "
        f"{m.bandwidth / 1e9:.1f} GB/s. Ratios: median (interquartile range) over the rounds."
    )
    print(
        f"| {'optimizer':30s} | {'µs/step':>9s} | {'vs SGD fused':>22s} "
        f"| {'vs SGD foreach':>22s} | {'passes':>6s} | {'GB/s':>5s} | {'of add':>6s} |"
    )
    print("|" + "|".join("-" * w for w in (32, 11, 24, 24, 8, 7, 8)) + "|")
    for c in all_cases:
        t = statistics.median(m.times[c.name])
        cols = [_ratio(m.ratios[(c.name, b)]) for b in c.baselines] or ["(baseline)", "-"]
        passes = PASSES[c.name] if device.type == "cpu" else {**PASSES, **FOREACH_PASSES}[c.name]
        rate = share = "-"
        if passes is not None:
            moved = passes * numel * elem
            rate, share = f"{moved / t / 1e9:.1f}", f"{moved / t / m.bandwidth:.0%}"
        print(
            f"| {c.name:30s} | {t * 1e6:9.1f} | {cols[0]:>22s} | {cols[1]:>22s} "
            f"| {passes if passes is not None else '-':>6} | {rate:>5s} | {share:>6s} |"
        )
    limit = 5 * numel * elem / m.bandwidth
    print(f"physical limit (5 passes at the add bandwidth): {limit * 1e6:.1f} µs/step")
    compiled = {name: t for name, t in m.first.items() if name.endswith("fused=True")}
    if compiled:
        print(
            "first step (torch.compile, not timed above): "
            + ", ".join(f"{name} {t:.1f} s" for name, t in compiled.items())
        )


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
