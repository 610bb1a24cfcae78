"""The report's figures, read from the axes they are drawn on (matplotlib's Agg backend).

The studies are :class:`StudyResults` built by hand: a cloud of complete trials near 0.9,
with (or without) a collapsed trial at 0.10, pruned trials, and braking trials whose
brake never fired, so every limit, marker and label can be checked against the numbers.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from goalbrake.sweep.report.plots import (
    curves_figure,
    history_figure,
    importances_figure,
    mass_friction_figure,
    objective_figure,
)
from goalbrake.sweep.report.results import BRAKED_CURVE, StudyResults, TrialRow
from goalbrake.sweep.report.tables import braked_cell, write_best

LR, GOAL = "optimizer.lr", "brake.goal"


def _row(
    number: int,
    value: float,
    *,
    state: str = "COMPLETE",
    method: str = "goal",
    fired: bool | None = True,
    seed: int = 0,
    point: int | None = None,
) -> TrialRow:
    """Trial ``number``; its setting is that of ``point`` (default: its own number)."""
    at = number if point is None else point
    config = {"method": method, LR: round(0.01 + 0.01 * at, 4), "seed": seed}
    curve: dict[str, list[float | None]] = {"val/acc": [value - 0.05, value], "epoch": [0, 1]}
    if method == "goal":
        config[GOAL] = 0.1 + 0.01 * (at % 7)
    if fired is not None:
        curve[BRAKED_CURVE] = [0.0, 1.0 if fired else 0.0]
    return TrialRow(
        number=number,
        state=state,
        value=value,
        final_value=value,
        best_epoch=1,
        epochs=2,
        config=config,
        curve=curve,
        reason="",
        retry_of=None,
        duration_s=1.0,
        intermediate={},
    )


def _study(rows: list[TrialRow], direction: str = "maximize", seeds: int = 1) -> StudyResults:
    return StudyResults(
        name="s",
        metric="val/acc" if direction == "maximize" else "val/loss",
        direction=direction,
        params=[LR, GOAL],
        attrs={"seeds": seeds},
        rows=rows,
    )


def _cloud(n: int = 20, center: float = 0.9) -> list[TrialRow]:
    rng = np.random.default_rng(0)
    return [_row(i, float(center + rng.uniform(-0.01, 0.01))) for i in range(n)]


def _legend_texts(fig: Figure) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def _ys(ax: Axes) -> list[float]:
    """The y of every marker drawn on ``ax``."""
    return [float(y) for c in ax.collections for _, y in c.get_offsets()]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _draw(fig: Figure | None) -> Figure:
    assert fig is not None
    fig.canvas.draw()
    return fig


def test_history_legend_sits_outside_the_axes() -> None:
    fig = _draw(history_figure(_study(_cloud())))
    [ax] = fig.axes
    assert ax.get_legend() is None and len(fig.legends) == 1
    renderer = fig.canvas.get_renderer()
    legend_box = fig.legends[0].get_window_extent(renderer)
    axes_box = ax.get_window_extent(renderer)
    assert legend_box.x0 >= axes_box.x1, (legend_box, axes_box)
    assert _legend_texts(fig) == ["best so far", "PHS + goal braking"]


def test_curves_legend_sits_outside_the_axes() -> None:
    fig = _draw(curves_figure(_study(_cloud())))
    [ax] = fig.axes
    renderer = fig.canvas.get_renderer()
    assert ax.get_legend() is None
    assert fig.legends[0].get_window_extent(renderer).y1 <= ax.get_window_extent(renderer).y0


@pytest.mark.parametrize("state", ["COMPLETE", "PRUNED"])
@pytest.mark.parametrize("figure", [history_figure, objective_figure])
def test_one_collapsed_trial_does_not_squash_the_objective_axis(figure, state: str) -> None:
    cloud = _cloud()
    fig = _draw(figure(_study([*cloud, _row(len(cloud), 0.10, state=state)])))
    ax = fig.axes[0]
    low, high = ax.get_ylim()
    assert 0.85 < low < 0.89 and 0.91 < high < 0.92, (low, high)
    # Every marker lies inside the frame; the collapsed one on its bottom edge.
    ys = _ys(ax)
    assert all(low <= y <= high for y in ys)
    assert low < min(ys) < min(r.value for r in cloud) - 0.005
    texts = _legend_texts(fig)
    if state == "COMPLETE":
        assert "1 beyond the axis (drawn on its edge; worst 0.1)" in texts
        assert not any("pruned" in t for t in texts)
    else:
        assert "pruned (last value; on the edge if beyond it)" in texts
        assert not any("beyond the axis (" in t for t in texts)


def test_a_minimized_objective_clips_at_the_top() -> None:
    rows = [*_cloud(center=0.3), _row(20, 2.3, state="PRUNED"), _row(21, 2.31)]
    fig = _draw(history_figure(_study(rows, direction="minimize")))
    [ax] = fig.axes
    low, high = ax.get_ylim()
    assert 0.28 < low < 0.29 and 0.31 < high < 0.35, (low, high)
    assert all(low <= y <= high for y in _ys(ax))
    assert "1 beyond the axis (drawn on its edge; worst 2.31)" in _legend_texts(fig)


def test_without_outliers_the_axis_keeps_every_trial() -> None:
    """A broad spread (the paper's grids, 0.71 … 0.91) is not clipped."""
    rows = [_row(i, 0.71 + 0.01 * i) for i in range(21)]
    fig = _draw(objective_figure(_study(rows)))
    low, high = fig.axes[0].get_ylim()
    assert low < 0.71 and high > 0.91
    assert not any("beyond" in t for t in _legend_texts(fig))


def test_history_names_pruned_trials_only_when_there_are_some() -> None:
    fig = _draw(history_figure(_study(_cloud())))
    title = fig.axes[0].get_title()
    assert title == "s: optimization history"
    assert not any("pruned" in t or "hollow" in t for t in [title, *_legend_texts(fig)])
    fig = _draw(history_figure(_study([*_cloud(), _row(20, 0.895, state="PRUNED")])))
    assert fig.axes[0].get_title() == "s: optimization history"
    assert "pruned (last value; on the edge if beyond it)" in _legend_texts(fig)


def test_importances_bars_are_labelled_with_their_values() -> None:
    imp = {"goal": {GOAL: 0.7123, LR: 0.25, "optimizer.mass": 0.0377}, "sgd": {LR: 1.0}}
    fig = _draw(importances_figure(imp, "what matters"))
    goal_ax, sgd_ax = fig.axes
    assert [t.get_text() for t in goal_ax.texts] == ["0.04", "0.25", "0.71"]  # bottom up
    assert [t.get_text() for t in sgd_ax.texts] == ["1.00"]
    renderer = fig.canvas.get_renderer()
    box = sgd_ax.get_window_extent(renderer)
    label = sgd_ax.texts[0].get_window_extent(renderer)
    assert label.x1 <= box.x1, "the label of a bar at 1 stays inside its panel"


def test_a_brake_that_never_fired_is_marked(tmp_path) -> None:
    rows = [  # three points of three seeds: braked, never braked, PHS (no brake)
        *(_row(i, 0.9, seed=i, point=0) for i in range(3)),
        *(_row(3 + i, 0.89, seed=i, point=1, fired=False) for i in range(3)),
        *(_row(6 + i, 0.88, seed=i, point=2, method="phs", fired=None) for i in range(3)),
    ]
    results = _study(rows, seeds=3)
    assert [r.brake_fired for r in rows] == [True] * 3 + [False] * 3 + [None] * 3
    assert "brake never fired" in _legend_texts(_draw(objective_figure(results)))
    assert "brake never fired" in _legend_texts(_draw(history_figure(results)))
    assert "brake never fired" not in _legend_texts(_draw(history_figure(_study(_cloud()))))
    cells = {p.key: braked_cell(p) for p in results.points()}
    assert sorted(cells.values()) == ["", "3/3", "never (0/3)"]
    _, best_md = write_best(results, [LR, GOAL], False, tmp_path, 10)
    lines = best_md.splitlines()
    assert "| n | braked |" in lines[0]
    assert any("| 3 | never (0/3) |" in line for line in lines)
    legend = _legend_texts(_draw(curves_figure(_study(rows[3:6], seeds=3))))
    assert legend == ["PHS + goal braking (best 0.890, 3 seeds, brake never fired)"]


def _cell(number: int, mass: float, friction: float, value: float) -> TrialRow:
    row = _row(number, value, method="phs", fired=None)
    config = {**row.config, LR: 0.1, "optimizer.mass": mass, "optimizer.friction": friction}
    return TrialRow(**{**vars(row), "config": config})


def test_a_collapsed_cell_does_not_spend_the_heatmap_s_colors() -> None:
    masses, frictions = [1.0, 3.0, 10.0, 30.0], [0.01, 0.1, 1.0]
    rows = [
        _cell(i * 3 + j, m, f, 0.85 + 0.01 * i + 0.005 * j)
        for i, m in enumerate(masses)
        for j, f in enumerate(frictions)
    ]
    rows[0] = _cell(0, 1.0, 0.01, 0.106)  # diverged: chance level
    fig = _draw(mass_friction_figure(_study(rows)))
    [image] = fig.axes[0].images
    assert image.norm.vmin == pytest.approx(min(r.value for r in rows[1:]))
    assert image.norm.vmax == pytest.approx(max(r.value for r in rows))
    assert fig.axes[-1].get_label() == "<colorbar>" and "0.106" in [
        t.get_text() for t in fig.axes[0].texts
    ]
    # Without an outlier, the colors span every cell.
    fig = _draw(mass_friction_figure(_study(rows[1:])))
    assert fig.axes[0].images[0].norm.vmin == pytest.approx(min(r.value for r in rows[1:]))
