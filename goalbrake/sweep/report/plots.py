"""The report's figures (matplotlib, Agg backend, PNG).

* :func:`plot_objective_vs_params`: the objective against each varying hyperparameter,
  one panel per parameter, colored by method; grid points with several seeds show
  mean ± std; pruned trials hollow.
* :func:`plot_curves`: the validation metric over epochs of the best point of each method
  (SGD, PHS, goal-oriented braking): the paper's Fig. 3; mean ± std band over seeds and the
  epoch where the brake fired.
* :func:`plot_mass_friction`: the objective over mass × friction at fixed lr (the paper's
  Fig. 1): a heatmap of cell means (± std) on a grid, a scatter for continuous samples.
* :func:`plot_importances` (bars labelled with their values) and :func:`plot_history`.

Each ``plot_*`` saves the figure its ``*_figure`` sibling builds (tests read the axes of
the latter). On every objective axis the range follows the complete trials less outliers
on the bad side; pruned trials and those outliers are drawn as triangles on that edge, a
braking trial whose brake never fired as an x, and a legend entry names each marker that
a figure uses. Legends sit outside the axes.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from goalbrake.sweep.attrs import ROW_PARAM
from goalbrake.sweep.define.params import Scalar
from goalbrake.sweep.report.results import Point, StudyResults, TrialRow

__all__ = [
    "curves_figure",
    "history_figure",
    "importances_figure",
    "mass_friction_figure",
    "objective_figure",
    "plot_curves",
    "plot_history",
    "plot_importances",
    "plot_mass_friction",
    "plot_objective_vs_params",
]

METHOD_COLORS = {"sgd": "#1f77b4", "phs": "#ff7f0e", "goal": "#2ca02c", "step": "#9467bd"}
METHOD_LABELS = {
    "sgd": "SGD",
    "phs": "PHS",
    "goal": "PHS + goal braking",
    "step": "PHS + braking at a fixed step",
}
_OTHER_COLORS = ["#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
MASS, FRICTION, LR = "optimizer.mass", "optimizer.friction", "optimizer.lr"


def _color(method: str, seen: dict[str, str]) -> str:
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    return seen.setdefault(method, _OTHER_COLORS[len(seen) % len(_OTHER_COLORS)])


def _label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def _numeric(values: Sequence[Scalar]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _log_scale(values: Sequence[float]) -> bool:
    positive = [v for v in values if v > 0]
    return len(positive) == len(values) and len(values) > 1 and max(values) / min(values) >= 10


def _log_axis(ax: Axes, which: str) -> None:
    """Log scale on ``ax``'s ``which`` ("x" or "y") axis, labelled plainly at 1, 2, 5 × 10^k
    (matplotlib's default labels a short range's minor ticks in overlapping 2×10⁻¹ text)."""
    if which == "x":
        ax.set_xscale("log")
        axis = ax.xaxis
    else:
        ax.set_yscale("log")
        axis = ax.yaxis
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def _metric_label(results: StudyResults) -> str:
    return f"{results.metric} (best epoch)"


#: Complete trials worse than the 10 % quantile by more than this many interdecile ranges
#: (a collapsed run at chance level) lie outside the objective axis, drawn on its edge.
OUTLIER_SPREADS = 3.0


@dataclass(frozen=True)
class _YRange:
    """The objective axis: its limits, and the edge on the bad side (bottom when
    maximizing) where trials beyond it are drawn."""

    low: float
    high: float
    edge: float
    maximize: bool

    def clip(self, value: float) -> tuple[float, bool]:
        """(where ``value`` is drawn, whether it lies beyond the edge)."""
        if self.maximize:
            return max(value, self.edge), value < self.edge
        return min(value, self.edge), value > self.edge

    @property
    def marker(self) -> str:
        """A triangle that points off the axis, past the edge."""
        return "v" if self.maximize else "^"


def _outlier_cut(values: list[float], maximize: bool) -> float | None:
    """The value past which a complete trial is an outlier on the bad side (None: too few)."""
    if len(values) < 5:
        return None
    q10, q90 = (float(q) for q in np.percentile(values, [10, 90]))
    spread = max(q90 - q10, 0.005)
    return q10 - OUTLIER_SPREADS * spread if maximize else q90 + OUTLIER_SPREADS * spread


def _y_range(rows: list[TrialRow], points: list[Point], maximize: bool) -> _YRange:
    """The objective axis of ``rows`` (and the points' error bars).

    The range follows the complete trials and the error bars, less outliers on the bad side
    (:data:`OUTLIER_SPREADS`): one collapsed trial must not squash the rest. Pruned trials
    (whose last value may be far worse) and the outliers sit on the bad edge.
    """
    done = [r.value for r in rows if r.state == "COMPLETE"] or [r.value for r in rows]
    values = [v for v in done if v is not None]
    cut = _outlier_cut(values, maximize)
    for point in points:  # error bars stay inside the frame
        mean, std = point.value
        if mean is not None:
            values += [mean - (std or 0.0), mean + (std or 0.0)]
    if cut is not None:
        values = [v for v in values if (v >= cut if maximize else v <= cut)] or values
    lo, hi = min(values), max(values)
    pad = max(0.06 * (hi - lo), 0.005)
    if maximize:
        return _YRange(lo - 3.0 * pad, hi + pad, lo - 2.0 * pad, True)
    return _YRange(lo - pad, hi + 3.0 * pad, hi + 2.0 * pad, False)


def _draw_trial(ax: Axes, x: float, r: TrialRow, y: _YRange, color: str, faint: bool) -> None:
    """One trial: a dot; hollow triangle on the edge when pruned, filled when beyond the
    axis; an x when its brake never fired."""
    value, beyond = y.clip(r.value)  # type: ignore[arg-type]
    if r.state != "COMPLETE":
        ax.scatter(x, value, s=26, marker=y.marker, facecolors="none", edgecolors=color, alpha=0.8)
    elif beyond:
        ax.scatter(x, value, s=30, marker=y.marker, color=color, alpha=0.9, linewidths=0)
    elif r.brake_fired is False:
        ax.scatter(x, value, s=30, marker="x", color=color, alpha=0.9, linewidths=1.2)
    else:
        size, alpha = (16, 0.25) if faint else (22, 0.6)
        ax.scatter(x, value, s=size, color=color, alpha=alpha, linewidths=0)


def _marker_legend(rows: list[TrialRow], y: _YRange) -> list[Line2D]:
    """Legend entries of the markers that ``rows`` use besides the plain dot."""
    handles = []
    if any(r.state == "PRUNED" for r in rows):
        pruned = "pruned (last value; on the edge if beyond it)"
        handles.append(
            Line2D([], [], marker=y.marker, ls="", mfc="none", color="grey", label=pruned)
        )
    complete = [r for r in rows if r.state == "COMPLETE" and r.value is not None]
    beyond = [r for r in complete if y.clip(r.value)[1]]
    if beyond:
        worst = min(r.value for r in beyond) if y.maximize else max(r.value for r in beyond)  # type: ignore[type-var]
        label = f"{len(beyond)} beyond the axis (drawn on its edge; worst {worst:.3g})"
        handles.append(Line2D([], [], marker=y.marker, ls="", color="grey", label=label))
    if any(r.brake_fired is False for r in complete):
        handles.append(Line2D([], [], marker="x", ls="", color="grey", label="brake never fired"))
    return handles


@dataclass(frozen=True)
class _XAxis:
    """Where each value of one hyperparameter sits on its panel's x axis."""

    positions: dict[Scalar, float]
    log: bool
    numeric: bool

    def at(self, value: Scalar, salt: int) -> float:
        """The value's position, jittered deterministically so markers stay visible."""
        x = self.positions[value]
        u = ((salt * 2654435761) % 1000) / 1000 - 0.5
        return x * (1.0 + 0.12 * u) if self.log else x + u * (0.3 if not self.numeric else 0.0)


def _x_axis(ax: Axes, values: list[Scalar]) -> _XAxis:
    """Numbers on a (log) number line; categories at 0, 1, ... with their labels."""
    if _numeric(values):
        positions = {v: float(v) for v in values}  # type: ignore[arg-type]
        return _XAxis(positions, _log_scale(list(positions.values())), True)
    cats = sorted({str(v) for v in values})
    tilt = len(cats) > 3
    ax.set_xticks(
        range(len(cats)), cats, rotation=30 if tilt else 0, ha="right" if tilt else "center"
    )
    ax.set_xlim(-0.6, len(cats) - 0.4)
    return _XAxis({v: float(cats.index(str(v))) for v in values}, False, False)


@dataclass
class _Panels:
    """What every panel of the objective-vs-parameter figure shares."""

    per_point: bool
    y: _YRange
    seen: dict[str, str] = field(default_factory=dict)
    methods: set[str] = field(default_factory=set)


def _draw_panel(
    ax: Axes, name: str, rows: list[TrialRow], points: list[Point], panels: _Panels
) -> _XAxis:
    """The trials (see :func:`_draw_trial`) and the points' mean ± std of ``name``."""
    present = [r for r in rows if name in r.config]
    axis = _x_axis(ax, [r.config[name] for r in present])
    for r in present:
        color = _color(r.method, panels.seen)
        panels.methods.add(r.method)
        _draw_trial(ax, axis.at(r.config[name], r.number), r, panels.y, color, panels.per_point)
    for i, point in enumerate(points):
        value, (mean, std) = point.param(name), point.value
        if value is None or mean is None:
            continue
        color = _color(point.method, panels.seen)
        x = axis.at(value, i + 7919)
        mean, beyond = panels.y.clip(mean)
        ax.errorbar(
            x, mean, yerr=0.0 if beyond else std or 0.0, fmt="o", ms=4, color=color, capsize=2
        )
    return axis


def _legend(rows: list[TrialRow], panels: _Panels) -> list[Line2D]:
    handles = [
        Line2D([], [], marker="o", ls="", color=_color(m, panels.seen), label=_label(m))
        for m in sorted(panels.methods)
    ]
    handles += _marker_legend(rows, panels.y)
    if panels.per_point:
        mean = "setting: mean ± std over seeds"
        handles.append(Line2D([], [], marker="o", ls="-", color="grey", label=mean))
    return handles


def objective_figure(results: StudyResults) -> Figure | None:
    """One panel per varying hyperparameter: objective (and pruned trials' last value).

    With several seeds per point, each point is drawn as mean ± std over its seeds (the
    seeds themselves faint); otherwise every trial is one marker.
    """
    names = [n for n in results.varying() if n != ROW_PARAM]
    rows = [r for r in results.rows if r.state in ("COMPLETE", "PRUNED") and r.value is not None]
    if not names or not rows:
        return None
    per_point = results.attrs.get("seeds", 1) > 1
    points = results.points() if per_point else []
    cols = min(3, len(names))
    nrows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(
        nrows,
        cols,
        figsize=(4.6 * cols, 3.5 * nrows + 0.7),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    panels = _Panels(per_point, _y_range(rows, points, results.maximize))
    for ax, name in zip(axes.flat, names, strict=False):
        if _draw_panel(ax, name, rows, points, panels).log:
            _log_axis(ax, "x")
        ax.set_xlabel(name)
        ax.set_ylim(panels.y.low, panels.y.high)
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel(_metric_label(results))
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    handles = _legend(rows, panels)
    fig.suptitle(f"{results.name}: {results.metric} vs hyperparameters")
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=len(handles) if len(handles) <= 5 else math.ceil(len(handles) / 2),
        frameon=False,
        fontsize=9,
    )
    return fig


def _stack(series: list[list[float | None]]) -> np.ndarray:
    width = max(len(s) for s in series)
    out = np.full((len(series), width), np.nan)
    for i, s in enumerate(series):
        out[i, : len(s)] = [np.nan if v is None else v for v in s]
    return out


def curves_figure(results: StudyResults) -> Figure | None:
    """The validation metric per epoch of each method's best point (paper's Fig. 3)."""
    best = results.best_per_method()
    if not best:
        return None
    order = sorted(best, key=lambda m: list(METHOD_COLORS).index(m) if m in METHOD_COLORS else 9)
    if not any(t.curve.get(results.metric) for m in order for t in best[m].complete):
        return None
    fig, ax = plt.subplots(figsize=(7, 4.4), layout="constrained")
    seen: dict[str, str] = {}
    for method in order:
        point: Point = best[method]
        runs = [t for t in point.complete if t.curve.get(results.metric)]
        if not runs:
            continue
        ys = _stack([t.curve[results.metric] for t in runs])
        epochs = np.arange(ys.shape[1]) + 1
        mean = np.nanmean(ys, axis=0)
        color = _color(method, seen)
        value, _ = point.value
        label = f"{_label(method)} (best {value:.3f}"
        label += f", {len(runs)} seeds" if len(runs) > 1 else ""
        label += ", brake never fired)" if point.braked and not point.braked[0] else ")"
        ax.plot(epochs, mean, color=color, lw=1.8, marker="o", ms=3, label=label)
        if len(runs) > 1:
            std = np.nanstd(ys, axis=0, ddof=1)
            ax.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.18, lw=0)
        braked = [t.curve.get("brake/braked") for t in runs]
        fired = [
            next((i for i, b in enumerate(col) if b and b > 0.5), None) for col in braked if col
        ]
        fired = [f for f in fired if f is not None]
        if fired:
            epoch = int(np.median(fired)) + 1
            ax.axvline(epoch, color=color, ls=":", lw=1.2)
            ax.annotate(
                "brake",
                (epoch, np.nanmin(mean)),
                color=color,
                fontsize=8,
                rotation=90,
                va="bottom",
                ha="right",
            )
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(results.metric)
    ax.set_title(f"{results.name}: {results.metric} of each method's best setting")
    ax.grid(alpha=0.3)
    fig.legend(fontsize=8, loc="outside lower center", ncol=len(order), frameon=False)
    return fig


def _mass_friction_rows(results: StudyResults) -> tuple[str, list[TrialRow]] | None:
    """One method per figure: PHS (the paper's Fig. 1) when it varies both, else the first
    method that does; None when none does."""
    candidates = [
        r
        for r in results.rows
        if r.state == "COMPLETE"
        and MASS in r.config
        and FRICTION in r.config
        and r.value is not None
    ]
    for method in ("phs", "goal", *sorted({r.method for r in candidates})):
        rows = [r for r in candidates if r.method == method]
        if len({r.config[MASS] for r in rows}) > 1 and len({r.config[FRICTION] for r in rows}) > 1:
            return method, rows
    return None


def _color_range(values: list[float], continuous: bool, maximize: bool) -> tuple[float, float, str]:
    """(vmin, vmax, colorbar extend); a few failed samples must not spend the whole range.

    A continuous scatter clips at the worst decile; a grid heatmap (whose cells print their
    values) clips only the outliers of :func:`_outlier_cut`, a collapsed cell or two.
    """
    vmin, vmax = min(values), max(values)
    if continuous and len(values) >= 10:
        q = float(np.percentile(values, 10 if maximize else 90))
    else:
        cut = _outlier_cut(values, maximize)
        kept = [v for v in values if cut is None or (v >= cut if maximize else v <= cut)]
        q = min(kept) if maximize else max(kept)
    if maximize and q > vmin:
        return q, vmax, "min"
    if not maximize and q < vmax:
        return vmin, q, "max"
    return vmin, vmax, "neither"


@dataclass(frozen=True)
class _Colors:
    cmap: str
    vmin: float
    vmax: float
    maximize: bool


def _scatter_panel(ax: Axes, subset: list[TrialRow], colors: _Colors) -> PathCollection:
    image = ax.scatter(
        [r.config[MASS] for r in subset],
        [r.config[FRICTION] for r in subset],
        c=[r.value for r in subset],
        cmap=colors.cmap,
        vmin=colors.vmin,
        vmax=colors.vmax,
        s=36,
        edgecolors="k",
        linewidths=0.3,
    )
    if _log_scale([float(r.config[MASS]) for r in subset]):  # type: ignore[arg-type]
        _log_axis(ax, "x")
    if _log_scale([float(r.config[FRICTION]) for r in subset]):  # type: ignore[arg-type]
        _log_axis(ax, "y")
    return image


def _heatmap_panel(
    ax: Axes, subset: list[TrialRow], masses: list[Scalar], frictions: list[Scalar], colors: _Colors
) -> AxesImage:
    grid = np.full((len(frictions), len(masses)), np.nan)
    spread = np.full_like(grid, np.nan)
    cells: dict[tuple[int, int], list[float]] = defaultdict(list)
    for r in subset:
        cell = (frictions.index(r.config[FRICTION]), masses.index(r.config[MASS]))
        cells[cell].append(r.value)  # type: ignore[arg-type]
    for (i, j), ys in cells.items():
        grid[i, j] = np.mean(ys)
        spread[i, j] = np.std(ys, ddof=1) if len(ys) > 1 else np.nan
    image = ax.imshow(
        grid, origin="lower", cmap=colors.cmap, vmin=colors.vmin, vmax=colors.vmax, aspect="auto"
    )
    ax.set_xticks(range(len(masses)), [f"{m:g}" for m in masses])
    ax.set_yticks(range(len(frictions)), [f"{f:g}" for f in frictions])
    for i, j in cells:
        text = f"{grid[i, j]:.3f}"
        if not np.isnan(spread[i, j]):
            text += f"\n±{spread[i, j]:.3f}"
        shade = (grid[i, j] - colors.vmin) / (colors.vmax - colors.vmin or 1.0)
        if not colors.maximize:
            shade = 1 - shade
        color = "black" if shade > 0.55 else "white"
        ax.text(j, i, text, ha="center", va="center", fontsize=7, color=color)
    return image


def mass_friction_figure(results: StudyResults) -> Figure | None:
    """Objective over mass × friction, one panel per lr (paper's Fig. 1); None if n/a."""
    chosen = _mass_friction_rows(results)
    if chosen is None:
        return None
    method, rows = chosen
    masses = sorted({r.config[MASS] for r in rows})  # type: ignore[type-var]
    frictions = sorted({r.config[FRICTION] for r in rows})  # type: ignore[type-var]
    lrs = sorted({r.config.get(LR) for r in rows}, key=lambda v: (v is None, v))
    continuous = len(masses) > 12 or len(frictions) > 12 or len(lrs) > 4
    panels: list[tuple[str, list[TrialRow]]]
    if continuous:
        panels = [("all lr", rows)]
    else:
        panels = [(f"lr = {lr}", [r for r in rows if r.config.get(LR) == lr]) for lr in lrs]
    values = [r.value for r in rows if r.value is not None]
    vmin, vmax, extend = _color_range(values, continuous, results.maximize)
    colors = _Colors("viridis" if results.maximize else "viridis_r", vmin, vmax, results.maximize)
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(1.4 + 4.4 * len(panels), 4.3),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    image: PathCollection | AxesImage | None = None
    for ax, (title, subset) in zip(axes[0], panels, strict=True):
        if continuous:
            image = _scatter_panel(ax, subset, colors)
        else:
            image = _heatmap_panel(ax, subset, masses, frictions, colors)
        ax.set_xlabel("mass")
        ax.set_title(title)
    axes[0][0].set_ylabel("friction")
    assert image is not None
    fig.colorbar(
        image, ax=axes[0].tolist(), label=_metric_label(results), shrink=0.9, extend=extend
    )
    fig.suptitle(f"{results.name}: {_label(method)}, {results.metric} over mass × friction")
    return fig


def importances_figure(importances: dict[str, dict[str, float]], title: str) -> Figure | None:
    """Horizontal bars of the importances, one panel per method, each labelled with its
    value."""
    if not importances:
        return None
    methods = list(importances)
    rows = max(len(v) for v in importances.values())
    fig, axes = plt.subplots(
        1,
        len(methods),
        figsize=(1.5 + 4.2 * len(methods), 1.2 + 0.42 * rows),
        squeeze=False,
        layout="constrained",
    )
    seen: dict[str, str] = {}
    for ax, method in zip(axes[0], methods, strict=True):
        values = importances[method]
        names = list(values)[::-1]
        bars = ax.barh(names, [values[n] for n in names], color=_color(method, seen))
        ax.bar_label(bars, labels=[f"{values[n]:.2f}" for n in names], padding=3, fontsize=8)
        ax.set_xlim(0, 1.12)  # room for the label of a bar at 1
        ax.set_xticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
        ax.set_xlabel("importance (PED-ANOVA, normalized)")
        ax.set_title(_label(method))
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title)
    return fig


def _best_so_far(done: list[TrialRow], maximize: bool) -> tuple[list[int], list[float]]:
    complete = sorted((r.number, r.value) for r in done if r.state == "COMPLETE")
    best: float | None = None
    xs, ys = [], []
    for number, value in complete:
        if best is None or (value > best if maximize else value < best):  # type: ignore[operator]
            best = value
        xs.append(number)
        ys.append(best)  # type: ignore[arg-type]
    return xs, ys


def history_figure(results: StudyResults) -> Figure | None:
    """Each trial's objective by trial number, with the best so far; the legend sits
    right of the axes, and trials beyond the axis (pruned, collapsed) on its edge."""
    done = [r for r in results.rows if r.state in ("COMPLETE", "PRUNED") and r.value is not None]
    if not done:
        return None
    fig, ax = plt.subplots(figsize=(8.4, 3.6), layout="constrained")
    y = _y_range(done, [], results.maximize)
    seen: dict[str, str] = {}
    for r in done:
        _draw_trial(ax, r.number, r, y, _color(r.method, seen), faint=False)
    handles = []
    xs, ys = _best_so_far(done, results.maximize)
    if xs:
        ax.step(xs, ys, where="post", color="k", lw=1.2)
        handles.append(Line2D([], [], color="k", lw=1.2, label="best so far"))
    handles += [
        Line2D([], [], marker="o", ls="", color=_color(m, seen), label=_label(m))
        for m in sorted({r.method for r in done})
    ]
    handles += _marker_legend(done, y)
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    ax.set_ylim(y.low, y.high)
    ax.set_xlabel("trial")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(_metric_label(results))
    ax.set_title(f"{results.name}: optimization history")
    ax.grid(alpha=0.3)
    return fig


def _saved(fig: Figure | None, path: Path) -> Path | None:
    return None if fig is None else _save(fig, path)


def plot_objective_vs_params(results: StudyResults, path: Path) -> Path | None:
    """:func:`objective_figure` as a PNG at ``path``; None when there is nothing to draw."""
    return _saved(objective_figure(results), path)


def plot_curves(results: StudyResults, path: Path) -> Path | None:
    """:func:`curves_figure` as a PNG at ``path``; None when there is nothing to draw."""
    return _saved(curves_figure(results), path)


def plot_mass_friction(results: StudyResults, path: Path) -> Path | None:
    """:func:`mass_friction_figure` as a PNG at ``path``; None when there is nothing to draw."""
    return _saved(mass_friction_figure(results), path)


def plot_importances(
    importances: dict[str, dict[str, float]], title: str, path: Path
) -> Path | None:
    """:func:`importances_figure` as a PNG at ``path``; None without importances."""
    return _saved(importances_figure(importances, title), path)


def plot_history(results: StudyResults, path: Path) -> Path | None:
    """:func:`history_figure` as a PNG at ``path``; None when there is nothing to draw."""
    return _saved(history_figure(results), path)
