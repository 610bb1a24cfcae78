"""VGG for 32×32 images (CIFAR-style), with optional batch norm and a width multiplier.

The convolutional stacks are configurations A, B, D and E of Simonyan & Zisserman (2015,
Table 1): 3×3 convolutions with padding 1 and five 2×2 max-pools, which take a 32×32
image down to 1×1. As in the usual CIFAR adaptations (e.g. kuangliu/pytorch-cifar), the
three 4096-unit layers of the ImageNet net are replaced by one linear layer from the
512·width features to the classes.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["VGG", "VGG_CONFIGS"]

_M = "M"
#: Output channels of each 3×3 convolution, "M" for a 2×2 max-pool, by depth.
VGG_CONFIGS: dict[int, tuple[int | str, ...]] = {
    11: (64, _M, 128, _M, 256, 256, _M, 512, 512, _M, 512, 512, _M),
    13: (64, 64, _M, 128, 128, _M, 256, 256, _M, 512, 512, _M, 512, 512, _M),
    16: (64, 64, _M, 128, 128, _M, 256, 256, 256, _M, 512, 512, 512, _M, 512, 512, 512, _M),
    19: (
        *(64, 64, _M, 128, 128, _M),
        *(256, 256, 256, 256, _M, 512, 512, 512, 512, _M, 512, 512, 512, 512, _M),
    ),
}


def _scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


class VGG(nn.Module):
    """VGG-11/13/16/19 for 32×32 inputs.

    Each convolution is ``Conv2d(3×3, padding=1)`` → (``BatchNorm2d``) → ``ReLU``; the
    channel counts of the configuration are multiplied by ``width`` (rounded, at least 1),
    and the classifier is ``Linear(round(512·width), num_classes)``. Inputs must be 32×32
    (five poolings leave 1×1).

    Weight counts at width 1, 3 input channels and 10 classes: VGG-11 9,225,610,
    VGG-13 9,410,122, VGG-16 14,719,818, VGG-19 20,029,514 (batch norm adds 2 per
    channel: 5,504 / 5,888 / 8,448 / 11,008).

    Args:
        depth: 11, 13, 16 or 19.
        batch_norm: put a ``BatchNorm2d`` after every convolution (convolutions then
            keep their bias, as in torchvision's ``vgg*_bn``).
        width: channel multiplier (> 0); ``width=1/16`` makes a tiny net for tests.
        num_classes: number of output logits.
        in_channels: channels of the input images.

    Raises:
        ValueError: for an unknown depth, a non-positive width, or non-positive counts.

    Example::

        >>> import torch
        >>> net = VGG(depth=11, width=0.125)
        >>> net(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        depth: int = 16,
        batch_norm: bool = False,
        width: float = 1.0,
        num_classes: int = 10,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if depth not in VGG_CONFIGS:
            allowed = ", ".join(str(d) for d in VGG_CONFIGS)
            raise ValueError(f"Invalid depth value: {depth!r} (must be one of {allowed})")
        if not width > 0:
            raise ValueError(f"Invalid width value: {width!r} (must be > 0)")
        for name, value in (("num_classes", num_classes), ("in_channels", in_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Invalid {name} value: {value!r} (must be an integer >= 1)")
        layers: list[nn.Module] = []
        channels = in_channels
        for item in VGG_CONFIGS[depth]:
            if item == _M:
                layers.append(nn.MaxPool2d(2))
                continue
            out = _scaled(int(item), width)
            layers.append(nn.Conv2d(channels, out, kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU(inplace=True))
            channels = out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(channels, num_classes))
        self.depth = depth

    def forward(self, x: Tensor) -> Tensor:
        """Logits of shape (N, num_classes) for images of shape (N, C, 32, 32)."""
        return self.classifier(self.features(x))
