"""The search space of a sweep file: ranges and choices, and their one-line errors."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import optuna

__all__ = [
    "Choices",
    "FloatRange",
    "IntRange",
    "ParamSpec",
    "Scalar",
    "SweepSpecError",
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
