"""Ctrl-C of a real ``goalbrake sweep``: a few lines, no traceback, how to resume (issue 18)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import yaml

from tests.sweep.helpers import start_sweep, tiny_base, trained_trial, wait_for

pytestmark = pytest.mark.slow

#: Lines a stopped sweep may print from the SIGINT on (what stopped, what is retried, how
#: to resume, the final count).
MAX_STOP_LINES = 6


def test_ctrl_c_says_what_stopped_and_how_to_resume_in_a_few_lines(
    tmp_path: Path, fm_dir: Path
) -> None:
    gate = tmp_path / "gate"
    (tmp_path / "base.yaml").write_text(
        yaml.safe_dump(tiny_base(fm_dir, epochs=4, batches=4, gate=gate))
    )
    spec = {"base": "base.yaml", "sampler": "grid", "space": {"optimizer.lr": [0.05, 0.1, 0.2]}}
    path = tmp_path / "stop.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    journal = tmp_path / "runs" / "stop" / "study.journal"
    log = tmp_path / "sweep.log"
    proc = start_sweep(
        "--config", str(path), "--workers", "2", "--runs-dir", "runs", cwd=tmp_path, log=log
    )
    try:
        wait_for(
            lambda: trained_trial(journal, "stop") and "worker 1" in log.read_text(),
            150,
            "a trial past its first epoch",
            proc=proc,
            log=log,
        )
        before = len(log.read_text().splitlines())
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 130, log.read_text()[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    after = text.splitlines()[before:]
    assert "Traceback" not in text, text[-4000:]
    assert len(after) <= MAX_STOP_LINES, "\n".join(after)
    assert after[0].startswith("goalbrake sweep: stopping: "), after
    stopped = [line for line in after if line.startswith("goalbrake sweep: stopped trial ")]
    assert len(stopped) == 1, after
    assert stopped[0].endswith(": re-queued with the same parameters, they run first on resume")
    assert "optimizer.lr=" in stopped[0]
    resume = f"goalbrake sweep --config {path} --workers 2 --runs-dir runs"
    assert after[-1] == f"goalbrake sweep: resume with: {resume}", after
