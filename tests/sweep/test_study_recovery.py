"""The start/stop rule and the recovery of lost trials, on a real journal, without training."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from goalbrake.sweep.define import load_spec
from goalbrake.sweep.run.recovery import (
    fail_lost,
    is_retried,
    lost_on_this_host,
    retried_from,
    retry_interrupted,
)
from goalbrake.sweep.run.storage import (
    StorageError,
    ask_lock,
    open_storage,
    parse_storage,
    supervisor_lock,
)
from goalbrake.sweep.run.study import load_study, progress
from goalbrake.sweep.run.supervisor import plan_workers


@pytest.fixture
def grid_study(make_sweep: Callable[..., Path], tmp_path: Path):
    spec = load_spec(make_sweep({"sampler": "grid", "space": {"optimizer.lr": [0.1, 0.2, 0.3]}}))
    where = parse_storage(f"journal:{tmp_path / 'runs' / 'study.journal'}")
    study = load_study(spec, open_storage(where), create=True)
    return spec, where, study


def _start(study: optuna.Study, spec, pid: int) -> optuna.Trial:
    trial = study.ask()
    trial.set_user_attr("worker", {"host": os.uname().nodename, "pid": pid, "index": 0})
    spec.suggest(trial)
    return trial


def _finish(
    study: optuna.Study, trial: optuna.Trial, state: TrialState, value: float | None = None
) -> None:
    # Through the storage: GridSampler.after_trial (study.tell) may only stop inside optimize.
    study._storage.set_trial_state_values(
        trial._trial_id, state, None if value is None else [value]
    )


def test_grid_progress_never_starts_a_point_twice(grid_study) -> None:
    spec, _, study = grid_study
    assert progress(study, spec).can_start
    trials = [_start(study, spec, 1) for _ in range(3)]
    now = progress(study, spec)
    # Every point is running: a fourth worker must wait, not duplicate a point.
    assert (now.running, now.open_points, now.can_start, now.done) == (3, 0, False, False)
    _finish(study, trials[0], TrialState.COMPLETE, 0.5)
    _finish(study, trials[1], TrialState.PRUNED)
    _finish(study, trials[2], TrialState.COMPLETE, 0.7)
    now = progress(study, spec)
    # A pruned grid point is finished: the grid is done with 2 complete trials.
    assert (now.complete, now.pruned, now.done) == (2, 1, True)
    assert len({tuple(t.params.items()) for t in study.trials}) == 3


def test_n_complete_counts_only_complete(grid_study) -> None:
    spec, _, study = grid_study
    a = _start(study, spec, 1)
    assert not progress(study, spec, target=1).can_start  # 0 complete + 1 running
    _finish(study, a, TrialState.PRUNED)
    assert progress(study, spec, target=1).can_start  # pruned does not count
    b = _start(study, spec, 1)
    _finish(study, b, TrialState.COMPLETE, 0.9)
    assert progress(study, spec, target=1).done


def test_lost_trial_failed_and_retried_once(grid_study) -> None:
    spec, where, study = grid_study
    lost = _start(study, spec, pid=999_999_999)  # no such process
    alive = _start(study, spec, pid=os.getpid())
    with ask_lock(where, study._storage, spec.study):
        out = fail_lost(study, lost_on_this_host(dead_pids={999_999_999}), max_retry=2)
    assert out == [(lost.number, True)]
    frozen = study.trials
    assert frozen[lost.number].state == TrialState.FAIL
    assert frozen[lost.number].user_attrs["fail_reason"].startswith("killed: worker pid 999999999")
    assert frozen[alive.number].state == TrialState.RUNNING
    retry = [t for t in frozen if t.state == TrialState.WAITING]
    assert len(retry) == 1 and retried_from(retry[0]) == lost.number
    assert retry[0].params == frozen[lost.number].params
    assert is_retried(study, lost.number)
    # A second pass finds nothing more to do; the waiting retry is started first.
    assert fail_lost(study, lost_on_this_host(dead_pids={999_999_999}), max_retry=2) == []
    assert retry_interrupted(study, max_retry=2) == []
    assert progress(study, spec).can_start
    again = study.ask()
    assert again.number == retry[0].number and again.params == frozen[lost.number].params


def test_interrupted_trials_retried_up_to_max(grid_study) -> None:
    spec, _, study = grid_study
    for _ in range(3):
        trial = study.ask()
        spec.suggest(trial)
        trial.set_user_attr("fail_reason", "interrupted: the worker was stopped")
        _finish(study, trial, TrialState.FAIL)
        retry_interrupted(study, max_retry=2)
    # Original + 2 retries, all interrupted: no third retry.
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 3
    assert study.trials[2].system_attrs["retry_history"] == [0, 1]


def test_supervisor_lock_is_exclusive(tmp_path: Path) -> None:
    where = parse_storage(str(tmp_path / "s.journal"))
    with supervisor_lock(where, "s"):
        with pytest.raises(StorageError, match="another goalbrake sweep is running study 's'"):
            with supervisor_lock(where, "s"):
                pass
    with supervisor_lock(where, "s"):
        pass


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("journal:runs/x/study.journal", "journal"),
        ("runs/x.journal", "journal"),
        ("postgresql://u@127.0.0.1:5432/db", "rdb"),
        ("sqlite:///x.db", "rdb"),
    ],
)
def test_parse_storage(url: str, kind: str) -> None:
    assert parse_storage(url).kind == kind


def test_parse_storage_errors() -> None:
    with pytest.raises(StorageError, match="unknown storage scheme 'redis'"):
        parse_storage("redis://localhost")
    with pytest.raises(StorageError, match=r"invalid storage 'study\.db'"):
        parse_storage("study.db")
    assert parse_storage("postgresql://u:secret@h/db").shown == "postgresql://u@h/db"


def test_plan_workers() -> None:
    slots = plan_workers("auto", cores=16, gpus=["0", "3"])
    assert [(s.cuda_visible_devices, s.threads) for s in slots] == [("0", 8), ("3", 8)]
    slots = plan_workers("3", cores=16, gpus=["0", "1"])
    assert [s.cuda_visible_devices for s in slots] == ["0", "1", "0"]
    assert [(s.cuda_visible_devices, s.threads) for s in plan_workers("2", cores=2, gpus=[])] == [
        (None, 1),
        (None, 1),
    ]
    assert [s.threads for s in plan_workers("auto", cores=2, gpus=[])] == [2]
    assert plan_workers("0", cores=2, gpus=[]) == []


def test_journal_lock_cuts_a_torn_last_record(tmp_path: Path) -> None:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    from goalbrake.sweep.run.storage import JournalFlock

    path = tmp_path / "s.journal"
    storage = open_storage(parse_storage(str(path)))
    optuna.create_study(study_name="s", storage=storage).enqueue_trial({"x": 1.0})
    whole = path.read_bytes()
    with path.open("ab") as f:  # a writer killed between the write calls of one append
        f.write(b'{"op_code": 4, "worker_id": "dead", "trial_id"')
    lock = JournalFlock(path)
    assert lock.acquire()
    lock.release()
    assert path.read_bytes() == whole
    study = optuna.load_study(
        study_name="s",
        storage=JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFlock(path))),
    )
    study.enqueue_trial({"x": 2.0})
    assert [t.state for t in study.trials] == [TrialState.WAITING] * 2
