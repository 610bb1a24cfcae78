"""Shared helpers of the PHS tests: float64 parameters, a smooth loss, trajectories, errors.

Imported by the test modules of this folder (pytest puts the folder on ``sys.path``).
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable

import torch
from torch import Tensor, nn

from goalbrake.optim import PHS

DT = torch.float64
#: Parameter shapes of one group: a matrix, a vector and a 3-d tensor.
SHAPES: tuple[tuple[int, ...], ...] = ((3, 4), (5,), (2, 1, 3))


def make_params(seed: int = 0, shapes: tuple[tuple[int, ...], ...] = SHAPES) -> list[nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    return [nn.Parameter(torch.randn(s, generator=gen, dtype=DT)) for s in shapes]


def clone_params(params: list[nn.Parameter]) -> list[nn.Parameter]:
    return [nn.Parameter(p.detach().clone()) for p in params]


def smooth_loss(params: list[Tensor]) -> Tensor:
    """A smooth non-convex loss Σ ½ wθ² + sin(θ + c) with fixed w > 0 and c per element."""
    total = torch.zeros((), dtype=DT)
    for i, p in enumerate(params):
        gen = torch.Generator().manual_seed(100 + i)
        w = torch.rand(p.shape, generator=gen, dtype=DT) + 0.5
        c = torch.randn(p.shape, generator=gen, dtype=DT)
        total = total + (0.5 * w * p.square() + torch.sin(p + c)).sum()
    return total


def set_grads(
    params: list[nn.Parameter], loss: Callable[[list[Tensor]], Tensor] = smooth_loss
) -> None:
    """p.grad = ∇loss at the current parameters."""
    with torch.enable_grad():
        grads = torch.autograd.grad(loss(params), params)
    for p, g in zip(params, grads, strict=True):
        p.grad = g.detach().clone()


def flat(tensors: list[Tensor]) -> Tensor:
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def rel_err(xs: list[Tensor], ys: list[Tensor]) -> float:
    """‖x − y‖ / ‖y‖ over all tensors at once."""
    x, y = flat(xs), flat(ys)
    return float((x - y).norm() / y.norm().clamp_min(1e-300))


def momenta(opt: PHS, params: list[nn.Parameter]) -> list[Tensor]:
    return [opt.state[p]["momentum"] for p in params]


def save(obj: object) -> io.BytesIO:
    """Serialize like a checkpoint (``torch.save``), for ``torch.load`` to read back."""
    buf = io.BytesIO()
    torch.save(copy.deepcopy(obj), buf)
    buf.seek(0)
    return buf
