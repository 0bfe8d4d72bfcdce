"""Magnitude pruning of the basis layers of a decomposed network (the paper's "further sparsified").

``prune_basis(model, sparsity)`` zeroes, in every ``LowRankConv2d.lowrank`` conv, the fraction
``sparsity`` of its weights with the smallest magnitude (per layer), and returns the core
:class:`~dnnrepro.core.sparsity.FixedMask` that keeps them at zero during fine-tuning (pass it
to fit's ``callbacks``: it zeroes the masked gradients, so momentum never moves them, and
re-applies the mask after the optimizer step, which also cancels weight decay drift).
"""

from __future__ import annotations

import torch
from torch import nn

from dnnrepro.core.errors import ConfigError
from dnnrepro.core.sparsity import FixedMask, magnitude_prune

from .lowrank import LowRankConv2d


@torch.no_grad()
def prune_basis(model: nn.Module, sparsity: float) -> FixedMask:
    """Zero the ``sparsity`` share of smallest-magnitude weights of every basis conv, per layer.

    ``sparsity`` in [0, 1). The mask's keys are parameter names (``<layer>.lowrank.weight``).
    Raises ConfigError when the model has no decomposed layer.
    """
    if not isinstance(sparsity, int | float) or not 0 <= sparsity < 1:
        raise ConfigError(f"sparsity must be in [0, 1), not {sparsity!r}")
    masks = {
        f"{name}.lowrank.weight": magnitude_prune(m.lowrank.weight, sparsity)
        for name, m in model.named_modules()
        if isinstance(m, LowRankConv2d)
    }
    if not masks:
        raise ConfigError(
            "the model has no decomposed layer; call decompose() before prune_basis()"
        )
    mask = FixedMask(masks)
    mask.apply(model)
    return mask
