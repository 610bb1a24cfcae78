"""A finished (or running) study read back from its storage, as rows and grid points.

Everything here comes from the storage alone: trial states and values, and the user attrs
each trial wrote (``config``, ``curve``, ``final_value``, reasons). A *point* is one
setting of the hyperparameters, seeds aside: a grid study with ``seeds: k`` has k trials
per point, a TPE study one. Statistics over a point's COMPLETE trials: mean and sample
standard deviation (ddof = 1; none for a single trial).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from goalbrake.sweep.attrs import (
    BEST_EPOCH,
    CONFIG,
    CURVE,
    DURATION_S,
    EPOCHS,
    FAIL_REASON,
    FINAL_VALUE,
    PRUNE_REASON,
    RECORD_BASE,
    RECORD_METHOD,
    SEED_PARAM,
    STUDY_ATTR,
    TEST,
)
from goalbrake.sweep.define.params import Scalar
from goalbrake.sweep.run.recovery import KILLED, retried_from

#: The goal reading's address (``remaining`` / ``reduction`` / ``absolute``).
MODE = "brake.mode"
#: The curve GoalBrake logs: 1 while braked, else 0.
BRAKED_CURVE = "brake/braked"

__all__ = ["BRAKED_CURVE", "Point", "StudyResults", "TrialRow", "collect"]


@dataclass(frozen=True)
class TrialRow:
    """One trial as the report sees it."""

    number: int
    state: str
    value: float | None
    final_value: float | None
    best_epoch: int | None
    epochs: int | None
    config: dict[str, Scalar]
    curve: dict[str, list[float | None]]
    reason: str
    retry_of: int | None
    duration_s: float | None
    intermediate: dict[int, float]
    #: ``{"final": {"test/acc": .., "test/loss": ..}, "best": {..}}`` of a ``test: true`` grid.
    test: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return str(self.config.get(RECORD_METHOD, "?"))

    @property
    def arm(self) -> str:
        """The method, with the goal reading of a braking run: ``goal (remaining)``."""
        mode = self.config.get(MODE)
        return f"{self.method} ({mode})" if mode is not None else self.method

    def test_value(self, kind: str, metric: str = "test/acc") -> float | None:
        """The test ``metric`` of the ``final`` weights or the ``best``-val checkpoint."""
        value = (self.test.get(kind) or {}).get(metric)
        return None if value is None else float(value)

    @property
    def seed(self) -> Scalar:
        return self.config.get(SEED_PARAM)

    @property
    def brake_fired(self) -> bool | None:
        """Whether the brake fired in any epoch; None for a trial without a brake curve."""
        braked = self.curve.get(BRAKED_CURVE)
        if not braked:
            return None
        return any(b is not None and b > 0.5 for b in braked)


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return None, None
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


@dataclass
class Point:
    """One hyperparameter setting (seeds aside) and its trials."""

    key: tuple[tuple[str, Scalar], ...]
    method: str
    trials: list[TrialRow] = field(default_factory=list)

    @property
    def complete(self) -> list[TrialRow]:
        return [t for t in self.trials if t.state == "COMPLETE"]

    @property
    def n(self) -> int:
        return len(self.complete)

    @property
    def value(self) -> tuple[float | None, float | None]:
        return _mean_std([t.value for t in self.complete if t.value is not None])

    @property
    def final(self) -> tuple[float | None, float | None]:
        return _mean_std([t.final_value for t in self.complete if t.final_value is not None])

    def test(self, kind: str) -> tuple[float | None, float | None]:
        """Mean ± std of the test accuracy of the ``final`` weights or ``best`` checkpoint."""
        return _mean_std([v for t in self.complete if (v := t.test_value(kind)) is not None])

    def param(self, name: str) -> Scalar:
        return dict(self.key).get(name)

    @property
    def braked(self) -> tuple[int, int] | None:
        """(trials whose brake fired, trials with a brake curve) over the COMPLETE trials;
        None for a point without a brake."""
        known = [t.brake_fired for t in self.complete if t.brake_fired is not None]
        return (sum(known), len(known)) if known else None


@dataclass
class StudyResults:
    """The rows, points and settings of one study."""

    name: str
    metric: str
    direction: str
    params: list[str]
    attrs: dict[str, Any]
    rows: list[TrialRow]

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    def count(self, state: str) -> int:
        return sum(r.state == state for r in self.rows)

    def points(self) -> list[Point]:
        """Points with at least one COMPLETE trial, best mean first."""
        by_key: dict[tuple[tuple[str, Scalar], ...], Point] = {}
        for row in self.rows:
            key = tuple(
                (name, row.config.get(name))
                for name in [RECORD_BASE, *self.params]
                if name in row.config
            )
            point = by_key.setdefault(key, Point(key, row.method))
            point.trials.append(row)
        points = [p for p in by_key.values() if p.n]
        sign = -1.0 if self.maximize else 1.0
        return sorted(points, key=lambda p: (sign * (p.value[0] or 0.0), p.key and str(p.key)))

    def best_per_method(self) -> dict[str, Point]:
        out: dict[str, Point] = {}
        for point in self.points():
            out.setdefault(point.method, point)
        return out

    def varying(self) -> list[str]:
        """Parameters that take more than one value among the trials."""
        out = []
        for name in self.params:
            values = {repr(r.config.get(name)) for r in self.rows if name in r.config}
            if len(values) > 1:
                out.append(name)
        return out


def _row(trial: FrozenTrial) -> TrialRow:
    attrs = trial.user_attrs
    reason = attrs.get(PRUNE_REASON) or attrs.get(FAIL_REASON) or ""
    if trial.state == TrialState.FAIL and not reason:
        reason = KILLED
    if trial.state == TrialState.PRUNED and not reason and trial.intermediate_values:
        reason = f"pruned after epoch {max(trial.intermediate_values)}"
    value = trial.value
    if value is None and trial.state == TrialState.PRUNED and trial.intermediate_values:
        value = trial.intermediate_values[max(trial.intermediate_values)]
    return TrialRow(
        number=trial.number,
        state=trial.state.name,
        value=value,
        final_value=attrs.get(FINAL_VALUE),
        best_epoch=attrs.get(BEST_EPOCH),
        epochs=attrs.get(EPOCHS),
        config=dict(attrs.get(CONFIG) or {}),
        curve=dict(attrs.get(CURVE) or {}),
        reason=str(reason),
        retry_of=retried_from(trial),
        duration_s=attrs.get(DURATION_S),
        intermediate=dict(trial.intermediate_values),
        test=dict(attrs.get(TEST) or {}),
    )


def collect(study: optuna.Study) -> StudyResults:
    """Read a study made by ``goalbrake sweep`` from its storage.

    Raises:
        ValueError: the study was not made by ``goalbrake sweep``.
    """
    attrs = study.user_attrs.get(STUDY_ATTR)
    if not isinstance(attrs, dict):
        raise ValueError(
            f"study {study.study_name!r} was not made by goalbrake sweep (no {STUDY_ATTR!r} "
            "user attr)"
        )
    return StudyResults(
        name=study.study_name,
        metric=attrs.get("metric", "value"),
        direction=attrs.get("direction", study.direction.name.lower()),
        params=list(attrs.get("params") or []),
        attrs=attrs,
        rows=[_row(t) for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING],
    )
