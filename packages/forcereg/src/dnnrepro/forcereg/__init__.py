"""Force Regularization (Wen et al., ICCV 2017, arXiv:1703.09746) on the dnnrepro core.

Train so that each layer's filters coordinate into a lower-rank space (:class:`ForceRegularizer`,
a gradient hook of ``dnnrepro.core.train.fit``), decompose each conv into M basis filters plus a
1x1 recombination (:func:`decompose`, ranks by an energy share), fine-tune, measure the speedup.
"""

from .convnet import ConvNet
from .force import KINDS, distance_energy, force, force_loop
from .lowrank import (
    LowRankConv2d,
    decompose,
    energy_curve,
    format_report,
    lowrank_report,
    rank_for_energy,
    ranks_for_energy,
)
from .prune import prune_basis
from .regularizer import ForceRegularizer, conv_layer_names

__version__ = "0.1.0"

__all__ = [
    "KINDS",
    "ConvNet",
    "ForceRegularizer",
    "LowRankConv2d",
    "conv_layer_names",
    "decompose",
    "distance_energy",
    "energy_curve",
    "force",
    "force_loop",
    "format_report",
    "lowrank_report",
    "prune_basis",
    "rank_for_energy",
    "ranks_for_energy",
    "__version__",
]
