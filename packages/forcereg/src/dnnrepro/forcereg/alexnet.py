"""AlexNet's five conv layers at their real shapes (the speed claim's network; no ImageNet here).

The group-split AlexNet the authors fine-tuned (BVLC/Caffe layout, 227x227 input): conv1 96 11x11
stride 4, max-pool 3/2, conv2 256 5x5 pad 2 in 2 groups, max-pool 3/2, conv3 384 3x3 pad 1, conv4
384 3x3 pad 1 in 2 groups, conv5 256 3x3 pad 1 in 2 groups, max-pool 3/2; ReLU after each conv.
The LRN layers are left out (they are not decomposed and cost little). ``features(x)`` is the
conv stack; there is no classifier: weights are random and only shapes matter for speed.

Ranks at which the paper timed it: the authors' ``config_iclr.json`` (conv1: 8, conv2: 40, from Tai
et al.) and ``config_iccv.json`` (conv3: 150, conv4: 160, conv5: 120); that their union produced
the 4.05x CPU row is our guess (see the brief). Ranks of grouped convs are taken per group.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PAPER_RANKS = {"conv1": 8, "conv2": 40, "conv3": 150, "conv4": 160, "conv5": 120}


class AlexNetConvs(nn.Module):
    """Images (B, 3, S, S) -> conv5 feature maps (B, 256, S', S') (S = 227 gives 6x6)."""

    def __init__(self, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 96, 11, stride=4)
        self.conv2 = nn.Conv2d(96, 256, 5, padding=2, groups=2)
        self.conv3 = nn.Conv2d(256, 384, 3, padding=1)
        self.conv4 = nn.Conv2d(384, 384, 3, padding=1, groups=2)
        self.conv5 = nn.Conv2d(384, 256, 3, padding=1, groups=2)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 3, 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 3, 2)
        x = F.relu(self.conv3(x))
        x = F.relu(self.conv4(x))
        return F.max_pool2d(F.relu(self.conv5(x)), 3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def torch_lowrank(model: nn.Module, ranks: dict[str, int]) -> nn.Module:
    """The plain-torch low-rank baseline: a copy of ``model`` in which each conv of ``ranks`` is
    ``nn.Sequential(Conv2d(C, g*M, k, groups=g, no bias), Conv2d(g*M, N, 1, groups=g))`` built
    directly from torch modules (fresh random weights: only the shapes are compared)."""
    import copy

    out = copy.deepcopy(model)
    for name, rank in ranks.items():
        conv = out.get_submodule(name)
        g = conv.groups
        pair = nn.Sequential(
            nn.Conv2d(
                conv.in_channels,
                g * rank,
                conv.kernel_size,
                conv.stride,
                conv.padding,
                groups=g,
                bias=False,
            ),
            nn.Conv2d(g * rank, conv.out_channels, 1, groups=g),
        )
        setattr(out, name, pair)
    return out
