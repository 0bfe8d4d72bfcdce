"""The CIFAR-10 "full" ConvNet of the authors' Caffe examples, sized for any square input.

conv1 5x5x32 (pad 2) -> maxpool 3/2 -> ReLU -> conv2 5x5x32 -> ReLU -> avgpool 3/2 ->
conv3 5x5x64 -> ReLU -> avgpool 3/2 -> fc (num_classes). Caffe's cross-channel LRN layers are
left out (they do not touch the convolutions that are regularized and decomposed). Pools use
Caffe's ceil rounding. ``features(x)`` is the conv stack (what the speed claims time).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _pooled(size: int) -> int:
    # Caffe pooling rounds up: ceil((size - 3) / 2) + 1 for a 3x3 window, stride 2, no pad
    return -(-(size - 3) // 2) + 1


class ConvNet(nn.Module):
    """Images (B, C, S, S) -> logits (B, num_classes); conv widths ``widths``."""

    def __init__(
        self,
        in_channels: int = 3,
        image_size: int = 32,
        num_classes: int = 10,
        widths: tuple[int, int, int] = (32, 32, 64),
    ):
        super().__init__()
        c1, c2, c3 = widths
        self.conv1 = nn.Conv2d(in_channels, c1, 5, padding=2)
        self.conv2 = nn.Conv2d(c1, c2, 5, padding=2)
        self.conv3 = nn.Conv2d(c2, c3, 5, padding=2)
        size = _pooled(_pooled(_pooled(image_size)))
        self.fc = nn.Linear(c3 * size * size, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.max_pool2d(self.conv1(x), 3, 2, ceil_mode=True))
        x = F.avg_pool2d(F.relu(self.conv2(x)), 3, 2, ceil_mode=True)
        x = F.avg_pool2d(F.relu(self.conv3(x)), 3, 2, ceil_mode=True)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))
