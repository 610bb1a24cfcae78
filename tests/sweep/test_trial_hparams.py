"""One HParams record per sweep trial: the HParamsLogger's keys with the trial's own.

The real sweeps are read back the way TensorBoard's HParams tab reads them (the hparams
plugin's ``/session_groups`` handler over a data provider), and every hparams write in a
trial's event files is checked to carry the same record.
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pytest
import yaml
from tensorboard import context
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import api_pb2, backend_context, list_session_groups
from tensorboard.plugins.hparams import metadata as hp_metadata

from goalbrake.callbacks import HParamsLogger
from goalbrake.callbacks.hparams import BRAKE_KEYS, OPTIMIZER_KEYS
from goalbrake.sweep.attrs import GOAL
from goalbrake.sweep.run.objective import TrialHParams, _with_trial_hparams, goal_source
from goalbrake.sweep.run.trial_callbacks import StopRequested, TrialRecorder
from tests.sweep.helpers import child_env, explain, journal_study, sweep_command, tiny_base

Record = dict[str, float | str | bool]
#: The keys every trial's record has besides the HParamsLogger's and the tuned values.
TRIAL_KEYS = {"trial", "outcome", "base", "method", "seed"}
METRICS = {"hp/val_acc_best", "hp/val_acc_final", "hp/test_acc"}
TRIAL_METRICS = {"hp/objective", "hp/final", "hp/epochs"}
RULE = {"quantile": 0.5, "at": 1.0, "startup": 2, "startup_goal": 0.3}
#: Three trials in a row take about a minute on an idle 2-core CPU, over the helpers' 240 s
#: limit on a busy one.
SWEEP_TIMEOUT_S = 900


# ----------------------------------------------------------------- reading it back
def _value(value: Any) -> float | str | bool:
    return getattr(value, value.WhichOneof("kind"))


def hparams_tab(logdir: Path) -> dict[str, tuple[Record, dict[str, float]]]:
    """Per run: the hparams and metric values TensorBoard's HParams tab shows."""
    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, str(logdir))
    tb = base_plugin.TBContext(logdir=str(logdir), multiplexer=mux, data_provider=provider)
    statuses = [api_pb2.STATUS_UNKNOWN, api_pb2.STATUS_SUCCESS, api_pb2.STATUS_FAILURE]
    request = api_pb2.ListSessionGroupsRequest(
        start_index=0, slice_size=100, allowed_statuses=statuses, include_metrics=True
    )
    handler = list_session_groups.Handler(
        context.RequestContext(), backend_context.Context(tb), "", request
    )
    return {
        group.name: (
            {k: _value(v) for k, v in group.hparams.items()},
            {m.name.tag: m.value for m in group.metric_values},
        )
        for group in handler.run().session_groups
    }


def written_records(run_dir: Path) -> list[Record]:
    """Every hparams record (session start info) written to a run's event files, in order."""
    records = []
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.tag == hp_metadata.SESSION_START_INFO_TAG:
                    content = value.metadata.plugin_data.content
                    info = hp_metadata.parse_session_start_info_plugin_data(content)
                    records.append({k: _value(v) for k, v in info.hparams.items()})
    return records


def _comparable(record: Record) -> dict[str, object]:
    """A record whose NaN values compare equal (NaN != NaN)."""
    return {k: "NaN" if isinstance(v, float) and math.isnan(v) else v for k, v in record.items()}


def _shown(record: Record) -> Record:
    """A record as the tab shows it: NaN hparams are left empty."""
    return {k: v for k, v in record.items() if not (isinstance(v, float) and math.isnan(v))}


def _sweep(root: Path, fm_dir: Path, sweep: dict[str, Any], **base: Any) -> Path:
    config = tiny_base(fm_dir, epochs=2, batches=4)
    config["trainer"]["callbacks"][0]["init_args"].update(half_life=1.0, reference_batches=2)
    config["trainer"]["callbacks"].extend(base.get("callbacks", []))
    root.mkdir(parents=True, exist_ok=True)
    (root / "base.yaml").write_text(yaml.safe_dump(config))
    path = root / f"{sweep['study']}.yaml"
    path.write_text(yaml.safe_dump({"base": "base.yaml", **sweep}, sort_keys=False))
    command = sweep_command("--config", str(path), "--runs-dir", "runs")
    proc = subprocess.run(
        command, cwd=root, env=child_env(), capture_output=True, text=True, timeout=SWEEP_TIMEOUT_S
    )
    assert proc.returncode == 0, explain(proc)
    return root / "runs" / sweep["study"]


# ----------------------------------------------------------------- a from_trials sweep
@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory, fm_dir: Path) -> Path:
    """Three trials: two with the startup goal, the third's measured on trials 0 and 1."""
    sweep = {
        "study": "measured",
        "sampler": "random",
        "n_trials": 3,
        "seed": 0,
        "space": {
            "optimizer.lr": {"low": 0.05, "high": 0.1},
            "brake.goal": {"from_trials": RULE},
        },
    }
    return _sweep(tmp_path_factory.mktemp("trialhp"), fm_dir, sweep)


@pytest.mark.slow
def test_each_trial_has_one_record_with_its_goals_source(measured: Path) -> None:
    trials = journal_study(measured / "study.journal", "measured").get_trials()
    tab = hparams_tab(measured)
    assert sorted(tab) == [f"trial_{t.number}" for t in trials] == ["trial_0", "trial_1", "trial_2"]
    for t in trials:
        records = written_records(measured / f"trial_{t.number}")
        assert records and all(_comparable(r) == _comparable(records[0]) for r in records)
        record = records[0]
        keys = {*OPTIMIZER_KEYS, *BRAKE_KEYS, *TRIAL_KEYS, "optimizer.lr", "brake.goal"}
        assert set(record) == keys
        hparams, metrics = tab[f"trial_{t.number}"]
        assert hparams == _shown(record)  # the tab shows this record, not a second one
        assert set(metrics) <= METRICS | TRIAL_METRICS
        assert TRIAL_METRICS | {"hp/val_acc_best", "hp/val_acc_final"} <= set(metrics)
        assert hparams["trial"] == t.number and hparams["outcome"] == "complete"
        assert hparams["optimizer"] == "PHS" and hparams["mode"] == "remaining"
        assert hparams["optimizer.lr"] == pytest.approx(t.params["optimizer.lr"])
        goal = t.user_attrs[GOAL]
        assert hparams["goal"] == pytest.approx(goal["goal"]) == hparams["brake.goal"]
        assert hparams["goal_source"] == goal_source(goal)
        assert hparams["reference_loss"] > 0
        assert metrics["hp/objective"] == pytest.approx(t.value) == metrics["hp/val_acc_best"]
        assert metrics["hp/final"] == pytest.approx(t.user_attrs["final_value"])
        assert metrics["hp/val_acc_final"] == pytest.approx(t.user_attrs["final_value"])
        assert metrics["hp/epochs"] == 2
    sources = [tab[f"trial_{n}"][0]["goal_source"] for n in range(3)]
    assert sources == [
        "startup goal (0 of 2 trials complete)",
        "startup goal (1 of 2 trials complete); trials 0",
        "q0.5 of L/L₀ at 1 of the budget over 2 trials; trials 0, 1",
    ]
    assert 0 < tab["trial_2"][0]["goal"] < 1 and tab["trial_2"][0]["goal"] != RULE["startup_goal"]


# ----------------------------------------------------------------- a tested grid trial
@pytest.mark.slow
def test_a_tested_trial_keeps_its_configs_hparams_logger_settings_and_test_acc(
    tmp_path: Path, fm_dir: Path
) -> None:
    """``test: true``: the fit's write and the test's carry one record, with ``hp/test_acc``;
    the base config's HParamsLogger gives way to the trial's, its ``params`` kept."""
    own = {"class_path": "goalbrake.HParamsLogger", "init_args": {"params": {"data": "tiny"}}}
    sweep = {"study": "tested", "sampler": "grid", "space": {"optimizer.lr": [0.1]}, "test": True}
    runs = _sweep(tmp_path, fm_dir, sweep, callbacks=[own])
    (t,) = journal_study(runs / "study.journal", "tested").trials
    records = written_records(runs / "trial_0")
    assert len(records) == 2  # the fit's end, the test's end
    assert _comparable(records[0]) == _comparable(records[1])
    assert set(records[0]) == {*OPTIMIZER_KEYS, *BRAKE_KEYS, *TRIAL_KEYS, "optimizer.lr", "data"}
    hparams, metrics = hparams_tab(runs)["trial_0"]
    assert hparams == _shown(records[0])
    assert hparams["data"] == "tiny" and hparams["goal_source"] == "config"
    assert hparams["outcome"] == "complete" and hparams["goal"] == 0.5
    assert set(metrics) == METRICS | TRIAL_METRICS
    assert metrics["hp/test_acc"] == pytest.approx(t.user_attrs["test"]["final"]["test/acc"])
    assert metrics["hp/objective"] == pytest.approx(t.value)


# ----------------------------------------------------------------- the pieces
class _Logger:
    def __init__(self) -> None:
        self.writes: list[tuple[dict[str, Any], dict[str, float]]] = []

    def log_hyperparams(
        self, params: dict[str, Any], metrics: dict[str, float], step: int = 0
    ) -> None:
        self.writes.append((dict(params), dict(metrics)))


def _trainer(logger: _Logger) -> SimpleNamespace:
    return SimpleNamespace(loggers=[logger], callbacks=[], global_step=3, callback_metrics={})


@pytest.mark.parametrize(
    ("exception", "outcome"),
    [
        (optuna.TrialPruned("threshold"), "pruned"),
        (StopRequested("stop"), "interrupted"),
        (KeyboardInterrupt(), "interrupted"),
        (ValueError("boom"), "error"),
    ],
)
def test_a_fit_ended_by_an_exception_writes_its_outcome(
    exception: BaseException, outcome: str
) -> None:
    recorder = TrialRecorder(optuna.trial.FixedTrial({}), "val/acc", "maximize")
    recorder.best, recorder.final = 0.5, 0.25
    recorder.curve["epoch"] = [0, 1, 2]
    callback = TrialHParams(recorder, {"trial": 7, "outcome": ""})
    logger = _Logger()
    callback.on_exception(_trainer(logger), None, exception)  # type: ignore[arg-type]
    ((params, metrics),) = logger.writes
    assert params["outcome"] == outcome and params["trial"] == 7
    assert {k: metrics[k] for k in TRIAL_METRICS} == {
        "hp/objective": 0.5,
        "hp/final": 0.25,
        "hp/epochs": 3.0,
    }


def test_the_configs_hparams_logger_gives_way_to_the_trials_last() -> None:
    recorder = TrialRecorder(optuna.trial.FixedTrial({}), "val/loss", "minimize")
    own = HParamsLogger(monitor="val/loss", mode="min", params={"data": "tiny", "trial": -1})
    callbacks: list[Any] = [own, recorder]
    _with_trial_hparams(callbacks, recorder, {"trial": 4, "outcome": ""})
    assert callbacks[0] is recorder and isinstance(callbacks[1], TrialHParams)
    (trial,) = [c for c in callbacks if isinstance(c, HParamsLogger)]
    assert (trial.monitor, trial.mode, trial.test_metric) == ("val/loss", "min", "test/acc")
    assert trial.params == {"data": "tiny", "trial": 4, "outcome": ""}  # the trial's win


def test_goal_source_names_the_rule_and_its_trials() -> None:
    how = "q0.5 of L/L₀ at 1 of the budget over 3 trials"
    assert goal_source({"how": how, "trials": [0, 2, 5]}) == f"{how}; trials 0, 2, 5"
    startup = "startup goal (0 of 8 trials complete)"
    assert goal_source({"how": startup, "trials": []}) == startup
