"""``goalbrake sweep`` on a real PostgreSQL server: several processes, one study.

Needs ``GOALBRAKE_TEST_POSTGRES_URL`` (``tests/sweep/start_postgres.sh`` starts a
throw-away server on loopback and prints it); skipped without it.
"""

from __future__ import annotations

import os
import socket
import uuid
import warnings
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.exceptions import ExperimentalWarning
from optuna.trial import TrialState

from goalbrake.sweep.define import load_spec
from goalbrake.sweep.run.recovery import retried_from
from goalbrake.sweep.run.storage import open_storage, parse_storage
from goalbrake.sweep.run.study import load_study
from tests.sweep.helpers import explain, run_sweep, start_sweep, tiny_base

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
