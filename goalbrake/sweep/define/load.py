"""Read a sweep YAML into a :class:`~goalbrake.sweep.define.spec.SweepSpec`.

A sweep file names a base fit config and the fit arguments to vary (see
:mod:`goalbrake.sweep.define.addressing` for the addresses)::

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

Instead of a range, ``brake.goal`` may be measured on the study's own COMPLETE earlier
trials (not sampled; ``brake.mode`` is then ``remaining``, set here)::

      brake.goal: {from_trials: {quantile: 0.5, at: 0.5, startup: 8, startup_goal: 0.15}}

the median of the smoothed L/L₀ they reached at 50 % of their budget; 0.15 until 8 trials
are complete (:class:`~goalbrake.sweep.define.params.GoalFromTrials`). TPE and random
samplers only.

A grid study (``sampler: grid``) gives every space parameter as a list, optionally adds
``rows:`` (named groups of settings, each a small grid of its own, possibly on another
base config) and ``seeds: k``: every grid point is run with the seeds ``seed … seed+k−1``,
one trial per (point, seed), and the report aggregates mean ± std per point.

Every address is resolved once here, against each base config, and the spec keeps the
result for every trial. Every error is one line naming the bad value and what is allowed
(:class:`~goalbrake.sweep.define.params.SweepSpecError`), raised before any trial starts.
"""

from __future__ import annotations

import inspect
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml

from goalbrake.app import is_goal_brake
from goalbrake.sweep.attrs import ROW_PARAM, SEED_PARAM
from goalbrake.sweep.define.addressing import BRAKE_ALIAS, Address, AddressError, resolve
from goalbrake.sweep.define.params import (
    FROM_TRIALS,
    GOAL_PARAM,
    GoalFromTrials,
    ParamSpec,
    Scalar,
    SweepSpecError,
    fail,
    is_goal_rule,
    parse_goal_rule,
    parse_param,
    to_number,
    to_scalar,
)
from goalbrake.sweep.define.spec import Config, Row, SweepSpec

__all__ = ["DIRECTIONS", "PRUNERS", "SAMPLERS", "TOP_LEVEL_KEYS", "load_spec"]

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
_MISSING_BASE = "missing base: (the path of a fit config, e.g. configs/x/goal.yaml)"
#: The mode a ``from_trials`` goal is given in.
GOAL_MODE = (f"{BRAKE_ALIAS}.mode", "remaining")
#: GoalBrake arguments that set the goal another way (they cannot join a measured goal).
_OTHER_GOALS = ("goal_from", "stages", "at_step")


# ----------------------------------------------------------------------------- top level
def _read(path: Path, where: str) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        raise SweepSpecError(f"{where}: cannot read the sweep file ({err.strerror})") from None
    except yaml.YAMLError as err:
        raise fail(where, f"not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise fail(where, "a sweep file is a mapping (base:, objective:, space:, ...)")
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            raise fail(where, f"unknown key {key!r} (allowed: {', '.join(TOP_LEVEL_KEYS)})")
    return raw


def _study_name(raw: Mapping[str, Any], study: str | None, path: Path, where: str) -> str:
    name = study or raw.get("study") or path.stem
    if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9_.-]+$", name):
        raise fail(where, f"invalid study name {name!r} (letters, digits, _ . -)")
    return name


def _objective(raw: Mapping[str, Any], where: str) -> tuple[str, str]:
    objective = raw.get("objective") or {}
    if isinstance(objective, str):
        objective = {"metric": objective}
    if not isinstance(objective, Mapping):
        raise fail(
            where, f"invalid objective {objective!r} ({{metric: val/acc, direction: maximize}})"
        )
    extra = set(objective) - {"metric", "direction"}
    if extra:
        raise fail(
            where, f"unknown objective key {sorted(extra)[0]!r} (allowed: metric, direction)"
        )
    metric = objective.get("metric", "val/acc")
    if not isinstance(metric, str) or not metric:
        raise fail(where, f"invalid objective metric {metric!r} (a logged name, e.g. val/acc)")
    direction = objective.get("direction")
    if direction is None:
        if "acc" in metric:
            direction = "maximize"
        elif "loss" in metric:
            direction = "minimize"
        else:
            raise fail(
                where, f"objective metric {metric!r} needs a direction (maximize or minimize)"
            )
    if direction not in DIRECTIONS:
        raise fail(
            where, f"invalid objective direction {direction!r} (allowed: maximize, minimize)"
        )
    return metric, direction


def _named_args(
    where: str, what: str, raw: object, table: Mapping[str, type], default: str
) -> tuple[str, dict[str, Any]]:
    if raw is None:
        raw = default
    if isinstance(raw, str):
        name, args = raw, {}
    elif isinstance(raw, Mapping) and "name" in raw:
        name, args = raw["name"], {k: to_number(v) for k, v in raw.items() if k != "name"}
    else:
        raise fail(where, f"invalid {what} {raw!r} (a name, or {{name: ..., <arguments>}})")
    if name not in table:
        raise fail(where, f"unknown {what} {name!r} (allowed: {', '.join(table)})")
    allowed = [p for p in inspect.signature(table[name].__init__).parameters if p != "self"]
    if what == "sampler":
        allowed = [p for p in allowed if p not in _SAMPLER_OWNED]
    for arg in args:
        if arg not in allowed:
            raise fail(
                where,
                f"unknown {what} argument {arg!r} for {name} "
                f"(allowed: {', '.join(allowed) or 'none'})",
            )
    return name, args


def _sampler_and_pruner(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    sampler, sampler_args = _named_args(where, "sampler", raw.get("sampler"), SAMPLERS, "tpe")
    pruner, pruner_args = _named_args(where, "pruner", raw.get("pruner"), PRUNERS, "none")
    if pruner != "none":
        try:
            PRUNERS[pruner](**pruner_args)
        except (TypeError, ValueError) as err:
            raise fail(where, f"invalid pruner arguments for {pruner}: {err}") from None
    return {
        "sampler": sampler,
        "sampler_args": sampler_args,
        "pruner": pruner,
        "pruner_args": pruner_args,
    }


def _int_key(raw: Mapping[str, Any], key: str, default: int, low: int, where: str) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise fail(where, f"invalid {key} {value!r} (must be an integer >= {low})")
    return value


def _flag(raw: Mapping[str, Any], key: str, where: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise fail(where, f"invalid {key} {value!r} (true or false)")
    return value


def _budget(raw: Mapping[str, Any], sampler: str, where: str) -> dict[str, Any]:
    """seed, seeds, retries, n_trials and timeout."""
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise fail(where, f"invalid seed {seed!r} (must be an integer >= 0)")
    seeds = _int_key(raw, "seeds", 1, 1, where)
    if seeds > 1 and sampler != "grid":
        raise fail(
            where,
            f"seeds: {seeds} needs sampler: grid (a {sampler} trial is one fit with seed {seed}; "
            "rerun its best points as a grid study with seeds for mean ± std)",
        )
    retries = _int_key(raw, "retries", 2, 0, where)
    n_trials = raw.get("n_trials")
    if n_trials is not None and (
        isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1
    ):
        raise fail(where, f"invalid n_trials {n_trials!r} (must be an integer >= 1)")
    timeout = to_number(raw.get("timeout"))
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
    ):
        raise fail(where, f"invalid timeout {timeout!r} (seconds, > 0)")
    return {
        "seed": seed,
        "seeds": seeds,
        "retries": retries,
        "n_trials": n_trials,
        "timeout": None if timeout is None else float(timeout),  # type: ignore[arg-type]
    }


def _flags(raw: Mapping[str, Any], sampler: str, where: str) -> dict[str, bool]:
    checkpoint, test = _flag(raw, "checkpoint", where), _flag(raw, "test", where)
    if test and sampler != "grid":
        raise fail(
            where,
            f"test: true needs sampler: grid (got {sampler!r}): a search "
            "selects settings and must not see the test set; test the chosen one with "
            "goalbrake test",
        )
    return {"checkpoint": checkpoint, "test": test}


def _heartbeat(raw: Mapping[str, Any], where: str) -> dict[str, int]:
    heartbeat = raw.get("heartbeat") or {}
    if not isinstance(heartbeat, Mapping) or set(heartbeat) - {"interval", "grace_period"}:
        raise fail(where, f"invalid heartbeat {heartbeat!r} ({{interval: 10, grace_period: 30}})")
    interval = _int_key(heartbeat, "interval", 10, 1, where)
    grace = _int_key(heartbeat, "grace_period", max(30, 3 * interval), 1, where)
    if grace <= interval:
        raise fail(where, f"heartbeat grace_period {grace} must exceed interval {interval}")
    return {"heartbeat_interval": interval, "grace_period": grace}


# ----------------------------------------------------------------------------- bases
def _find_base(value: object, spec_dir: Path, where: str) -> Path:
    if not isinstance(value, str) or not value:
        raise fail(where, _MISSING_BASE)
    for candidate in (spec_dir / value, Path.cwd() / value):
        if candidate.is_file():
            return candidate
    raise fail(where, f"base config {value!r} not found (looked in {spec_dir} and {Path.cwd()})")


def _load_base(file: Path, where: str) -> Config:
    try:
        config = yaml.safe_load(file.read_text())
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0]
        raise fail(where, f"base config {file} is not valid YAML ({first})") from None
    if not isinstance(config, dict):
        raise fail(where, f"base config {file} is not a mapping of fit arguments")
    return config


@dataclass
class _Bases:
    """The base configs a spec reads, and every address resolved in them (once)."""

    spec_dir: Path
    where: str
    configs: dict[str, Config] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    addresses: dict[str, dict[str, Address]] = field(default_factory=dict)

    def add(self, value: object) -> str:
        if value not in self.configs:
            file = _find_base(value, self.spec_dir, self.where)
            self.configs[value] = _load_base(file, self.where)  # type: ignore[index]
            self.files[value] = file  # type: ignore[index]
            self.addresses[value] = {}  # type: ignore[index]
        return value  # type: ignore[return-value]

    def check(self, base: str, name: str, context: str) -> str:
        """The canonical name of ``name`` in ``base``; kept for every trial."""
        try:
            address = resolve(name, self.configs[base])
        except AddressError as err:
            raise fail(self.where, f"{context}{err} (base {base})") from None
        self.addresses[base][address.name] = address
        return address.name

    def resolve_everywhere(self, names: Sequence[str]) -> None:
        """Resolve the reported parameters in every base where they exist."""
        for base, config in self.configs.items():
            for name in names:
                if name in self.addresses[base]:
                    continue
                try:
                    self.addresses[base][name] = resolve(name, config)
                except AddressError:
                    pass  # a parameter of another row's base: not reported for this one

    def seed_addresses(self) -> dict[str, Address | None]:
        """Where each base's DataModule takes ``seed`` (None: seed_everything alone)."""
        out: dict[str, Address | None] = {}
        for base, config in self.configs.items():
            data = config.get("data")
            out[base] = None
            if isinstance(data, dict) and "class_path" in data:
                try:
                    out[base] = resolve("data.seed", config)
                except AddressError:
                    pass  # a DataModule without a seed argument
        return out


# ----------------------------------------------------------------------------- space
_RowEntry = tuple[str, dict[str, Any], str | None]


def _top_base(raw: Mapping[str, Any], bases: _Bases, grid: bool, sampler: str) -> None:
    where, base_value = bases.where, raw.get("base")
    if raw.get("rows") is not None and not grid:
        raise fail(where, f"rows: needs sampler: grid (the sampler is {sampler})")
    if base_value is None and not raw.get("rows"):
        raise fail(where, _MISSING_BASE)
    if base_value is not None:
        bases.add(base_value)


def _row_entries(raw: Mapping[str, Any], bases: _Bases) -> list[_RowEntry]:
    where, base_value = bases.where, raw.get("base")
    entries: list[_RowEntry] = []
    for i, entry in enumerate(raw.get("rows") or []):
        if not isinstance(entry, Mapping):
            raise fail(where, f"rows[{i}] is not a mapping of parameter: value")
        entry = dict(entry)
        label = entry.pop("name", None)
        if label is not None and not isinstance(label, str):
            raise fail(where, f"rows[{i}]: invalid name {label!r} (a string)")
        row_base = entry.pop("base", base_value)
        if row_base is None:
            raise fail(where, f"rows[{i}] has no base: and there is no top-level base:")
        entries.append((bases.add(row_base), entry, label))
    return entries


def _mapping(raw: Mapping[str, Any], key: str, what: str, where: str) -> Mapping[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, Mapping):
        raise fail(where, f"invalid {key} {value!r} ({what})")
    return value


def _raw_fixed_and_space(
    raw: Mapping[str, Any], where: str
) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    fixed_raw = _mapping(raw, "fixed", "a mapping of parameter: value", where)
    space_raw = _mapping(raw, "space", "a mapping of parameter: range or list", where)
    if not space_raw and not raw.get("rows"):
        raise fail(where, "empty search space (give space: and/or rows:)")
    return fixed_raw, space_raw


def _fixed_and_space(
    given: tuple[Mapping[str, Any], Mapping[str, Any]], bases: _Bases, used: list[str], grid: bool
) -> tuple[dict[str, Any], dict[str, ParamSpec]]:
    where, (fixed_raw, space_raw) = bases.where, given
    fixed: dict[str, Any] = {}
    for name, value in fixed_raw.items():
        canonical = {bases.check(b, str(name), "fixed: ") for b in used}.pop()
        fixed[canonical] = (
            to_scalar(value, where, canonical) if not isinstance(value, (list, dict)) else value
        )
    space: dict[str, ParamSpec] = {}
    for name, value in space_raw.items():
        if is_goal_rule(value):
            continue  # not sampled: see _goal_rule
        canonical = {bases.check(b, str(name), "space: ") for b in used}.pop()
        if canonical in space or canonical in fixed:
            raise fail(where, f"parameter {canonical} is given twice")
        space[canonical] = parse_param(canonical, value, where, grid)
        if canonical in (ROW_PARAM, SEED_PARAM):  # pragma: no cover - not paths
            raise fail(where, f"reserved parameter name {canonical}")
    return fixed, space


def _row_axes(
    i: int, row_base: str, entry: Mapping[str, Any], bases: _Bases, space: Mapping[str, object]
) -> dict[str, tuple[Scalar, ...]]:
    where = bases.where
    axes: dict[str, tuple[Scalar, ...]] = {}
    for name, value in entry.items():
        canonical = bases.check(row_base, str(name), f"rows[{i}]: ")
        if canonical in space:
            raise fail(where, f"rows[{i}]: {canonical} is also in space: (give it once)")
        if isinstance(value, Sequence) and not isinstance(value, str):
            if not value:
                raise fail(where, f"rows[{i}]: empty value list for {canonical}")
            axes[canonical] = tuple(to_scalar(v, where, canonical) for v in value)
        else:
            axes[canonical] = (to_scalar(value, where, canonical),)
    return axes


def _rows(entries: list[_RowEntry], bases: _Bases, space: Mapping[str, object]) -> list[Row]:
    rows: list[Row] = []
    for i, (row_base, entry, label) in enumerate(entries):
        axes = _row_axes(i, row_base, entry, bases, space)
        names = list(axes)
        varying = [n for n in names if len(axes[n]) > 1]
        for combo in itertools.product(*axes.values()):
            values = dict(zip(names, combo, strict=True))
            stem = label or f"{Path(row_base).stem}"
            detail = ", ".join(
                f"{n.rpartition('.')[2]}={values[n]}" for n in (varying if label else names)
            )
            rows.append(Row(f"{stem} {detail}".strip() if detail else stem, row_base, values))
    labels = [r.label for r in rows]
    for label in labels:
        if labels.count(label) > 1:
            raise fail(
                bases.where, f"two rows have the same label {label!r} (give them distinct name:)"
            )
    return rows


def _check_other_goals(bases: _Bases, used: list[str], fixed: Mapping[str, Any]) -> None:
    """A measured goal is the only goal: no ``goal_from``, ``stages`` or ``at_step`` besides."""
    for base in used:
        callbacks = (bases.configs[base].get("trainer") or {}).get("callbacks") or []
        brakes = [c.get("init_args") or {} for c in callbacks if is_goal_brake(c)]
        for key in _OTHER_GOALS:
            name = f"{BRAKE_ALIAS}.{key}"
            values = [fixed.get(name), *(args.get(key) for args in brakes)]
            value = next((v for v in values if v is not None), None)
            if value is not None:
                raise fail(
                    bases.where,
                    f"{GOAL_PARAM}: {FROM_TRIALS} and {name}={value!r} (base {base}) both set "
                    f"the goal (drop {name})",
                )


def _goal_rule(
    space_raw: Mapping[str, Any],
    bases: _Bases,
    used: list[str],
    fixed: dict[str, Any],
    space: Mapping[str, ParamSpec],
    sampler: str,
) -> GoalFromTrials | None:
    """The ``brake.goal: {from_trials: ...}`` entry of ``space:``; it sets ``brake.mode``."""
    where = bases.where
    rules = [(str(n), v) for n, v in space_raw.items() if is_goal_rule(v)]
    if not rules:
        return None
    name, raw = rules[0]
    canonical = {bases.check(b, name, "space: ") for b in used}.pop()
    if canonical != GOAL_PARAM:
        raise fail(where, f"{FROM_TRIALS} is a rule for {GOAL_PARAM}, not for {canonical}")
    if canonical in fixed:
        raise fail(where, f"parameter {canonical} is given twice")
    if sampler == "grid":
        raise fail(
            where,
            f"{GOAL_PARAM}: {FROM_TRIALS} needs sampler tpe or random (a grid's points are "
            "fixed before any trial)",
        )
    rule = parse_goal_rule(canonical, raw, where)
    _check_other_goals(bases, used, fixed)
    mode_name, mode = GOAL_MODE
    mode_name = {bases.check(b, mode_name, "space: ") for b in used}.pop()
    if mode_name in space or fixed.get(mode_name, mode) != mode:
        given = fixed.get(mode_name, "searched")
        raise fail(
            where,
            f"{GOAL_PARAM}: {FROM_TRIALS} gives a remaining fraction of L₀: {mode_name} must "
            f"be {mode} (got {given}; drop it)",
        )
    fixed[mode_name] = mode
    return rule


# ----------------------------------------------------------------------------- load
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
    raw = _read(path, where)
    name = _study_name(raw, study, path, where)
    metric, direction = _objective(raw, where)
    choice = _sampler_and_pruner(raw, where)
    grid = choice["sampler"] == "grid"
    budget = _budget(raw, choice["sampler"], where)
    heartbeat = _heartbeat(raw, where)
    flags = _flags(raw, choice["sampler"], where)
    bases = _Bases(path.parent, where)
    _top_base(raw, bases, grid, choice["sampler"])
    given = _raw_fixed_and_space(raw, where)
    entries = _row_entries(raw, bases)
    base_value = raw.get("base")
    used = sorted({b for b, _, _ in entries} or {base_value})
    fixed, space = _fixed_and_space(given, bases, used, grid)
    goal_rule = _goal_rule(given[1], bases, used, fixed, space, choice["sampler"])
    rows = _rows(entries, bases, space)
    spec = SweepSpec(
        path=path,
        raw=raw,
        study=name,
        base=base_value if base_value is not None else entries[0][0],
        metric=metric,
        direction=direction,
        fixed=fixed,
        space=space,
        goal_rule=goal_rule,
        rows=rows,
        bases=bases.configs,
        base_files=bases.files,
        addresses=bases.addresses,
        seed_addresses=bases.seed_addresses(),
        **choice,
        **budget,
        **heartbeat,
        **flags,
    )
    bases.resolve_everywhere(spec.param_names())
    if grid and spec.n_trials is not None and spec.n_trials > spec.grid_size():
        raise fail(
            where,
            f"n_trials {spec.n_trials} exceeds the grid's {spec.grid_size()} points "
            "(a grid runs each point once per seed)",
        )
    return spec
