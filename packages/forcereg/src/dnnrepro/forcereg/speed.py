"""Wall-clock ratios under the core timing protocol (``bench.interleaved_ratio``): dense conv
stacks against their decomposed versions. Used by the reproduction (``ctx.record_timing``) and by
``dnnrepro forcereg bench``. Weights never matter for speed, only shapes and ranks.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from dnnrepro.core.bench import interleaved_ratio, threads

from .alexnet import AlexNetConvs, torch_lowrank
from .curve import conv_macs
from .lowrank import decompose


def conv_stack(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``model.features`` when the model has one (the conv stack), else the model."""
    return model.features if hasattr(model, "features") else model


def stack_ratio(
    dense: nn.Module, decomposed: nn.Module, batch: torch.Tensor, repeats: int, n_threads: int
) -> dict:
    """RatioMeasurement.as_dict() of dense / decomposed conv-stack time on ``batch``."""
    dense_fn, low_fn = conv_stack(dense.eval()), conv_stack(decomposed.eval())
    with threads(n_threads), torch.no_grad():
        m = interleaved_ratio(lambda: low_fn(batch), lambda: dense_fn(batch), repeats=repeats)
    return m.as_dict()


def alexnet_speed(
    ranks: dict[str, int],
    input_size: int,
    batches: tuple[int, ...],
    repeats: int,
    n_threads: int,
) -> dict:
    """AlexNet conv shapes (random weights, seed 0): dense vs ``decompose(ranks)`` (ours) and vs
    the plain-torch two-conv baseline at the same ranks, for each batch size.

    Returns {"ranks", "input_size", "macs": {dense, decomposed}, "batches": {str(batch):
    {"decomposed": ratio dict, "torch_lowrank": ratio dict}}}.
    """
    torch.manual_seed(0)
    dense = AlexNetConvs().eval()
    ours = decompose(dense, ranks=ranks).eval()
    plain = torch_lowrank(dense, ranks).eval()
    shape = (3, input_size, input_size)
    out = {
        "ranks": dict(ranks),
        "input_size": input_size,
        "macs": {"dense": conv_macs(dense, shape), "decomposed": conv_macs(ours, shape)},
        "batches": {},
    }
    for b in batches:
        x = torch.rand(b, *shape, generator=torch.Generator().manual_seed(b))
        out["batches"][str(b)] = {
            "decomposed": stack_ratio(dense, ours, x, repeats, n_threads),
            "torch_lowrank": stack_ratio(dense, plain, x, repeats, n_threads),
        }
    return out
