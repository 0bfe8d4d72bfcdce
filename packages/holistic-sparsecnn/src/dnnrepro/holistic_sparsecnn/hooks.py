"""Element-wise sparsity learning in your own training loop, the torch way.

:class:`L1Pruning` attaches to the weights of chosen layers and to an optimizer:

- a ``register_post_accumulate_grad_hook`` on each weight adds ``strength * sign(w)`` to its
  gradient (Caffe's L1 weight decay, the paper's lasso);
- an optimizer step post-hook zeroes every weight with ``|w| < threshold`` (SkimCaffe's
  ``prune_threshold``) and keeps it at zero through the layer's ``weight_mask`` buffer, which
  lives in the module's ``state_dict``.

``.remove()`` takes every hook off again. The guided variant (per-layer plans from the roofline
model, period checks, restoring) is :func:`dnnrepro.holistic_sparsecnn.guided_prune`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dnnrepro.core.errors import ConfigError


class L1Pruning:
    """L1 + hard threshold on the ``weight`` of each module in ``layers`` ({name: module}).

    ``strength``: L1 per optimizer step (added to the gradient); ``threshold``: weights whose
    magnitude falls below it after a step become zero and stay zero (``frozen=True``) or may
    regrow (``frozen=False``, the mask is then recomputed every step).
    """

    def __init__(
        self,
        layers: dict[str, nn.Module],
        strength: float,
        threshold: float = 1e-4,
        frozen: bool = False,
    ):
        if not layers:
            raise ConfigError("L1Pruning needs at least one layer")
        for name, value in (("strength", strength), ("threshold", threshold)):
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"L1Pruning: {name} must be a finite number >= 0")
        for name, m in layers.items():
            if not isinstance(getattr(m, "weight", None), nn.Parameter):
                raise ConfigError(f"L1Pruning: layer {name!r} has no weight parameter")
        self.layers, self.strength = dict(layers), strength
        self.threshold, self.frozen = threshold, frozen
        self._handles: list = []

    def attach(self, optimizer: torch.optim.Optimizer) -> L1Pruning:
        """Register the gradient hooks and the optimizer post-step hook; returns self."""
        if self._handles:
            raise ConfigError("L1Pruning is already attached; call remove() first")
        for m in self.layers.values():
            if not hasattr(m, "weight_mask"):
                m.register_buffer("weight_mask", torch.ones_like(m.weight, dtype=torch.bool))
            self._handles.append(m.weight.register_post_accumulate_grad_hook(self._l1))
        self._handles.append(optimizer.register_step_post_hook(self._threshold))
        return self

    def _l1(self, w: torch.Tensor) -> None:
        if w.grad is not None:
            w.grad.add_(torch.sign(w.detach()), alpha=self.strength)

    @torch.no_grad()
    def _threshold(self, _opt, _args, _kwargs) -> None:
        for m in self.layers.values():
            keep = m.weight.abs() >= self.threshold
            m.weight_mask.copy_(m.weight_mask & keep if self.frozen else keep)
            m.weight.mul_(m.weight_mask)

    def density(self) -> dict[str, float]:
        """{layer: non-zero fraction of its weight}."""
        return {n: float((m.weight != 0).float().mean()) for n, m in self.layers.items()}

    def remove(self) -> None:
        """Take every hook off (the masks stay as buffers)."""
        for h in self._handles:
            h.remove()
        self._handles = []
