"""A sweep worker: pulls trials from the shared study until it is done.

``goalbrake sweep`` starts these as ``python -m goalbrake.sweep.run.worker ...``, one per GPU
(pinned with ``CUDA_VISIBLE_DEVICES``) or K on CPUs (each with its share of threads). A
worker loops: take the ask lock, count the trials (:func:`goalbrake.sweep.run.study.progress`),
start one trial if the study needs one (the objective releases the lock once the trial
has its parameters), else wait. Exit status: 0 when the study is done or the deadline has
passed, 130 when stopped by SIGINT/SIGTERM (its running trial is FAIL with
``fail_reason: interrupted`` and is retried later), 3 when trials keep failing with errors.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from goalbrake.app import quiet_dependency_warnings
from goalbrake.sweep.attrs import NONFINITE, PRUNE_REASON
from goalbrake.sweep.define import SweepSpec, load_spec
from goalbrake.sweep.run.objective import INTERRUPTED, Objective, Worker
from goalbrake.sweep.run.recovery import RETRYABLE_PREFIXES, fail_reason, fail_stale
from goalbrake.sweep.run.storage import AskLock, ask_lock, open_storage, parse_storage
from goalbrake.sweep.run.study import load_study, make_sampler, progress, worker_seed

__all__ = ["EXIT_FAILING", "EXIT_STOPPED", "main", "run_worker", "stop_signals_held"]

EXIT_STOPPED = 130
EXIT_FAILING = 3
#: Consecutive trials ending in an error after which a worker gives up.
MAX_CONSECUTIVE_ERRORS = 3
#: Consecutive trials pruned for a non-finite loss after which a worker gives up (a space
#: that only diverges would otherwise replace its pruned trials forever).
MAX_CONSECUTIVE_DIVERGED = 10


def quiet_lightning() -> None:
    """Keep a worker's output to Optuna's one line per trial and real warnings."""
    quiet_dependency_warnings()
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)


@dataclass
class _Streak:
    """This worker's trials in a row that ended in an error, or diverged (non-finite loss)."""

    errors: int = 0
    diverged: int = 0

    def update(self, trial: FrozenTrial) -> str | None:
        """Count ``trial``; the reason to give up, when a streak is long enough."""
        failed = trial.state == TrialState.FAIL and not fail_reason(trial).startswith(
            RETRYABLE_PREFIXES
        )
        nonfinite = trial.state == TrialState.PRUNED and bool(trial.user_attrs.get(NONFINITE))
        self.errors = self.errors + 1 if failed else 0
        self.diverged = self.diverged + 1 if nonfinite else 0
        if self.errors >= MAX_CONSECUTIVE_ERRORS:
            return f"{self.errors} trials in a row failed; last: {fail_reason(trial)}"
        if self.diverged >= MAX_CONSECUTIVE_DIVERGED:
            return (
                f"{self.diverged} trials in a row diverged; last: "
                f"{trial.user_attrs.get(PRUNE_REASON, '?')}"
            )
        return None


class _QuietWhenStopped(logging.Filter):
    """Drop Optuna's "Trial N failed ..." records (with their tracebacks) of a stopped trial.

    A trial stopped by SIGINT/SIGTERM raises through ``study.optimize``, which logs the
    interruption as a failure with a traceback per worker; the sweep says in its own lines
    what was stopped and re-queued.
    """

    def __init__(self, stop: threading.Event) -> None:
        super().__init__()
        self._stop = stop

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self._stop.is_set() and " failed with " in record.getMessage())


#: The logger of Optuna's trial loop (``optuna.study._optimize``).
_OPTIMIZE_LOGGER = "optuna.study._optimize"


def run_worker(
    study: optuna.Study,
    spec: SweepSpec,
    lock: AskLock,
    *,
    runs_dir: str | Path,
    target: int | None = None,
    deadline: float | None = None,
    worker: Worker | None = None,
    poll_s: float = 1.0,
    stop: threading.Event | None = None,
) -> int:
    """Run trials of ``study`` until it is done; returns the exit status (see module doc).

    ``stop`` (set by a signal handler) ends the loop: a running trial stops at its next
    batch and ends as FAIL with ``fail_reason: interrupted``; the status is then 130.
    """
    stop = stop or threading.Event()
    quiet = _QuietWhenStopped(stop)
    logging.getLogger(_OPTIMIZE_LOGGER).addFilter(quiet)
    try:
        return _loop(study, spec, lock, runs_dir, target, deadline, worker, poll_s, stop)
    finally:
        logging.getLogger(_OPTIMIZE_LOGGER).removeFilter(quiet)


def _loop(
    study: optuna.Study,
    spec: SweepSpec,
    lock: AskLock,
    runs_dir: str | Path,
    target: int | None,
    deadline: float | None,
    worker: Worker | None,
    poll_s: float,
    stop: threading.Event,
) -> int:
    objective = Objective(spec, runs_dir, worker=worker, lock=lock, stop=stop)
    streak = _Streak()
    last: list[FrozenTrial] = []  # this worker's finished trials (Optuna's callback)
    while True:
        if stop.is_set():
            return EXIT_STOPPED
        if deadline is not None and time.time() >= deadline:
            return 0
        lock.acquire()
        try:
            now = progress(study, spec, target)
            if now.done:
                return 0
            if not now.can_start:
                lock.release()
                # Trials still running elsewhere may yet fail or be pruned; wait for them.
                fail_stale(study)
                stop.wait(poll_s)
                continue
            study.optimize(
                objective,
                n_trials=1,
                catch=(Exception,),
                gc_after_trial=True,
                callbacks=[lambda _, trial: last.append(trial)],
            )
        except KeyboardInterrupt:
            # The trial (if one ran) is FAIL with fail_reason "interrupted" already.
            return EXIT_STOPPED
        finally:
            lock.release()
        if last:
            gave_up = streak.update(last[-1])
            if gave_up is not None:
                print(f"goalbrake sweep: error: {gave_up}", file=sys.stderr)
                return EXIT_FAILING


#: The signals that stop a worker cleanly.
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


@contextmanager
def stop_signals_held() -> Iterator[None]:
    """Block :data:`STOP_SIGNALS` in this thread, so a process started inside inherits them
    blocked: a stop sent while the worker still imports torch waits, pending, until
    :func:`stop_on_signals` has its handler in place, instead of raising KeyboardInterrupt
    in an import. A signal that reaches this process meanwhile is delivered on exit.
    """
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no signal masks
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def stop_on_signals(stop: threading.Event) -> None:
    """SIGINT/SIGTERM set ``stop``; a second one raises KeyboardInterrupt at once.

    Unblocks them afterwards (the supervisor starts workers with them blocked,
    :func:`stop_signals_held`), which delivers one sent during start-up now.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _watch_parent(parent: int, stop: threading.Event) -> None:
    """Stop this worker cleanly if the process that started it dies."""

    def watch() -> None:
        while not stop.wait(1.0):
            if os.getppid() != parent:
                stop.set()
                return

    threading.Thread(target=watch, name="goalbrake-parent-watch", daemon=True).start()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m goalbrake.sweep.run.worker")
    p.add_argument("--config", required=True)
    p.add_argument("--study", required=True)
    p.add_argument("--storage", required=True)
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--n-trials", type=int, default=None)
    p.add_argument("--deadline", type=float, default=None, help="Unix time; no new trial after")
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--generation", type=int, default=0)
    p.add_argument("--salt", default="")
    p.add_argument("--threads", type=int, default=0)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    stop = threading.Event()
    try:
        # SIGINT/SIGTERM from the supervisor stop the running trial at its next batch; both
        # pending at start-up (a stop, then a kill request) raise KeyboardInterrupt here.
        stop_on_signals(stop)
        _watch_parent(os.getppid(), stop)
        quiet_lightning()
        if args.threads > 0:
            torch.set_num_threads(args.threads)
        spec = load_spec(args.config, study=args.study)
        where = parse_storage(args.storage)
        backend = open_storage(
            where,
            heartbeat_interval=spec.heartbeat_interval,
            grace_period=spec.grace_period,
            max_retry=spec.retries,
        )
        sampler = make_sampler(spec, worker_seed(spec, args.index, args.generation, args.salt))
        study = load_study(spec, backend, sampler=sampler)
        worker = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "index": args.index,
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        }
        return run_worker(
            study,
            spec,
            ask_lock(where, backend, spec.study),
            runs_dir=args.runs_dir,
            target=args.n_trials,
            deadline=args.deadline,
            worker=worker,
            stop=stop,
        )
    except KeyboardInterrupt:
        print(
            f"goalbrake sweep: worker {args.index} ({os.getpid()}) {INTERRUPTED}", file=sys.stderr
        )
        return EXIT_STOPPED
    except ValueError as err:
        print(f"goalbrake sweep: error: worker {args.index}: {err}", file=sys.stderr)
        return 1


def _exit(code: int) -> None:
    """Leave without the interpreter's finalization.

    Tearing down torch and Lightning takes seconds per process, while everything a worker
    owns is already safe: storage writes are synced (journal appends fsync, RDB commits)
    and each trial's TensorBoard writer was closed when the trial ended.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit(main())
