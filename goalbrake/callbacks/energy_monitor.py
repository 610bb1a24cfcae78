r"""EnergyMonitor: log the energy of the port-Hamiltonian system while it trains.

The optimizer integrates a mechanical system whose energy is

.. math::

    H(θ, p) = L(θ) + φ(p), \qquad \frac{dH}{dt} = -γ\,⟨∇φ(p), F(p)⟩ \le 0

with the loss L as the potential energy, φ the kinetic energy of the momentum p,
γ the friction and F(p) = ∇φ(p) (friction on the velocity) or p (on the momentum). For
the default φ(p) = ‖p‖²/2m this is dH/dt = −γ‖p‖²/m². Friction is the only way energy
leaves, so ``energy/total`` should fall (up to the noise of the batch loss and the
discretization), and a brake (γ → kγ) shows as a jump of ``energy/dissipation``.

This module imports no Lightning: :class:`EnergyMonitorBase` works through duck typing on
the ``trainer`` and ``pl_module`` its hooks receive, and :mod:`goalbrake.callbacks` and
:mod:`goalbrake.pytorch_lightning` bind it to the two ``Callback`` classes.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from goalbrake.optim.sgd import is_phs_form, sgd_kinetic_energy

__all__ = ["ENERGY_LAYOUT", "EnergyMonitorBase"]

Scalar = float | Tensor

#: The TensorBoard custom-scalars layout written at fit start:
#: ``{category: {chart title: ["Multiline", [tag regex, ...]]}}``, in the order the Custom
#: Scalars dashboard shows them: what a run did first (loss and accuracy), then the brake,
#: then the energy. Each trace appears once: ``energy/potential`` (the same values as
#: ``train/loss``) and ``brake/friction`` (the same as ``optim/friction`` for PHS; for a torch
#: SGD the brake shows in μ) are logged but not charted again. TensorBoard matches each regex
#: with ``re.match`` against every scalar tag of every run, so the regexes are anchored at
#: both ends and accept the ``/group{i}`` suffix of multi-group optimizers and the
#: ``_step``/``_epoch`` suffixes Lightning adds to metrics logged both ways.
ENERGY_LAYOUT: dict[str, dict[str, list[Any]]] = {
    "Loss and accuracy": {
        "Loss per epoch": [
            "Multiline",
            [r"^val/loss(_epoch)?$", r"^train/loss_epoch$"],
        ],
        "Accuracy per epoch (train, val)": ["Multiline", [r"^(train|val)/acc(_epoch)?$"]],
        "Training loss per logged step": ["Multiline", [r"^train/loss(_step)?$"]],
    },
    "Braking": {
        "Smoothed training loss and goal": [
            "Multiline",
            [r"^brake/(smoothed_loss|goal_loss)$"],
        ],
        "Friction γ": ["Multiline", [r"^optim/friction(/group\d+)?$"]],
        "Momentum factor μ": ["Multiline", [r"^optim/momentum_factor(/group\d+)?$"]],
    },
    "Energy": {
        "Total energy H = L + φ(p)": ["Multiline", [r"^energy/total$"]],
        "Kinetic energy φ(p)": ["Multiline", [r"^energy/kinetic$"]],
        "Dissipation power γ⟨∇φ(p), F(p)⟩ = −dH/dt": ["Multiline", [r"^energy/dissipation$"]],
    },
}


@dataclass
class _Reading:
    """The optimizer side of one logged step, read before the step's update."""

    step: int
    n_groups: int = 0  # over all optimizers
    kinetic: list[Scalar] = field(default_factory=list)  # one per param group
    dissipation: list[Scalar] = field(default_factory=list)
    friction: dict[int, Scalar] = field(default_factory=dict)  # flat group index -> value
    momentum_factor: dict[int, Scalar] = field(default_factory=dict)
    kinetic_complete: bool = True  # every group has a kinetic energy
    dissipation_complete: bool = True


def _is_energy_aware(optimizer: Any) -> bool:
    """A PHS, or any optimizer that offers the same monitoring methods."""
    return all(
        callable(getattr(optimizer, name, None))
        for name in ("kinetic_energy", "dissipation_power", "momentum_factor")
    )


def _is_heavy_ball_group(optimizer: Any, group: Mapping[str, Any]) -> bool:
    """A torch SGD group whose buffer is a PHS momentum (see :mod:`goalbrake.optim.sgd`)."""
    return isinstance(optimizer, torch.optim.SGD) and is_phs_form(group)


def _sgd_kinetic_energy(optimizer: torch.optim.Optimizer, group: Mapping[str, Any]) -> Scalar:
    """φ(p) = (lr/2)·‖buf‖² of a heavy-ball SGD group (0-d tensor, no sync)."""
    buffers = [
        optimizer.state[p]["momentum_buffer"]
        for p in group["params"]
        if optimizer.state.get(p, {}).get("momentum_buffer") is not None
    ]
    return sgd_kinetic_energy(group["lr"], buffers)


def _to_floats(values: list[Scalar]) -> list[float]:
    """Host floats of numbers and 0-d tensors, with one device transfer per device."""
    out: list[float | None] = [v if isinstance(v, float) else None for v in values]
    by_device: dict[torch.device, list[int]] = {}
    for i, v in enumerate(values):
        if isinstance(v, Tensor):
            by_device.setdefault(v.device, []).append(i)
        elif not isinstance(v, float):
            out[i] = float(v)
    for device, indices in by_device.items():
        dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
        stacked = torch.stack([values[i].detach().reshape(()).to(dtype) for i in indices])
        for i, x in zip(indices, stacked.tolist(), strict=True):  # the one host sync
            out[i] = x
    return out  # type: ignore[return-value]


def _check_interval(interval: Any) -> None:
    if interval is None or interval in EnergyMonitorBase.INTERVALS:
        return
    if isinstance(interval, bool) or not isinstance(interval, int):
        raise ValueError(
            f"Invalid logging_interval value: {interval!r} (must be 'step', 'epoch', None or an "
            "int >= 1)"
        )
    if interval < 1:
        raise ValueError(f"Invalid logging_interval value: {interval} (must be >= 1)")


def _warn_momentum_monitors(callbacks: Any, optimizers: list[Any]) -> None:
    """Say where PHS's μ is when a ``LearningRateMonitor(log_momentum=True)`` logs 0 for it."""
    monitors = [c for c in callbacks if getattr(c, "log_momentum", False) is True]
    blind = sorted(
        {
            type(opt).__name__
            for opt in optimizers
            if _is_energy_aware(opt) and not {"momentum", "betas"} & set(opt.defaults)
        }
    )
    if monitors and blind:
        warnings.warn(
            f"{type(monitors[0]).__name__}(log_momentum=True) logs a momentum of 0 for "
            f"{', '.join(blind)}, which has no 'momentum' setting: its momentum factor μ "
            "(p⁺ = μ p − α g) is logged by EnergyMonitor as optim/momentum_factor (per group: "
            "optim/momentum_factor/group<i>)",
            UserWarning,
            stacklevel=2,
        )


class EnergyMonitorBase:
    r"""Log the energy H = L + φ(p) of a port-Hamiltonian optimizer, and its dissipation.

    At the Trainer's logging steps (``log_every_n_steps``; or once an epoch, or every n
    steps, see ``logging_interval``) this callback logs, to every logger of the Trainer
    (through ``logger.log_metrics``, so TensorBoard, CSV, W&B, … alike):

    ======================================  ==============================================
    tag                                     value
    ======================================  ==============================================
    ``energy/potential``                    L(θ_k): the training batch loss that
                                            ``training_step`` returned
    ``energy/kinetic``                      φ(p_k), summed over all param groups
    ``energy/total``                        H_k = potential + kinetic (exactly that sum)
    ``energy/dissipation``                  γ⟨∇φ(p_k), F(p_k)⟩ = −dH/dt, summed over groups
    ``optim/friction``                      γ of the param group
    ``optim/momentum_factor``               μ of p⁺ = μ p − b g (the group's scheme)
    ======================================  ==============================================

    with the continuous-time energy balance

    .. math::

        H = L(θ) + φ(p), \qquad \frac{dH}{dt} = -γ\,⟨∇φ(p), F(p)⟩ \le 0,

    F(p) = ∇φ(p) for ``friction_on="velocity"`` and p for ``"momentum"``; with the
    default φ(p) = ‖p‖²/2m, dH/dt = −γ‖p‖²/m². Over one step of length α (the learning
    rate) the energy falls by about α times ``energy/dissipation``.

    **Which step.** A value logged at step k describes the state (θ_k, p_k) *before*
    update k and the coefficients update k uses: the batch loss is L at θ_k, the
    momentum is read before the update, the friction and μ are the ones the update
    applies (a brake in ``on_train_batch_end`` of step k shows from step k + 1 on). The
    step axis is ``trainer.global_step`` at the start of the batch, the same axis Lightning
    logs ``self.log(..., on_step=True)`` values on. ``logging_interval`` reads as
    ``LearningRateMonitor``'s: ``None`` (default) and ``"step"`` log the steps with
    ``(step + 1) % trainer.log_every_n_steps == 0``, the ones the Trainer writes, so
    ``energy/potential`` lies on ``train/loss``; ``"epoch"`` logs the first step of every
    epoch; an int n logs every n-th step, ``(step + 1) % n == 0``.

    **Momentum monitors.** ``LearningRateMonitor(log_momentum=True)`` reads a ``momentum``
    or ``betas`` setting, which :class:`goalbrake.PHS` does not have (its μ follows from
    lr, mass and friction), so it logs 0; beside such a monitor this callback warns at fit
    start that PHS's μ is ``optim/momentum_factor``.

    **Param groups.** The per-group tags carry no suffix for a single param group; with
    several groups (over all optimizers of the Trainer, numbered in order from 0) they
    are ``optim/friction/group0``, ``optim/friction/group1``, … The energies are summed.

    **Other optimizers.** A torch ``SGD`` group with ``momentum > 0`` and ``dampening=0``
    is the conformal PHS scheme with p = −α·buf, η = α²/m and μ = e^(−x)
    (:mod:`goalbrake.optim.sgd`, the one reading of SGD that GoalBrake brakes by), so its
    kinetic energy φ = (η/2)‖buf‖² and its μ = ``momentum`` are logged; its friction and
    dissipation depend on the step α, which SGD does not have, and are not. For any other
    optimizer (or an SGD group without momentum) only ``energy/potential`` is logged, and
    a warning says so at fit start; kinetic and total are logged only when every param
    group has a kinetic energy.

    **TensorBoard.** With a logger whose ``experiment`` has ``add_custom_scalars`` (a
    ``TensorBoardLogger``), the callback writes :data:`ENERGY_LAYOUT` once at fit start on
    rank zero. TensorBoard opens on its first dashboard (Time Series, every tag); the layout
    is the *Custom Scalars* dashboard: *Loss and accuracy* (per-epoch loss and accuracy, the
    training loss per logged step), *Braking* (``brake/smoothed_loss`` with
    ``brake/goal_loss``, which :class:`~goalbrake.callbacks.GoalBrake` logs; ``optim/friction``;
    μ) and *Energy* (``energy/total``, ``energy/kinetic``, ``energy/dissipation``).
    ``energy/potential`` (equal to ``train/loss``) and ``brake/friction`` (equal to
    ``optim/friction`` for PHS) are logged but not charted twice.

    The quantities are read as 0-d tensors and copied to the host in one transfer, only on
    logging steps and only on rank zero: other steps cost one integer comparison.

    Args:
        logging_interval: ``None`` or ``"step"`` (the Trainer's ``log_every_n_steps``),
            ``"epoch"`` (the first step of each epoch), or an int n >= 1 (every n steps).
        log_layout: write the TensorBoard custom-scalars layout at fit start.

    Raises:
        ValueError: ``logging_interval`` is not ``"step"``, ``"epoch"``, None or an int >= 1.
        RuntimeError: at fit start, when the Trainer has no logger.

    Example:
        >>> from goalbrake.callbacks import EnergyMonitor  # doctest: +SKIP
        >>> trainer = Trainer(log_every_n_steps=50, callbacks=[EnergyMonitor()])  # doctest: +SKIP
    """

    #: Reads no logged train/loss mid-epoch (goalbrake.module.reads_loss_between_logs).
    reads_loss_between_logs = False

    #: What ``logging_interval`` accepts besides an int (as ``LearningRateMonitor`` does).
    INTERVALS: tuple[str, ...] = ("step", "epoch")

    def __init__(self, logging_interval: str | int | None = None, log_layout: bool = True) -> None:
        _check_interval(logging_interval)
        self.logging_interval = logging_interval
        self.log_layout = bool(log_layout)
        self._every: int = 0  # log every this many steps (0: never), set at setup
        self._epoch_start: int | None = None  # first step of this epoch ("epoch" only)
        self._reading: _Reading | None = None
        self._layout_written: set[int] = set()  # id() of the writers that have the layout

    # ------------------------------------------------------------------------------ hooks
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage == "fit" and not trainer.loggers:
            raise RuntimeError(
                "Cannot use EnergyMonitor with a Trainer that has no logger: pass one, e.g. "
                "Trainer(logger=TensorBoardLogger('logs')), or remove the callback"
            )
        interval = self.logging_interval
        if isinstance(interval, int):
            self._every = interval
        elif interval in (None, "step"):
            self._every = int(getattr(trainer, "log_every_n_steps", 50) or 0)

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.is_global_zero:
            return
        self._warn_unsupported(trainer.optimizers)
        _warn_momentum_monitors(getattr(trainer, "callbacks", ()), trainer.optimizers)
        if self.log_layout:
            self._write_layout(trainer.loggers)

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._epoch_start = trainer.global_step

    def _logs_at(self, step: int) -> bool:
        """Whether the state before update ``step`` is logged."""
        if self.logging_interval == "epoch":
            return step == self._epoch_start
        return bool(self._every) and (step + 1) % self._every == 0

    def on_train_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if not trainer.is_global_zero or not self._logs_at(step):
            self._reading = None
            return
        # Read before the update: (θ_k, p_k) is one state of the discrete trajectory. With
        # gradient accumulation every micro-batch of the window reads the same p_k again.
        self._reading = self._read_optimizers(trainer.optimizers, step)

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        reading = self._reading
        if reading is None or trainer.global_step == reading.step:
            return  # not a logging step, or no update yet (accumulating gradients)
        self._reading = None
        potential = self._potential(trainer, pl_module, outputs)
        metrics = self._metrics(reading, potential)
        if metrics:
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=reading.step)

    # ---------------------------------------------------------------------------- helpers
    @staticmethod
    def _potential(trainer: Any, pl_module: Any, outputs: Any) -> Tensor | None:
        """The batch loss from ``training_step``'s output, undoing Lightning's 1/accumulate."""
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            return None
        loss = loss.detach().reshape(())
        if getattr(pl_module, "automatic_optimization", False):
            # Lightning divides the automatic-optimization loss by accumulate_grad_batches.
            loss = loss * trainer.accumulate_grad_batches
        return loss

    @staticmethod
    def _read_optimizers(optimizers: list[Any], step: int) -> _Reading:
        reading = _Reading(step=step)
        index = 0
        for optimizer in optimizers:
            aware = _is_energy_aware(optimizer)
            for i, group in enumerate(optimizer.param_groups):
                if aware:
                    reading.kinetic.append(optimizer.kinetic_energy(i))
                    reading.dissipation.append(optimizer.dissipation_power(i))
                    reading.momentum_factor[index] = optimizer.momentum_factor(i)
                    if "friction" in group:
                        reading.friction[index] = group["friction"]
                elif _is_heavy_ball_group(optimizer, group):
                    reading.kinetic.append(_sgd_kinetic_energy(optimizer, group))
                    reading.momentum_factor[index] = group["momentum"]
                    reading.dissipation_complete = False
                else:
                    reading.kinetic_complete = reading.dissipation_complete = False
                index += 1
        reading.n_groups = index
        reading.kinetic_complete &= bool(reading.kinetic)
        reading.dissipation_complete &= bool(reading.dissipation)
        return reading

    @staticmethod
    def _metrics(reading: _Reading, potential: Tensor | None) -> dict[str, float]:
        names: list[str] = []
        values: list[Scalar] = []

        def add(name: str, value: Scalar) -> None:
            names.append(name)
            values.append(value if isinstance(value, Tensor) else float(value))

        if potential is not None:
            add("energy/potential", potential)
        if reading.kinetic_complete:
            for k, value in enumerate(reading.kinetic):
                add(f"_kinetic{k}", value)  # summed on the host below, after the one sync
        if reading.dissipation_complete:
            for k, value in enumerate(reading.dissipation):
                add(f"_dissipation{k}", value)
        several = reading.n_groups > 1
        for prefix, per_group in (
            ("optim/friction", reading.friction),
            ("optim/momentum_factor", reading.momentum_factor),
        ):
            for index, value in per_group.items():
                add(f"{prefix}/group{index}" if several else prefix, value)

        floats = dict(zip(names, _to_floats(values), strict=True))
        metrics = {k: v for k, v in floats.items() if not k.startswith("_")}
        if reading.kinetic_complete:
            kinetic = sum(v for k, v in floats.items() if k.startswith("_kinetic"))
            metrics["energy/kinetic"] = kinetic
            if potential is not None:
                metrics["energy/total"] = metrics["energy/potential"] + kinetic
        if reading.dissipation_complete:
            metrics["energy/dissipation"] = sum(
                v for k, v in floats.items() if k.startswith("_dissipation")
            )
        return metrics

    def _warn_unsupported(self, optimizers: list[Any]) -> None:
        unsupported = sorted(
            {
                type(opt).__name__
                for opt in optimizers
                if not _is_energy_aware(opt)
                and not all(_is_heavy_ball_group(opt, g) for g in opt.param_groups)
            }
        )
        if unsupported:
            warnings.warn(
                f"EnergyMonitor: {', '.join(unsupported)} has no kinetic energy it can derive "
                "(only PHS, and torch SGD with momentum > 0 and dampening=0, have one), so only "
                "energy/potential is logged for it; use goalbrake.PHS to see the full energy",
                UserWarning,
                stacklevel=2,
            )

    def _write_layout(self, loggers: list[Any]) -> None:
        for logger in loggers:
            experiment = getattr(logger, "experiment", None)
            add_custom_scalars = getattr(experiment, "add_custom_scalars", None)
            if not callable(add_custom_scalars) or id(experiment) in self._layout_written:
                continue
            add_custom_scalars(ENERGY_LAYOUT)
            self._layout_written.add(id(experiment))
