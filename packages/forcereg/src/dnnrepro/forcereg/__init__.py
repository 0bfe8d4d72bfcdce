"""Force Regularization (Wen et al., ICCV 2017, arXiv:1703.09746) on the dnnrepro core.

Train so that each layer's filters coordinate into a lower-rank space (:class:`ForceRegularizer`:
``.attach()`` to any torch loop, or a callback of ``dnnrepro.core.train.fit``), decompose each conv
(grouped or not) into M basis filters plus a 1x1 recombination and each Linear into two Linears
(:func:`decompose`, ranks by an energy share), fine-tune, and compare nets by the conv MACs they
need at iso-accuracy (:func:`iso_accuracy_ratio`).
"""

from .alexnet import PAPER_RANKS, AlexNetConvs
from .convnet import ConvNet
from .curve import conv_macs, energy_ranks, iso_accuracy_ratio, macs_needed
from .force import KINDS, distance_energy, force, force_loop
from .lowrank import (
    LowRankConv2d,
    LowRankLinear,
    decompose,
    energy_curve,
    format_report,
    layer_rank_for_energy,
    lowrank_report,
    rank_for_energy,
    ranks_for_energy,
)
from .prune import prune_basis
from .regularizer import ForceRegularizer, conv_layer_names
from .schedule import CaffeMultiStep

__version__ = "0.1.0"

__all__ = [
    "KINDS",
    "PAPER_RANKS",
    "AlexNetConvs",
    "CaffeMultiStep",
    "ConvNet",
    "ForceRegularizer",
    "LowRankConv2d",
    "LowRankLinear",
    "conv_layer_names",
    "conv_macs",
    "decompose",
    "distance_energy",
    "energy_curve",
    "energy_ranks",
    "force",
    "force_loop",
    "format_report",
    "iso_accuracy_ratio",
    "layer_rank_for_energy",
    "lowrank_report",
    "macs_needed",
    "prune_basis",
    "rank_for_energy",
    "ranks_for_energy",
    "__version__",
]
