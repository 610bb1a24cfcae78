"""A validated sweep file (:class:`SweepSpec`): its space, and every trial's fit config.

:func:`goalbrake.sweep.define.load.load_spec` builds it, with every address resolved
once against the base configs (:attr:`SweepSpec.addresses`); :meth:`SweepSpec.suggest`
samples one trial's :class:`TrialSetting` and :func:`fit_config` turns it into the fit
config the app's builder runs, with the logger and checkpoint of the app's one policy
(:func:`goalbrake.app.logger_config`, :func:`goalbrake.app.checkpoint_config`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna

from goalbrake.app import callback_name, checkpoint_config, is_goal_brake, logger_config
from goalbrake.sweep.attrs import RECORD_BASE, RECORD_METHOD, ROW_PARAM, SEED_PARAM
from goalbrake.sweep.define.addressing import Address, assign
from goalbrake.sweep.define.grid import SweepGridSampler
from goalbrake.sweep.define.params import GOAL_PARAM, Choices, GoalFromTrials, ParamSpec, Scalar

__all__ = [
    "DEFAULT_N_TRIALS",
    "Config",
    "Row",
    "SweepSpec",
    "TrialSetting",
    "fit_config",
    "method_of",
    "trial_dir",
]

#: A parsed fit config (the YAML of ``goalbrake fit --config``).
Config = dict[str, Any]
DEFAULT_N_TRIALS = 20
#: Keys of a sweep file that do not change what its trials run.
_NOT_DEFINING = ("n_trials", "timeout", "retries", "heartbeat", "description", "study")


@dataclass(frozen=True)
class Row:
    """One grid row: a label, its base config and the values it sets."""

    label: str
    base: str
    values: Mapping[str, Scalar]


@dataclass(frozen=True)
class TrialSetting:
    """What one trial runs: the base config, the values it sets, and the fit seed."""

    base: str
    values: Mapping[str, Scalar]
    seed: int
    row: str | None = None


def method_of(config: Mapping[str, Any]) -> str:
    """``sgd``, ``phs``, ``goal`` (PHS with GoalBrake) or ``step`` (PHS with GoalBrake's
    clock, ``at_step``) for a fit config; else the optimizer's class name."""
    name = callback_name(config.get("optimizer") or {}) or "none"
    if name == "SGD":
        return "sgd"
    if name == "PHS":
        callbacks = (config.get("trainer") or {}).get("callbacks") or []
        brakes = [c for c in callbacks if is_goal_brake(c)]
        if not brakes:
            return "phs"
        clock = any((c.get("init_args") or {}).get("at_step") is not None for c in brakes)
        return "step" if clock else "goal"
    return name.lower()


def _get(config: Mapping[str, Any], address: Address) -> object:
    node: Any = config
    for key in address.keys:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return None
    return node


@dataclass
class SweepSpec:
    """A validated sweep file. Build it with :func:`~goalbrake.sweep.define.load.load_spec`."""

    path: Path
    raw: dict[str, Any]
    study: str
    base: str
    metric: str
    direction: str
    sampler: str
    sampler_args: dict[str, Any]
    pruner: str
    pruner_args: dict[str, Any]
    n_trials: int | None
    timeout: float | None
    seed: int
    seeds: int
    fixed: dict[str, Any]
    space: dict[str, ParamSpec]
    rows: list[Row]
    retries: int
    heartbeat_interval: int
    grace_period: int
    checkpoint: bool
    #: ``brake.goal`` measured on the study's earlier trials (``space: {brake.goal:
    #: {from_trials: ...}}``), set per trial by :mod:`goalbrake.sweep.run.goal_from_trials`.
    goal_rule: GoalFromTrials | None = None
    #: Test each COMPLETE trial after its fit (final weights, and the best-val checkpoint
    #: when ``checkpoint``); for reproductions only, never for a search that selects.
    test: bool = False
    #: Parsed base configs by their path as written in the spec.
    bases: dict[str, Config] = field(default_factory=dict)
    #: Where each base config lives on disk.
    base_files: dict[str, Path] = field(default_factory=dict)
    #: Every parameter's address in each base config where it exists, resolved at load.
    addresses: dict[str, dict[str, Address]] = field(default_factory=dict)
    #: The address of ``data.seed`` in each base config (None: the DataModule has none).
    seed_addresses: dict[str, Address | None] = field(default_factory=dict)

    # -- the search space ---------------------------------------------------------------
    @property
    def is_grid(self) -> bool:
        return self.sampler == "grid"

    def seed_values(self) -> list[int]:
        """The fit seeds of every grid point."""
        return list(range(self.seed, self.seed + self.seeds))

    def grid_space(self) -> dict[str, list[Scalar]]:
        """The GridSampler search space: rows, space lists and the seed axis."""
        space: dict[str, list[Scalar]] = {}
        if self.rows:
            space[ROW_PARAM] = [row.label for row in self.rows]
        for name, spec in self.space.items():
            assert isinstance(spec, Choices)
            space[name] = list(spec.values)
        if self.seeds > 1:
            space[SEED_PARAM] = list(self.seed_values())
        return space

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid_space().values()) if self.is_grid else 0

    def grid_sampler(self, seed: int | None = None) -> SweepGridSampler:
        """The sampler of a grid study (:class:`SweepGridSampler`); :meth:`suggest` needs it."""
        return SweepGridSampler(
            self.grid_space(), {r.label: r.values for r in self.rows}, seed=seed
        )

    def row_params(self) -> dict[str, tuple[Scalar, ...]]:
        """The settings the rows vary, each with its values: Optuna parameters of their own."""
        values: dict[str, dict[str, Scalar]] = {}
        for row in self.rows:
            for name, value in row.values.items():
                values.setdefault(name, {}).setdefault(repr(value), value)
        return {n: tuple(v.values()) for n, v in values.items() if len(v) > 1}

    def target_trials(self) -> int:
        """How many trials must COMPLETE: ``n_trials``, else the grid size, else 20."""
        if self.n_trials is not None:
            return self.n_trials
        return self.grid_size() if self.is_grid else DEFAULT_N_TRIALS

    def param_names(self) -> list[str]:
        """The hyperparameters a report shows, in the order the spec names them."""
        names: list[str] = []
        for row in self.rows:
            names.extend(n for n in row.values if n not in names)
        names.extend(n for n in self.space if n not in names)
        if self.goal_rule is not None and GOAL_PARAM not in names:
            names.append(GOAL_PARAM)
        return names

    def suggest(self, trial: optuna.Trial) -> TrialSetting:
        """Sample (or read from the grid) one trial's setting.

        A grid trial's parameters are the settings it varies: the space's axes and the
        rows' varying values (:meth:`row_params`, answered by :meth:`grid_sampler`), not
        the row's label; its seed is not a parameter (it is in the ``config`` user attr).
        """
        if not self.is_grid:
            values = {name: spec.suggest(trial, name) for name, spec in self.space.items()}
            return TrialSetting(base=self.base, values=values, seed=self.seed)
        sampler = trial.study.sampler
        if not isinstance(sampler, SweepGridSampler):
            raise TypeError(
                f"a grid study samples with SweepSpec.grid_sampler(), not {type(sampler).__name__}"
            )
        point = sampler.point_of(trial)
        base, label, values = self.base, None, {}
        if self.rows:
            row = next(r for r in self.rows if r.label == point[ROW_PARAM])
            base, label, values = row.base, row.label, dict(row.values)
            for name, choices in self.row_params().items():
                if name in values:
                    trial.suggest_categorical(name, choices)
        for name, spec in self.space.items():
            values[name] = spec.suggest(trial, name)
        seed = int(point.get(SEED_PARAM, self.seed))  # type: ignore[arg-type]
        return TrialSetting(base=base, values=values, seed=seed, row=label)

    @staticmethod
    def with_goal(setting: TrialSetting, goal: float) -> TrialSetting:
        """``setting`` with the ``brake.goal`` a ``from_trials`` rule measured for it."""
        return replace(setting, values={**setting.values, GOAL_PARAM: goal})

    # -- configs --------------------------------------------------------------------------
    def trial_config(self, setting: TrialSetting) -> Config:
        """The fit config of one trial: the base config with fixed values, values and seed."""
        config = copy.deepcopy(self.bases[setting.base])
        addresses = self.addresses[setting.base]
        for name, value in {**self.fixed, **setting.values}.items():
            assign(config, addresses[name], value)
        config["seed_everything"] = setting.seed
        seed_address = self.seed_addresses.get(setting.base)
        if seed_address is not None:
            assign(config, seed_address, setting.seed)
        return config

    def describe(self, setting: TrialSetting, config: Mapping[str, Any]) -> dict[str, Scalar]:
        """The flat record a trial stores: every reported parameter's effective value."""
        record: dict[str, Scalar] = {
            RECORD_BASE: setting.base,
            RECORD_METHOD: method_of(config),
        }
        if setting.row is not None:
            record[ROW_PARAM] = setting.row
        addresses = self.addresses[setting.base]
        for name in self.param_names():
            if name not in addresses:
                continue
            value = _get(config, addresses[name])
            if value is None or isinstance(value, (bool, int, float, str)):
                record[name] = value
        record[SEED_PARAM] = setting.seed
        return record

    def fingerprint(self) -> str:
        """A hash of everything that defines the study's trials (not n_trials/timeout)."""
        defining = {k: v for k, v in self.raw.items() if k not in _NOT_DEFINING}
        blob = json.dumps(
            {"spec": defining, "bases": self.bases}, sort_keys=True, default=str
        ).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def study_attrs(self) -> dict[str, Any]:
        """What the report needs from the study alone (stored as study user attrs)."""
        return {
            "spec_file": str(self.path),
            "fingerprint": self.fingerprint(),
            "metric": self.metric,
            "direction": self.direction,
            "sampler": self.sampler,
            "pruner": self.pruner,
            "seeds": self.seeds,
            "params": self.param_names(),
            "grid_size": self.grid_size(),
            "target_trials": self.target_trials(),
            "spec": self.raw,
            "fixed": self.fixed,
            "bases": self.bases,
        }


def trial_dir(runs_dir: str | Path, study: str, number: int) -> Path:
    """The TensorBoard run directory of trial ``number``."""
    return Path(runs_dir) / study / f"trial_{number}"


def fit_config(spec: SweepSpec, setting: TrialSetting, runs_dir: str | Path, number: int) -> Config:
    """The full fit config of a trial, with its logger (and checkpoint) set by the sweep."""
    config = spec.trial_config(setting)
    trainer = config.setdefault("trainer", {})
    trainer["logger"] = logger_config(str(Path(runs_dir) / spec.study), "", f"trial_{number}")
    trainer["enable_progress_bar"] = False
    trainer.setdefault("enable_model_summary", False)
    callbacks = [c for c in trainer.get("callbacks") or [] if callback_name(c) != "ModelCheckpoint"]
    if spec.checkpoint:
        mode = "max" if spec.direction == "maximize" else "min"
        callbacks.append(checkpoint_config(spec.metric, mode))
    trainer["callbacks"] = callbacks
    trainer["enable_checkpointing"] = spec.checkpoint
    return config
