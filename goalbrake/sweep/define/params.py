"""The search space of a sweep file: ranges, choices, the goal from earlier trials, and
their one-line errors."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import optuna

from goalbrake.sweep.define.addressing import BRAKE_ALIAS

__all__ = [
    "FROM_TRIALS",
    "GOAL_PARAM",
    "Choices",
    "FloatRange",
    "GoalFromTrials",
    "IntRange",
    "ParamSpec",
    "Scalar",
    "SweepSpecError",
    "is_goal_rule",
    "parse_goal_rule",
    "parse_param",
    "to_number",
    "to_scalar",
]

#: A value a sweep may set: what YAML gives besides lists and mappings.
Scalar = bool | int | float | str | None

_FLOAT_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class SweepSpecError(ValueError):
    """A sweep YAML that cannot run; the message is one line and names the fix."""


def fail(where: str, message: str) -> SweepSpecError:
    """The error ``<file>: <message>``."""
    return SweepSpecError(f"{where}: {message}")


def to_number(value: object) -> object:
    """YAML 1.1 reads ``1e-3`` as a string; read number-looking strings as floats."""
    if isinstance(value, str) and _FLOAT_RE.match(value.strip()):
        return float(value)
    return value


def to_scalar(value: object, where: str, what: str) -> Scalar:
    """A finite number, a string, a bool or None, else a :class:`SweepSpecError`."""
    value = to_number(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, float) and not math.isfinite(value):
            raise fail(where, f"invalid value {value!r} for {what} (must be finite)")
        return value
    raise fail(
        where, f"invalid value {value!r} for {what} (must be a number, string, bool or null)"
    )


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

    values: tuple[Scalar, ...]

    def suggest(self, trial: optuna.Trial, name: str) -> Scalar:
        return trial.suggest_categorical(name, self.values)


ParamSpec = FloatRange | IntRange | Choices
_RANGE_KEYS = {"type", "low", "high", "log", "step"}


def _choices(name: str, raw: Sequence[object], where: str) -> Choices:
    values = tuple(to_scalar(v, where, name) for v in raw)
    if not values:
        raise fail(where, f"empty value list for {name} (give at least one value)")
    if len(set(map(repr, values))) != len(values):
        raise fail(where, f"duplicate values in {name}: {list(values)}")
    return Choices(values)


def _check_keys(name: str, raw: Mapping[str, object], where: str, grid: bool) -> None:
    extra = set(raw) - _RANGE_KEYS
    if extra:
        raise fail(
            where,
            f"unknown key {sorted(extra)[0]!r} for {name} "
            f"(allowed: {', '.join(sorted(_RANGE_KEYS))}, or choices)",
        )
    if grid:
        raise fail(
            where,
            f"sampler grid needs a list of values for {name}, not a range "
            f"({raw.get('low')}..{raw.get('high')})",
        )


def _bounds(name: str, raw: Mapping[str, object], where: str) -> tuple[float, float, bool]:
    if "low" not in raw or "high" not in raw:
        raise fail(where, f"range of {name} needs low and high")
    low, high, log = to_number(raw["low"]), to_number(raw["high"]), raw.get("log", False)
    for label, value in (("low", low), ("high", high)):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise fail(where, f"invalid {label} {value!r} for {name} (must be a finite number)")
    if not isinstance(log, bool):
        raise fail(where, f"invalid log {log!r} for {name} (must be true or false)")
    if low >= high:  # type: ignore[operator]
        raise fail(where, f"empty range for {name}: low {low} >= high {high} (need low < high)")
    if log and low <= 0:  # type: ignore[operator]
        raise fail(where, f"log range for {name} needs low > 0, got low {low}")
    return low, high, log  # type: ignore[return-value]


def _step(name: str, raw: Mapping[str, object], log: bool, where: str) -> float | None:
    step = to_number(raw.get("step"))
    if step is None:
        return None
    if isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0:
        raise fail(where, f"invalid step {step!r} for {name} (must be > 0)")
    if log:
        raise fail(where, f"step and log cannot be combined for {name}")
    return step


def _range(name: str, raw: Mapping[str, object], where: str) -> FloatRange | IntRange:
    kind = raw.get("type", "float")
    if kind not in ("float", "int"):
        raise fail(where, f"invalid type {kind!r} for {name} (must be float or int)")
    low, high, log = _bounds(name, raw, where)
    step = _step(name, raw, log, where)
    if kind == "int":
        for label, value in (("low", low), ("high", high), ("step", step)):
            if value is not None and float(value) != int(value):
                raise fail(where, f"invalid {label} {value!r} for int {name} (must be an integer)")
        return IntRange(int(low), int(high), log, int(step or 1))
    return FloatRange(float(low), float(high), log, None if step is None else float(step))


def parse_param(name: str, raw: object, where: str, grid: bool) -> ParamSpec:
    """One entry of ``space:``: a list (choices), ``{choices: [...]}`` or a range.

    Raises:
        SweepSpecError: the entry in one line, e.g. ``empty range for optimizer.lr: ...``.
    """
    if isinstance(raw, Sequence) and not isinstance(raw, str):
        return _choices(name, raw, where)
    if not isinstance(raw, Mapping):
        raise fail(
            where,
            f"invalid search space for {name}: {raw!r} (a list of values, "
            "{low: , high: , log: }, or {choices: [...]}; constants go under fixed:)",
        )
    if "choices" in raw:
        extra = set(raw) - {"choices"}
        if extra:
            raise fail(where, f"unknown key {sorted(extra)[0]!r} for {name} (choices alone)")
        return parse_param(name, raw["choices"], where, grid)
    _check_keys(name, raw, where, grid)
    return _range(name, raw, where)


# ----------------------------------------------------------------------------- from_trials
#: The key that makes ``brake.goal`` a rule instead of a range: ``{from_trials: {...}}``.
FROM_TRIALS = "from_trials"
#: The one parameter a ``from_trials`` rule sets.
GOAL_PARAM = f"{BRAKE_ALIAS}.goal"
_RULE_KEYS = ("quantile", "at", "startup", "startup_goal")


@dataclass(frozen=True)
class GoalFromTrials:
    """``brake.goal`` measured on the study's own COMPLETE earlier trials.

    The goal of a trial is the ``quantile`` of the smoothed L/L₀ that the COMPLETE trials
    reached at the fraction ``at`` of their budget (1: their final epoch), a remaining
    fraction of L₀ (``brake.mode: remaining``); until ``startup`` trials are complete it is
    ``startup_goal``. :mod:`goalbrake.sweep.run.goal_from_trials` computes it when a trial
    starts. See docs/sweeps.md, "The sweep file".
    """

    startup: int
    startup_goal: float
    quantile: float = 0.5
    at: float = 1.0


def is_goal_rule(raw: object) -> bool:
    """Whether a ``space:`` entry is ``{from_trials: {...}}``."""
    return isinstance(raw, Mapping) and FROM_TRIALS in raw


def _fraction(
    rule: Mapping[str, object], key: str, default: object, name: str, where: str
) -> float:
    value = to_number(rule.get(key, default))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise fail(where, f"invalid {key} {value!r} for {name}: {FROM_TRIALS} (must be a number)")
    return float(value)


def parse_goal_rule(name: str, raw: Mapping[str, object], where: str) -> GoalFromTrials:
    """``{from_trials: {quantile: 0.5, at: 0.5, startup: 8, startup_goal: 0.15}}``.

    ``quantile`` (default 0.5) in (0, 1), ``at`` (default 1) in (0, 1], ``startup`` an
    integer >= 1 and ``startup_goal`` in (0, 1), both required.

    Raises:
        SweepSpecError: in one line, e.g. ``invalid quantile 1.5 for brake.goal:
            from_trials (must be in (0, 1))``.
    """
    extra = set(raw) - {FROM_TRIALS}
    if extra:
        raise fail(where, f"unknown key {sorted(extra)[0]!r} for {name} ({FROM_TRIALS} alone)")
    rule = raw[FROM_TRIALS]
    if not isinstance(rule, Mapping):
        raise fail(
            where,
            f"invalid {FROM_TRIALS} {rule!r} for {name} (a mapping of {', '.join(_RULE_KEYS)})",
        )
    unknown = sorted(set(map(str, rule)) - set(_RULE_KEYS))
    if unknown:
        raise fail(
            where,
            f"unknown key {unknown[0]!r} for {name}: {FROM_TRIALS} "
            f"(allowed: {', '.join(_RULE_KEYS)})",
        )
    for key in ("startup", "startup_goal"):
        if key not in rule:
            raise fail(where, f"{name}: {FROM_TRIALS} needs {key} (the goal of the first trials)")
    what = f"for {name}: {FROM_TRIALS}"
    quantile = _fraction(rule, "quantile", 0.5, name, where)
    if not 0 < quantile < 1:
        raise fail(where, f"invalid quantile {quantile!r} {what} (must be in (0, 1))")
    at = _fraction(rule, "at", 1.0, name, where)
    if not 0 < at <= 1:
        raise fail(where, f"invalid at {at!r} {what} (must be in (0, 1], 1: the final epoch)")
    startup = rule["startup"]
    if isinstance(startup, bool) or not isinstance(startup, int) or startup < 1:
        raise fail(where, f"invalid startup {startup!r} {what} (must be an integer >= 1)")
    startup_goal = _fraction(rule, "startup_goal", None, name, where)
    if not 0 < startup_goal < 1:
        raise fail(
            where,
            f"invalid startup_goal {startup_goal!r} {what} (must be in (0, 1), a remaining "
            "fraction of L₀)",
        )
    return GoalFromTrials(startup=startup, startup_goal=startup_goal, quantile=quantile, at=at)
