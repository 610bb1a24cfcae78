"""``goalbrake sweep``: run an Optuna study from a sweep YAML with local worker processes.

::

    goalbrake sweep --config sweeps/fashionmnist_goal.yaml
    goalbrake sweep --config sweeps/fashionmnist_goal.yaml --workers auto          # 1 per GPU
    goalbrake sweep --config sweeps/fashionmnist_goal.yaml --workers 2 --n-trials 6
    goalbrake sweep --config sweeps/cifar10_goal.yaml \\
        --storage postgresql://goalbrake@db-host:5432/sweeps                      # any node

The process validates the whole sweep (YAML, addresses, every trial config) before any
trial starts, creates or loads the study, recovers trials lost by an earlier run, starts
the workers (:mod:`goalbrake.sweep.run.worker`) and supervises them: a worker that dies has its
trial failed and re-queued and is replaced. Ctrl-C (SIGINT or SIGTERM) stops the workers;
their running trials end as FAIL (``interrupted``) and are re-queued, so the same command
resumes the study. A second Ctrl-C kills the workers at once (their trials are recovered
the same way). The last lines of a stopped sweep name the stopped (re-queued) trials and
the command that resumes.

``goalbrake sweep --repair-journal PATH`` repairs a journal file that does not parse
(:func:`goalbrake.sweep.run.storage.repair_journal`) and runs nothing.

Exit status: 0 when the study completed what was asked, 1 on a configuration or storage
error, or when it did not (trials keep failing or diverging, ``--timeout`` passed first,
grid points failed: the last lines count the trials that did not complete by cause), 2 on
bad arguments, 130 when stopped.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from goalbrake.sweep.attrs import PRUNE_REASON
from goalbrake.sweep.define import SweepSpec, load_spec
from goalbrake.sweep.define.validate import validate
from goalbrake.sweep.run.recovery import (
    fail_lost,
    fail_reason,
    is_retried,
    lost_on_this_host,
    retry_interrupted,
)
from goalbrake.sweep.run.storage import (
    AskLock,
    StorageError,
    StorageURL,
    ask_lock,
    default_storage,
    open_storage,
    parse_storage,
    repair_journal,
    supervisor_lock,
)
from goalbrake.sweep.run.study import Progress, failed_points, load_study, progress
from goalbrake.sweep.run.supervisor import PROG, Supervisor, plan_workers, say
from goalbrake.sweep.run.worker import EXIT_STOPPED, quiet_lightning, run_worker, stop_on_signals

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Run an Optuna study of goalbrake fits from a sweep YAML (see docs/sweeps.md).",
    )
    p.add_argument("--config", help="the sweep YAML (sweeps/<name>.yaml); required")
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
    p.add_argument(
        "--repair-journal",
        metavar="PATH",
        help="keep the records of a damaged journal file (the original kept as PATH.bak), "
        "run nothing",
    )
    return p


def _workers_arg(value: str) -> str:
    if value != "auto" and not (value.isdigit() and int(value) >= 0):
        raise argparse.ArgumentTypeError(f"invalid value {value!r} (auto, or an integer >= 0)")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """``goalbrake sweep``; returns the exit status."""
    try:
        args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exit_:
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 2
    if args.repair_journal is not None:
        return _repair(args.repair_journal)
    if args.config is None:
        say("error: the following arguments are required: --config (or --repair-journal PATH)")
        return 2
    if args.n_trials is not None and args.n_trials < 1:
        say(f"error: invalid --n-trials value: {args.n_trials} (must be >= 1)")
        return 2
    if args.timeout is not None and args.timeout <= 0:
        say(f"error: invalid --timeout value: {args.timeout} (seconds, > 0)")
        return 2
    args.resume = shlex.join(["goalbrake", "sweep", *(sys.argv[1:] if argv is None else argv)])
    try:
        return _run(args)
    except KeyboardInterrupt:  # before the workers started (checking configs, opening storage)
        say("stopped")
        return 130
    except ValueError as err:  # SweepSpecError, StorageError, plan errors
        if os.environ.get("GOALBRAKE_DEBUG"):
            raise
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        say(f"error: {text}")
        return 1


def _repair(path: str) -> int:
    """``--repair-journal PATH``: keep the records, back up the original."""
    try:
        done = repair_journal(path)
    except StorageError as err:
        say(f"error: {err}")
        return 1
    if done.backup is None:
        say(f"{path}: all {done.kept} lines are records; nothing to repair")
        return 0
    parts = []
    if done.dropped:
        shown = ", ".join(map(str, done.dropped[:10])) + (", ..." if len(done.dropped) > 10 else "")
        parts.append(f"dropped {len(done.dropped)} line(s) that are not records (line {shown})")
    if done.torn:
        parts.append("cut a torn last line")
    say(f"{path}: kept {done.kept} records, {'; '.join(parts)}; the original is {done.backup}")
    return 0


def _run(args: argparse.Namespace) -> int:
    spec = load_spec(args.config, study=args.study)
    target = args.n_trials or spec.target_trials()
    slots = plan_workers(args.workers)
    runs_dir = Path(args.runs_dir)
    storage = parse_storage(args.storage or default_storage(runs_dir, spec.study))
    checked = validate(spec, target, runs_dir=str(runs_dir))
    say(
        f"{spec.path}: {spec.sampler} sampler, {spec.pruner} pruner, "
        f"{'grid of ' + str(spec.grid_size()) + ' points, ' if spec.is_grid else ''}"
        f"{target} trials to complete; {checked} trial configs check"
    )
    if args.check:
        return 0
    timeout = args.timeout or spec.timeout
    deadline = time.time() + timeout if timeout else None
    with supervisor_lock(storage, spec.study):
        backend = open_storage(
            storage,
            heartbeat_interval=spec.heartbeat_interval,
            grace_period=spec.grace_period,
            max_retry=spec.retries,
        )
        study = load_study(spec, backend, create=True)
        lock = ask_lock(storage, backend, spec.study)
        _resume(study, spec, storage, lock)
        say(f"study {spec.study!r} on {storage.shown}: {progress(study, spec, target).summary()}")
        if progress(study, spec, target).done:
            return _ending(study, spec)
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
            code = _supervise(supervisor)
        return _finish(study, spec, target, code, args.resume)


def _resume(study: optuna.Study, spec: SweepSpec, storage: StorageURL, lock: AskLock) -> None:
    """Trials an earlier run lost (killed supervisor, Ctrl-C) go back in the queue."""
    with lock:
        journal = storage.kind == "journal"
        lost = fail_lost(study, lost_on_this_host(everything_running=journal), spec.retries)
    requeued = [n for n, retried in lost if retried] + retry_interrupted(study, spec.retries)
    if requeued:
        say(f"re-queued trial(s) {', '.join(map(str, sorted(requeued)))} lost by an earlier run")


def _supervise(supervisor: Supervisor) -> int:
    code = supervisor.run()
    # Every worker has exited: whatever they left RUNNING is lost.
    with supervisor.lock:
        if supervisor.storage.kind == "journal":
            lost_now = lost_on_this_host(everything_running=True)
        else:
            lost_now = lost_on_this_host(dead_pids=supervisor.started_pids)
        fail_lost(supervisor.study, lost_now, supervisor.spec.retries)
    return code


def _finish(study: optuna.Study, spec: SweepSpec, target: int, code: int, resume: str) -> int:
    requeued = retry_interrupted(study, spec.retries) if code == 130 else []
    final = progress(study, spec, target)
    if final.done and code == 130:
        code = 0
    if code == 130:
        say(_stopped_line(study, requeued))
    say(f"study {spec.study!r}: {final.summary()}")
    if code == 130:
        say(f"resume with: {resume}")
        return code
    if not final.done:
        say(_best_line(study, spec))
        # Status 0 from the workers short of done: the deadline stopped them.
        return _shortfall(study, final, " when --timeout passed" if code == 0 else "")
    return _ending(study, spec) if code == 0 else code


def _cause(trial: FrozenTrial) -> str:
    """Why a trial did not complete, on one line that equal causes share."""
    if trial.state == TrialState.PRUNED:
        reason = str(trial.user_attrs.get(PRUNE_REASON) or "pruned")
        return "pruned: " + _AT_STEP.sub("", reason.splitlines()[0])
    return fail_reason(trial).splitlines()[0]


#: The epoch and step of a non-finite-loss prune reason (causes are grouped without them).
_AT_STEP = re.compile(r" at epoch \d+, step \d+$")


def _shortfall(study: optuna.Study, final: Progress, when: str) -> int:
    """A study that stopped short of its complete trials: the count, then causes; 1."""
    ended = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL, TrialState.PRUNED))
        if not is_retried(study, t.number)
    ]
    counts = f"; {final.failed} failed, {final.pruned} pruned:" if ended else ""
    say(f"error: {final.complete} of {final.target} trials complete{when}{counts}")
    for cause, n in Counter(_cause(t) for t in ended).most_common():
        say(f"  {n} × {cause}")
    return 1


def _stopped_line(study: optuna.Study, requeued: list[int]) -> str:
    """Which trials the stop interrupted, and that they run again first on resume."""
    if not requeued:
        return "stopped; no trial to re-queue (none was running, or out of retries)"
    trials = study.get_trials(deepcopy=False)
    shown = "; ".join(
        f"trial {n} ({', '.join(f'{k}={v}' for k, v in trials[n].params.items())})"
        for n in sorted(requeued)
    )
    return f"stopped {shown}: re-queued with the same parameters, they run first on resume"


def _ending(study: optuna.Study, spec: SweepSpec) -> int:
    """The best trial, then the grid points that failed, by cause; 1 if any did."""
    say(_best_line(study, spec))
    failed = failed_points(study, spec)
    if not failed:
        return 0
    say(f"error: {len(failed)} of {spec.grid_size()} grid points failed:")
    causes = Counter(fail_reason(t).splitlines()[0] for t in failed)
    for cause, n in causes.most_common():
        say(f"  {n} × {cause}")
    return 1


def _run_inline(
    study: optuna.Study,
    spec: SweepSpec,
    lock: AskLock,
    runs_dir: Path,
    target: int,
    deadline: float | None,
) -> int:
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


def _best_line(study: optuna.Study, spec: SweepSpec) -> str:
    try:
        best = study.best_trial
    except ValueError:
        return "no complete trial yet"
    return f"best {spec.metric} {best.value:.4f} (trial {best.number}): " + ", ".join(
        f"{k}={v}" for k, v in best.params.items()
    )
