"""``goalbrake sweep``: run an Optuna study from a sweep YAML with local worker processes.

::

    goalbrake sweep --config sweeps/fashionmnist_goal.yaml
    goalbrake sweep --config sweeps/fashionmnist_goal.yaml --workers auto          # 1 per GPU
    goalbrake sweep --config sweeps/fashionmnist_goal.yaml --workers 2 --n-trials 6
    goalbrake sweep --config sweeps/cifar10_goal.yaml \\
        --storage postgresql://goalbrake@db-host:5432/sweeps                      # any node

The process validates the whole sweep (YAML, addresses, every trial config) before any
trial starts, creates or loads the study, recovers trials lost by an earlier run, starts
the workers (:mod:`goalbrake.sweep.worker`) and supervises them: a worker that dies has its
trial failed and re-queued and is replaced. Ctrl-C (SIGINT or SIGTERM) stops the workers;
their running trials end as FAIL (``interrupted``) and are re-queued, so the same command
resumes the study. A second Ctrl-C kills the workers at once (their trials are recovered
the same way).

Exit status: 0 when the study is done (or ``--timeout`` passed), 1 on a configuration or
storage error or when trials keep failing, 2 on bad arguments, 130 when stopped.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ["Supervisor", "WorkerSlot", "main", "plan_workers"]

PROG = "goalbrake sweep"
#: Replacement workers a sweep starts at most (per initial worker) before it gives up.
MAX_RESTARTS_PER_WORKER = 5


def _say(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- workers
@dataclass
class WorkerSlot:
    """One worker's place: its GPU (if any) and thread count."""

    index: int
    threads: int
    cuda_visible_devices: str | None

    def describe(self) -> str:
        device = f"GPU {self.cuda_visible_devices}" if self.cuda_visible_devices else "CPU"
        return f"worker {self.index}: {device}, {self.threads} threads"


def visible_gpus() -> list[str]:
    """The GPUs this process may use: CUDA_VISIBLE_DEVICES if set, else all CUDA devices."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # pragma: no cover - a broken CUDA install means no GPU
        return []


def plan_workers(
    workers: str, cores: int | None = None, gpus: list[str] | None = None
) -> list[WorkerSlot]:
    """Worker slots for ``--workers``: ``auto`` (one per GPU, else 1) or a count K.

    With GPUs, worker i gets GPU i mod #GPUs; every worker gets ``cores // K`` threads.

    Raises:
        ValueError: not ``auto`` and not an integer >= 0.
    """
    gpus = visible_gpus() if gpus is None else gpus
    cores = cores or len(os.sched_getaffinity(0))
    if workers == "auto":
        count = max(1, len(gpus))
    else:
        try:
            count = int(workers)
        except ValueError:
            count = -1
        if count < 0:
            raise ValueError(f"invalid --workers value: {workers!r} (auto, or an integer >= 0)")
    threads = max(1, cores // max(count, 1))
    return [WorkerSlot(i, threads, gpus[i % len(gpus)] if gpus else None) for i in range(count)]


@dataclass
class _Running:
    slot: WorkerSlot
    generation: int
    process: subprocess.Popen[bytes]


@dataclass
class Supervisor:
    """Start, watch, replace and stop the worker processes of one sweep."""

    config: Path
    study: Any  # optuna.Study
    spec: Any  # SweepSpec
    storage: Any  # StorageURL
    lock: Any  # AskLock
    runs_dir: Path
    slots: list[WorkerSlot]
    target: int
    deadline: float | None
    poll_s: float = 0.2
    running: list[_Running] = field(default_factory=list)
    stopping: bool = False
    killing: bool = False
    failing: bool = False
    restarts: int = 0
    salt: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    dead_pids: set[int] = field(default_factory=set)
    started_pids: set[int] = field(default_factory=set)

    def _start(self, slot: WorkerSlot, generation: int) -> None:
        cmd = [
            sys.executable,
            "-m",
            "goalbrake.sweep.worker",
            "--config",
            str(self.config),
            "--study",
            self.spec.study,
            "--storage",
            self.storage.url,
            "--runs-dir",
            str(self.runs_dir),
            "--n-trials",
            str(self.target),
            "--index",
            str(slot.index),
            "--generation",
            str(generation),
            "--salt",
            self.salt,
            "--threads",
            str(slot.threads),
        ]
        if self.deadline is not None:
            cmd += ["--deadline", repr(self.deadline)]
        env = dict(os.environ)
        if slot.cuda_visible_devices is not None:
            env["CUDA_VISIBLE_DEVICES"] = slot.cuda_visible_devices
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(slot.threads)
        # Own session: the terminal's Ctrl-C reaches the supervisor only, which stops the
        # workers in order.
        process = subprocess.Popen(cmd, env=env, start_new_session=True)
        self.started_pids.add(process.pid)
        self.running.append(_Running(slot, generation, process))

    def _signal_all(self, sig: int) -> None:
        for r in self.running:
            if r.process.poll() is None:
                try:
                    os.kill(r.process.pid, sig)
                except ProcessLookupError:
                    pass

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self.stopping:
            self.stopping = True
            _say(
                f"stopping: {len(self.running)} worker(s) end their trials as interrupted "
                "(Ctrl-C again kills them); rerun the same command to resume"
            )
            self._signal_all(signal.SIGINT)
        elif not self.killing:
            self.killing = True
            _say("killing the workers")
            self._signal_all(signal.SIGKILL)

    def _recover(self, pids: set[int]) -> None:
        from goalbrake.sweep.recovery import fail_lost, lost_on_this_host

        with self.lock:
            lost = fail_lost(self.study, lost_on_this_host(dead_pids=pids), self.spec.retries)
        for number, retried in lost:
            _say(
                f"trial {number} failed with its worker"
                + ("; re-queued with the same parameters" if retried else "; out of retries")
            )

    def _handle_exit(self, r: _Running, code: int) -> None:
        from goalbrake.sweep.study import progress
        from goalbrake.sweep.worker import EXIT_FAILING, EXIT_STOPPED

        pid = r.process.pid
        if code == 0 or (self.stopping and code == EXIT_STOPPED):
            return
        if code == EXIT_FAILING:
            self.failing = True
            if not self.stopping:
                self.stopping = True
                self._signal_all(signal.SIGINT)
            return
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        _say(f"worker {r.slot.index} (pid {pid}) died ({how})")
        self.dead_pids.add(pid)
        self._recover({pid})
        if self.stopping:
            return
        if progress(self.study, self.spec, self.target).done:
            return
        if self.restarts >= MAX_RESTARTS_PER_WORKER * len(self.slots):
            _say("too many workers died; not starting another")
            return
        self.restarts += 1
        _say(f"starting a replacement for worker {r.slot.index}")
        self._start(r.slot, r.generation + 1)

    def run(self) -> int:
        """Run the workers to the end; returns the exit status of ``goalbrake sweep``."""
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            for slot in self.slots:
                _say(slot.describe())
                self._start(slot, 0)
            while self.running:
                for r in list(self.running):
                    code = r.process.poll()
                    if code is None:
                        continue
                    self.running.remove(r)
                    self._handle_exit(r, code)
                time.sleep(self.poll_s)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 130 if self.stopping and not self.failing else (1 if self.failing else 0)


# ----------------------------------------------------------------------------- command
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Run an Optuna study of goalbrake fits from a sweep YAML (see docs/sweeps.md).",
    )
    p.add_argument("--config", required=True, help="the sweep YAML (sweeps/<name>.yaml)")
    p.add_argument(
        "--storage",
        help="journal:PATH, PATH.journal or an Optuna RDB URL such as "
        "postgresql://user@host:5432/db (default: journal:<runs-dir>/<study>/study.journal)",
    )
    p.add_argument("--study", help="study name (default: the YAML's study:, else its file name)")
    p.add_argument(
        "--n-trials", type=int, help="trials that must complete (default: the YAML's n_trials)"
    )
    p.add_argument(
        "--workers",
        default="auto",
        type=_workers_arg,
        help="auto: one worker process per visible GPU (1 without GPUs); K: K workers "
        "(GPUs shared round-robin, CPU threads split); 0: trials in this process",
    )
    p.add_argument("--timeout", type=float, help="seconds after which no new trial starts")
    p.add_argument("--runs-dir", default="runs", help="TensorBoard runs go to <runs-dir>/<study>/")
    p.add_argument(
        "--check", action="store_true", help="validate the sweep and its configs, run nothing"
    )
    return p


def _workers_arg(value: str) -> str:
    if value != "auto" and not (value.isdigit() and int(value) >= 0):
        raise argparse.ArgumentTypeError(f"invalid value {value!r} (auto, or an integer >= 0)")
    return value


def _check_distributed(spec: Any, storage: Any) -> None:
    from goalbrake.sweep.spec import SweepSpecError

    for name, config in spec.bases.items():
        trainer = {
            **(config.get("trainer") or {}),
            **{k.split(".", 1)[1]: v for k, v in spec.fixed.items() if k.startswith("trainer.")},
        }
        strategy = str(trainer.get("strategy", "auto"))
        devices = trainer.get("devices", "auto")
        many = (
            (isinstance(devices, int) and (devices > 1 or devices == -1))
            or (isinstance(devices, (list, tuple)) and len(devices) > 1)
            or str(devices) == "-1"
        )
        if not many and "ddp" not in strategy:
            continue
        if "spawn" not in strategy:
            raise SweepSpecError(
                f"{spec.path}: base {name} trains on several devices with strategy {strategy!r}; "
                "inside a sweep trial use strategy: ddp_spawn (the ddp launcher re-runs the "
                "worker's command in every rank)"
            )
        if storage.kind != "rdb":
            raise SweepSpecError(
                f"{spec.path}: DDP inside a trial needs an RDB storage (optuna-integration's "
                "pruning callback supports only RDBStorage under DDP); pass --storage "
                "postgresql://... or sqlite:///..."
            )


def main(argv: Sequence[str] | None = None) -> int:
    """``goalbrake sweep``; returns the exit status."""
    try:
        args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exit_:
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 2
    if args.n_trials is not None and args.n_trials < 1:
        _say(f"error: invalid --n-trials value: {args.n_trials} (must be >= 1)")
        return 2
    if args.timeout is not None and args.timeout <= 0:
        _say(f"error: invalid --timeout value: {args.timeout} (seconds, > 0)")
        return 2
    try:
        return _run(args)
    except KeyboardInterrupt:  # before the workers started (checking configs, opening storage)
        _say("stopped")
        return 130
    except ValueError as err:  # SweepSpecError, StorageError, plan errors
        if os.environ.get("GOALBRAKE_DEBUG"):
            raise
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        _say(f"error: {text}")
        return 1


def _run(args: argparse.Namespace) -> int:
    from goalbrake.sweep.recovery import fail_lost, lost_on_this_host, retry_interrupted
    from goalbrake.sweep.spec import SweepSpecError, load_spec
    from goalbrake.sweep.storage import (
        ask_lock,
        default_storage,
        open_storage,
        parse_storage,
        supervisor_lock,
    )
    from goalbrake.sweep.study import load_study, progress
    from goalbrake.sweep.validate import check_configs

    spec = load_spec(args.config, study=args.study)
    target = args.n_trials or spec.target_trials()
    if spec.is_grid and target > spec.grid_size():
        raise SweepSpecError(
            f"--n-trials {target} exceeds the grid's {spec.grid_size()} points of {spec.path}"
        )
    slots = plan_workers(args.workers)
    runs_dir = Path(args.runs_dir)
    storage = parse_storage(args.storage or default_storage(runs_dir, spec.study))
    _check_distributed(spec, storage)
    checked = check_configs(spec, str(runs_dir))
    _say(
        f"{spec.path}: {spec.sampler} sampler, {spec.pruner} pruner, "
        f"{'grid of ' + str(spec.grid_size()) + ' points, ' if spec.is_grid else ''}"
        f"{target} trials to complete; {checked} trial configs check"
    )
    if args.check:
        return 0
    deadline = None
    timeout = args.timeout or spec.timeout
    if timeout:
        deadline = time.time() + timeout

    with supervisor_lock(storage, spec.study):
        backend = open_storage(
            storage,
            heartbeat_interval=spec.heartbeat_interval,
            grace_period=spec.grace_period,
            max_retry=spec.retries,
        )
        study = load_study(spec, backend, create=True)
        lock = ask_lock(storage, backend, spec.study)
        # Resume: trials an earlier run lost (killed supervisor, Ctrl-C) go back in the queue.
        with lock:
            journal = storage.kind == "journal"
            lost = fail_lost(study, lost_on_this_host(everything_running=journal), spec.retries)
        requeued = [n for n, retried in lost if retried] + retry_interrupted(study, spec.retries)
        if requeued:
            _say(
                f"re-queued trial(s) {', '.join(map(str, sorted(requeued)))} lost by an earlier run"
            )
        _say(f"study {spec.study!r} on {storage.shown}: {progress(study, spec, target).summary()}")
        if progress(study, spec, target).done:
            _say(_best_line(study, spec))
            return 0

        if not slots:
            code = _run_inline(study, spec, lock, runs_dir, target, deadline)
        else:
            supervisor = Supervisor(
                config=Path(args.config),
                study=study,
                spec=spec,
                storage=storage,
                lock=lock,
                runs_dir=runs_dir,
                slots=slots,
                target=target,
                deadline=deadline,
            )
            code = supervisor.run()
            # Every worker has exited: whatever they left RUNNING is lost.
            with lock:
                if storage.kind == "journal":
                    lost_now = lost_on_this_host(everything_running=True)
                else:
                    lost_now = lost_on_this_host(dead_pids=supervisor.started_pids)
                fail_lost(study, lost_now, spec.retries)
        if code == 130:
            retry_interrupted(study, spec.retries)
        final = progress(study, spec, target)
        if final.done and code == 130:
            code = 0
        _say(f"study {spec.study!r}: {final.summary()}")
        if code == 0:
            _say(_best_line(study, spec))
        return code


def _run_inline(
    study: Any, spec: Any, lock: Any, runs_dir: Path, target: int, deadline: float | None
) -> int:
    import threading

    from goalbrake.sweep.worker import EXIT_STOPPED, quiet_lightning, run_worker, stop_on_signals

    quiet_lightning()
    worker = {"host": socket.gethostname(), "pid": os.getpid(), "index": 0}
    stop = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    stop_on_signals(stop)
    try:
        code = run_worker(
            study,
            spec,
            lock,
            runs_dir=runs_dir,
            target=target,
            deadline=deadline,
            worker=worker,
            stop=stop,
        )
    except KeyboardInterrupt:
        return EXIT_STOPPED
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code if code in (0, EXIT_STOPPED) else 1


def _best_line(study: Any, spec: Any) -> str:
    try:
        best = study.best_trial
    except ValueError:
        return "no complete trial yet"
    return f"best {spec.metric} {best.value:.4f} (trial {best.number}): " + ", ".join(
        f"{k}={v}" for k, v in best.params.items()
    )
