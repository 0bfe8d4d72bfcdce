"""Weight groups of Structured Sparsity Learning and their plain L2 norms.

A Conv2d weight W has shape (N, C, R, S): N filters, C input channels, an R x S kernel. Lowered to a
GEMM it is the N x (C*R*S) matrix W.reshape(N, -1); SSL's groups are parts of that matrix:

- ``filter``  W[n, :, :, :]  one row                        -> N norms
- ``channel`` W[:, c, :, :]  the R*S columns of channel c   -> C norms
- ``shape``   W[:, c, r, s]  one column ("shape fibre")     -> C*R*S norms (c-major order)
- ``layer``   W               the whole tensor (depth-wise) -> 1 norm

A Linear weight (out, in) is a 2-D matrix: ``row`` = one output neuron's weights (alias ``filter``),
``column`` = one input feature's weights (alias ``channel`` and ``shape``), ``layer`` the whole.
On 4-D weights ``row`` is ``filter`` and ``column`` is ``shape`` (the GEMM view).

Each norm is sqrt(sum of squares): the group Lasso norm, with the square root (a squared norm would
be plain L2 decay, the bug of wenwei202/caffe#36). Its gradient is w / ||w_g||, and 0 for a group
that is exactly zero (the authors' ``div_checkzero``), implemented by :class:`_SafeNorm`.
Grouped convolutions (``conv_groups`` > 1) get their channel and shape groups per conv group, as
the authors' code computes them on each group's own sub-matrix.
"""

from __future__ import annotations

import math

import torch

from dnnrepro.core.errors import ConfigError

KINDS = ("filter", "channel", "shape", "layer", "row", "column")


class _SafeNorm(torch.autograd.Function):
    """Row norms of a 2-D tensor (G, M) -> (G,), with a zero subgradient at zero rows."""

    @staticmethod
    def forward(ctx, rows: torch.Tensor) -> torch.Tensor:
        norms = rows.pow(2).sum(dim=1).sqrt()
        ctx.save_for_backward(rows, norms)
        return norms

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        rows, norms = ctx.saved_tensors
        # w / ||w|| where ||w|| > 0; exactly 0 for an all-zero group (no NaN from 0/0)
        safe = torch.where(norms > 0, norms, torch.ones_like(norms))
        scale = torch.where(norms > 0, grad / safe, torch.zeros_like(norms))
        return rows * scale.unsqueeze(1)


def _canonical(kind: str, ndim: int) -> str:
    if kind not in KINDS:
        raise ConfigError(f"unknown group kind {kind!r}; use one of {', '.join(KINDS)}")
    if ndim == 2:
        return {"filter": "row", "channel": "column", "shape": "column"}.get(kind, kind)
    return {"row": "filter", "column": "shape"}.get(kind, kind)


def group_matrix(weight: torch.Tensor, kind: str, conv_groups: int = 1) -> torch.Tensor:
    """The weight rearranged as (number of groups, group size): one group per row."""
    if weight.ndim not in (2, 4):
        raise ConfigError(
            f"group norms need a Conv2d (4-D) or Linear (2-D) weight, not shape {tuple(weight.shape)}"
        )
    kind = _canonical(kind, weight.ndim)
    if kind == "layer":
        return weight.reshape(1, -1)
    if weight.ndim == 2:
        return weight if kind == "row" else weight.t()
    n, c, r, s = weight.shape
    if kind == "filter":
        return weight.reshape(n, -1)
    g = conv_groups
    if g < 1 or n % g:
        raise ConfigError(f"conv_groups={g} does not divide the {n} filters")
    # (g, N/g, C, R, S): each conv group's filters see their own C input channels
    per = weight.reshape(g, n // g, c, r, s)
    if kind == "channel":
        return per.permute(0, 2, 1, 3, 4).reshape(g * c, -1)
    return per.permute(0, 2, 3, 4, 1).reshape(g * c * r * s, n // g)


def group_norms(weight: torch.Tensor, kind: str, conv_groups: int = 1) -> torch.Tensor:
    """Plain L2 norm of every group of ``kind`` in ``weight``; shape (number of groups,).

    Differentiable, with gradient w/||w_g|| per group and exactly 0 for a zero group.
    """
    return _SafeNorm.apply(group_matrix(weight, kind, conv_groups))


def group_size(weight: torch.Tensor, kind: str, conv_groups: int = 1) -> int:
    """Number of weights in one group of ``kind``."""
    return int(group_matrix(weight.detach(), kind, conv_groups).shape[1])


def sqrt_multiplier(size: int, reference: int) -> float:
    """The authors' per-layer multiplier sqrt(size / reference) (CaffeNet columns: reference 128,
    so conv3's 384-long columns get sqrt(3) = 1.7321 and conv4's 192-long ones 1.2247)."""
    if size < 1 or reference < 1:
        raise ConfigError("group sizes must be >= 1")
    return math.sqrt(size / reference)


def zero_groups_mask(weight: torch.Tensor, kind: str, conv_groups: int = 1) -> torch.Tensor:
    """Boolean (number of groups,): True where the group is exactly zero."""
    return group_matrix(weight.detach(), kind, conv_groups).eq(0).all(dim=1)
