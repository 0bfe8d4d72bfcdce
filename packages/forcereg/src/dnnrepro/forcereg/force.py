"""The force of Force Regularization for one layer, vectorized (no Python loop over filters).

A layer's weight has shape (N, ...) with N output filters; each filter is flattened to a row W_i of
length D (C*kh*kw for a conv). With n_i = W_i / ||W_i|| and t_ij = n_i - n_j the update is

    g_i = ||W_i|| * P_i * sum_j w_ij * t_ij,        P_i = I - n_i n_i^T

with w_ij = 1 for the "degradation" (L2-norm) force and w_ij = 1 / ||n_i - n_j|| for the
"constant" (L1-norm) force. Equivalently g_i = ||W_i||^2 * dR/dW_i with

    R_degradation = 1/2 * sum_{i<j} ||n_i - n_j||^2,     R_constant = sum_{i<j} ||n_i - n_j||,

so g has no radial part (W_i . g_i = 0): a descent step rotates filters toward each other and
leaves their norms unchanged to first order. Adding ``strength * g`` to the gradient (after weight
decay, before momentum) is the update of the authors' Caffe solver. Filters with norm <= 1e-4
neither feel nor exert force; for the constant force, pairs closer than 1e-4 are skipped.

Cost: degradation O(N D) (sum_j t_ij = K n_i - sum_j n_j over the K live filters); constant
O(N^2 D) for the Gram matrix n n^T.
"""

from __future__ import annotations

import torch

from dnnrepro.core.errors import ConfigError

KINDS = ("degradation", "constant")
ZERO_THRESHOLD = (
    1e-4  # Caffe's ZERO_THRESHOLD: filters (and constant-force pairs) below are skipped
)


def _check(weight: torch.Tensor, kind: str) -> None:
    if kind not in KINDS:
        raise ConfigError(f"force kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if not torch.is_tensor(weight) or weight.dim() < 2:
        raise ConfigError(
            "force needs a weight with at least 2 axes (filters, ...); got "
            f"{tuple(weight.shape) if torch.is_tensor(weight) else type(weight).__name__}"
        )
    if not weight.is_floating_point():
        raise ConfigError(f"force needs a floating-point weight, not {weight.dtype}")


def normalized_filters(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(n, norms, alive): rows of ``weight`` flattened to (N, D) and scaled to unit length.

    Rows with norm <= ZERO_THRESHOLD are returned as zeros and marked not alive.
    """
    rows = weight.detach().reshape(weight.shape[0], -1)
    norms = rows.norm(dim=1)
    alive = norms > ZERO_THRESHOLD
    n = torch.where(alive[:, None], rows / norms.clamp_min(ZERO_THRESHOLD)[:, None], 0.0)
    return n, norms, alive


@torch.no_grad()
def force(weight: torch.Tensor, kind: str = "degradation") -> torch.Tensor:
    """The force update g for one layer; same shape and dtype as ``weight``.

    ``weight``: (N, ...) float tensor, one filter per row. ``kind``: "degradation" (the paper's
    L2-norm force) or "constant" (L1-norm force). Add ``strength * g`` to the weight's gradient.
    """
    _check(weight, kind)
    n, norms, alive = normalized_filters(weight)
    if kind == "degradation":
        # sum_j (n_i - n_j) over live j: dead rows of n are zero, so they drop out of the sum
        pull = int(alive.sum()) * n - n.sum(0, keepdim=True)
    else:
        # ||n_i - n_j||^2 = |n_i|^2 + |n_j|^2 - 2 n_i.n_j. In float32 the cancellation leaves an
        # error of ~1e-7 in the square, i.e. ~3e-4 in the distance, which would wrongly keep
        # (and hugely weight, by 1/dist) pairs closer than the 1e-4 threshold. So the Gram matrix
        # is formed in float64 (about 1.7x the float32 cost) and the actual squared norms of the
        # rounded unit rows are used instead of 1.
        n64 = n.double()
        sq = (n64 * n64).sum(1)
        dist = (sq[:, None] + sq[None, :] - 2.0 * (n64 @ n64.T)).clamp_min(0.0).sqrt()
        pair = (dist > ZERO_THRESHOLD) & alive[:, None] & alive[None, :]
        w = torch.where(pair, 1.0 / dist.clamp_min(ZERO_THRESHOLD), 0.0).to(n.dtype)
        pull = w.sum(1, keepdim=True) * n - w @ n
    # tangent projection: remove the radial component along n_i
    pull = pull - (pull * n).sum(1, keepdim=True) * n
    g = torch.where(alive[:, None], norms[:, None] * pull, 0.0)
    return g.reshape(weight.shape).to(weight.dtype)


def force_loop(weight: torch.Tensor, kind: str = "degradation") -> torch.Tensor:
    """The same update by the explicit pairwise loop over i < j (slow; a reference for tests)."""
    _check(weight, kind)
    n, norms, alive = normalized_filters(weight)
    g = torch.zeros_like(n)
    count = n.shape[0]
    for i in range(count):
        for j in range(i + 1, count):
            if not (alive[i] and alive[j]):
                continue
            t = n[i] - n[j]
            if kind == "constant":
                length = t.norm()
                if length <= ZERO_THRESHOLD:
                    continue
                t = t / length
            g[i] += norms[i] * (t - (n[i] @ t) * n[i])
            g[j] += norms[j] * (-t - (n[j] @ -t) * n[j])
    return g.reshape(weight.shape).to(weight.dtype)


def distance_energy(weight: torch.Tensor, kind: str = "degradation") -> torch.Tensor:
    """R(W): 1/2 sum_{i<j} ||n_i - n_j||^2 (degradation) or sum_{i<j} ||n_i - n_j|| (constant).

    Differentiable (no thresholds): ``force(W) = ||W_i||^2 * dR/dW_i`` row by row. A scalar.
    """
    _check(weight, kind)
    rows = weight.reshape(weight.shape[0], -1)
    n = rows / rows.norm(dim=1, keepdim=True)
    i, j = torch.triu_indices(len(n), len(n), offset=1)
    diff = n[i] - n[j]
    if kind == "degradation":
        return 0.5 * (diff * diff).sum()
    return diff.norm(dim=1).sum()
