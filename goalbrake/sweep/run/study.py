"""The Optuna study of a sweep: samplers, pruners, and when to start or stop a trial.

Stopping rule: a study is done when ``n_trials`` trials are COMPLETE (pruned and failed
trials do not count, so a pruned trial is replaced by a new one; this is
``MaxTrialsCallback(n_trials, states=(COMPLETE,))``), or, for a grid, when every grid point
has a finished trial (a pruned or failed grid point is not run again, except that a trial
lost to a killed or interrupted worker is retried). A worker starts a trial only while
``complete + running < n_trials`` (checked under the ask lock), so concurrent workers
never overshoot, and a grid worker only while some point is neither finished nor running,
so no point runs twice.
"""

from __future__ import annotations

import warnings
import zlib
from dataclasses import dataclass

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.trial import FrozenTrial, TrialState

from goalbrake.sweep.attrs import STUDY_ATTR
from goalbrake.sweep.define.load import PRUNERS, SAMPLERS
from goalbrake.sweep.define.spec import SweepSpec

__all__ = [
    "Progress",
    "failed_points",
    "load_study",
    "make_pruner",
    "make_sampler",
    "progress",
    "worker_seed",
]


def worker_seed(spec: SweepSpec, index: int, generation: int, salt: str = "") -> int:
    """The sampler seed of one worker: the spec's seed for a lone first worker, else mixed.

    Workers must not share a TPE/random seed (they would propose the same points); a
    grid sampler must share it (its seed fixes the grid order every process relies on).
    """
    if spec.is_grid or (index == 0 and generation == 0 and not salt):
        return spec.seed
    return zlib.crc32(f"{spec.seed}:{index}:{generation}:{salt}".encode()) & 0x7FFFFFFF


def make_sampler(spec: SweepSpec, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """The sampler the spec names; TPE defaults to ``constant_liar=True`` for parallel runs."""
    args = dict(spec.sampler_args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        if spec.sampler == "grid":
            return spec.grid_sampler(seed=spec.seed)
        if spec.sampler == "tpe":
            args.setdefault("constant_liar", True)
        return SAMPLERS[spec.sampler](seed=spec.seed if seed is None else seed, **args)


def make_pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return PRUNERS[spec.pruner](**spec.pruner_args)


def load_study(
    spec: SweepSpec,
    storage: optuna.storages.BaseStorage,
    *,
    sampler: optuna.samplers.BaseSampler | None = None,
    create: bool = False,
) -> optuna.Study:
    """Create (``create=True``) or load the study of ``spec``.

    Raises:
        ValueError: the study exists but was made from a different sweep definition, or
            it does not exist and ``create`` is false.
    """
    sampler = sampler or make_sampler(spec)
    if create:
        study = optuna.create_study(
            storage=storage,
            study_name=spec.study,
            direction=spec.direction,
            sampler=sampler,
            pruner=make_pruner(spec),
            load_if_exists=True,
        )
        stored = study.user_attrs.get(STUDY_ATTR)
        if stored is None:
            study.set_user_attr(STUDY_ATTR, spec.study_attrs())
        elif stored.get("fingerprint") != spec.fingerprint():
            raise ValueError(
                f"study {spec.study!r} was created from a different sweep definition "
                f"({stored.get('spec_file')}); use another --study, or restore that definition"
            )
        if study.direction.name.lower() != spec.direction:
            raise ValueError(
                f"study {spec.study!r} was created to {study.direction.name.lower()} "
                f"(the sweep file says {spec.direction})"
            )
        return study
    return optuna.load_study(
        study_name=spec.study, storage=storage, sampler=sampler, pruner=make_pruner(spec)
    )


@dataclass(frozen=True)
class Progress:
    """Trial counts and the start/stop decision of one moment."""

    complete: int
    running: int
    waiting: int
    pruned: int
    failed: int
    target: int
    open_points: int | None  # grid points neither finished nor running (None: no grid)
    unfinished_points: int | None  # grid points without a finished trial

    @property
    def done(self) -> bool:
        if self.complete >= self.target:
            return True
        return self.unfinished_points == 0 and self.waiting == 0

    @property
    def can_start(self) -> bool:
        if self.done or self.complete + self.running >= self.target:
            return False
        if self.waiting > 0:
            return True
        return self.open_points is None or self.open_points > 0

    def summary(self) -> str:
        parts = [f"{self.complete}/{self.target} complete"]
        for label, n in (
            ("running", self.running),
            ("waiting", self.waiting),
            ("pruned", self.pruned),
            ("failed", self.failed),
        ):
            if n:
                parts.append(f"{n} {label}")
        return ", ".join(parts)


def failed_points(study: optuna.Study, spec: SweepSpec) -> list[FrozenTrial]:
    """The last FAIL trial of each grid point that no trial completed or pruned, and that
    is not waiting or running again (a grid study's points that did not run)."""
    if not spec.is_grid:
        return []
    trials = study.get_trials(deepcopy=False)
    ran = {t.system_attrs.get("grid_id") for t in trials if t.state != TrialState.FAIL}
    out: dict[int, FrozenTrial] = {}
    for t in trials:
        grid_id = t.system_attrs.get("grid_id")
        if t.state == TrialState.FAIL and grid_id is not None and grid_id not in ran:
            out[grid_id] = t
    return sorted(out.values(), key=lambda t: t.number)


def progress(study: optuna.Study, spec: SweepSpec, target: int | None = None) -> Progress:
    """Count the study's trials and decide whether a worker may start one more."""
    trials = study.get_trials(deepcopy=False)
    counts = {state: 0 for state in TrialState}
    for t in trials:
        counts[t.state] += 1
    open_points = unfinished = None
    if spec.is_grid:
        # Grid points by Optuna's grid_id (a retry keeps its trial's).
        points = set(range(spec.grid_size()))
        finished: set[int] = set()
        running: set[int] = set()
        for t in trials:
            grid_id = t.system_attrs.get("grid_id")
            if grid_id is None:
                continue
            if t.state.is_finished():
                finished.add(grid_id)
            elif t.state == TrialState.RUNNING:
                running.add(grid_id)
        unfinished = len(points - finished)
        open_points = len(points - finished - running)
    return Progress(
        complete=counts[TrialState.COMPLETE],
        running=counts[TrialState.RUNNING],
        waiting=counts[TrialState.WAITING],
        pruned=counts[TrialState.PRUNED],
        failed=counts[TrialState.FAIL],
        target=spec.target_trials() if target is None else target,
        open_points=open_points,
        unfinished_points=unfinished,
    )
