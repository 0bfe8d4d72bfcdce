"""Tile a TeaNet onto TrueNorth cores and check every limit the chip imposes.

A layer with more than 256 neurons is split into cores of at most 256 neurons that share the same
axons; that needs every input spike delivered to several cores, which only the off-chip input can
do (a neuron has exactly one destination), so splits are allowed in the first stage only. A layer
with more than 256 inputs cannot be split (a neuron integrates the axons of its own core only) and
is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from dnnrepro.core.errors import ConfigError

from . import chip
from .tea import TeaNet


@dataclass(frozen=True)
class Core:
    """One core: which stage and layer it implements, its axons and neurons."""

    stage: int
    layer: int
    index: int  # core number within the copy
    axons: int
    neurons: int
    neuron_range: tuple[int, int]  # neurons [start, stop) of the layer placed here


@dataclass
class CorePlan:
    """Where every layer of one network copy sits; ``cores_per_copy`` is what one copy costs."""

    cores: list[Core] = field(default_factory=list)

    @property
    def cores_per_copy(self) -> int:
        return len(self.cores)

    def cores_for(self, copies: int) -> int:
        """Cores used by ``copies`` independent copies (the spatial ensemble)."""
        return copies * self.cores_per_copy

    def summary(self) -> str:
        lines = [f"{self.cores_per_copy} cores per copy"]
        for c in self.cores:
            lines.append(
                f"  core {c.index}: stage {c.stage} layer {c.layer} neurons "
                f"{c.neuron_range[0]}..{c.neuron_range[1] - 1}: {c.axons} axons, {c.neurons} neurons"
            )
        return "\n".join(lines)


def map_to_cores(model: TeaNet, input_shape: tuple[int, ...] | None = None) -> CorePlan:
    """Place ``model`` on cores; raise ConfigError naming the first limit it breaks."""
    if not isinstance(model, TeaNet):
        raise ConfigError(f"map_to_cores needs a TeaNet, not {type(model).__name__}")
    if input_shape is not None and tuple(input_shape) != model.input_shape:
        raise ConfigError(
            f"the model reads inputs of shape {model.input_shape}, not {tuple(input_shape)}"
        )
    plan = CorePlan()
    for s, stage in enumerate(model.stages):
        fan_out = None
        if s > 0:  # each neuron of the previous stage may drive one axon only
            fan_out = torch.zeros(model.stages[s - 1].out_features, dtype=torch.int64)
        for li, (layer, src) in enumerate(zip(stage.layers, stage.sources(), strict=True)):
            where = f"stage {s} layer {li}"
            if layer.in_features > chip.AXONS_PER_CORE:
                raise ConfigError(
                    f"{where} has {layer.in_features} inputs; a core has {chip.AXONS_PER_CORE} "
                    "axons: split the input into patches of at most 256 (see mnist_5core)"
                )
            if layer.weight_table.shape[1] > chip.MAX_AXON_TYPES:
                raise ConfigError(f"{where}: more than {chip.MAX_AXON_TYPES} axon types")
            if int(layer.weight_table.abs().max()) > chip.MAX_MAGNITUDE:
                raise ConfigError(f"{where}: a weight is outside [-255, 255]")
            if float(layer.leak.detach().round().abs().max()) > chip.MAX_MAGNITUDE:
                raise ConfigError(f"{where}: a leak is outside [-255, 255]; call model.clip_()")
            p = layer.p.detach()
            if float(p.min()) < 0 or float(p.max()) > 1:
                raise ConfigError(f"{where}: connection probabilities outside [0, 1]; clip first")
            n_split = -(-layer.out_features // chip.NEURONS_PER_CORE)
            if fan_out is not None:
                fan_out.index_add_(0, src, torch.full_like(src, n_split))
            for part in range(n_split):
                start = part * chip.NEURONS_PER_CORE
                stop = min(layer.out_features, start + chip.NEURONS_PER_CORE)
                plan.cores.append(
                    Core(s, li, len(plan.cores), layer.in_features, stop - start, (start, stop))
                )
        if fan_out is not None and int(fan_out.max()) > 1:
            j = int(fan_out.argmax())
            raise ConfigError(
                f"stage {s}: neuron {j} of stage {s - 1} would drive {int(fan_out.max())} axons; "
                "a TrueNorth neuron has exactly one destination (duplicate the neuron instead)"
            )
    return plan
