"""The benchmark's table and figure for one dataset, from the tuning and confirmation
journals present (docs/benchmark.md, "Readout").

Per arm: its number and name, the chosen setting (:mod:`selection`'s rule), the selected
trial's tuning value (val, seed 0, split 0), then from its 5-seed confirmation (seed s
trains and validates on split s, so arms pair by seed) the test accuracy of the final
weights (the headline) and of the best-val checkpoint, mean ± std (ddof 1) with n; the
headline's paired difference against arm 6 (``phs_goal``) over the seeds both have, with its
95 % interval (Student's t, n − 1 d.o.f.), the paired-t p (SciPy's ``ttest_rel``), Holm's
adjustment of those p across the arms compared, and the seeds where the arm beats arm 6;
then the tuning trials run / complete and the wall time (the sum of the trials' durations,
tuning + confirmation). An arm without a confirmation journal is a "not yet" row.

The figure: every confirmed arm's validation accuracy per epoch, mean over its seeds with a
± 1 std band (each trial stores its curve in the user attr ``curve``).

Statistics come from :mod:`goalbrake.sweep.report` (:func:`~goalbrake.sweep.report.results.
collect`, :func:`~goalbrake.sweep.report.stats.paired`); Holm's step-down is :func:`holm`.

    python experiments/benchmark/report.py --dataset fashionmnist
    python experiments/benchmark/report.py --dataset fashionmnist --table /tmp/fm.md
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import selection
from matplotlib.ticker import MaxNLocator
from selection import ARMS, BENCHMARK, DATASETS, REFERENCE, REPO, Selection, SelectionError

from goalbrake.sweep.define.params import Scalar
from goalbrake.sweep.report.results import StudyResults, TrialRow, collect
from goalbrake.sweep.report.stats import Paired, paired

__all__ = [
    "ArmReport",
    "Band",
    "Report",
    "band",
    "compare",
    "curves_figure",
    "holm",
    "main",
    "read_arm",
    "report",
    "table_rows",
]

HEADLINE = "final"
SECOND = "best"
TEST_METRIC = "test/acc"
COLUMNS = (
    "#",
    "arm",
    "chosen setting",
    "val",
    "test, final weights",
    "test, best-val ckpt",
    "Δ final vs arm 6 (95 % CI)",
    "p",
    "Holm p",
    "wins",
    "trials run / complete",
    "wall (tune + confirm)",
)
NOT_YET = "not yet"


# ----------------------------------------------------------------------------- reading
@dataclass
class ArmReport:
    """What the journals present say about one arm."""

    number: int
    arm: str
    tuning: StudyResults | None = None
    selection: Selection | None = None
    #: Why there is no selection or no confirmation yet (one line), else "".
    note: str = ""
    confirm: StudyResults | None = None

    def complete(self) -> list[TrialRow]:
        """The confirmation's COMPLETE trials."""
        return [r for r in self.confirm.rows if r.state == "COMPLETE"] if self.confirm else []

    def tests(self, kind: str) -> dict[int, float]:
        """Seed → test accuracy of the ``final`` weights or the ``best``-val checkpoint."""
        out: dict[int, float] = {}
        for row in self.complete():
            value = row.test_value(kind, TEST_METRIC)
            if value is not None:
                out[int(row.seed)] = value  # type: ignore[arg-type]
        return out


def _collect(path: Path, study: str) -> StudyResults:
    with selection.load_journal(path, study) as loaded:
        return collect(loaded)


def _check_confirm(arm: ArmReport, results: StudyResults) -> None:
    """The confirmation ran the selected trial's row, and only it."""
    labels = {str(r.config.get("row")) for r in results.rows}
    chosen = arm.selection.label if arm.selection else None
    if labels != {chosen}:
        raise SelectionError(
            f"{results.name}: confirms rows {sorted(labels)}, the selection is {chosen}"
        )


def read_arm(dataset: str, arm: str, journals: Path = BENCHMARK) -> ArmReport:
    """The tuning and confirmation of ``arm`` from the journals in ``journals``.

    Raises:
        SelectionError: a confirmation journal of another trial than the selected one.
    """
    out = ArmReport(ARMS.index(arm) + 1, arm)
    spec_file = selection.tuning_file(dataset, arm)
    study = f"benchmark_{dataset}_{arm}"
    tuning = journals / f"{dataset}_{arm}.journal"
    if not tuning.is_file():
        out.note = "tuning not started"
        return out
    out.tuning = _collect(tuning, study)
    try:
        out.selection = selection.select_arm(dataset, arm, tuning)
    except SelectionError as err:
        out.note = f"tuning: {str(err).partition(': ')[2]}"
        return out
    name = selection.confirm_name(dataset, arm)
    confirm = journals / f"{name}.journal"
    if not confirm.is_file():
        out.note = f"confirmation not run ({spec_file.parent.name}/{name}.yaml)"
        return out
    out.confirm = _collect(confirm, f"benchmark_{name}")
    _check_confirm(out, out.confirm)
    return out


# ----------------------------------------------------------------------------- statistics
def holm(ps: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of ``ps``, in their order.

    With p₍₁₎ ≤ … ≤ p₍ₘ₎, p̃₍ᵢ₎ = max over j ≤ i of min(1, (m − j + 1) p₍ⱼ₎).

    Example:
        >>> holm([0.125, 0.5, 0.25])
        [0.375, 0.5, 0.5]
    """
    m = len(ps)
    order = sorted(range(m), key=lambda i: ps[i])
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * ps[i]))
        out[i] = running
    return out


def compare(arms: Sequence[ArmReport], kind: str = HEADLINE) -> dict[str, Paired]:
    """Each confirmed arm against arm 6 on ``kind``, paired over the seeds both have."""
    reference = next((a for a in arms if a.arm == REFERENCE), None)
    if reference is None or not reference.tests(kind):
        return {}
    ref = reference.tests(kind)
    out: dict[str, Paired] = {}
    for arm in arms:
        mine = arm.tests(kind)
        seeds = sorted(set(mine) & set(ref))
        if arm.arm != REFERENCE and seeds:
            out[arm.arm] = paired([mine[s] for s in seeds], [ref[s] for s in seeds])
    return out


# ----------------------------------------------------------------------------- the table
def _setting(chosen: Selection) -> str:
    def value(v: Scalar) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    values = ", ".join(f"{n.rpartition('.')[2]} {value(v)}" for n, v in chosen.values.items())
    return f"{values} (trial {chosen.trial.number})"


def _mean_std(values: Sequence[float]) -> str:
    if not values:
        return NOT_YET
    mean = float(np.mean(values))
    std = f" ± {100 * float(np.std(values, ddof=1)):.2f}" if len(values) > 1 else ""
    return f"{100 * mean:.2f}{std} % (n = {len(values)})"


def _delta(d: Paired | None) -> str:
    if d is None:
        return ""
    text = f"{100 * d.mean:+.2f} pp"
    if d.ci95 is not None:
        text += f" [{100 * d.ci95[0]:+.2f}, {100 * d.ci95[1]:+.2f}]"
    return text


def _hours(rows: Sequence[TrialRow]) -> float:
    return sum(r.duration_s or 0.0 for r in rows) / 3600.0


def _trials(arm: ArmReport) -> tuple[str, str]:
    if arm.tuning is None:
        return "0 / 0", ""
    rows = arm.tuning.rows
    run = sum(r.state in ("COMPLETE", "PRUNED", "FAIL") for r in rows)
    wall = f"{_hours(rows):.1f} h"
    if arm.confirm is not None:
        wall += f" + {_hours(arm.confirm.rows):.1f} h"
    return f"{run} / {arm.tuning.count('COMPLETE')}", wall


def _p(value: float | None) -> str:
    return "" if value is None else f"{value:.2g}"


def table_rows(arms: Sequence[ArmReport]) -> list[dict[str, str]]:
    """One row per arm, keyed by :data:`COLUMNS`."""
    deltas = compare(arms)
    tested = [a for a in deltas if deltas[a].p is not None]
    adjusted = dict(zip(tested, holm([deltas[a].p for a in tested]), strict=True))  # type: ignore[misc]
    rows = []
    for arm in arms:
        d = deltas.get(arm.arm)
        trials, wall = _trials(arm)
        chosen = _setting(arm.selection) if arm.selection else arm.note
        val = f"{arm.selection.trial.value:.4f}" if arm.selection else ""
        confirmed = arm.confirm is not None
        row = {
            "#": str(arm.number),
            "arm": f"**{arm.arm}**" if arm.arm == REFERENCE else arm.arm,
            "chosen setting": chosen,
            "val": val,
            "test, final weights": _mean_std(list(arm.tests(HEADLINE).values())),
            "test, best-val ckpt": _mean_std(list(arm.tests(SECOND).values())),
            "Δ final vs arm 6 (95 % CI)": _delta(d) if confirmed else NOT_YET,
            "p": _p(d.p if d else None),
            "Holm p": _p(adjusted.get(arm.arm)),
            "wins": f"{d.wins}/{d.n}" if d else "",
            "trials run / complete": trials,
            "wall (tune + confirm)": wall,
        }
        if arm.arm == REFERENCE and confirmed:
            row["Δ final vs arm 6 (95 % CI)"] = "(reference)"
        rows.append(row)
    return rows


def markdown(rows: Sequence[dict[str, str]]) -> str:
    """The rows as a markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row[c] for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- the figure
@dataclass(frozen=True)
class Band:
    """One arm's curve: epochs (1-based), the mean over seeds and its std (ddof 1)."""

    epochs: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    n: int


def band(rows: Sequence[TrialRow], metric: str) -> Band | None:
    """Mean ± std per epoch of ``metric`` over the trials' stored curves."""
    curves = [r.curve.get(metric) for r in rows if r.curve.get(metric)]
    if not curves:
        return None
    ys = np.full((len(curves), max(len(c) for c in curves)), np.nan)
    for i, curve in enumerate(curves):
        ys[i, : len(curve)] = [np.nan if v is None else v for v in curve]
    std = np.nanstd(ys, axis=0, ddof=1) if len(curves) > 1 else np.zeros(ys.shape[1])
    return Band(np.arange(ys.shape[1]) + 1, np.nanmean(ys, axis=0), std, len(curves))


def curves_figure(arms: Sequence[ArmReport], path: Path, title: str) -> dict[str, Band]:
    """Draw every confirmed arm's validation curve to ``path``; the bands drawn, by arm
    (nothing is written when no arm is confirmed)."""
    bands: dict[str, Band] = {}
    for arm in arms:
        if arm.confirm is not None and (b := band(arm.complete(), arm.confirm.metric)):
            bands[arm.arm] = b
    if not bands:
        return bands
    fig, ax = plt.subplots(figsize=(8, 4.8), layout="constrained")
    colors = plt.get_cmap("tab10")
    for arm in arms:
        if arm.arm not in bands:
            continue
        b, color = bands[arm.arm], colors(arm.number - 1)
        lw = 2.4 if arm.arm == REFERENCE else 1.4
        label = f"{arm.number} {arm.arm} (n = {b.n})"
        ax.plot(b.epochs, b.mean, color=color, lw=lw, marker="o", ms=2.5, label=label)
        ax.fill_between(b.epochs, b.mean - b.std, b.mean + b.std, color=color, alpha=0.15, lw=0)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("val/acc (mean ± std over seeds)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.legend(fontsize=8, loc="outside lower center", ncol=4, frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return bands


# ----------------------------------------------------------------------------- command
@dataclass
class Report:
    """What :func:`report` read, printed and drew."""

    dataset: str
    arms: list[ArmReport]
    rows: list[dict[str, str]]
    table: str
    figure: Path | None
    bands: dict[str, Band] = field(default_factory=dict)


def report(dataset: str, journals: Path = BENCHMARK, figure: Path | None = None) -> Report:
    """Read every arm of ``dataset``; draw the figure to ``figure`` (default
    docs/img/benchmark_<dataset>_curves.png)."""
    figure = figure or REPO / "docs" / "img" / f"benchmark_{dataset}_curves.png"
    arms = [read_arm(dataset, arm, journals) for arm in ARMS]
    rows = table_rows(arms)
    title = f"Benchmark, {dataset}: each arm's 5-seed confirmation (the split follows the seed)"
    bands = curves_figure(arms, figure, title)
    compared = sum(r["Holm p"] != "" for r in rows)
    table = markdown(rows) + (
        f"\nΔ: the arm minus arm 6 ({REFERENCE}) on the test accuracy of the final weights, "
        "paired by seed (wins: seeds where the arm is higher); Holm over the "
        f"{compared} comparisons present.\n"
    )
    return Report(dataset, arms, rows, table, figure if bands else None, bands)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python experiments/benchmark/report.py",
        description="Print the benchmark's table and draw its figure for one dataset.",
    )
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--journals", type=Path, default=BENCHMARK, help="where the journals are")
    p.add_argument("--figure", type=Path, help="default docs/img/benchmark_<ds>_curves.png")
    p.add_argument("--table", type=Path, help="also write the table (markdown) here")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table; write the figure (and ``--table``)."""
    args = _parser().parse_args(argv)
    try:
        done = report(args.dataset, args.journals, args.figure)
    except SelectionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(done.table, end="")
    if args.table is not None:
        args.table.write_text(done.table)
        print(f"table: {args.table}")
    print(f"figure: {done.figure}" if done.figure else "figure: no arm is confirmed yet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
