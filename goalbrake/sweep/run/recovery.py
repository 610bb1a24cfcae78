"""Fail and retry the trials of workers that died or were stopped.

A trial is lost when its worker process dies (SIGKILL, OOM killer, a node going away) or
is stopped (Ctrl-C). Lost trials are marked FAIL with a ``fail_reason`` and re-queued with
the same parameters as a WAITING trial that the next free worker picks up first, by
Optuna's own :class:`~optuna.storages.RetryHeartbeatStaleTrialCallback` (so a retry
carries ``failed_trial`` and ``retry_history`` in its system attrs, and a grid retry keeps
its ``grid_id``), at most ``retries`` times per original trial.

Who notices:

* RDB storages: Optuna's heartbeat (a stale RUNNING trial is failed and retried when the
  next trial starts, or by the waiting workers' :func:`fail_stale` calls);
* any storage, local workers: the ``goalbrake sweep`` process that started them, which
  knows the exit status of each and calls :func:`fail_lost` with its pid;
* interrupted trials (FAIL with ``fail_reason: interrupted...``) are retried by
  :func:`retry_interrupted`, when the sweep stops and again when it resumes.

The RUNNING→FAIL transition is atomic in both storages, and only the process that made
it enqueues the retry, so a trial is retried once even if the heartbeat and a supervisor
race for it.
"""

from __future__ import annotations

import os
import socket
import warnings
from collections.abc import Callable, Iterable

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from goalbrake.sweep.attrs import FAIL_REASON, WORKER

__all__ = [
    "KILLED",
    "fail_lost",
    "fail_reason",
    "fail_stale",
    "in_retry_order",
    "is_retried",
    "lost_on_this_host",
    "retried_from",
    "retry",
    "retry_interrupted",
]

RETRYABLE_PREFIXES = ("interrupted", "killed")


#: Why a FAIL trial failed when it recorded nothing itself.
KILLED = "killed: heartbeat stopped (worker or node died)"


def fail_reason(trial: FrozenTrial) -> str:
    """Why a FAIL ``trial`` failed: its ``fail_reason``, else :data:`KILLED`."""
    return str(trial.user_attrs.get(FAIL_REASON) or KILLED)


def retried_from(trial: FrozenTrial) -> int | None:
    """The number of the trial this one retries (the original of a retry chain), or None."""
    return trial.system_attrs.get("failed_trial")


def _retried_numbers(trials: Iterable[FrozenTrial]) -> set[int]:
    done: set[int] = set()
    for t in trials:
        done.update(t.system_attrs.get("retry_history", ()))
    return done


def in_retry_order(trials: Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """The attempts that count, by trial number, each retried one replaced by its retry.

    A FAIL trial that a later trial retries (its number in that trial's ``retry_history``)
    was not an outcome of its parameters but of its worker (stopped, killed): it is left
    out, and the last retry of its chain takes its place in the order. Every other trial
    (pruned, failed and not retried, complete, still running) keeps its own place.
    """
    trials = list(trials)
    retried = _retried_numbers(trials)

    def place(trial: FrozenTrial) -> tuple[int, int]:
        original = retried_from(trial)
        return (trial.number, trial.number) if original is None else (original, trial.number)

    kept = [t for t in trials if not (t.state == TrialState.FAIL and t.number in retried)]
    return sorted(kept, key=place)


def is_retried(study: optuna.Study, number: int) -> bool:
    """Whether some trial of ``study`` retries trial ``number``."""
    return number in _retried_numbers(study.get_trials(deepcopy=False))


def retry(study: optuna.Study, trial: FrozenTrial, max_retry: int) -> bool:
    """Queue a retry of the failed ``trial`` (same params); False when out of retries."""
    if len(trial.system_attrs.get("retry_history", ())) >= max_retry:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        RetryHeartbeatStaleTrialCallback(max_retry=max_retry)(study, trial)
    return True


def _fail(study: optuna.Study, trial: FrozenTrial, reason: str) -> bool:
    storage = study._storage
    try:
        storage.set_trial_user_attr(trial._trial_id, FAIL_REASON, reason)
        return bool(storage.set_trial_state_values(trial._trial_id, TrialState.FAIL))
    except UpdateFinishedTrialError:
        return False  # finished meanwhile (by its worker, or failed by someone else)


def fail_lost(
    study: optuna.Study,
    lost: Callable[[FrozenTrial], str | None],
    max_retry: int,
) -> list[tuple[int, bool]]:
    """Fail the RUNNING trials ``lost`` gives a reason for, and retry them.

    Call it while holding the study's ask lock, so that no live worker is between
    "trial created" and "worker recorded" (an unattributed RUNNING trial is then lost).

    Returns:
        ``(number, retried)`` per failed trial.
    """
    out = []
    for trial in study.get_trials(deepcopy=True, states=(TrialState.RUNNING,)):
        reason = lost(trial)
        if reason is None or not _fail(study, trial, reason):
            continue
        failed = study._storage.get_trial(trial._trial_id)
        out.append((trial.number, retry(study, failed, max_retry)))
    return out


def lost_on_this_host(
    dead_pids: set[int] | None = None, everything_running: bool = False
) -> Callable[[FrozenTrial], str | None]:
    """Which RUNNING trials are lost, seen from a supervisor on this host.

    Args:
        dead_pids: worker pids known dead (with their ends in the reason).
        everything_running: every RUNNING trial is lost (a journal study whose supervisor
            lock we hold and whose workers are all gone).
    """
    host = socket.gethostname()

    def lost(trial: FrozenTrial) -> str | None:
        worker = trial.user_attrs.get(WORKER)
        if everything_running:
            return "killed: its worker is gone (found RUNNING with no live worker)"
        if not isinstance(worker, dict):
            return "killed: its worker died while starting it"
        if worker.get("host") != host:
            return None
        pid = worker.get("pid")
        if dead_pids is not None and pid in dead_pids:
            return f"killed: worker pid {pid} on {host} died"
        if dead_pids is None and isinstance(pid, int) and not _alive(pid):
            return f"killed: worker pid {pid} on {host} is gone"
        return None

    return lost


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def retry_interrupted(study: optuna.Study, max_retry: int) -> list[int]:
    """Retry FAIL trials lost to a stop or a killed worker that have no retry yet."""
    trials = study.get_trials(deepcopy=False)
    retried = _retried_numbers(trials)
    out = []
    for trial in trials:
        if trial.state != TrialState.FAIL or trial.number in retried:
            continue
        reason = str(trial.user_attrs.get(FAIL_REASON) or "")
        if reason.startswith(RETRYABLE_PREFIXES) and retry(study, trial, max_retry):
            out.append(trial.number)
    return out


def fail_stale(study: optuna.Study) -> None:
    """Run Optuna's heartbeat check now (RDB storages; a no-op on the journal)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
