"""``goalbrake sweep`` on a real PostgreSQL server: several processes, one study.

Needs ``GOALBRAKE_TEST_POSTGRES_URL`` (``tests/sweep/start_postgres.sh`` starts a
throw-away server on loopback and prints it); skipped without it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import uuid
import warnings
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.exceptions import ExperimentalWarning
from optuna.trial import FrozenTrial, TrialState

from goalbrake.sweep.define import load_spec
from goalbrake.sweep.report.results import collect
from goalbrake.sweep.run.recovery import KILLED, retried_from
from goalbrake.sweep.run.storage import open_storage, parse_storage
from goalbrake.sweep.run.study import load_study
from tests.sweep.helpers import (
    child_env,
    explain,
    run_sweep,
    start_sweep,
    sweep_command,
    tiny_base,
    wait_for,
)

URL = os.environ.get("GOALBRAKE_TEST_POSTGRES_URL")
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.skipif(
        not URL,
        reason="GOALBRAKE_TEST_POSTGRES_URL is not set (export it from "
        "`bash tests/sweep/start_postgres.sh`; .ci/run does)",
    ),
]


def _sweep(root: Path, fm_dir: Path, spec: dict[str, Any], **base: Any) -> tuple[Path, str]:
    study = f"pg_{uuid.uuid4().hex[:10]}"
    (root / "base.yaml").write_text(yaml.safe_dump(tiny_base(fm_dir, **base)))
    path = root / "sweep.yaml"
    path.write_text(yaml.safe_dump({"study": study, "base": "base.yaml", **spec}, sort_keys=False))
    return path, study


def _study(name: str) -> optuna.Study:
    assert URL is not None
    return optuna.load_study(study_name=name, storage=open_storage(parse_storage(URL)))


def test_a_second_sweep_process_joins_the_same_study(tmp_path: Path, fm_dir: Path) -> None:
    spec = {"sampler": "grid", "seeds": 2, "space": {"optimizer.lr": [0.05, 0.1, 0.2]}}
    path, name = _sweep(tmp_path, fm_dir, spec, epochs=2, batches=4)
    args = ("--config", str(path), "--storage", URL, "--workers", "1", "--runs-dir", "runs")
    log = tmp_path / "second.log"
    second = start_sweep(*args, cwd=tmp_path, log=log)  # another node, in effect
    try:
        first = run_sweep(*args, cwd=tmp_path)
        assert first.returncode == 0, explain(first)
        assert second.wait(timeout=240) == 0, log.read_text()[-4000:]
    finally:
        if second.poll() is None:
            second.kill()
    trials = _study(name).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 6
    assert {(t.params["optimizer.lr"], t.user_attrs["config"]["seed"]) for t in trials} == {
        (lr, s) for lr in (0.05, 0.1, 0.2) for s in (0, 1)
    }
    workers = {t.user_attrs["worker"]["pid"] for t in trials}
    assert len(workers) == 2, "both sweep processes ran trials"
    for t in trials:
        assert (tmp_path / "runs" / name / f"trial_{t.number}").is_dir()


def test_stale_trial_of_a_lost_node_is_failed_and_retried_by_heartbeat(
    tmp_path: Path, fm_dir: Path
) -> None:
    spec = {
        "sampler": "grid",
        "space": {"optimizer.lr": [0.05, 0.1]},
        "heartbeat": {"interval": 1, "grace_period": 3},
    }
    path, name = _sweep(tmp_path, fm_dir, spec, epochs=1, batches=2)
    sweep = load_spec(path)
    storage = open_storage(parse_storage(URL), heartbeat_interval=1, grace_period=3, max_retry=2)
    study = load_study(sweep, storage, create=True)
    # A node that started a trial, beat once, and vanished.
    with warnings.catch_warnings():
        # Optuna warns that heartbeats are meant for Study.optimize; this trial fakes one.
        warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)
        warnings.simplefilter("ignore", ExperimentalWarning)
        lost = study.ask()
        lost.set_user_attr("worker", {"host": f"gone-{socket.gethostname()}", "pid": 1, "index": 0})
        sweep.suggest(lost)
        study._storage.record_heartbeat(lost._trial_id)

    proc = run_sweep(
        "--config",
        str(path),
        "--storage",
        URL,
        "--workers",
        "1",
        "--runs-dir",
        "runs",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, explain(proc)
    trials = _study(name).get_trials()
    assert trials[lost.number].state == TrialState.FAIL
    retries = [t for t in trials if retried_from(t) == lost.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == trials[lost.number].params
    assert sorted(t.params["optimizer.lr"] for t in trials if t.state == TrialState.COMPLETE) == [
        0.05,
        0.1,
    ]


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (Linux /proc), parents first."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:  # gone meanwhile
                pass
    return out


def _vanish(pids: list[int]) -> None:
    """Every process in ``pids`` and its process group disappears at once, as a node that
    loses power: all are frozen first (none sees another die), then SIGKILLed."""
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, sig)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


def _trained(storage: optuna.storages.BaseStorage, name: str) -> list[FrozenTrial]:
    """RUNNING trials past their first epoch (held by the gate); none before the study is."""
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:  # not created yet
        return []
    return [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if (t.user_attrs.get("curve") or {}).get("epoch")
    ]


def _node(args: tuple[str, ...], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    """``goalbrake sweep`` as a node: its own process group, as a shell would start it."""
    with log.open("w") as handle:
        return subprocess.Popen(
            sweep_command(*args),
            cwd=cwd,
            env=child_env(),
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def test_a_node_whose_processes_all_vanish_loses_no_trial(tmp_path: Path, fm_dir: Path) -> None:
    """Node A and node B run the same command on one study; every process of A is
    SIGKILLed mid-trial. The heartbeat fails A's trial, B retries it, and the study ends
    with each grid point complete exactly once."""
    lrs = [0.05, 0.1, 0.2]
    gate = tmp_path / "gate"
    spec = {
        "sampler": "grid",
        "space": {"optimizer.lr": lrs},
        "heartbeat": {"interval": 1, "grace_period": 3},
    }
    path, name = _sweep(tmp_path, fm_dir, spec, epochs=2, batches=2, gate=gate)
    args = ("--config", str(path), "--storage", URL, "--workers", "1", "--runs-dir", "runs")
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    storage = open_storage(parse_storage(URL))  # one connection pool for all the polls
    a = _node(args, tmp_path, log_a)
    b: subprocess.Popen[bytes] | None = None
    try:
        wait_for(
            lambda: name in optuna.get_all_study_names(storage), 120, "the study", proc=a, log=log_a
        )
        b = _node(args, tmp_path, log_b)  # B joins the running study
        wait_for(
            lambda: len(_trained(storage, name)) == 2,
            120,
            "a trial on each node",
            proc=b,
            log=log_b,
        )
        on_a = set(_descendants(a.pid))
        [lost] = [t for t in _trained(storage, name) if t.user_attrs["worker"]["pid"] in on_a]
        _vanish(sorted(on_a))
        a.wait(timeout=10)
        gate.touch()
        assert b.wait(timeout=180) == 0, log_b.read_text()[-4000:]
    finally:
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                _vanish(_descendants(proc.pid))
    assert a.returncode == -signal.SIGKILL
    trials = _study(name).get_trials()
    assert trials[lost.number].state == TrialState.FAIL
    # Failed by the heartbeat (a supervisor that saw its worker die would say which pid).
    assert "fail_reason" not in trials[lost.number].user_attrs
    assert collect(_study(name)).rows[lost.number].reason == KILLED
    retries = [t for t in trials if retried_from(t) == lost.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == lost.params
    assert [t.state for t in trials].count(TrialState.FAIL) == 1
    assert [t.state for t in trials].count(TrialState.RUNNING) == 0
    complete = [t.params["optimizer.lr"] for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(complete) == lrs, "every grid point once, none twice"
    assert len(trials) == len(lrs) + 1
