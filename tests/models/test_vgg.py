"""VGG: configurations, weight counts, width multiplier, batch norm, argument checks."""

import pytest
import torch

from goalbrake.models import VGG, VGG_CONFIGS


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def convs(net: torch.nn.Module) -> list[torch.nn.Conv2d]:
    return [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]


@pytest.mark.parametrize("depth", [11, 13, 16, 19])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_tiny_vgg_shapes_and_layers(depth, batch_norm):
    net = VGG(depth=depth, batch_norm=batch_norm, width=1 / 16, num_classes=7)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    assert len(convs(net)) == depth - 3  # the ImageNet net's three linear layers are one
    pools = [m for m in net.modules() if isinstance(m, torch.nn.MaxPool2d)]
    assert len(pools) == 5
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == (depth - 3 if batch_norm else 0)
    assert net.classifier[-1].in_features == 32  # round(512 / 16)


@pytest.mark.parametrize(
    ("depth", "weights", "bn_extra"),
    [
        (11, 9_225_610, 5_504),
        (13, 9_410_122, 5_888),
        (16, 14_719_818, 8_448),
        (19, 20_029_514, 11_008),
    ],
)
def test_full_width_weight_counts_match_the_docstring(depth, weights, bn_extra):
    assert count(VGG(depth)) == weights
    assert count(VGG(depth, batch_norm=True)) - weights == bn_extra
    assert f"VGG-{depth} {weights:,}" in VGG.__doc__.replace("\n    ", " ")


def test_width_scales_channels_and_in_channels_is_used():
    net = VGG(depth=11, width=0.25, in_channels=1, num_classes=3)
    assert [c.out_channels for c in convs(net)] == [16, 32, 64, 64, 128, 128, 128, 128]
    assert convs(net)[0].in_channels == 1
    assert net(torch.zeros(1, 1, 32, 32)).shape == (1, 3)


def test_configs_are_the_papers_a_b_d_e():
    for depth, config in VGG_CONFIGS.items():
        assert sum(isinstance(c, int) for c in config) + 3 == depth


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"depth": 12}, "Invalid depth value: 12 (must be one of 11, 13, 16, 19)"),
        ({"width": 0}, "Invalid width value: 0 (must be > 0)"),
        ({"width": -0.5}, "Invalid width value: -0.5 (must be > 0)"),
        ({"num_classes": 0}, "Invalid num_classes value: 0 (must be an integer >= 1)"),
        ({"in_channels": True}, "Invalid in_channels value: True (must be an integer >= 1)"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError) as info:
        VGG(**kwargs)
    assert str(info.value) == message
