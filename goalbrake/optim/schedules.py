"""One step decay of the learning rate at a given epoch, as one number a sweep can tune.

torch's ``MultiStepLR(milestones=[epoch], gamma=factor)`` does the same, but its epoch is
a list element, which an Optuna parameter cannot be; this class exists only to name it.
"""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import MultiStepLR

__all__ = ["StepOnceLR"]


class StepOnceLR(MultiStepLR):
    r"""Multiply every group's lr by ``gamma`` once, when ``epoch`` scheduler steps are done.

    .. math::
        \alpha_t = \alpha_0 \quad (t < \text{epoch}), \qquad
        \alpha_t = \gamma\,\alpha_0 \quad (t \ge \text{epoch})

    Args:
        optimizer: the optimizer whose lr it changes.
        epoch: the number of ``step()`` calls (epochs, with Lightning's default
            ``interval: epoch``) after which the lr drops; >= 1.
        gamma: the factor, in (0, 1].

    Raises:
        ValueError: ``epoch`` < 1 or ``gamma`` outside (0, 1].

    Example::

        goalbrake fit --config configs/fashionmnist/sgd.yaml \
            --lr_scheduler goalbrake.optim.schedules.StepOnceLR \
            --lr_scheduler.epoch 10 --lr_scheduler.gamma 0.1
    """

    def __init__(
        self, optimizer: Optimizer, epoch: int, gamma: float = 0.1, last_epoch: int = -1
    ) -> None:
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
            raise ValueError(f"Invalid epoch value: {epoch!r} (must be an integer >= 1)")
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"Invalid gamma value: {gamma!r} (must be in (0, 1])")
        self.epoch = epoch
        super().__init__(optimizer, milestones=[epoch], gamma=gamma, last_epoch=last_epoch)
