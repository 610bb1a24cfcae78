r"""Friction adapters: carry out a :class:`~goalbrake.braking.BrakeController`'s decisions.

Braking multiplies the friction γ of every param group by a factor k.

* :class:`goalbrake.PHS` keeps γ in ``group["friction"]``: a float stays a float, a 0-d
  tensor is multiplied in place (no host sync, and the optimizer keeps its tensor).
* ``torch.optim.SGD`` with momentum μ > 0 is the conformal PHS scheme with
  μ = e^{−x}, x = αγ/m, so γ → kγ is μ → μᵏ (the one reading of SGD, in
  :mod:`goalbrake.optim.sgd`).

Any other optimizer is refused with one error naming what is supported. The friction
(momentum) from before the first brake is recorded, so that a release can restore it.

A hand-written loop::

    ctrl = BrakeController(goal=0.15, factor=50.0, reference_loss=l0)
    brakes = [friction_adapter(opt)]
    for x, y in loader:
        loss = loss_fn(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
        apply_decisions(ctrl.update(loss.detach()), brakes)
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from goalbrake.braking.decisions import Brake, Decision, NewBest, Release, RestoreBest
from goalbrake.optim.base import PHSBase
from goalbrake.optim.sgd import sgd_braked_momentum, sgd_friction_rate

__all__ = [
    "SUPPORTED",
    "BestWeights",
    "FrictionAdapter",
    "PHSFriction",
    "SGDMomentum",
    "apply_decisions",
    "friction_adapter",
]

#: What :func:`friction_adapter` accepts, as its error message says it.
SUPPORTED = "goalbrake.PHS, goalbrake.optim.PHSFlow and torch.optim.SGD with momentum > 0"

Value = float | Tensor


class FrictionAdapter(ABC):
    """Brakes and releases one optimizer; records the values from before the first brake."""

    #: The param-group key this adapter changes.
    key: str

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = optimizer
        self._original: list[Value] | None = None

    # --------------------------------------------------------------- per-optimizer math
    @abstractmethod
    def _scaled(self, value: Value, factor: float) -> Value:
        """The group's value braked by ``factor`` (out of place; tensors go in place)."""

    @abstractmethod
    def _momentum_buffers(self) -> list[Tensor]:
        """The optimizer's momentum tensors (empty before the first step)."""

    @abstractmethod
    def friction(self) -> Value:
        """The first param group's friction (a float or a 0-d tensor; no sync)."""

    # ------------------------------------------------------------------------ actions
    @property
    def braked(self) -> bool:
        """Whether a brake was applied and not released."""
        return self._original is not None

    @property
    def original(self) -> list[float] | None:
        """Each group's value from before the first brake, as floats (None if not braked)."""
        return None if self._original is None else [float(v) for v in self._original]

    def brake(self, factor: float) -> None:
        """Brake every param group by ``factor`` (recording the values on the first brake)."""
        groups = self.optimizer.param_groups
        if self._original is None:
            self._original = [_copy(g[self.key]) for g in groups]
        done: set[int] = set()  # a tensor shared by several groups is braked once
        for g in groups:
            value = g[self.key]
            if isinstance(value, Tensor):
                if id(value) not in done:
                    done.add(id(value))
                    value.copy_(self._scaled(value, factor))  # in place: no host sync
            else:
                g[self.key] = self._scaled(value, factor)

    def release(self) -> None:
        """Restore every group's value from before the first brake."""
        if self._original is None:
            return
        for g, original in zip(self.optimizer.param_groups, self._original, strict=True):
            if isinstance(g[self.key], Tensor):
                g[self.key].copy_(torch.as_tensor(original))
            else:
                g[self.key] = float(original)
        self._original = None

    def kick(self, factor: float) -> None:
        """Multiply the momentum by ``factor`` (no-op for 1)."""
        if factor != 1.0:
            buffers = self._momentum_buffers()
            if buffers:
                torch._foreach_mul_(buffers, factor)

    def reconcile(self, factor: float) -> bool:
        """After a resume: brake again if the optimizer lost the brake (True if it did).

        Lightning restores ``param_groups`` with the optimizer state, so a resumed optimizer
        normally carries the braked value already; one built afresh (a weights-only resume)
        still has the value from before the brake.
        """
        if self._original is None or factor == 1.0:
            return False
        current = float(self.optimizer.param_groups[0][self.key])
        if not math.isclose(current, float(self._original[0]), rel_tol=1e-9):
            return False  # the optimizer state carried the brake
        saved, self._original = self._original, None
        self.brake(factor)
        self._original = saved
        return True

    # -------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """``{"original": [float, …] or None}`` (reads the device once for tensors)."""
        return {"original": self.original}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the optimizer's own values come from its state.

        Raises:
            ValueError: the state has another number of param groups.
        """
        original = state_dict["original"]
        if original is not None and len(original) != len(self.optimizer.param_groups):
            raise ValueError(
                f"Invalid state: {len(original)} param groups in the state, "
                f"{len(self.optimizer.param_groups)} in the {type(self.optimizer).__name__} "
                "optimizer (resume with the optimizer of the run that wrote the state)"
            )
        self._original = None if original is None else [float(v) for v in original]


def _copy(value: Value) -> Value:
    return value.detach().clone() if isinstance(value, Tensor) else float(value)


class PHSFriction(FrictionAdapter):
    """γ → kγ in every param group of a :class:`goalbrake.PHS`."""

    key = "friction"

    def _scaled(self, value: Value, factor: float) -> Value:
        return value * factor

    def _momentum_buffers(self) -> list[Tensor]:
        return [s["momentum"] for s in self.optimizer.state.values() if "momentum" in s]

    def friction(self) -> Value:
        return self.optimizer.param_groups[0]["friction"]


class SGDMomentum(FrictionAdapter):
    """μ → μᵏ in every param group of a ``torch.optim.SGD`` (μ = e^{−x}, γ → kγ).

    :meth:`friction` reports the equivalent friction rate x = −ln μ per step (see
    :mod:`goalbrake.optim.sgd`).
    """

    key = "momentum"

    def _scaled(self, value: Value, factor: float) -> Value:
        return sgd_braked_momentum(value, factor)

    def _momentum_buffers(self) -> list[Tensor]:
        return [
            s["momentum_buffer"]
            for s in self.optimizer.state.values()
            if s.get("momentum_buffer") is not None
        ]

    def friction(self) -> Value:
        return sgd_friction_rate(self.optimizer.param_groups[0]["momentum"])


def friction_adapter(optimizer: Any) -> FrictionAdapter:
    """The adapter for ``optimizer`` (a Lightning-wrapped optimizer is unwrapped).

    Raises:
        TypeError: neither a :class:`goalbrake.PHS` nor a ``torch.optim.SGD``.
        ValueError: an SGD with a param group whose momentum is not > 0.

    Example:
        >>> opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1, momentum=0.9)
        >>> friction_adapter(opt).brake(2.0)
        >>> round(opt.param_groups[0]["momentum"], 2)
        0.81
    """
    inner = getattr(optimizer, "optimizer", None)
    if isinstance(inner, Optimizer) and not isinstance(optimizer, Optimizer):
        optimizer = inner
    if isinstance(optimizer, PHSBase):
        return PHSFriction(optimizer)
    if isinstance(optimizer, torch.optim.SGD):
        for g in optimizer.param_groups:
            if not float(g["momentum"]) > 0:
                raise ValueError(
                    f"GoalBrake supports {SUPPORTED}, got SGD with momentum {g['momentum']!r}"
                )
        return SGDMomentum(optimizer)
    raise TypeError(f"GoalBrake supports {SUPPORTED}, got {type(optimizer).__name__}")


class BestWeights:
    """A CPU copy of a module's ``state_dict`` (the weights at the lowest smoothed loss).

    The copy goes into the same CPU tensors each time (allocated once).
    """

    def __init__(self) -> None:
        self.state: dict[str, Tensor] | None = None

    @property
    def saved(self) -> bool:
        return self.state is not None

    @torch.no_grad()
    def save(self, module: nn.Module) -> None:
        """Copy ``module``'s weights and buffers to the CPU (one device read)."""
        current = module.state_dict()
        if self.state is None or self.state.keys() != current.keys():
            self.state = {k: v.detach().to("cpu", copy=True) for k, v in current.items()}
            return
        for k, v in current.items():
            self.state[k].copy_(v)

    @torch.no_grad()
    def restore(self, module: nn.Module) -> None:
        """Load the copy into ``module`` in place (its tensors, and the optimizer's, stay).

        Raises:
            RuntimeError: nothing was saved.
        """
        if self.state is None:
            raise RuntimeError("BestWeights.restore: nothing saved yet (call save(module) first)")
        module.load_state_dict(self.state)


def apply_decisions(
    decisions: Iterable[Decision],
    adapters: Sequence[FrictionAdapter],
    *,
    module: nn.Module | None = None,
    best: BestWeights | None = None,
) -> None:
    """Carry out decisions on every optimizer's adapter (and the module, for best weights).

    Raises:
        RuntimeError: a :class:`NewBest` or :class:`RestoreBest` without ``module`` and
            ``best`` (a controller with ``restore_best=True`` needs them), or a restore
            before any save.
    """
    for decision in decisions:
        if isinstance(decision, Brake):
            for adapter in adapters:
                adapter.brake(decision.factor)
        elif isinstance(decision, Release):
            for adapter in adapters:
                adapter.release()
                adapter.kick(decision.kick)
        elif isinstance(decision, (NewBest, RestoreBest)):
            if module is None or best is None:
                raise RuntimeError(
                    f"{type(decision).__name__} needs the weights: pass module=<model> and "
                    "best=BestWeights() to apply_decisions (the controller has restore_best=True)"
                )
            if isinstance(decision, NewBest):
                best.save(module)
            else:
                best.restore(module)
        else:  # pragma: no cover - a new Decision type without a branch here
            raise TypeError(f"Unknown decision: {decision!r}")
