"""Ctrl-C of a real ``goalbrake sweep``: a few lines, no traceback, how to resume (issue 18)."""

from __future__ import annotations

import signal
import subprocess
import sys
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


#: A stand-in for a worker's start: the stop arrives while it is still importing (the sleep),
#: before ``stop_on_signals`` is in place, as it did to a real worker under load.
_STARTING_WORKER = """
import signal, sys, threading, time
# Python's own SIGINT handler, also when the test runs from a shell's background job
# (which starts its children with SIGINT ignored).
signal.signal(signal.SIGINT, signal.default_int_handler)
print("started", flush=True)
time.sleep(1.0)
from goalbrake.sweep.run.worker import stop_on_signals
stop = threading.Event()
stop_on_signals(stop)
print("stop set" if stop.wait(10) else "stop lost", flush=True)
"""


def _stop_while_starting(held: bool) -> subprocess.CompletedProcess[str]:
    import contextlib

    from goalbrake.sweep.run.worker import stop_signals_held

    hold = stop_signals_held() if held else contextlib.nullcontext()
    with hold:
        proc = subprocess.Popen(
            [sys.executable, "-c", _STARTING_WORKER],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    assert proc.stdout is not None and proc.stdout.readline() == "started\n"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX signal masks")
def test_a_stop_sent_while_a_worker_starts_waits_for_its_handler() -> None:
    held = _stop_while_starting(held=True)
    assert (held.returncode, held.stdout) == (0, "stop set\n"), held.stderr
    assert "Traceback" not in held.stderr
    # Without the hold the same stop is a KeyboardInterrupt in the start-up: the race the
    # supervisor's hold closes.
    bare = _stop_while_starting(held=False)
    assert bare.returncode != 0 and "KeyboardInterrupt" in bare.stderr, bare
