"""Penalties that constrain the random variance of each sampled network copy.

The DAC'16 paper's exact regularizer is not available (its text says it "constrains the random
variance of each computation copy"; follow-up work says it biases connection probabilities
toward 0 and 1). These are the natural candidates, all zero at p in {0, 1}:

- ``var``: s^2 p (1 - p), the variance of the sampled synapse weight (maximal at p = 1/2);
- ``l1_to_binary``: min(p, 1 - p), the distance to the nearest binary value;
- ``l2_to_binary``: min(p, 1 - p)^2.

The penalty is ``strength`` times the mean over every synapse of the network, so one strength
means the same for networks of different size.
"""

from __future__ import annotations

import math

import torch

from dnnrepro.core.errors import ConfigError

from .tea import TeaLayer, TeaNet

KINDS = ("var", "l1_to_binary", "l2_to_binary")


def synapse_penalty(kind: str, p: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Per-synapse penalty of connection probabilities ``p`` with integer weights ``s``."""
    if kind == "var":
        return s.to(p.dtype) ** 2 * p * (1 - p)
    d = torch.minimum(p, 1 - p)
    if kind == "l1_to_binary":
        return d
    if kind == "l2_to_binary":
        return d * d
    raise ConfigError(f"unknown penalty kind {kind!r}; choose one of {', '.join(KINDS)}")


class VariancePenalty:
    """``penalty(model) -> scalar``: strength x mean per-synapse penalty (a ``fit`` penalty)."""

    def __init__(self, kind: str = "var", strength: float = 0.1):
        if kind not in KINDS:
            raise ConfigError(f"unknown penalty kind {kind!r}; choose one of {', '.join(KINDS)}")
        if not (isinstance(strength, int | float) and math.isfinite(strength) and strength >= 0):
            raise ConfigError(f"penalty strength must be a finite number >= 0, not {strength!r}")
        self.kind, self.strength = kind, float(strength)

    def __call__(self, model: TeaNet | TeaLayer) -> torch.Tensor:
        layers = model.tea_layers() if isinstance(model, TeaNet) else [model]
        total = sum(synapse_penalty(self.kind, la.p, la.synapse_weights()).sum() for la in layers)
        count = sum(la.p.numel() for la in layers)
        return self.strength * total / count

    def __repr__(self) -> str:
        return f"VariancePenalty(kind={self.kind!r}, strength={self.strength:g})"
