"""A small AlexNet-style network for 28x28 digits (five convs, three pools, two fc layers).

Same pattern as CaffeNet (a large-kernel conv1, then 3x3 convs stacked without pooling between
conv3-5), scaled so it trains in seconds on two CPU cores.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AlexNetSmall(nn.Module):
    """conv1 5x5 (pad 2) - pool - conv2 3x3 - pool - conv3, conv4, conv5 3x3 - pool - fc6 - fc7.

    Input (B, in_channels, 28, 28); output logits (B, num_classes).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        widths: tuple[int, int, int, int, int] = (24, 48, 64, 64, 48),
        hidden: int = 256,
    ):
        super().__init__()
        c1, c2, c3, c4, c5 = widths
        self.conv1 = nn.Conv2d(in_channels, c1, 5, padding=2)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.conv3 = nn.Conv2d(c2, c3, 3, padding=1)
        self.conv4 = nn.Conv2d(c3, c4, 3, padding=1)
        self.conv5 = nn.Conv2d(c4, c5, 3, padding=1)
        self.fc6 = nn.Linear(c5 * 3 * 3, hidden)
        self.fc7 = nn.Linear(hidden, num_classes)
        # He init: with torch's default init the signal fades through five ReLU convs and the
        # net stays at chance for the first epochs (measured: loss 2.30 after 2 epochs).
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # 14x14
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # 7x7
        x = F.relu(self.conv3(x))
        x = F.relu(self.conv4(x))
        x = F.max_pool2d(F.relu(self.conv5(x)), 2)  # 3x3
        x = F.relu(self.fc6(x.flatten(1)))
        return self.fc7(x)
