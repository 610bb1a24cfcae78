"""The sweep YAML: what a study varies, how it samples, prunes and retries.

A sweep file names a base fit config and the fit arguments to vary (see
:mod:`goalbrake.sweep.addressing` for the addresses)::

    base: ../configs/fashionmnist/goal.yaml     # relative to this file, else to the cwd
    objective: {metric: val/acc, direction: maximize}
    sampler: tpe                    # tpe | random | grid, or {name: tpe, <TPESampler args>}
    pruner: {name: median, n_startup_trials: 5, n_warmup_steps: 3}
    n_trials: 40                    # trials that must COMPLETE (pruned/failed don't count)
    seed: 0                         # sampler seed and the fits' first seed
    fixed: {trainer.max_epochs: 20}
    space:
      optimizer.lr: {low: 0.001, high: 0.5, log: true}
      optimizer.mass: {low: 1, high: 100, log: true}
      brake.goal: {low: 0.05, high: 0.7}
      brake.factor: {type: int, low: 2, high: 100, log: true}
      brake.mode: [remaining, reduction]        # a list: categorical (tpe) / grid values

A grid study (``sampler: grid``) gives every space parameter as a list, optionally adds
``rows:`` (named groups of settings, each a small grid of its own, possibly on another
base config) and ``seeds: k``: every grid point is run with the seeds ``seed … seed+k−1``,
one trial per (point, seed), and the report aggregates mean ± std per point.

Every error is one line naming the bad value and what is allowed (:class:`SweepSpecError`),
raised before any trial starts.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml

from goalbrake.sweep.addressing import Address, AddressError, assign, resolve

__all__ = [
    "PRUNERS",
    "SAMPLERS",
    "Choices",
    "FloatRange",
    "IntRange",
    "Row",
    "SweepSpec",
    "SweepSpecError",
    "TrialSetting",
    "load_spec",
    "method_of",
]

SAMPLERS: dict[str, type[optuna.samplers.BaseSampler]] = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "grid": optuna.samplers.GridSampler,
}
PRUNERS: dict[str, type[optuna.pruners.BasePruner]] = {
    "none": optuna.pruners.NopPruner,
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "threshold": optuna.pruners.ThresholdPruner,
}
DIRECTIONS = ("maximize", "minimize")
TOP_LEVEL_KEYS = (
    "study",
    "description",
    "base",
    "objective",
    "sampler",
    "pruner",
    "n_trials",
    "timeout",
    "seed",
    "seeds",
    "fixed",
    "space",
    "rows",
    "retries",
    "heartbeat",
    "checkpoint",
    "test",
)
#: Sampler arguments the sweep sets itself.
_SAMPLER_OWNED = {"search_space", "seed"}
#: Parameter names the sweep adds to Optuna's params.
ROW_PARAM = "row"
SEED_PARAM = "seed"
DEFAULT_N_TRIALS = 20
_FLOAT_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class SweepSpecError(ValueError):
    """A sweep YAML that cannot run; the message is one line and names the fix."""


# ----------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class FloatRange:
    """A float parameter in [low, high], log-uniform when ``log``."""

    low: float
    high: float
    log: bool = False
    step: float | None = None

    def suggest(self, trial: optuna.Trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log, step=self.step)


@dataclass(frozen=True)
class IntRange:
    """An integer parameter in [low, high], log-uniform when ``log``."""

    low: int
    high: int
    log: bool = False
    step: int = 1

    def suggest(self, trial: optuna.Trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, log=self.log, step=self.step)


@dataclass(frozen=True)
class Choices:
    """Categorical values (a grid axis under the grid sampler)."""

    values: tuple[Any, ...]

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        return trial.suggest_categorical(name, self.values)


ParamSpec = FloatRange | IntRange | Choices


@dataclass(frozen=True)
class Row:
    """One grid row: a label, its base config and the values it sets."""

    label: str
    base: str
    values: Mapping[str, Any]


@dataclass(frozen=True)
class TrialSetting:
    """What one trial runs: the base config, the values it sets, and the fit seed."""

    base: str
    values: Mapping[str, Any]
    seed: int
    row: str | None = None


# ----------------------------------------------------------------------------- helpers
def _fail(where: str, message: str) -> SweepSpecError:
    return SweepSpecError(f"{where}: {message}")


def _number(value: Any) -> Any:
    """YAML 1.1 reads ``1e-3`` as a string; read number-looking strings as floats."""
    if isinstance(value, str) and _FLOAT_RE.match(value.strip()):
        return float(value)
    return value


def _scalar(value: Any, where: str, what: str) -> Any:
    value = _number(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, float) and not math.isfinite(value):
            raise _fail(where, f"invalid value {value!r} for {what} (must be finite)")
        return value
    raise _fail(
        where, f"invalid value {value!r} for {what} (must be a number, string, bool or null)"
    )


def method_of(config: Mapping[str, Any]) -> str:
    """``sgd``, ``phs`` or ``goal`` (PHS with GoalBrake) for a fit config; else the class."""
    class_path = str((config.get("optimizer") or {}).get("class_path", "none"))
    name = class_path.rpartition(".")[2]
    if name == "SGD":
        return "sgd"
    if name == "PHS":
        callbacks = (config.get("trainer") or {}).get("callbacks") or []
        braked = any(
            isinstance(c, Mapping) and str(c.get("class_path", "")).endswith(".GoalBrake")
            for c in callbacks
        )
        return "goal" if braked else "phs"
    return name.lower()


def _get(config: Mapping[str, Any], address: Address) -> Any:
    node: Any = config
    for key in address.keys:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return None
    return node


# ----------------------------------------------------------------------------- the spec
@dataclass
class SweepSpec:
    """A validated sweep file. Build it with :func:`load_spec`."""

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
    #: Test each COMPLETE trial after its fit (final weights, and the best-val checkpoint
    #: when ``checkpoint``); for reproductions only, never for a search that selects.
    test: bool = False
    #: Parsed base configs by their path as written in the spec.
    bases: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Where each base config lives on disk.
    base_files: dict[str, Path] = field(default_factory=dict)

    # -- the search space ---------------------------------------------------------------
    @property
    def is_grid(self) -> bool:
        return self.sampler == "grid"

    def grid_space(self) -> dict[str, list[Any]]:
        """The GridSampler search space: rows, space lists and the seed axis."""
        space: dict[str, list[Any]] = {}
        if self.rows:
            space[ROW_PARAM] = [row.label for row in self.rows]
        for name, spec in self.space.items():
            assert isinstance(spec, Choices)
            space[name] = list(spec.values)
        if self.seeds > 1:
            space[SEED_PARAM] = list(range(self.seed, self.seed + self.seeds))
        return space

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid_space().values()) if self.is_grid else 0

    def grid_key(self, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The grid point of a trial's params (None when a grid param is missing)."""
        names = sorted(self.grid_space())
        if any(n not in params for n in names):
            return None
        return tuple(params[n] for n in names)

    def grid_keys(self) -> set[tuple[Any, ...]]:
        space = self.grid_space()
        names = sorted(space)
        return set(itertools.product(*(space[n] for n in names)))

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
        return names

    def suggest(self, trial: optuna.Trial) -> TrialSetting:
        """Sample (or read from the grid) one trial's setting."""
        values: dict[str, Any] = {}
        base, row_label = self.base, None
        if self.rows:
            row_label = trial.suggest_categorical(ROW_PARAM, [r.label for r in self.rows])
            row = next(r for r in self.rows if r.label == row_label)
            base = row.base
            values.update(row.values)
        for name, spec in self.space.items():
            values[name] = spec.suggest(trial, name)
        seed = self.seed
        if self.is_grid and self.seeds > 1:
            seed = int(
                trial.suggest_categorical(
                    SEED_PARAM, list(range(self.seed, self.seed + self.seeds))
                )
            )
        return TrialSetting(base=base, values=values, seed=seed, row=row_label)

    # -- configs --------------------------------------------------------------------------
    def address(self, base: str, name: str) -> Address:
        return resolve(name, self.bases[base])

    def trial_config(self, setting: TrialSetting) -> dict[str, Any]:
        """The fit config of one trial: the base config with fixed values, values and seed."""
        config = copy.deepcopy(self.bases[setting.base])
        for name, value in {**self.fixed, **setting.values}.items():
            assign(config, self.address(setting.base, name), value)
        config["seed_everything"] = setting.seed
        data = config.get("data")
        if isinstance(data, dict) and "class_path" in data:
            try:
                assign(config, resolve("data.seed", config), setting.seed)
            except AddressError:
                pass  # a DataModule without a seed argument: seed_everything alone
        return config

    def describe(self, setting: TrialSetting, config: Mapping[str, Any]) -> dict[str, Any]:
        """The flat record a trial stores: every reported parameter's effective value."""
        record: dict[str, Any] = {"base": setting.base, "method": method_of(config)}
        if setting.row is not None:
            record[ROW_PARAM] = setting.row
        for name in self.param_names():
            try:
                value = _get(config, self.address(setting.base, name))
            except AddressError:
                continue
            if value is None or isinstance(value, (bool, int, float, str)):
                record[name] = value
        record[SEED_PARAM] = setting.seed
        return record

    def fingerprint(self) -> str:
        """A hash of everything that defines the study's trials (not n_trials/timeout)."""
        defining = {
            k: v
            for k, v in self.raw.items()
            if k not in ("n_trials", "timeout", "retries", "heartbeat", "description", "study")
        }
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


# ----------------------------------------------------------------------------- parsing
def _parse_param(name: str, raw: Any, where: str, grid: bool) -> ParamSpec:
    if isinstance(raw, Sequence) and not isinstance(raw, str):
        values = tuple(_scalar(v, where, name) for v in raw)
        if not values:
            raise _fail(where, f"empty value list for {name} (give at least one value)")
        if len(set(map(repr, values))) != len(values):
            raise _fail(where, f"duplicate values in {name}: {list(values)}")
        return Choices(values)
    if not isinstance(raw, Mapping):
        raise _fail(
            where,
            f"invalid search space for {name}: {raw!r} (a list of values, "
            "{low: , high: , log: }, or {choices: [...]}; constants go under fixed:)",
        )
    if "choices" in raw:
        extra = set(raw) - {"choices"}
        if extra:
            raise _fail(where, f"unknown key {sorted(extra)[0]!r} for {name} (choices alone)")
        return _parse_param(name, raw["choices"], where, grid)
    allowed = {"type", "low", "high", "log", "step"}
    extra = set(raw) - allowed
    if extra:
        raise _fail(
            where,
            f"unknown key {sorted(extra)[0]!r} for {name} (allowed: {', '.join(sorted(allowed))}"
            ", or choices)",
        )
    if grid:
        raise _fail(
            where,
            f"sampler grid needs a list of values for {name}, not a range "
            f"({raw.get('low')}..{raw.get('high')})",
        )
    kind = raw.get("type", "float")
    if kind not in ("float", "int"):
        raise _fail(where, f"invalid type {kind!r} for {name} (must be float or int)")
    if "low" not in raw or "high" not in raw:
        raise _fail(where, f"range of {name} needs low and high")
    low, high = _number(raw["low"]), _number(raw["high"])
    log, step = raw.get("log", False), _number(raw.get("step"))
    for label, value in (("low", low), ("high", high)):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise _fail(where, f"invalid {label} {value!r} for {name} (must be a finite number)")
    if not isinstance(log, bool):
        raise _fail(where, f"invalid log {log!r} for {name} (must be true or false)")
    if low >= high:
        raise _fail(where, f"empty range for {name}: low {low} >= high {high} (need low < high)")
    if log and low <= 0:
        raise _fail(where, f"log range for {name} needs low > 0, got low {low}")
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0:
            raise _fail(where, f"invalid step {step!r} for {name} (must be > 0)")
        if log:
            raise _fail(where, f"step and log cannot be combined for {name}")
    if kind == "int":
        for label, value in (("low", low), ("high", high), ("step", step)):
            if value is not None and float(value) != int(value):
                raise _fail(where, f"invalid {label} {value!r} for int {name} (must be an integer)")
        return IntRange(int(low), int(high), log, int(step or 1))
    return FloatRange(float(low), float(high), log, None if step is None else float(step))


def _named_args(
    where: str, what: str, raw: Any, table: Mapping[str, type], default: str
) -> tuple[str, dict[str, Any]]:
    if raw is None:
        raw = default
    if isinstance(raw, str):
        name, args = raw, {}
    elif isinstance(raw, Mapping) and "name" in raw:
        name, args = raw["name"], {k: _number(v) for k, v in raw.items() if k != "name"}
    else:
        raise _fail(where, f"invalid {what} {raw!r} (a name, or {{name: ..., <arguments>}})")
    if name not in table:
        raise _fail(where, f"unknown {what} {name!r} (allowed: {', '.join(table)})")
    cls = table[name]
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    if what == "sampler":
        allowed = [p for p in allowed if p not in _SAMPLER_OWNED]
    for arg in args:
        if arg not in allowed:
            raise _fail(
                where,
                f"unknown {what} argument {arg!r} for {name} "
                f"(allowed: {', '.join(allowed) or 'none'})",
            )
    return name, args


def _int_key(raw: Mapping[str, Any], key: str, default: int, low: int, where: str) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _fail(where, f"invalid {key} {value!r} (must be an integer >= {low})")
    return value


def _find_base(value: Any, spec_dir: Path, where: str) -> Path:
    if not isinstance(value, str) or not value:
        raise _fail(where, "missing base: (the path of a fit config, e.g. configs/x/goal.yaml)")
    for candidate in (spec_dir / value, Path.cwd() / value):
        if candidate.is_file():
            return candidate
    raise _fail(
        where,
        f"base config {value!r} not found (looked in {spec_dir} and {Path.cwd()})",
    )


def _load_base(file: Path, where: str) -> dict[str, Any]:
    try:
        config = yaml.safe_load(file.read_text())
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0]
        raise _fail(where, f"base config {file} is not valid YAML ({first})") from None
    if not isinstance(config, dict):
        raise _fail(where, f"base config {file} is not a mapping of fit arguments")
    return config


def load_spec(path: str | Path, *, study: str | None = None) -> SweepSpec:
    """Read and fully validate a sweep YAML.

    Args:
        path: the sweep file.
        study: the study name (default: the file's ``study:``, else its stem).

    Raises:
        SweepSpecError: anything that would stop a trial, in one line.

    Example:
        >>> spec = load_spec("sweeps/fashionmnist_goal.yaml")  # doctest: +SKIP
        >>> spec.sampler, spec.target_trials()  # doctest: +SKIP
        ('tpe', 40)
    """
    path = Path(path)
    where = str(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        raise SweepSpecError(f"{where}: cannot read the sweep file ({err.strerror})") from None
    except yaml.YAMLError as err:
        raise _fail(where, f"not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise _fail(where, "a sweep file is a mapping (base:, objective:, space:, ...)")
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            raise _fail(where, f"unknown key {key!r} (allowed: {', '.join(TOP_LEVEL_KEYS)})")

    study_name = study or raw.get("study") or path.stem
    if not isinstance(study_name, str) or not re.match(r"^[A-Za-z0-9_.-]+$", study_name):
        raise _fail(where, f"invalid study name {study_name!r} (letters, digits, _ . -)")

    objective = raw.get("objective") or {}
    if isinstance(objective, str):
        objective = {"metric": objective}
    if not isinstance(objective, Mapping):
        raise _fail(
            where, f"invalid objective {objective!r} ({{metric: val/acc, direction: maximize}})"
        )
    extra = set(objective) - {"metric", "direction"}
    if extra:
        raise _fail(
            where, f"unknown objective key {sorted(extra)[0]!r} (allowed: metric, direction)"
        )
    metric = objective.get("metric", "val/acc")
    if not isinstance(metric, str) or not metric:
        raise _fail(where, f"invalid objective metric {metric!r} (a logged name, e.g. val/acc)")
    direction = objective.get("direction")
    if direction is None:
        if "acc" in metric:
            direction = "maximize"
        elif "loss" in metric:
            direction = "minimize"
        else:
            raise _fail(
                where, f"objective metric {metric!r} needs a direction (maximize or minimize)"
            )
    if direction not in DIRECTIONS:
        raise _fail(
            where, f"invalid objective direction {direction!r} (allowed: maximize, minimize)"
        )

    sampler, sampler_args = _named_args(where, "sampler", raw.get("sampler"), SAMPLERS, "tpe")
    pruner, pruner_args = _named_args(where, "pruner", raw.get("pruner"), PRUNERS, "none")
    if pruner != "none":
        try:
            PRUNERS[pruner](**pruner_args)
        except (TypeError, ValueError) as err:
            raise _fail(where, f"invalid pruner arguments for {pruner}: {err}") from None
    grid = sampler == "grid"

    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise _fail(where, f"invalid seed {seed!r} (must be an integer >= 0)")
    seeds = _int_key(raw, "seeds", 1, 1, where)
    if seeds > 1 and not grid:
        raise _fail(
            where,
            f"seeds: {seeds} needs sampler: grid (a {sampler} trial is one fit with seed {seed}; "
            "rerun its best points as a grid study with seeds for mean ± std)",
        )
    retries = _int_key(raw, "retries", 2, 0, where)
    n_trials = raw.get("n_trials")
    if n_trials is not None and (
        isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1
    ):
        raise _fail(where, f"invalid n_trials {n_trials!r} (must be an integer >= 1)")
    timeout = _number(raw.get("timeout"))
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
    ):
        raise _fail(where, f"invalid timeout {timeout!r} (seconds, > 0)")
    heartbeat = raw.get("heartbeat") or {}
    if not isinstance(heartbeat, Mapping) or set(heartbeat) - {"interval", "grace_period"}:
        raise _fail(where, f"invalid heartbeat {heartbeat!r} ({{interval: 10, grace_period: 30}})")
    interval = _int_key(heartbeat, "interval", 10, 1, where)
    grace = _int_key(heartbeat, "grace_period", max(30, 3 * interval), 1, where)
    if grace <= interval:
        raise _fail(where, f"heartbeat grace_period {grace} must exceed interval {interval}")
    checkpoint = raw.get("checkpoint", False)
    if not isinstance(checkpoint, bool):
        raise _fail(where, f"invalid checkpoint {checkpoint!r} (true or false)")
    test = raw.get("test", False)
    if not isinstance(test, bool):
        raise _fail(where, f"invalid test {test!r} (true or false)")
    if test and sampler != "grid":
        raise _fail(
            where,
            f"test: true needs sampler: grid (got {sampler!r}): a search "
            "selects settings and must not see the test set; test the chosen one with "
            "goalbrake test",
        )

    spec_dir = path.parent
    base_value = raw.get("base")
    bases: dict[str, dict[str, Any]] = {}
    base_files: dict[str, Path] = {}

    def add_base(value: Any) -> str:
        if value not in bases:
            file = _find_base(value, spec_dir, where)
            bases[value] = _load_base(file, where)
            base_files[value] = file
        return value

    rows_raw = raw.get("rows")
    if rows_raw is not None and not grid:
        raise _fail(where, f"rows: needs sampler: grid (the sampler is {sampler})")
    if base_value is None and not rows_raw:
        raise _fail(where, "missing base: (the path of a fit config, e.g. configs/x/goal.yaml)")
    if base_value is not None:
        add_base(base_value)

    def check(base: str, name: str, context: str) -> str:
        try:
            return resolve(name, bases[base]).name
        except AddressError as err:
            raise _fail(where, f"{context}{err} (base {base})") from None

    fixed_raw = raw.get("fixed") or {}
    if not isinstance(fixed_raw, Mapping):
        raise _fail(where, f"invalid fixed {fixed_raw!r} (a mapping of parameter: value)")
    space_raw = raw.get("space") or {}
    if not isinstance(space_raw, Mapping):
        raise _fail(where, f"invalid space {space_raw!r} (a mapping of parameter: range or list)")
    if not space_raw and not rows_raw:
        raise _fail(where, "empty search space (give space: and/or rows:)")

    # The bases the rows use; every address must exist in each of them.
    row_entries: list[tuple[str, dict[str, Any], str | None]] = []
    for i, entry in enumerate(rows_raw or []):
        if not isinstance(entry, Mapping):
            raise _fail(where, f"rows[{i}] is not a mapping of parameter: value")
        entry = dict(entry)
        label = entry.pop("name", None)
        if label is not None and not isinstance(label, str):
            raise _fail(where, f"rows[{i}]: invalid name {label!r} (a string)")
        row_base = entry.pop("base", base_value)
        if row_base is None:
            raise _fail(where, f"rows[{i}] has no base: and there is no top-level base:")
        row_entries.append((add_base(row_base), entry, label))
    used_bases = sorted({b for b, _, _ in row_entries} or {base_value})

    fixed: dict[str, Any] = {}
    for name, value in fixed_raw.items():
        canonical = {check(b, str(name), "fixed: ") for b in used_bases}.pop()
        fixed[canonical] = (
            _scalar(value, where, canonical) if not isinstance(value, (list, dict)) else value
        )
    space: dict[str, ParamSpec] = {}
    for name, value in space_raw.items():
        canonical = {check(b, str(name), "space: ") for b in used_bases}.pop()
        if canonical in space or canonical in fixed:
            raise _fail(where, f"parameter {canonical} is given twice")
        space[canonical] = _parse_param(canonical, value, where, grid)
        if canonical == ROW_PARAM or canonical == SEED_PARAM:  # pragma: no cover - not paths
            raise _fail(where, f"reserved parameter name {canonical}")

    rows: list[Row] = []
    for i, (row_base, entry, label) in enumerate(row_entries):
        axes: dict[str, tuple[Any, ...]] = {}
        for name, value in entry.items():
            canonical = check(row_base, str(name), f"rows[{i}]: ")
            if canonical in space:
                raise _fail(where, f"rows[{i}]: {canonical} is also in space: (give it once)")
            if isinstance(value, Sequence) and not isinstance(value, str):
                if not value:
                    raise _fail(where, f"rows[{i}]: empty value list for {canonical}")
                axes[canonical] = tuple(_scalar(v, where, canonical) for v in value)
            else:
                axes[canonical] = (_scalar(value, where, canonical),)
        names = list(axes)
        for combo in itertools.product(*axes.values()):
            values = dict(zip(names, combo, strict=True))
            varying = [n for n in names if len(axes[n]) > 1]
            stem = label or f"{Path(row_base).stem}"
            detail = ", ".join(
                f"{n.rpartition('.')[2]}={values[n]}" for n in (varying if label else names)
            )
            row_label = f"{stem} {detail}".strip() if detail else stem
            rows.append(Row(row_label, row_base, values))
    labels = [r.label for r in rows]
    for label in labels:
        if labels.count(label) > 1:
            raise _fail(where, f"two rows have the same label {label!r} (give them distinct name:)")

    spec = SweepSpec(
        path=path,
        raw=raw,
        study=study_name,
        base=base_value if base_value is not None else row_entries[0][0],
        metric=metric,
        direction=direction,
        sampler=sampler,
        sampler_args=sampler_args,
        pruner=pruner,
        pruner_args=pruner_args,
        n_trials=n_trials,
        timeout=None if timeout is None else float(timeout),
        seed=seed,
        seeds=seeds,
        fixed=fixed,
        space=space,
        rows=rows,
        retries=retries,
        heartbeat_interval=interval,
        grace_period=grace,
        checkpoint=checkpoint,
        test=test,
        bases=bases,
        base_files=base_files,
    )
    if grid and spec.n_trials is not None and spec.n_trials > spec.grid_size():
        raise _fail(
            where,
            f"n_trials {spec.n_trials} exceeds the grid's {spec.grid_size()} points "
            "(a grid runs each point once per seed)",
        )
    return spec
