"""A TeaNet as the simulators see it: per stage, the layers' gather index, p, weights and leak.

Shared by the torch simulator (simulate.py) and the CUDA one (cuda_sim.py), so neither imports
the other's internals.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dnnrepro.core.errors import ConfigError

from . import rng
from .tea import TeaNet


@dataclass
class DeployedLayer:
    """One TeaLayer as deployed: gather index, probabilities, integer weights and leak."""

    layer_id: int  # position over all layers of the net, the RNG stream of its crossbars
    src: torch.Tensor  # (a,) int64 into the previous stage's output (or the flat image)
    p: torch.Tensor  # (a, m) float32
    s: torch.Tensor  # (a, m) float32, integer values
    leak: torch.Tensor  # (m,) float32, integer values in [-255, 255]

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.p.shape)


def deployed_layers(
    model: TeaNet, device: torch.device | str | None = None
) -> list[list[DeployedLayer]]:
    """The deployable parameters of ``model`` per stage (p clipped to [0, 1], leak rounded)."""
    stages, layer_id = [], 0
    for stage in model.stages:
        layers = []
        for layer, src in zip(stage.layers, stage.sources(), strict=True):
            layers.append(
                DeployedLayer(
                    layer_id,
                    src.detach().to(device),
                    layer.p.detach().clamp(0, 1).to(device, torch.float32),
                    layer.synapse_weights().to(device, torch.float32),
                    layer.integer_leak().detach().to(device, torch.float32),
                )
            )
            layer_id += 1
        stages.append(layers)
    return stages


def check_run(model, x, copies, ticks, seed) -> torch.Tensor:
    if not isinstance(model, TeaNet):
        raise ConfigError(f"deploy needs a TeaNet, not {type(model).__name__}")
    for name, v in (("copies", copies), ("ticks", ticks)):
        if not (isinstance(v, int) and 1 <= v <= 1 << 20):
            raise ConfigError(f"{name} must be an integer >= 1, not {v!r}")
    if not (isinstance(seed, int) and 0 <= seed <= rng.MASK32):
        raise ConfigError(f"seed must be an integer in [0, 2**32), not {seed!r}")
    flat = model.check_input(x).to(torch.float32)
    if not torch.isfinite(flat).all() or float(flat.min()) < 0 or float(flat.max()) > 1:
        raise ConfigError("inputs must be spike probabilities in [0, 1] (finite)")
    return flat
