r"""Smoothers for the monitored loss: an EMA, a window mean, or the raw batch loss.

A loss on an accelerator stays there: the smoother keeps its state as a tensor on that
device (float32, or float64 where the losses are), so :meth:`Smoother.update` never waits
for the device; only reading :meth:`Smoother.value` as a Python number does. A loss on the
CPU (or a Python number) costs no sync to read, and a handful of tensor operations on a
0-d tensor cost more than the arithmetic itself, so those are kept as Python floats
(IEEE double, the same rounding as float64 tensors).

EMA with half-life h steps (β = 2^{-1/h}, so a loss's weight halves every h steps),
started at the first loss:

.. math::

    s_1 = \ell_1, \qquad s_t = β\,s_{t-1} + (1 - β)\,\ell_t
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor

__all__ = ["EMA", "SMOOTHINGS", "Raw", "Scalar", "Smoother", "Window", "as_loss", "make_smoother"]

#: Names accepted by :func:`make_smoother`.
SMOOTHINGS: tuple[str, ...] = ("ema", "window", "none")

#: A loss or smoothed loss: a Python float (CPU) or a 0-d tensor (an accelerator).
Scalar = float | Tensor


def as_loss(loss: float | Tensor) -> Scalar:
    """A Python float for a number or a CPU tensor, a detached 0-d tensor otherwise
    (float32, or float64 where it is).

    Raises:
        ValueError: the loss has more than one element.
    """
    if not isinstance(loss, Tensor):
        return float(loss)
    if loss.numel() != 1:
        raise ValueError(
            f"Invalid loss value: a tensor of shape {tuple(loss.shape)} (must be a scalar)"
        )
    if loss.device.type == "cpu":
        return loss.item()  # no device to wait for; float32 values convert exactly
    x = loss.detach().reshape(())
    return x if x.dtype == torch.float64 else x.to(torch.float32)


class Smoother(ABC):
    """Turns a stream of batch losses into the monitored loss."""

    @abstractmethod
    def update(self, loss: Scalar) -> None:
        """Feed one loss (from :func:`as_loss`); never syncs the device."""

    @abstractmethod
    def value(self) -> Scalar | None:
        """The smoothed loss (a float, or a 0-d tensor on the losses' device; None before
        any loss)."""

    @property
    @abstractmethod
    def buffer(self) -> Tensor | None:
        """The whole state as one tensor, linear in the losses (a DDP mean reduces it)."""

    @abstractmethod
    def load_buffer(self, buffer: Tensor) -> None:
        """Replace the state by ``buffer`` (e.g. its mean over ranks)."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Flat state of plain numbers (reads the device once)."""

    @abstractmethod
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the next device loss moves the state to its device."""


def _follow(state: Scalar, loss: Scalar) -> Scalar:
    """``state`` where a tensor ``loss`` lives (a float state after a load, or a move)."""
    if not isinstance(loss, Tensor):
        return state
    if not isinstance(state, Tensor):
        return torch.tensor(state, dtype=loss.dtype, device=loss.device)
    if state.device != loss.device or state.dtype != loss.dtype:
        return state.to(device=loss.device, dtype=loss.dtype)
    return state


def _copy(x: Scalar) -> Scalar:
    return x.clone() if isinstance(x, Tensor) else x


def _to_buffer(value: Scalar) -> Tensor:
    return value if isinstance(value, Tensor) else torch.tensor(value, dtype=torch.float64)


class _OneValue(Smoother):
    """A smoother whose whole state is one value, saved under ``_key``."""

    _key = ""

    def __init__(self) -> None:
        self._value: Scalar | None = None

    def value(self) -> Scalar | None:
        return self._value

    @property
    def buffer(self) -> Tensor | None:
        return None if self._value is None else _to_buffer(self._value)

    def load_buffer(self, buffer: Tensor) -> None:
        self._value = buffer.reshape(()) if isinstance(self._value, Tensor) else float(buffer)

    def state_dict(self) -> dict[str, Any]:
        return {self._key: None if self._value is None else float(self._value)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        value = state_dict[self._key]
        self._value = None if value is None else float(value)


class EMA(_OneValue):
    """Exponential moving average with a half-life in steps, started at the first loss."""

    _key = "ema"

    def __init__(self, half_life: float) -> None:
        super().__init__()
        self.half_life = half_life
        self.beta = 0.5 ** (1.0 / half_life)

    def update(self, loss: Scalar) -> None:
        if self._value is None:
            self._value = _copy(loss)
        else:
            # Out of place, also for tensors: a value handed out is never mutated later.
            self._value = _follow(self._value, loss) * self.beta + (1.0 - self.beta) * loss


class Window(Smoother):
    """Mean of the last ``size`` losses (of all losses so far while fewer have arrived).

    The losses sit in a ring: a list of floats, or a tensor on the losses' device.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.count = 0
        self._ring: list[float] | Tensor | None = None

    def update(self, loss: Scalar) -> None:
        if isinstance(loss, Tensor):
            ring = self._ring
            if ring is None:
                ring = loss.new_zeros(self.size)
            elif isinstance(ring, list):  # floats from a checkpoint: to the device, once
                ring = torch.tensor(ring, dtype=loss.dtype, device=loss.device)
            self._ring = _follow(ring, loss)
        elif self._ring is None:
            self._ring = [0.0] * self.size
        self._ring[self.count % self.size] = loss
        self.count += 1

    def value(self) -> Scalar | None:
        if self._ring is None or self.count == 0:
            return None
        n = min(self.count, self.size)
        if isinstance(self._ring, Tensor):
            return self._ring[:n].mean()
        return math.fsum(self._ring[:n]) / n

    @property
    def buffer(self) -> Tensor | None:
        if self._ring is None:
            return None
        return (
            self._ring
            if isinstance(self._ring, Tensor)
            else torch.tensor(self._ring, dtype=torch.float64)
        )

    def load_buffer(self, buffer: Tensor) -> None:
        buffer = buffer.reshape(self.size)
        self._ring = buffer if isinstance(self._ring, Tensor) else buffer.tolist()

    def state_dict(self) -> dict[str, Any]:
        ring = self._ring
        values = (
            []
            if ring is None
            else [float(v) for v in (ring.tolist() if isinstance(ring, Tensor) else ring)]
        )
        return {"window": values, "window_count": self.count}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        values = [float(v) for v in state_dict["window"]]
        if values and len(values) != self.size:
            raise ValueError(
                f"Invalid window state: {len(values)} values for a window of {self.size} "
                "(the checkpoint was written with another window size)"
            )
        self.count = int(state_dict["window_count"])
        self._ring = values or None


class Raw(_OneValue):
    """No smoothing: the monitored loss is the last batch loss."""

    _key = "last"

    def update(self, loss: Scalar) -> None:
        self._value = _copy(loss)


def make_smoother(smoothing: str, *, half_life: float, window: int) -> Smoother:
    """The smoother named ``smoothing`` (one of :data:`SMOOTHINGS`).

    Raises:
        ValueError: an unknown name, a half-life that is not a positive finite number, or a
            window that is not a positive integer.
    """
    if smoothing not in SMOOTHINGS:
        raise ValueError(
            f"Invalid smoothing value: {smoothing!r} (must be one of {', '.join(SMOOTHINGS)})"
        )
    if smoothing == "ema":
        if (
            isinstance(half_life, bool)
            or not isinstance(half_life, (int, float))
            or not (half_life > 0 and math.isfinite(half_life))
        ):
            raise ValueError(f"Invalid half_life value: {half_life!r} (must be > 0, in steps)")
        return EMA(float(half_life))
    if smoothing == "window":
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"Invalid window value: {window!r} (must be an integer >= 1)")
        return Window(window)
    return Raw()
