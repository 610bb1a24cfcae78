"""The grid sampler of a grid study: Optuna's GridSampler that also answers rows' settings.

The grid is rows × space × seeds (the spec's ``grid_space``), as Optuna's GridSampler
keeps it, so every ``grid_id``, and a study recorded before this sampler, mean the same
point. A trial's Optuna parameters are the settings it varies: the space's axes, and the
values its row sets that differ between rows; the row's label and the seed are not
parameters, so optuna-dashboard and ``optuna.visualization`` read lr, mass, ... (the
seed and the row are in the trial's ``config`` user attr).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from goalbrake.sweep.attrs import ROW_PARAM
from goalbrake.sweep.define.params import Scalar

__all__ = ["SweepGridSampler"]


class SweepGridSampler(optuna.samplers.GridSampler):
    """GridSampler over ``search_space`` whose trials may also ask for their row's values.

    Args:
        search_space: the grid axes (``row``, the space's lists, ``seed``).
        rows: each row label's settings.
        seed: the seed of GridSampler's order of the points.
    """

    def __init__(
        self,
        search_space: Mapping[str, Sequence[Scalar]],
        rows: Mapping[str, Mapping[str, Scalar]],
        seed: int | None = None,
    ) -> None:
        super().__init__(search_space, seed=seed)  # type: ignore[arg-type]
        self._rows = rows

    def point(self, grid_id: int) -> dict[str, Scalar]:
        """The axes' values of grid point ``grid_id``."""
        # GridSampler's own table (shuffled by its seed), which sample_independent reads.
        return dict(zip(self._param_names, self._all_grids[grid_id], strict=True))

    def point_of(self, trial: optuna.Trial) -> dict[str, Scalar]:
        """The grid point GridSampler gave the running ``trial`` (its ``grid_id``)."""
        running = trial.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        frozen = next(t for t in running if t.number == trial.number)
        if "grid_id" not in frozen.system_attrs:
            raise ValueError(
                f"trial {trial.number} has no grid point (a grid study's trials come from "
                "its sampler, not from enqueue_trial)"
            )
        return self.point(int(frozen.system_attrs["grid_id"]))

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Scalar:
        if param_name in self._search_space or "grid_id" not in trial.system_attrs:
            return super().sample_independent(study, trial, param_name, param_distribution)
        label = self.point(trial.system_attrs["grid_id"])[ROW_PARAM]
        return self._rows[str(label)][param_name]
