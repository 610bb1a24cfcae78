"""The networks of the paper's experiments: :class:`LeNet` and CIFAR-style :class:`VGG`."""

from goalbrake.models.lenet import LENET_LAYOUTS, LeNet
from goalbrake.models.vgg import VGG, VGG_CONFIGS

__all__ = ["LENET_LAYOUTS", "VGG", "VGG_CONFIGS", "LeNet"]
