"""Holistic SparseCNN (Park et al., ICLR 2017): direct sparse convolution, a roofline
performance model, and guided sparsity learning.

    from dnnrepro.holistic_sparsecnn import to_csr, direct_sparse_conv2d, SparseConv2d
    csr = to_csr(conv.weight, x.shape, padding=1)          # CSR with input offsets
    y = direct_sparse_conv2d(x, csr, conv.bias, padding=1)  # == F.conv2d(x, conv.weight, ...)
"""

__version__ = "0.1.0"

from . import roofline
from .csr import CSRWeight, to_csr
from .direct_conv import direct_sparse_conv2d, reference_sparse_conv2d
from .hooks import L1Pruning
from .models import AlexNetSmall
from .pruning import GuidedResult, PruneConfig, adaptive_threshold, guided_prune
from .sparse_module import SparseConv2d, SparseLinear, csr_bytes, densify, sparsify

__all__ = [
    "AlexNetSmall",
    "CSRWeight",
    "GuidedResult",
    "L1Pruning",
    "PruneConfig",
    "SparseConv2d",
    "SparseLinear",
    "adaptive_threshold",
    "csr_bytes",
    "densify",
    "direct_sparse_conv2d",
    "guided_prune",
    "reference_sparse_conv2d",
    "roofline",
    "sparsify",
    "to_csr",
]
