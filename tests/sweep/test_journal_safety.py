"""A damaged journal: nothing is appended to it, one line names file and line, and
``goalbrake sweep --repair-journal`` is the way back (issue 18). Real sweeps, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.storages.journal import JournalFileBackend, JournalStorage

from goalbrake.sweep.run.storage import StorageError, check_journal, repair_journal
from tests.sweep.helpers import (
    COMMAND_TIMEOUT_S,
    child_env,
    explain,
    journal_study,
    run_sweep,
    tiny_base,
)

GARBAGE = b"this is not json\n"
#: The line of the study's journal the garbage goes before (a record in the middle).
AT = 3


def _report(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "goalbrake.cli", "report", *args],
        cwd=cwd,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, fm_dir: Path) -> dict[str, Any]:
    """A two-point grid run to the end by a real ``goalbrake sweep`` with one worker."""
    root = tmp_path_factory.mktemp("journal")
    (root / "base.yaml").write_text(yaml.safe_dump(tiny_base(fm_dir, epochs=1, batches=2)))
    spec = {"base": "base.yaml", "sampler": "grid", "space": {"optimizer.lr": [0.05, 0.1]}}
    (root / "safe.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    proc = run_sweep("--config", "safe.yaml", "--workers", "1", "--runs-dir", "runs", cwd=root)
    assert proc.returncode == 0, explain(proc)
    journal = root / "runs" / "safe" / "study.journal"
    return {"root": root, "journal": journal, "good": journal.read_bytes()}


def _damage(finished: dict[str, Any]) -> bytes:
    lines = finished["good"].splitlines(keepends=True)
    damaged = b"".join(lines[: AT - 1]) + GARBAGE + b"".join(lines[AT - 1 :])
    finished["journal"].write_bytes(damaged)
    return damaged


MESSAGE = (
    f"journal runs/safe/study.journal line {AT} is not a record (Expecting value: line 1 "
    "column 1 (char 0)); nothing was written to it. Repair: goalbrake sweep "
    "--repair-journal runs/safe/study.journal"
)


@pytest.mark.slow
def test_a_damaged_journal_is_named_and_never_appended_to(finished: dict[str, Any]) -> None:
    root, journal = finished["root"], finished["journal"]
    damaged = _damage(finished)
    proc = run_sweep(
        "--config", "safe.yaml", "--workers", "1", "--runs-dir", "runs", "--n-trials", "2",
        cwd=root,
    )  # fmt: skip
    assert proc.returncode == 1, explain(proc)
    assert proc.stderr.splitlines()[-1] == f"goalbrake sweep: error: {MESSAGE}", explain(proc)
    assert "Traceback" not in proc.stderr
    assert journal.read_bytes() == damaged, "nothing is appended after the garbage"
    report = _report("--study", "safe", cwd=root)
    assert report.returncode == 1, explain(report)
    assert report.stderr.splitlines()[-1] == f"goalbrake report: error: {MESSAGE}"
    assert journal.read_bytes() == damaged


@pytest.mark.slow
def test_repair_keeps_every_record_and_a_backup(finished: dict[str, Any]) -> None:
    root, journal = finished["root"], finished["journal"]
    damaged = _damage(finished)
    proc = run_sweep("--repair-journal", "runs/safe/study.journal", cwd=root)
    assert proc.returncode == 0, explain(proc)
    records = len(finished["good"].splitlines())
    assert proc.stderr.splitlines() == [
        f"goalbrake sweep: runs/safe/study.journal: kept {records} records, dropped 1 line(s) "
        f"that are not records (line {AT}); the original is runs/safe/study.journal.bak"
    ]
    assert journal.read_bytes() == finished["good"]
    assert journal.with_name("study.journal.bak").read_bytes() == damaged
    study = journal_study(journal, "safe")
    assert sorted(t.params["optimizer.lr"] for t in study.trials) == [0.05, 0.1]
    again = run_sweep("--config", "safe.yaml", "--workers", "1", "--runs-dir", "runs", cwd=root)
    assert again.returncode == 0, explain(again)
    assert "2/2 complete" in again.stderr and "worker 0" not in again.stderr, explain(again)
    report = _report("--study", "safe", cwd=root)
    assert report.returncode == 0, explain(report)
    # A second repair finds nothing to do and keeps the first backup.
    now = len(journal.read_bytes().splitlines())  # the rerun may have recorded its visit
    proc = run_sweep("--repair-journal", "runs/safe/study.journal", cwd=root)
    assert journal.with_name("study.journal.bak").read_bytes() == damaged
    assert not journal.with_name("study.journal.bak.1").exists()
    assert proc.returncode == 0 and proc.stderr.splitlines() == [
        f"goalbrake sweep: runs/safe/study.journal: all {now} lines are records; nothing to repair"
    ], explain(proc)


# ----------------------------------------------------------------- the file rules alone
def _journal(tmp_path: Path) -> Path:
    """A real journal of one study with two trials (Optuna's own writer)."""
    path = tmp_path / "study.journal"
    study = optuna.create_study(
        study_name="s", storage=JournalStorage(JournalFileBackend(str(path)))
    )
    for x in (1.0, 2.0):
        study.enqueue_trial({"x": x})
        study.optimize(lambda t: t.suggest_float("x", 0, 3), n_trials=1)
    return path


def test_a_torn_last_line_is_not_an_error_and_repair_cuts_it(tmp_path: Path) -> None:
    """A writer killed mid-append leaves a last line without its newline: Optuna never read
    it, the next append cuts it, and a repair cuts it too."""
    path = _journal(tmp_path)
    good = path.read_bytes()
    path.write_bytes(good + b'{"op_code": 5, "trial_id"')
    check_journal(path)
    done = repair_journal(path)
    assert (done.kept, done.dropped, done.torn) == (len(good.splitlines()), [], True)
    assert path.read_bytes() == good
    assert done.backup == tmp_path / "study.journal.bak"


def test_a_json_line_that_is_no_record_is_refused(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:1]) + b"[1, 2]\n" + b"".join(lines[1:]))
    with pytest.raises(StorageError) as err:
        check_journal(path)
    assert str(err.value) == (
        f"journal {path} line 2 is not a record (not an Optuna journal record (no op_code)); "
        f"nothing was written to it. Repair: goalbrake sweep --repair-journal {path}"
    )
    done = repair_journal(path)
    assert done.dropped == [2] and done.backup == path.with_name("study.journal.bak")
    assert [json.loads(line) for line in path.read_bytes().splitlines()] == [
        json.loads(line) for line in lines
    ]


def test_repair_of_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"^no journal at .*nothing\.journal$"):
        repair_journal(tmp_path / "nothing.journal")
