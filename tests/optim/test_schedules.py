import pytest
import torch

from goalbrake.optim.schedules import StepOnceLR


def _lrs(epoch: int, gamma: float, steps: int) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5, momentum=0.9)
    sched = StepOnceLR(opt, epoch=epoch, gamma=gamma)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("epoch", [1, 3, 7])
def test_the_lr_drops_once_after_epoch_steps(epoch):
    lrs = _lrs(epoch, 0.1, 10)
    assert lrs[:epoch] == [0.5] * epoch
    assert lrs[epoch:] == pytest.approx([0.05] * (10 - epoch), rel=1e-12)


def test_state_dict_round_trip_keeps_the_drop():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = StepOnceLR(opt, epoch=2, gamma=0.5)
    for _ in range(3):
        opt.step()
        sched.step()
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    opt2.load_state_dict(opt.state_dict())
    sched2 = StepOnceLR(opt2, epoch=2, gamma=0.5)
    sched2.load_state_dict(sched.state_dict())
    opt2.step()
    sched2.step()
    assert opt2.param_groups[0]["lr"] == 0.5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epoch": 0}, "Invalid epoch value: 0 (must be an integer >= 1)"),
        ({"epoch": 2.5}, "Invalid epoch value: 2.5 (must be an integer >= 1)"),
        ({"epoch": 3, "gamma": 0.0}, "Invalid gamma value: 0.0 (must be in (0, 1])"),
        ({"epoch": 3, "gamma": 1.5}, "Invalid gamma value: 1.5 (must be in (0, 1])"),
    ],
)
def test_invalid_arguments(kwargs, message):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError) as info:
        StepOnceLR(opt, **kwargs)
    assert str(info.value) == message
