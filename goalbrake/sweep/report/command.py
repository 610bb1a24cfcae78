"""``goalbrake report``: tables and plots of a sweep, from its storage alone.

::

    goalbrake report --study fashionmnist_goal                       # the embedded journal
    goalbrake report --study cifar10_goal --storage postgresql://goalbrake@db:5432/sweeps

Writes into ``--out`` (default ``<runs-dir>/<study>/report``):

==========================  =============================================================
``report.md``               settings, counts, best points, importances, the figures
``best.md``, ``best.csv``   best points (seeds aggregated: mean ± sample std, n)
``trials.csv``              every trial: state, value, final value, parameters, reasons
``importances.csv``         PED-ANOVA importances of the varying hyperparameters, per method
``paired.md``, ``paired.csv`` per lr, each method's best setting against the others, paired
                            by seed (mean difference, 95 % CI, p, wins); grids with seeds
``objective_vs_params.png`` objective vs each hyperparameter
``curves.png``              validation metric over epochs, best SGD/PHS/goal (Fig. 3)
``mass_friction.png``       objective over mass × friction at fixed lr (Fig. 1)
``importances.png``         importances as bars
``history.png``             objective by trial number
==========================  =============================================================

A figure that does not apply (e.g. no mass × friction variation) is left out and the
report says why. Settings are ranked and selected on the validation metric; a ``test: true``
grid (a reproduction) adds the test accuracy of the final weights and of the best-val
checkpoint beside it.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["importances", "main", "write_report"]

PROG = "goalbrake report"
#: Fewest COMPLETE trials for parameter importances.
MIN_TRIALS_FOR_IMPORTANCE = 4


def _fmt(value: Any) -> str:
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


def _importances_of(
    rows: list[Any], names: list[str], direction: str
) -> tuple[dict[str, float], str]:
    """PED-ANOVA importances of ``names`` over ``rows`` (COMPLETE trials that all have them)."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.exceptions import ExperimentalWarning

    if len(rows) < MIN_TRIALS_FOR_IMPORTANCE:
        return {}, f"needs at least {MIN_TRIALS_FOR_IMPORTANCE} complete trials (has {len(rows)})"
    dists: dict[str, Any] = {}
    for name in names:
        values = [r.config[name] for r in rows]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            low, high = float(min(values)), float(max(values))
            if low < high:
                dists[name] = FloatDistribution(low, high, log=low > 0 and high / low >= 20)
        else:
            choices = sorted({str(v) for v in values})
            if len(choices) > 1:
                dists[name] = CategoricalDistribution(choices)
    if not dists:
        return {}, "no hyperparameter varies"
    copy_study = optuna.create_study(direction=direction)
    for r in rows:
        params = {
            name: float(r.config[name])
            if isinstance(dist, FloatDistribution)
            else str(r.config[name])
            for name, dist in dists.items()
        }
        copy_study.add_trial(
            optuna.trial.create_trial(params=params, distributions=dists, value=r.value)
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        warnings.simplefilter("ignore", UserWarning)
        try:
            evaluator = optuna.importance.PedAnovaImportanceEvaluator()
            out = optuna.importance.get_param_importances(copy_study, evaluator=evaluator)
        except (ValueError, RuntimeError, ZeroDivisionError) as err:
            return {}, f"failed: {err}"
    return dict(out), f"PED-ANOVA over {len(rows)} complete trials"


def importances(results: Any) -> tuple[dict[str, dict[str, float]], str]:
    """PED-ANOVA importances of the hyperparameters, per method.

    Computed on an in-memory copy of the COMPLETE trials whose parameters are the values
    the fits used (so a grid of named rows gets importances of lr, mass, ... rather than of
    the row label), separately for each method (SGD, PHS, goal) over the parameters every
    trial of that method has: across methods a parameter such as ``brake.goal`` exists only
    for some trials, and its importance would measure the method instead.

    Returns:
        ``({method: {parameter: importance}}, note)``; methods without enough trials or
        without a varying parameter are left out, and the note says why.
    """
    complete = [r for r in results.rows if r.state == "COMPLETE" and r.value is not None]
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
        return {}, (
            f"parameter importances need at least {MIN_TRIALS_FOR_IMPORTANCE} complete trials "
            f"(have {len(complete)})"
        )
    varying = results.varying()
    out: dict[str, dict[str, float]] = {}
    notes = []
    for method in sorted({r.method for r in complete}):
        rows = [r for r in complete if r.method == method]
        names = [n for n in varying if all(n in r.config for r in rows)]
        values, note = _importances_of(rows, names, results.direction)
        if values:
            out[method] = values
        notes.append(f"{method}: {note}")
    return out, "; ".join(notes)


def _settings_lines(results: Any) -> list[str]:
    """DESIGN §5: convention, scheme, goal reading, epochs, batch size of each base."""
    lines = []
    fixed = results.attrs.get("fixed") or {}
    for base, config in (results.attrs.get("bases") or {}).items():
        trainer = config.get("trainer") or {}
        opt = config.get("optimizer") or {}
        init = opt.get("init_args") or {}
        data = (config.get("data") or {}).get("init_args") or {}
        brake = [
            c.get("init_args") or {}
            for c in trainer.get("callbacks") or []
            if str((c or {}).get("class_path", "")).endswith("GoalBrake")
        ]
        parts = [f"optimizer {str(opt.get('class_path', '?')).rpartition('.')[2]}"]
        if "scheme" in init or "PHS" in str(opt.get("class_path")):
            parts.append(f"scheme {init.get('scheme', 'conformal (default)')}")
            parts.append(f"friction_on {init.get('friction_on', 'velocity (default)')}")
        if brake:
            parts.append(f"goal reading {brake[0].get('mode', 'remaining (default)')}")
        parts.append(
            f"max_epochs {fixed.get('trainer.max_epochs', trainer.get('max_epochs', '?'))}"
        )
        parts.append(f"batch_size {fixed.get('data.batch_size', data.get('batch_size', '?'))}")
        lines.append(f"- `{base}`: " + ", ".join(parts))
    return lines


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return "" if value is None else value


#: Where the paired comparison splits a study (one table per value).
PAIR_BY = "optimizer.lr"
_METHOD_ORDER = ("goal", "phs", "sgd")


def _arm_rank(arm: str) -> tuple[int, str]:
    method = arm.split(" (")[0]
    return (_METHOD_ORDER.index(method) if method in _METHOD_ORDER else len(_METHOD_ORDER), arm)


def comparisons(results: Any) -> list[dict[str, Any]]:
    """Paired comparisons of the arms (methods; braking split by goal reading) per lr.

    Within each value of ``optimizer.lr`` (the whole study if it has none), each arm's best
    point is the one with the best *mean validation* objective; every pair of arms is then
    compared seed by seed (same seed: same initial weights and data order) on the
    validation objective and, for a ``test: true`` grid, on the test accuracy of the
    best-val checkpoint and of the final weights. Pairs with fewer than two common seeds
    are left out.
    """
    from goalbrake.sweep.stats import paired

    groups: dict[Any, list[Any]] = {}
    for point in results.points():  # best mean first
        groups.setdefault(point.param(PAIR_BY), []).append(point)
    out = []
    for group, points in sorted(groups.items(), key=lambda kv: (kv[0] is None, str(kv[0]))):
        best: dict[str, Any] = {}
        for point in points:
            best.setdefault(point.complete[0].arm, point)
        arms = sorted(best, key=_arm_rank)
        for i, a in enumerate(arms):
            for b in arms[i + 1 :]:
                ta = {t.seed: t for t in best[a].complete}
                tb = {t.seed: t for t in best[b].complete}
                seeds = sorted(set(ta) & set(tb), key=str)
                if len(seeds) < 2:
                    continue
                row: dict[str, Any] = {
                    PAIR_BY: group,
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
                        row[f"test_{kind}"] = paired(va, vb)
                out.append(row)
    return out


def _arm_cell(arm: str, point: Any, names: list[str]) -> str:
    """``goal (remaining): mass 10, goal 0.05, factor 50``; just the arm without settings."""
    parts = [f"{n.rpartition('.')[2]} {_fmt(point.param(n))}" for n in names]
    setting = ", ".join(p for p in parts if not p.endswith(" "))
    return f"{arm}: {setting}" if setting else arm


def write_report(study: Any, out: Path, top: int = 20) -> list[Path]:
    """Write the tables and figures of ``study`` into ``out``; returns the files written."""
    from goalbrake.sweep import plots
    from goalbrake.sweep.results import collect

    results = collect(study)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    params = results.params
    varying = [p for p in results.varying() if p != "row"]
    metric = results.metric

    # trials.csv: everything, full precision.
    header = [
        "number",
        "state",
        "value",
        "final_value",
        "best_epoch",
        "epochs",
        "method",
        *params,
        "seed",
        "retry_of",
        "reason",
        "duration_s",
        "test_acc_final",
        "test_acc_best",
    ]
    _write_csv(
        out / "trials.csv",
        header,
        [
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
            ]
            for r in results.rows
        ],
    )
    written.append(out / "trials.csv")

    # best.csv / best.md: points, seeds aggregated.
    points = results.points()[:top]
    shown = [p for p in params if p in varying] or params
    _write_csv(
        out / "best.csv",
        [
            "rank",
            "method",
            *shown,
            "n",
            f"{metric}_mean",
            f"{metric}_std",
            "final_mean",
            "final_std",
            "test_acc_final_mean",
            "test_acc_final_std",
            "test_acc_best_mean",
            "test_acc_best_std",
            "trials",
        ],
        [
            [
                i + 1,
                p.method,
                *(_csv_value(p.param(n)) for n in shown),
                p.n,
                _csv_value(p.value[0]),
                _csv_value(p.value[1]),
                _csv_value(p.final[0]),
                _csv_value(p.final[1]),
                *(_csv_value(v) for v in p.test("final")),
                *(_csv_value(v) for v in p.test("best")),
                " ".join(str(t.number) for t in p.complete),
            ]
            for i, p in enumerate(points)
        ],
    )
    written.append(out / "best.csv")
    tested = any(r.test for r in results.rows)
    test_head = " | test acc (final) | test acc (best-val ckpt)" if tested else ""
    md = [
        f"| rank | method | {' | '.join(shown)} | n | {metric} (best epoch) "
        f"| {metric} (last epoch){test_head} | trials |",
        "|" + "---|" * (len(shown) + 6 + 2 * tested),
    ]
    for i, p in enumerate(points):
        test_cells = f"{_pm(*p.test('final'))} | {_pm(*p.test('best'))} | " if tested else ""
        md.append(
            f"| {i + 1} | {p.method} | "
            + " | ".join(_fmt(p.param(n)) for n in shown)
            + f" | {p.n} | {_pm(*p.value)} | {_pm(*p.final)} | {test_cells}"
            + " ".join(str(t.number) for t in p.complete)
            + " |"
        )
    best_md = "\n".join(md) + "\n"
    (out / "best.md").write_text(best_md)
    written.append(out / "best.md")

    pairs = comparisons(results)
    columns = [("val", f"Δ {metric}")]
    if tested:
        columns += [
            ("test_best", "Δ test acc (best-val ckpt)"),
            ("test_final", "Δ test acc (final)"),
        ]
    _write_csv(
        out / "paired.csv",
        [PAIR_BY, "a", "b", "seeds", "a_trials", "b_trials"]
        + [
            f"{key}_{stat}"
            for key, _ in columns
            for stat in ("mean", "std", "t", "p", "ci_low", "ci_high", "wins")
        ],
        [
            [
                _csv_value(row[PAIR_BY]),
                row["a"],
                row["b"],
                " ".join(str(s) for s in row["seeds"]),
                " ".join(str(t.number) for t in row["a_point"].complete),
                " ".join(str(t.number) for t in row["b_point"].complete),
            ]
            + [
                _csv_value(v)
                for key, _ in columns
                for v in (
                    (
                        row[key].mean,
                        row[key].std,
                        row[key].t,
                        row[key].p,
                        *(row[key].ci95 or (None, None)),
                        row[key].wins,
                    )
                    if key in row
                    else (None,) * 7
                )
            ]
            for row in pairs
        ],
    )
    written.append(out / "paired.csv")
    free = [n for n in shown if n not in (PAIR_BY, "row", "brake.mode")]
    paired_md = [
        f"| {PAIR_BY.rpartition('.')[2]} | A | B | seeds | "
        + " | ".join(f"{title}, A − B" for _, title in columns)
        + " |",
        "|" + "---|" * (4 + len(columns)),
    ]
    for row in pairs:
        cells = [
            _fmt(row[PAIR_BY]),
            _arm_cell(row["a"], row["a_point"], free),
            _arm_cell(row["b"], row["b_point"], free),
            str(len(row["seeds"])),
        ] + [row[key].describe() if key in row else "" for key, _ in columns]
        paired_md.append("| " + " | ".join(cells) + " |")
    paired_text = "\n".join(paired_md) + "\n" if pairs else ""
    (out / "paired.md").write_text(paired_text)
    written.append(out / "paired.md")

    imp, imp_note = importances(results)
    _write_csv(
        out / "importances.csv",
        ["method", "parameter", "importance"],
        [[m, k, repr(v)] for m, values in imp.items() for k, v in values.items()],
    )
    written.append(out / "importances.csv")

    figures: list[tuple[str, str, Path | None, str]] = [
        (
            "Objective vs hyperparameters",
            "objective_vs_params.png",
            plots.plot_objective_vs_params(results, out / "objective_vs_params.png"),
            "no hyperparameter varies among finished trials",
        ),
        (
            "Validation curves of the best SGD / PHS / goal settings (Fig. 3)",
            "curves.png",
            plots.plot_curves(results, out / "curves.png"),
            "no complete trial recorded a curve",
        ),
        (
            "Mass × friction at fixed lr (Fig. 1)",
            "mass_friction.png",
            plots.plot_mass_friction(results, out / "mass_friction.png"),
            "mass and friction do not both vary among complete trials",
        ),
        (
            "Parameter importances",
            "importances.png",
            plots.plot_importances(
                imp, f"{results.name}: what matters for {metric}", out / "importances.png"
            ),
            imp_note,
        ),
        (
            "Optimization history",
            "history.png",
            plots.plot_history(results, out / "history.png"),
            "no finished trial",
        ),
    ]
    written.extend(path for _, _, path, _ in figures if path is not None)

    import optuna
    import torch

    counts = ", ".join(
        f"{results.count(s)} {s.lower()}"
        for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")
        if results.count(s)
    )
    retried = [r for r in results.rows if r.retry_of is not None]
    report = [
        f"# Sweep report: {results.name}",
        "",
        f"- objective: {results.direction} `{metric}`, the best epoch's value (validation"
        + (
            "; each complete trial was tested after its fit: final weights and best-val checkpoint)"
            if tested
            else "; the test set is untouched by the search)"
        ),
        f"- sampler {results.attrs.get('sampler')}, pruner {results.attrs.get('pruner')}, "
        f"seeds per point {results.attrs.get('seeds', 1)}, sweep file "
        f"`{results.attrs.get('spec_file')}`",
        f"- trials: {counts or 'none'}"
        + (f"; {len(retried)} retries of lost trials" if retried else ""),
        f"- versions: goalbrake {_version()}, torch {torch.__version__}, optuna "
        f"{optuna.__version__}, Python {platform.python_version()}; report written on "
        f"{platform.node()} ({platform.machine()})",
        "",
        "Base configs:",
        "",
        *_settings_lines(results),
        "",
        "## Best settings",
        "",
        "Mean ± sample std (ddof 1) over the seeds of each setting; n = complete trials.",
        "",
        best_md,
        "## Paired comparisons",
        "",
        (
            f"Per {PAIR_BY}, each method's best setting (braking split by goal reading; "
            "selected on the mean validation value) against the others, seed by seed: "
            "mean difference A − B in percentage points, its 95 % confidence interval "
            "(Student t, n − 1 degrees of freedom), the two-sided p of a paired t test, "
            "and on how many seeds A was better."
            if pairs
            else "No pair of methods shares two or more seeds."
        ),
        "",
        paired_text,
        "## Parameter importances",
        "",
        imp_note + ".",
        "",
    ]
    if imp:
        report += ["| method | parameter | importance |", "|---|---|---|"]
        report += [
            f"| {m} | {k} | {v:.3f} |" for m, values in imp.items() for k, v in values.items()
        ]
        report.append("")
    report += ["## Figures", ""]
    for title, name, path, why in figures:
        report.append(f"### {title}")
        report.append("")
        report.append(f"![{title}]({name})" if path is not None else f"Not drawn: {why}.")
        report.append("")
    (out / "report.md").write_text("\n".join(report))
    written.insert(0, out / "report.md")
    return written


def _version() -> str:
    try:
        from goalbrake import __version__

        return __version__
    except ImportError:  # pragma: no cover
        return "?"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Tables and plots of a goalbrake sweep.")
    p.add_argument("--study", required=True, help="the study name")
    p.add_argument(
        "--storage",
        help="the study's storage (default: journal:<runs-dir>/<study>/study.journal)",
    )
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--out", help="output directory (default: <runs-dir>/<study>/report)")
    p.add_argument("--top", type=int, default=20, help="rows of the best-settings table")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``goalbrake report``; returns the exit status."""
    try:
        args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exit_:
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 2
    import optuna

    from goalbrake.sweep.storage import default_storage, open_storage, parse_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        where = parse_storage(args.storage or default_storage(args.runs_dir, args.study))
        if where.kind == "journal" and where.path is not None and not where.path.exists():
            raise ValueError(f"no study storage at {where.path}")
        storage = open_storage(where)
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        if args.study not in names:
            raise ValueError(
                f"no study {args.study!r} in {where.shown} (studies: {', '.join(names) or 'none'})"
            )
        study = optuna.load_study(study_name=args.study, storage=storage)
        out = Path(args.out) if args.out else Path(args.runs_dir) / args.study / "report"
        files = write_report(study, out, top=args.top)
    except ValueError as err:
        if os.environ.get("GOALBRAKE_DEBUG"):
            raise
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"{PROG}: error: {text}", file=sys.stderr)
        return 1
    for f in files:
        print(f)
    return 0
