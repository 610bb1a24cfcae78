"""``goalbrake report``: tables and plots of a sweep, from its storage alone.

::

    goalbrake report --study fashionmnist_goal                       # the embedded journal
    # (runs/<study>/study.journal; on a fresh clone, the committed
    #  experiments/<study>/<study>.journal)
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
import os
import platform
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import optuna
import torch

from goalbrake import __version__
from goalbrake.sweep.attrs import ROW_PARAM
from goalbrake.sweep.report import plots
from goalbrake.sweep.report.importances import importances
from goalbrake.sweep.report.results import StudyResults, collect
from goalbrake.sweep.report.tables import (
    PAIR_BY,
    comparisons,
    paired_columns,
    settings_lines,
    write_best,
    write_importances,
    write_paired,
    write_trials,
)
from goalbrake.sweep.run.storage import StorageURL, default_storage, open_storage, parse_storage

__all__ = ["main", "write_report"]

PROG = "goalbrake report"
#: A figure of the report: (title, file name, the file or None, why it was not drawn).
Figure = tuple[str, str, Path | None, str]


def _figures(
    results: StudyResults, imp: dict[str, dict[str, float]], imp_note: str, out: Path
) -> list[Figure]:
    drawn: list[tuple[str, str, Callable[[Path], Path | None], str]] = [
        (
            "Objective vs hyperparameters",
            "objective_vs_params.png",
            lambda path: plots.plot_objective_vs_params(results, path),
            "no hyperparameter varies among finished trials",
        ),
        (
            "Validation curves of the best SGD / PHS / goal settings (Fig. 3)",
            "curves.png",
            lambda path: plots.plot_curves(results, path),
            "no complete trial recorded a curve",
        ),
        (
            "Mass × friction at fixed lr (Fig. 1)",
            "mass_friction.png",
            lambda path: plots.plot_mass_friction(results, path),
            "mass and friction do not both vary among complete trials",
        ),
        (
            "Parameter importances",
            "importances.png",
            lambda path: plots.plot_importances(
                imp, f"{results.name}: what matters for {results.metric}", path
            ),
            imp_note,
        ),
        (
            "Optimization history",
            "history.png",
            lambda path: plots.plot_history(results, path),
            "no finished trial",
        ),
    ]
    return [(title, name, draw(out / name), why) for title, name, draw, why in drawn]


def _summary(results: StudyResults, tested: bool) -> list[str]:
    """The report's head: objective, sampler, trial counts, versions, base configs."""
    counts = ", ".join(
        f"{results.count(s)} {s.lower()}"
        for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")
        if results.count(s)
    )
    retried = [r for r in results.rows if r.retry_of is not None]
    return [
        f"# Sweep report: {results.name}",
        "",
        f"- objective: {results.direction} `{results.metric}`, the best epoch's value (validation"
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
        f"- versions: goalbrake {__version__}, torch {torch.__version__}, optuna "
        f"{optuna.__version__}, Python {platform.python_version()}; report written on "
        f"{platform.node()} ({platform.machine()})",
        "",
        "Base configs:",
        "",
        *settings_lines(results),
        "",
    ]


_PAIRED_NOTE = (
    f"Per {PAIR_BY}, each method's best setting (braking split by goal reading; "
    "selected on the mean validation value) against the others, seed by seed: "
    "mean difference A − B in percentage points, its 95 % confidence interval "
    "(Student t, n − 1 degrees of freedom), the two-sided p of a paired t test, "
    "and on how many seeds A was better."
)


def _sections(
    best_md: str,
    paired_md: str,
    imp: dict[str, dict[str, float]],
    imp_note: str,
    figures: list[Figure],
) -> list[str]:
    """Best settings, paired comparisons, importances and figures."""
    report = [
        "## Best settings",
        "",
        "Mean ± sample std (ddof 1) over the seeds of each setting; n = complete trials.",
        "",
        best_md,
        "## Paired comparisons",
        "",
    ]
    report += [_PAIRED_NOTE if paired_md else "No pair of methods shares two or more seeds."]
    report += ["", paired_md, "## Parameter importances", "", imp_note + ".", ""]
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
    return report


def write_report(study: optuna.Study, out: Path, top: int = 20) -> list[Path]:
    """Write the tables and figures of ``study`` into ``out``; returns the files written."""
    results = collect(study)
    out.mkdir(parents=True, exist_ok=True)
    params = results.params
    varying = [p for p in results.varying() if p != ROW_PARAM]
    shown = [p for p in params if p in varying] or params
    tested = any(r.test for r in results.rows)
    written = [write_trials(results, out)]
    files, best_md = write_best(results, shown, tested, out, top)
    written += files
    columns = paired_columns(tested, results.metric)
    files, paired_md = write_paired(comparisons(results), columns, shown, out)
    written += files
    imp, imp_note = importances(results)
    written.append(write_importances(imp, out))
    figures = _figures(results, imp, imp_note, out)
    written.extend(path for _, _, path, _ in figures if path is not None)
    report = _summary(results, tested) + _sections(best_md, paired_md, imp, imp_note, figures)
    (out / "report.md").write_text("\n".join(report))
    written.insert(0, out / "report.md")
    return written


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Tables and plots of a goalbrake sweep.")
    p.add_argument("--study", required=True, help="the study name")
    p.add_argument(
        "--storage",
        help="the study's storage (default: journal:<runs-dir>/<study>/study.journal, else "
        "the committed experiments/<study>/<study>.journal)",
    )
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--out", help="output directory (default: <runs-dir>/<study>/report)")
    p.add_argument("--top", type=int, default=20, help="rows of the best-settings table")
    return p


def _committed_journal(study: str) -> Path:
    """A lab-notebook study's committed journal: ``experiments/<study>/<study>.journal``."""
    return Path("experiments") / study / f"{study}.journal"


def _where(args: argparse.Namespace) -> StorageURL:
    """``--storage``, else the study's runs journal, else its committed journal."""
    if args.storage:
        where = parse_storage(args.storage)
        if where.kind == "journal" and where.path is not None and not where.path.exists():
            raise ValueError(f"no study storage at {where.path}")
        return where
    where = parse_storage(default_storage(args.runs_dir, args.study))
    assert where.path is not None
    if where.path.exists():
        return where
    committed = _committed_journal(args.study)
    if committed.exists():
        print(f"{PROG}: reading the committed journal {committed}", file=sys.stderr)
        return parse_storage(f"journal:{committed}")
    raise ValueError(
        f"no study storage at {where.path} (nor a committed journal at {committed}); pass --storage"
    )


def _load(args: argparse.Namespace) -> optuna.Study:
    where = _where(args)
    storage = open_storage(where)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    if args.study not in names:
        raise ValueError(
            f"no study {args.study!r} in {where.shown} (studies: {', '.join(names) or 'none'})"
        )
    return optuna.load_study(study_name=args.study, storage=storage)


def main(argv: Sequence[str] | None = None) -> int:
    """``goalbrake report``; returns the exit status."""
    try:
        args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exit_:
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 2
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = _load(args)
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
