"""Caffe's "multistep" learning-rate policy, with Caffe's update semantics, as a fit callback.

Caffe's SGD keeps the step inside the momentum: V <- mu V + lr_t * diff; W <- W - V, with diff =
gradient + weight decay + force. torch's (and the core loop's) keeps it outside: B <- mu B + diff;
W <- W - lr B. With the optimizer's lr fixed at the base rate lr_0 and diff scaled by lr_t / lr_0,
torch's update is exactly Caffe's (V = lr_0 B), also across a rate change, where simply changing
torch's lr would rescale the whole momentum buffer. Milestones are in optimizer steps (Caffe
iterations), which the core's epoch milestones cannot express.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dnnrepro.core.errors import ConfigError
from dnnrepro.core.train import Callback


# core gap: TrainConfig.milestones are epochs (dnnrepro/core/train.py, TrainConfig.lr_at), and the
# rate multiplies torch's momentum buffer; Caffe's step-numbered milestones with the rate inside the
# momentum need this callback. A core fix: step milestones (e.g. ``milestone_unit="step"``).
class CaffeMultiStep(Callback):
    """Scale every gradient by ``gamma ** (number of milestones <= step)`` after backward, weight
    decay and the other callbacks (list it last in ``callbacks``), before the optimizer step.

    ``milestones``: Caffe ``stepvalue`` iterations (increasing); ``gamma``: Caffe ``gamma``.
    Stateless: the scale is a function of the step, so a resumed run continues the schedule.
    """

    def __init__(self, milestones: Sequence[int], gamma: float):
        steps = list(milestones)
        if any(not isinstance(m, int) or m < 1 for m in steps) or steps != sorted(steps):
            raise ConfigError(f"milestones must be increasing step numbers >= 1, not {milestones}")
        if not 0 < gamma <= 1:
            raise ConfigError(f"gamma must be in (0, 1], not {gamma!r}")
        self.milestones = tuple(steps)
        self.gamma = float(gamma)

    def scale(self, step: int) -> float:
        """lr_t / lr_0 at optimizer step ``step`` (0-based)."""
        return self.gamma ** sum(1 for m in self.milestones if step >= m)

    @torch.no_grad()
    def after_backward(self, model: nn.Module, step: int) -> None:
        factor = self.scale(step)
        if factor == 1.0:
            return
        for p in model.parameters():
            if p.grad is not None:
                p.grad.mul_(factor)
