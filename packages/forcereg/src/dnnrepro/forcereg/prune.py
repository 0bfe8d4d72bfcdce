"""Magnitude pruning of the basis layers of a decomposed network (the paper's "further sparsified").

``prune_basis(model, sparsity)`` zeroes, in every ``LowRankConv2d.lowrank`` conv, the fraction
``sparsity`` of its weights with the smallest magnitude (per layer), and returns a
:class:`MagnitudeMask` that keeps them at zero during fine-tuning: use it both as a grad hook
(zero the masked gradients, so momentum never moves them) and as a step hook (re-apply the mask
after the optimizer step, which also cancels weight decay drift).
"""

from __future__ import annotations

import torch
from torch import nn

from dnnrepro.core.errors import ConfigError

from .lowrank import LowRankConv2d


class MagnitudeMask:
    """Fixed 0/1 masks for some weights; ``mask(model, step)`` applies them to grads and weights."""

    def __init__(self, masks: dict[str, tuple[nn.Parameter, torch.Tensor]]):
        self.masks = masks

    @torch.no_grad()
    def __call__(self, model: nn.Module | None = None, step: int = 0) -> None:
        for param, mask in self.masks.values():
            if param.grad is not None:
                param.grad.mul_(mask)
            param.mul_(mask)

    def nonzeros(self) -> dict[str, int]:
        """{layer: number of weights kept}."""
        return {name: int(mask.sum()) for name, (_, mask) in self.masks.items()}


@torch.no_grad()
def prune_basis(model: nn.Module, sparsity: float) -> MagnitudeMask:
    """Zero the ``sparsity`` share of smallest-magnitude weights of every basis conv, per layer.

    ``sparsity`` in [0, 1). Raises ConfigError when the model has no decomposed layer.
    """
    if not isinstance(sparsity, int | float) or not 0 <= sparsity < 1:
        raise ConfigError(f"sparsity must be in [0, 1), not {sparsity!r}")
    masks: dict[str, tuple[nn.Parameter, torch.Tensor]] = {}
    for name, m in model.named_modules():
        if isinstance(m, LowRankConv2d):
            w = m.lowrank.weight
            k = int(sparsity * w.numel())
            mask = torch.ones_like(w)
            if k > 0:
                # ties at the threshold: keep exactly numel - k weights by ranking, not by value
                order = w.abs().flatten().argsort()
                mask.view(-1)[order[:k]] = 0
            w.mul_(mask)
            masks[f"{name}.lowrank"] = (w, mask)
    if not masks:
        raise ConfigError(
            "the model has no decomposed layer; call decompose() before prune_basis()"
        )
    return MagnitudeMask(masks)
