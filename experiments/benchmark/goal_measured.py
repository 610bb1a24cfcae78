"""Does measuring the goal save searching it? Issue 19's measurement, from issue 20's journals.

Benchmark arm 6 (``phs_goal``: TPE over lr, mass, friction, goal, factor and mode) and arm 8
(``phs_goal_measured``: the same search without the goal, which each trial takes from the
arm's own earlier trials, ``brake.goal: {from_trials: ...}``) are the two searches issue 19
asks for: FashionMNIST, the LeNet of Table 2, 20 epochs, 24 TPE trials each (docs/benchmark.md
holds the protocol, docs/braking.md "Does measuring the goal save searching it?" the
question). From the two tuning journals this prints the best val/acc after 8, 16 and 24
trials of each arm, and draws docs/img/goal_from_trials.png: the best val/acc so far against
the trial, and below it each trial's goal (arm 8: the goal it used; arm 6: the goal TPE
sampled), both read as the remaining fraction of L₀ (a ``reduction`` goal g is 1 − g).

Trials are counted as docs/benchmark.md's "Deviations" says: in trial-number order, whatever
their state, except that a failed trial the sweep retried (its worker was stopped or died)
is skipped and its retry counts in its place. "After k trials" is only
reported once the first k counted trials have all finished.

    python experiments/benchmark/goal_measured.py \\
        --searched experiments/benchmark/fashionmnist_phs_goal.journal \\
        --measured experiments/benchmark/fashionmnist_phs_goal_measured.journal \\
        --figure docs/img/goal_from_trials.png

The journals are only read (a journal that does not exist is an arm not started yet).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after the backend is chosen
import optuna
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import FrozenTrial, TrialState

from goalbrake.sweep.attrs import CONFIG, GOAL
from goalbrake.sweep.run.recovery import in_retry_order

__all__ = ["Arm", "best_after", "counted", "goal_of", "goals_figure", "load_arm", "main"]

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
#: The trial counts the protocol reads the best val/acc at.
CHECKPOINTS: tuple[int, ...] = (8, 16, 24)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
GOAL_PARAM, MODE_PARAM = "brake.goal", "brake.mode"


@dataclass(frozen=True)
class Arm:
    """One arm's tuning study: its label and its trials, counted (see :func:`counted`)."""

    label: str
    trials: tuple[FrozenTrial, ...] | None  # None: the journal does not exist yet

    @property
    def started(self) -> bool:
        return bool(self.trials)


def counted(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The trials in the order the protocol counts them (docs/benchmark.md, "Deviations").

    Trial-number order; a failed trial the sweep retried is left out, and its retry (the
    last of a chain of retries) takes its place.
    """
    return in_retry_order(trials)


def best_after(trials: Sequence[FrozenTrial], k: int) -> FrozenTrial | str | None:
    """The best COMPLETE trial among the first ``k`` counted ``trials`` (maximizing).

    Returns:
        The trial; None when none of them completed; a string saying why there is no answer
        yet when fewer than ``k`` trials have finished.
    """
    first = list(trials[:k])
    done = [t for t in first if t.state in FINISHED]
    if len(done) < k:
        return f"{len(done)} of {k} finished"
    complete = [t for t in first if t.state == TrialState.COMPLETE and t.value is not None]
    return max(complete, key=lambda t: (t.value, -t.number)) if complete else None


def goal_of(trial: FrozenTrial) -> tuple[float, str] | None:
    """The trial's goal as a remaining fraction of L₀, and where it came from.

    ``"measured"`` or ``"startup"`` for a goal from earlier trials (user attr ``goal``),
    ``"remaining"`` or ``"reduction"`` for a sampled one (its mode); None without a goal.
    """
    record = trial.user_attrs.get(GOAL)
    if isinstance(record, dict) and record.get("goal") is not None:
        how = str(record.get("how", ""))
        return float(record["goal"]), "startup" if how.startswith("startup") else "measured"
    config = trial.user_attrs.get(CONFIG) or {}
    goal = trial.params.get(GOAL_PARAM, config.get(GOAL_PARAM))
    if goal is None:
        return None
    mode = str(trial.params.get(MODE_PARAM, config.get(MODE_PARAM, "remaining")))
    return (1.0 - float(goal) if mode == "reduction" else float(goal)), mode


def load_arm(path: Path, label: str, study: str | None = None) -> Arm:
    """The arm whose journal is ``path`` (read only); ``study`` when it holds several."""
    if not path.is_file():
        return Arm(label, None)
    storage = JournalStorage(JournalFileBackend(str(path)))
    names = optuna.get_all_study_names(storage)
    if study is None:
        if len(names) != 1:
            raise ValueError(f"{path}: {len(names)} studies ({', '.join(names)}), one expected")
        study = names[0]
    loaded = optuna.load_study(study_name=study, storage=storage)
    return Arm(label, tuple(counted(loaded.get_trials(deepcopy=False))))


def _cell(arm: Arm, k: int) -> str:
    if not arm.started:
        return "not started"
    best = best_after(arm.trials or (), k)
    if isinstance(best, str):
        return f"not yet ({best})"
    return "none complete" if best is None else f"{best.value:.4f} (#{best.number})"


def table(arms: Sequence[Arm]) -> str:
    """The best val/acc after each of :data:`CHECKPOINTS` trials, one line per arm."""
    width = max(len(a.label) for a in arms)
    cells = [[_cell(a, k) for k in CHECKPOINTS] for a in arms]
    widths = [
        max(len(f"after {k}"), *(len(c[i]) for c in cells)) for i, k in enumerate(CHECKPOINTS)
    ]
    head = "  ".join(f"{'after ' + str(k):<{w}}" for k, w in zip(CHECKPOINTS, widths, strict=True))
    lines = [f"{'best val/acc':<{width}}  {head}".rstrip()]
    for arm, row in zip(arms, cells, strict=True):
        body = "  ".join(f"{c:<{w}}" for c, w in zip(row, widths, strict=True))
        lines.append(f"{arm.label:<{width}}  {body}".rstrip())
    lines.append("(#n: the Optuna number of the trial that reached it)")
    return "\n".join(lines)


def _best_so_far(trials: Sequence[FrozenTrial]) -> tuple[list[int], list[float]]:
    """(counted position, best value so far) at each finished trial after the first value."""
    xs, ys, best = [], [], None
    for i, t in enumerate(trials, start=1):
        if t.state == TrialState.COMPLETE and t.value is not None:
            best = t.value if best is None else max(best, t.value)
        if best is not None and t.state in FINISHED:
            xs.append(i)
            ys.append(best)
    return xs, ys


#: (color, marker) per arm, and the marker of each kind of goal.
STYLES = (("#d62728", "o"), ("#1f77b4", "s"))
GOAL_MARKERS = {"remaining": "o", "reduction": "v", "measured": "s", "startup": "x"}
GOAL_LABELS = {
    "remaining": "sampled, mode remaining",
    "reduction": "sampled, mode reduction (1 − goal)",
    "measured": "from earlier trials",
    "startup": "startup goal (too few trials complete yet)",
}


def _draw_values(ax: Axes, arms: Sequence[Arm]) -> None:
    for arm, (color, marker) in zip(arms, STYLES, strict=False):
        trials = arm.trials or ()
        done = [(i, t.value) for i, t in enumerate(trials, 1) if t.state == TrialState.COMPLETE]
        if done:
            xs, vs = zip(*done, strict=True)
            ax.plot(xs, vs, marker, color=color, alpha=0.35, ms=4, ls="")
        xs2, ys = _best_so_far(trials)
        label = arm.label if arm.started else f"{arm.label}: not started"
        ax.step(xs2, ys, where="post", color=color, lw=1.6, label=label)
    ax.set_ylabel("val/acc (best epoch)\nline: best so far")


def _draw_goals(ax: Axes, arms: Sequence[Arm]) -> list[Line2D]:
    """Each trial's goal; returns the legend handles of the kinds of goal drawn."""
    seen: set[str] = set()
    for arm, (color, _) in zip(arms, STYLES, strict=False):
        by_kind: dict[str, list[tuple[int, float]]] = {}
        for i, trial in enumerate(arm.trials or (), start=1):
            goal = goal_of(trial)
            if goal is not None:
                by_kind.setdefault(goal[1], []).append((i, goal[0]))
        for kind, points in by_kind.items():
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, GOAL_MARKERS[kind], color=color, ms=5, ls="", label=kind)
        seen.update(by_kind)
    ax.set_ylabel("goal\n(remaining fraction of L₀)")
    ax.set_ylim(0, 1)
    return [
        Line2D(
            [], [], marker=GOAL_MARKERS[kind], color="0.3", ls="", label=f"goal {GOAL_LABELS[kind]}"
        )
        for kind in GOAL_LABELS
        if kind in seen
    ]


def goals_figure(arms: Sequence[Arm], n_trials: int = CHECKPOINTS[-1]) -> Figure:
    """Best val/acc so far (top) and each trial's goal (bottom) against the counted trial."""
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(8.0, 6.6), sharex=True, layout="constrained", height_ratios=(3, 2)
    )
    _draw_values(top, arms)
    kinds = _draw_goals(bottom, arms)
    arms_handles, _ = top.get_legend_handles_labels()
    fig.legend(
        handles=[*arms_handles, *kinds],
        loc="outside lower center",
        ncols=2,
        fontsize=8,
        frameon=False,
    )
    longest = max([n_trials, *(len(a.trials or ()) for a in arms)])
    for ax in (top, bottom):
        for k in CHECKPOINTS:
            ax.axvline(k + 0.5, color="0.6", lw=0.8, ls=":")
        ax.grid(alpha=0.3)
        ax.set_xlim(0.5, longest + 0.5)
    bottom.set_xticks([1, *range(4, longest + 1, 4)])
    bottom.set_xlabel("trial, as counted (docs/benchmark.md, Deviations); dotted: after 8, 16, 24")
    top.set_title("FashionMNIST, LeNet, 20 epochs: the brake goal searched vs. measured")
    return fig


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--searched",
        type=Path,
        default=HERE / "fashionmnist_phs_goal.journal",
        help="arm 6's tuning journal (the goal searched)",
    )
    parser.add_argument(
        "--measured",
        type=Path,
        default=HERE / "fashionmnist_phs_goal_measured.journal",
        help="arm 8's tuning journal (the goal from earlier trials)",
    )
    parser.add_argument(
        "--figure",
        type=Path,
        default=REPO / "docs" / "img" / "goal_from_trials.png",
        help="where to write the figure",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    arms = [
        load_arm(args.searched, "arm 6, phs_goal (goal searched)"),
        load_arm(args.measured, "arm 8, phs_goal_measured (goal from earlier trials)"),
    ]
    print(table(arms))
    fig = goals_figure(arms)
    args.figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.figure, dpi=120, bbox_inches="tight")
    plt.close(fig)
    print(f"figure: {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
