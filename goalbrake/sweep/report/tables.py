"""The report's tables: trials.csv, best.csv/best.md, paired.csv/paired.md, base settings.

Settings are ranked on the mean validation objective of a point (seeds aggregated); the
paired table compares, per lr, each arm's best point seed by seed
(:func:`goalbrake.sweep.report.stats.paired`).
"""

from __future__ import annotations

import csv
import inspect
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypedDict

from goalbrake.app import is_goal_brake
from goalbrake.callbacks import GoalBrake
from goalbrake.optim import PHS
from goalbrake.sweep.attrs import ROW_PARAM
from goalbrake.sweep.define.params import Scalar
from goalbrake.sweep.report.results import Point, StudyResults
from goalbrake.sweep.report.stats import Paired, paired

__all__ = [
    "PAIR_BY",
    "Comparison",
    "braked_cell",
    "comparisons",
    "fmt",
    "paired_columns",
    "settings_lines",
    "write_best",
    "write_importances",
    "write_paired",
    "write_trials",
]

#: Where the paired comparison splits a study (one table per value).
PAIR_BY = "optimizer.lr"
#: The goal reading's address: the paired table names it in the arm, not the setting.
MODE = "brake.mode"
_METHOD_ORDER = ("goal", "phs", "sgd")
_STATS = ("mean", "std", "t", "p", "ci_low", "ci_high", "wins")

#: One paired comparison of two arms' best points (``test_*`` only for a ``test: true`` grid).
Comparison = TypedDict(
    "Comparison",
    {
        "optimizer.lr": Scalar,
        "a": str,
        "b": str,
        "a_point": Point,
        "b_point": Point,
        "seeds": list[Scalar],
        "val": Paired,
        "test_best": Paired,
        "test_final": Paired,
    },
    total=False,
)


# ----------------------------------------------------------------------------- cells
def fmt(value: Scalar) -> str:
    """A hyperparameter value for the markdown table: 0.1, 0.01, 10, remaining."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def _pm(mean: float | None, std: float | None) -> str:
    if mean is None:
        return ""
    return f"{mean:.4f} ± {std:.4f}" if std is not None else f"{mean:.4f}"


def _csv_value(value: Scalar) -> Scalar:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return "" if value is None else value


def _write_csv(path: Path, header: list[str], rows: list[list[Scalar]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _default(cls: type, name: str) -> object:
    """The default of ``cls.__init__``'s argument ``name``: the class's own, not a copy."""
    return inspect.signature(cls.__init__).parameters[name].default


# ----------------------------------------------------------------------------- settings
def settings_lines(results: StudyResults) -> list[str]:
    """Convention, scheme, goal reading, epochs, batch size of each base config."""
    lines = []
    fixed = results.attrs.get("fixed") or {}
    for base, config in (results.attrs.get("bases") or {}).items():
        trainer = config.get("trainer") or {}
        opt = config.get("optimizer") or {}
        init = opt.get("init_args") or {}
        data = (config.get("data") or {}).get("init_args") or {}
        brake = [
            c.get("init_args") or {} for c in trainer.get("callbacks") or [] if is_goal_brake(c)
        ]
        parts = [f"optimizer {str(opt.get('class_path', '?')).rpartition('.')[2]}"]
        if "scheme" in init or "PHS" in str(opt.get("class_path")):
            for name in ("scheme", "friction_on"):
                parts.append(f"{name} {init.get(name, f'{_default(PHS, name)} (default)')}")
        if brake:
            mode = brake[0].get("mode", f"{_default(GoalBrake, 'mode')} (default)")
            parts.append(f"goal reading {mode}")
        parts.append(
            f"max_epochs {fixed.get('trainer.max_epochs', trainer.get('max_epochs', '?'))}"
        )
        parts.append(f"batch_size {fixed.get('data.batch_size', data.get('batch_size', '?'))}")
        lines.append(f"- `{base}`: " + ", ".join(parts))
    return lines


# ----------------------------------------------------------------------------- trials
_TRIAL_HEAD = ["number", "state", "value", "final_value", "best_epoch", "epochs", "method"]
_TRIAL_TAIL = ["seed", "retry_of", "reason", "duration_s", "test_acc_final", "test_acc_best"]
_TRIAL_TAIL += ["brake_fired"]


def write_trials(results: StudyResults, out: Path) -> Path:
    """trials.csv: every trial, full precision."""
    params = results.params
    rows = [
        [
            r.number,
            r.state,
            _csv_value(r.value),
            _csv_value(r.final_value),
            _csv_value(r.best_epoch),
            _csv_value(r.epochs),
            r.method,
            *(_csv_value(r.config.get(p)) for p in params),
            _csv_value(r.seed),
            _csv_value(r.retry_of),
            r.reason,
            _csv_value(r.duration_s),
            _csv_value(r.test_value("final")),
            _csv_value(r.test_value("best")),
            "" if r.brake_fired is None else int(r.brake_fired),
        ]
        for r in results.rows
    ]
    return _write_csv(out / "trials.csv", [*_TRIAL_HEAD, *params, *_TRIAL_TAIL], rows)


# ----------------------------------------------------------------------------- best
def braked_cell(point: Point) -> str:
    """How many of a braking point's complete trials braked: ``3/3``, ``never (0/3)``;
    empty for a point without a brake."""
    if point.braked is None:
        return ""
    fired, known = point.braked
    return f"never ({fired}/{known})" if fired == 0 else f"{fired}/{known}"


def _best_csv(points: list[Point], shown: list[str], metric: str, out: Path) -> Path:
    header = ["rank", "method", *shown, "n", "braked", f"{metric}_mean", f"{metric}_std"]
    header += ["final_mean", "final_std", "test_acc_final_mean", "test_acc_final_std"]
    header += ["test_acc_best_mean", "test_acc_best_std", "trials"]
    rows = [
        [
            i + 1,
            p.method,
            *(_csv_value(p.param(n)) for n in shown),
            p.n,
            "" if p.braked is None else p.braked[0],
            _csv_value(p.value[0]),
            _csv_value(p.value[1]),
            _csv_value(p.final[0]),
            _csv_value(p.final[1]),
            *(_csv_value(v) for v in p.test("final")),
            *(_csv_value(v) for v in p.test("best")),
            " ".join(str(t.number) for t in p.complete),
        ]
        for i, p in enumerate(points)
    ]
    return _write_csv(out / "best.csv", header, rows)


def _best_md(points: list[Point], shown: list[str], metric: str, tested: bool) -> str:
    test_head = " | test acc (final) | test acc (best-val ckpt)" if tested else ""
    md = [
        f"| rank | method | {' | '.join(shown)} | n | braked | {metric} (best epoch) "
        f"| {metric} (last epoch){test_head} | trials |",
        "|" + "---|" * (len(shown) + 7 + 2 * tested),
    ]
    for i, p in enumerate(points):
        test_cells = f"{_pm(*p.test('final'))} | {_pm(*p.test('best'))} | " if tested else ""
        md.append(
            f"| {i + 1} | {p.method} | "
            + " | ".join(fmt(p.param(n)) for n in shown)
            + f" | {p.n} | {braked_cell(p)} | {_pm(*p.value)} | {_pm(*p.final)} | {test_cells}"
            + " ".join(str(t.number) for t in p.complete)
            + " |"
        )
    return "\n".join(md) + "\n"


def write_best(
    results: StudyResults, shown: list[str], tested: bool, out: Path, top: int
) -> tuple[list[Path], str]:
    """best.csv and best.md: the ``top`` points, seeds aggregated; returns best.md's text."""
    points = results.points()[:top]
    written = [_best_csv(points, shown, results.metric, out)]
    text = _best_md(points, shown, results.metric, tested)
    (out / "best.md").write_text(text)
    written.append(out / "best.md")
    return written, text


def write_importances(imp: Mapping[str, Mapping[str, float]], out: Path) -> Path:
    """importances.csv: one row per method and parameter."""
    rows: list[list[Scalar]] = [
        [m, k, repr(v)] for m, values in imp.items() for k, v in values.items()
    ]
    return _write_csv(out / "importances.csv", ["method", "parameter", "importance"], rows)


# ----------------------------------------------------------------------------- paired
def _arm_rank(arm: str) -> tuple[int, str]:
    method = arm.split(" (")[0]
    return (_METHOD_ORDER.index(method) if method in _METHOD_ORDER else len(_METHOD_ORDER), arm)


def _pair(group: Scalar, a: str, b: str, best: Mapping[str, Point]) -> Comparison | None:
    ta = {t.seed: t for t in best[a].complete}
    tb = {t.seed: t for t in best[b].complete}
    seeds = sorted(set(ta) & set(tb), key=str)
    if len(seeds) < 2:
        return None
    row: Comparison = {
        PAIR_BY: group,  # type: ignore[misc]
        "a": a,
        "b": b,
        "a_point": best[a],
        "b_point": best[b],
        "seeds": seeds,
        "val": paired([ta[s].value for s in seeds], [tb[s].value for s in seeds]),
    }
    for kind in ("best", "final"):
        va = [ta[s].test_value(kind) for s in seeds]
        vb = [tb[s].test_value(kind) for s in seeds]
        if None not in va and None not in vb:
            row[f"test_{kind}"] = paired(va, vb)  # type: ignore[literal-required]
    return row


def comparisons(results: StudyResults) -> list[Comparison]:
    """Paired comparisons of the arms (methods; braking split by goal reading) per lr.

    Within each value of ``optimizer.lr`` (the whole study if it has none), each arm's best
    point is the one with the best *mean validation* objective; every pair of arms is then
    compared seed by seed (same seed: same initial weights and data order) on the
    validation objective and, for a ``test: true`` grid, on the test accuracy of the
    best-val checkpoint and of the final weights. Pairs with fewer than two common seeds
    are left out.
    """
    groups: dict[Scalar, list[Point]] = {}
    for point in results.points():  # best mean first
        groups.setdefault(point.param(PAIR_BY), []).append(point)
    out = []
    for group, points in sorted(groups.items(), key=lambda kv: (kv[0] is None, str(kv[0]))):
        best: dict[str, Point] = {}
        for point in points:
            best.setdefault(point.complete[0].arm, point)
        arms = sorted(best, key=_arm_rank)
        for i, a in enumerate(arms):
            for b in arms[i + 1 :]:
                row = _pair(group, a, b, best)
                if row is not None:
                    out.append(row)
    return out


def paired_columns(tested: bool, metric: str) -> list[tuple[str, str]]:
    """The compared quantities: (key in a :data:`Comparison`, column title)."""
    columns = [("val", f"Δ {metric}")]
    if tested:
        columns += [
            ("test_best", "Δ test acc (best-val ckpt)"),
            ("test_final", "Δ test acc (final)"),
        ]
    return columns


def _stats(row: Comparison, key: str) -> Sequence[Scalar]:
    if key not in row:
        return (None,) * len(_STATS)
    p: Paired = row[key]  # type: ignore[literal-required]
    return (p.mean, p.std, p.t, p.p, *(p.ci95 or (None, None)), p.wins)


def _arm_cell(arm: str, point: Point, names: list[str]) -> str:
    """``goal (remaining): mass 10, goal 0.05, factor 50``; just the arm without settings."""
    parts = [f"{n.rpartition('.')[2]} {fmt(point.param(n))}" for n in names]
    setting = ", ".join(p for p in parts if not p.endswith(" "))
    if point.braked is not None and point.braked[0] == 0:
        arm += " [brake never fired]"
    return f"{arm}: {setting}" if setting else arm


def _paired_md(pairs: list[Comparison], columns: list[tuple[str, str]], shown: list[str]) -> str:
    free = [n for n in shown if n not in (PAIR_BY, ROW_PARAM, MODE)]
    md = [
        f"| {PAIR_BY.rpartition('.')[2]} | A | B | seeds | "
        + " | ".join(f"{title}, A − B" for _, title in columns)
        + " |",
        "|" + "---|" * (4 + len(columns)),
    ]
    for row in pairs:
        cells = [
            fmt(row[PAIR_BY]),  # type: ignore[misc]
            _arm_cell(row["a"], row["a_point"], free),
            _arm_cell(row["b"], row["b_point"], free),
            str(len(row["seeds"])),
        ] + [row[key].describe() if key in row else "" for key, _ in columns]  # type: ignore[literal-required]
        md.append("| " + " | ".join(cells) + " |")
    return "\n".join(md) + "\n" if pairs else ""


def write_paired(
    pairs: list[Comparison], columns: list[tuple[str, str]], shown: list[str], out: Path
) -> tuple[list[Path], str]:
    """paired.csv and paired.md; returns paired.md's text (empty without pairs)."""
    header = [PAIR_BY, "a", "b", "seeds", "a_trials", "b_trials"]
    header += [f"{key}_{stat}" for key, _ in columns for stat in _STATS]
    rows = [
        [
            _csv_value(row[PAIR_BY]),  # type: ignore[misc]
            row["a"],
            row["b"],
            " ".join(str(s) for s in row["seeds"]),
            " ".join(str(t.number) for t in row["a_point"].complete),
            " ".join(str(t.number) for t in row["b_point"].complete),
        ]
        + [_csv_value(v) for key, _ in columns for v in _stats(row, key)]
        for row in pairs
    ]
    written = [_write_csv(out / "paired.csv", header, rows)]
    text = _paired_md(pairs, columns, shown)
    (out / "paired.md").write_text(text)
    written.append(out / "paired.md")
    return written, text
