"""The paper's trade-off, as numbers: accuracy against remaining conv FLOPs after decomposition.

A net is decomposed at a sweep of energy thresholds (each layer at the rank that keeps that share
of its squared singular values), fine-tuned briefly, and evaluated: one point (conv MACs,
accuracy) per threshold. A layer is decomposed only where the two small layers cost fewer MACs
than the dense one (M (D + N) < N D per output pixel); elsewhere it stays dense, as a user would
leave it. Two nets are compared by the conv MACs each needs to stay within a tolerance (0.5 pp)
of the dense baseline's accuracy: :func:`macs_needed`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from torch import nn

from dnnrepro.core.errors import ConfigError
from dnnrepro.core.models import layer_flops

from .lowrank import _LowRank, group_weights, layer_rank_for_energy, max_rank


def conv_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of every conv (dense or decomposed) for one input (C, H, W)."""
    flops = layer_flops(model, input_shape)
    convs = set()
    for name, m in model.named_modules():
        if isinstance(m, _LowRank):
            convs |= {f"{name}.lowrank", f"{name}.linear"}
        elif isinstance(m, nn.Conv2d):
            convs.add(name)
    return sum(v for k, v in flops.items() if k in convs)


def pays_off(layer: nn.Module, rank: int) -> bool:
    """True when rank ``rank`` (per group) costs fewer MACs per output pixel than the dense layer:
    M (D + N) < N D with N filters and D weights per filter (per group)."""
    block = group_weights(layer)[0]
    n, d = block.shape[0], block[0].numel()
    return rank * (d + n) < n * d


def energy_ranks(
    model: nn.Module, energy: float, layers: Iterable[str] | None = None
) -> dict[str, int]:
    """{layer: rank at ``energy``} for the layers (default: every nn.Conv2d) where that rank pays
    off (:func:`pays_off`); the others are left out, i.e. stay dense."""
    names = (
        [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
        if layers is None
        else list(layers)
    )
    out = {}
    for name in names:
        layer = model.get_submodule(name)
        rank = min(layer_rank_for_energy(layer, energy), max_rank(layer))
        if pays_off(layer, rank):
            out[name] = rank
    return out


def macs_needed(points: Iterable[Mapping[str, float]], target: float, fallback: float) -> float:
    """The fewest MACs among ``points`` ({"macs", "accuracy"}) whose accuracy is >= ``target``;
    ``fallback`` (the dense baseline's MACs: keep the dense net) when no point reaches it, or
    when the fallback is cheaper."""
    ok = [float(p["macs"]) for p in points if p["accuracy"] >= target]
    for value in [*ok, fallback, target]:
        if not math.isfinite(float(value)):
            raise ConfigError(f"macs_needed: every value must be finite, got {value!r}")
    return min([*ok, float(fallback)])


def iso_accuracy_ratio(
    arm: Iterable[Mapping[str, float]],
    reference: Iterable[Mapping[str, float]],
    dense_accuracy: float,
    dense_macs: float,
    tolerance: float = 0.005,
) -> float:
    """MACs ``arm`` needs / MACs ``reference`` needs to stay within ``tolerance`` (a fraction: 0.005
    = 0.5 pp) of ``dense_accuracy`` (the dense baseline's). Below 1: ``arm`` is cheaper at equal
    accuracy. Each side falls back to ``dense_macs`` when none of its points is accurate enough."""
    target = dense_accuracy - tolerance
    return macs_needed(arm, target, dense_macs) / macs_needed(reference, target, dense_macs)
