"""The supervisor of ``goalbrake sweep``: worker slots, and the worker processes' lives.

:func:`plan_workers` turns ``--workers`` into slots (one per GPU, or K sharing the CPU
threads); :class:`Supervisor` starts one ``python -m goalbrake.sweep.run.worker`` per
slot, replaces a worker that dies (its trial failed and re-queued by
:mod:`goalbrake.sweep.run.recovery`), and stops them all on SIGINT/SIGTERM (a second
signal kills them).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import optuna
import torch

from goalbrake.sweep.define import SweepSpec
from goalbrake.sweep.run.recovery import fail_lost, lost_on_this_host
from goalbrake.sweep.run.storage import AskLock, StorageURL
from goalbrake.sweep.run.study import progress
from goalbrake.sweep.run.worker import EXIT_FAILING, EXIT_STOPPED, stop_signals_held

__all__ = ["Supervisor", "WorkerSlot", "plan_workers", "say", "visible_gpus"]

PROG = "goalbrake sweep"
#: Replacement workers a sweep starts at most (per initial worker) before it gives up.
MAX_RESTARTS_PER_WORKER = 5


def say(message: str) -> None:
    """One line of ``goalbrake sweep`` on stderr."""
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
    study: optuna.Study
    spec: SweepSpec
    storage: StorageURL
    lock: AskLock
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
            "goalbrake.sweep.run.worker",
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
        # workers in order. It starts with SIGINT/SIGTERM blocked, so a stop sent while it
        # imports waits for its handler.
        with stop_signals_held():
            # Registered before the signals are unblocked: a stop that arrived meanwhile runs
            # _on_signal on leaving the block, and must find this worker to signal it.
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
            say(
                f"stopping: {len(self.running)} worker(s) end their trials at the next batch "
                "(Ctrl-C again kills them)"
            )
            self._signal_all(signal.SIGINT)
        elif not self.killing:
            self.killing = True
            say("killing the workers")
            self._signal_all(signal.SIGKILL)

    def _recover(self, pids: set[int]) -> None:
        with self.lock:
            lost = fail_lost(self.study, lost_on_this_host(dead_pids=pids), self.spec.retries)
        for number, retried in lost:
            say(
                f"trial {number} failed with its worker"
                + ("; re-queued with the same parameters" if retried else "; out of retries")
            )

    def _handle_exit(self, r: _Running, code: int) -> None:
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
        say(f"worker {r.slot.index} (pid {pid}) died ({how})")
        self.dead_pids.add(pid)
        self._recover({pid})
        if self.stopping:
            return
        if progress(self.study, self.spec, self.target).done:
            return
        if self.restarts >= MAX_RESTARTS_PER_WORKER * len(self.slots):
            say("too many workers died; not starting another")
            return
        self.restarts += 1
        say(f"starting a replacement for worker {r.slot.index}")
        self._start(r.slot, r.generation + 1)

    def run(self) -> int:
        """Run the workers to the end; returns the exit status of ``goalbrake sweep``."""
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            for slot in self.slots:
                if self.stopping:  # stopped while the first workers started
                    break
                say(slot.describe())
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
