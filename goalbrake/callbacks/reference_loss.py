"""The reference loss L₀: the mean training loss of the initial weights.

:class:`~goalbrake.callbacks.GoalBrake` measures it once, at ``on_train_start``, with
:func:`measure_reference_loss`; the goal of a relative mode is a fraction of it (see
docs/design.md, section "The reference loss L0"). The measurement takes no update and no
gradient, and leaves the weights, the module's buffers (e.g. batch-norm statistics) and
every random stream as they were, so a run with GoalBrake trains exactly like one without
until the brake.

This file imports no Lightning: it works on any Trainer by duck typing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor

__all__ = ["measure_reference_loss"]


@torch.no_grad()
def measure_reference_loss(trainer: Any, pl_module: Any, batches: int) -> float:
    """Mean loss of ``pl_module``'s current weights over ``batches`` training batches.

    The loss of a batch comes from the module's ``reference_loss(batch)`` where it defines
    one, otherwise from its ``training_step(batch, batch_idx)`` (the returned tensor, or
    its ``"loss"``) with ``self.log`` silenced. Under DDP the mean is averaged over ranks.

    Raises:
        ValueError: the Trainer has no single training dataloader, or it yielded no batch.
        RuntimeError: the loss function returned no tensor.
    """
    loader = trainer.train_dataloader
    if loader is None or isinstance(loader, (Mapping, list, tuple)):
        raise ValueError(
            "GoalBrake measures the reference loss on one training dataloader, but the "
            f"Trainer has {type(loader).__name__}; pass GoalBrake(reference_loss=<float>)"
        )
    buffers = {name: b.detach().clone() for name, b in pl_module.named_buffers()}
    precision = getattr(trainer, "precision_plugin", None)
    context = getattr(precision, "train_step_context", contextlib.nullcontext)
    with _rng_kept(pl_module.device, loader), _silenced_logging(pl_module), context():
        losses = _batch_losses(trainer, pl_module, loader, batches)
    for name, b in pl_module.named_buffers():
        if name in buffers:
            b.copy_(buffers[name])
    if not losses:
        raise ValueError(
            "GoalBrake could not measure the reference loss: the training dataloader "
            "yielded no batch; pass GoalBrake(reference_loss=<float>)"
        )
    value = torch.stack(losses).mean()
    if trainer.world_size > 1:
        value = trainer.strategy.reduce(value, reduce_op="mean")
    return float(value)


def _batch_losses(trainer: Any, pl_module: Any, loader: Any, batches: int) -> list[Tensor]:
    """The loss of each of the first ``batches`` batches, as 0-d float tensors."""
    custom = getattr(pl_module, "reference_loss", None)
    losses: list[Tensor] = []
    for batch_idx, batch in enumerate(loader):
        if batch_idx >= batches:
            break
        batch = trainer.strategy.batch_to_device(batch)
        out = custom(batch) if callable(custom) else pl_module.training_step(batch, batch_idx)
        loss = out.get("loss") if isinstance(out, Mapping) else out
        if not isinstance(loss, Tensor):
            source = "reference_loss" if callable(custom) else "training_step"
            raise RuntimeError(
                f"GoalBrake measures the reference loss with {source}, which returned "
                f"{type(out).__name__}; return the loss (a tensor, or a dict with "
                "'loss') or pass GoalBrake(reference_loss=<float>)"
            )
        losses.append(loss.detach().float().reshape(()))
    return losses


def _loader_generators(loader: Any) -> list[torch.Generator]:
    """The generators a DataLoader's shuffling draws from (its own, its samplers')."""
    found: dict[int, torch.Generator] = {}
    sampler = getattr(loader, "sampler", None)
    batch_sampler = getattr(loader, "batch_sampler", None)
    for owner in (loader, sampler, batch_sampler, getattr(batch_sampler, "sampler", None)):
        generator = getattr(owner, "generator", None)
        if isinstance(generator, torch.Generator):
            found[id(generator)] = generator
    return list(found.values())


@contextlib.contextmanager
def _rng_kept(device: torch.device, loader: Any) -> Iterator[None]:
    """Leave every random stream as it was: the global ones and the loader's generators
    (iterating a shuffling loader draws from them), so the first epoch is unchanged."""
    generators = _loader_generators(loader)
    states = [g.get_state() for g in generators]
    if device.type == "cpu":
        fork = torch.random.fork_rng(devices=[])
    else:
        fork = torch.random.fork_rng(devices=[device.index or 0], device_type=device.type)
    try:
        with fork:
            yield
    finally:
        for g, state in zip(generators, states, strict=True):
            g.set_state(state)


@contextlib.contextmanager
def _silenced_logging(pl_module: Any) -> Iterator[None]:
    """``self.log`` / ``self.log_dict`` as no-ops (``training_step`` runs outside its loop)."""

    def _noop(*args: Any, **kwargs: Any) -> None:
        return None

    pl_module.log = _noop
    pl_module.log_dict = _noop
    try:
        yield
    finally:
        del pl_module.log
        del pl_module.log_dict
