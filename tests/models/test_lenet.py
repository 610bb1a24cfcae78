"""LeNet: weight counts against the paper's 44,426, shapes, and argument checks."""

import pytest
import torch

from goalbrake.models import LENET_LAYOUTS, LeNet

PAPER_WEIGHTS = 44_426


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    ("layout", "shape", "weights"),
    [
        ("one_pool", (1, 28, 28), 44_468),
        ("lenet5", (1, 28, 28), PAPER_WEIGHTS),
        ("one_pool", (3, 32, 32), 63_072),
        ("lenet5", (3, 32, 32), 62_006),
    ],
)
def test_weight_count_and_output_shape(layout, shape, weights):
    net = LeNet(in_channels=shape[0], num_classes=10, image_size=shape[1], layout=layout)
    assert count(net) == weights
    assert net(torch.zeros(3, *shape)).shape == (3, 10)


def test_default_is_the_papers_description_two_convs_one_pool_two_linears():
    net = LeNet()
    kinds = [type(m).__name__ for m in net.modules()]
    assert kinds.count("Conv2d") == 2
    assert kinds.count("MaxPool2d") == 1
    assert kinds.count("Linear") == 2
    assert all(m.kernel_size == (5, 5) for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    # 42 weights more than the paper's count; no integer hidden width lands on it.
    assert count(net) - PAPER_WEIGHTS == 42


def test_lenet5_layout_is_the_classic_net():
    kinds = [type(m).__name__ for m in LeNet(layout="lenet5").modules()]
    assert (kinds.count("Conv2d"), kinds.count("MaxPool2d"), kinds.count("Linear")) == (2, 2, 3)


@pytest.mark.parametrize("layout", LENET_LAYOUTS)
def test_gradients_reach_every_parameter(layout):
    net = LeNet(num_classes=7, layout=layout)
    net(torch.randn(4, 1, 28, 28)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layout": "lenet"}, "Invalid layout value: 'lenet' (must be one of one_pool, lenet5)"),
        ({"in_channels": 0}, "Invalid in_channels value: 0 (must be an integer >= 1)"),
        ({"num_classes": 2.5}, "Invalid num_classes value: 2.5 (must be an integer >= 1)"),
        ({"image_size": 9}, "Invalid image_size value: 9 (must be >= 10 for layout 'one_pool')"),
        (
            {"image_size": 15, "layout": "lenet5"},
            "Invalid image_size value: 15 (must be >= 16 for layout 'lenet5')",
        ),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError) as info:
        LeNet(**kwargs)
    assert str(info.value) == message


@pytest.mark.parametrize(("layout", "size"), [("one_pool", 10), ("lenet5", 16)])
def test_smallest_image_size_works(layout, size):
    assert LeNet(image_size=size, layout=layout)(torch.zeros(1, 1, size, size)).shape == (1, 10)
