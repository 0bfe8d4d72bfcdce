"""Structured Sparsity Learning (Wen, Wu, Wang, Chen, Li; NIPS 2016) on the dnnrepro core.

from dnnrepro.ssl import SSLRegularizer, zero_small_hook, shrink, sparsity_report
reg = SSLRegularizer(model, groups=("filter", "channel"), strength=0.03)  # an nn.Module
loss = loss_fn(model(x), y) + reg()                                      # or fit(penalties=[reg])
small = shrink(model, example_batch)      # fewer filters/channels/fibres/blocks, same outputs
"""

from .groups import KINDS, group_norms, group_size, sqrt_multiplier
from .modules import InputGather, LoweredConv2d, ResidualShortcut
from .recipe import SSLConfig, learn_structure
from .regularizer import (
    ProximalStep,
    SSLRegularizer,
    freeze_structure,
    mask_structure,
    residual_block_groups,
    residual_blocks,
    residual_convs,
    structure_masks,
    unmask_structure,
    zero_small,
    zero_small_hook,
    zero_weak_groups,
)
from .report import LayerReport, format_report, sparsity_report
from .serialize import load_shrunk, save_shrunk
from .shrink import shrink
from .speed import csr_speedups, layer_speedups

__version__ = "0.1.0"

__all__ = [
    "KINDS",
    "InputGather",
    "LayerReport",
    "LoweredConv2d",
    "ResidualShortcut",
    "SSLConfig",
    "ProximalStep",
    "SSLRegularizer",
    "csr_speedups",
    "format_report",
    "freeze_structure",
    "group_norms",
    "group_size",
    "layer_speedups",
    "learn_structure",
    "load_shrunk",
    "mask_structure",
    "residual_block_groups",
    "residual_blocks",
    "residual_convs",
    "save_shrunk",
    "shrink",
    "sparsity_report",
    "sqrt_multiplier",
    "structure_masks",
    "unmask_structure",
    "zero_small",
    "zero_small_hook",
    "zero_weak_groups",
]
