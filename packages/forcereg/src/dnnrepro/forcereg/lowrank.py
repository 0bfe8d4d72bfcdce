"""Low-rank approximation of conv layers after force regularization: basis conv + 1x1 recombination.

A conv with N filters of C x kh x kw weights is the matrix W (N x D), D = C*kh*kw. With the SVD
W = U S V^T and rank M, W ~ U_M S_M V_M^T, and the layer becomes two layers (Denil et al. 2013;
Jaderberg et al. 2014; the authors' ``nn_decomposer.py``):

- ``lowrank``: a conv with M basis filters (M x C x kh x kw, same stride/padding/dilation, no bias);
- ``linear``: a 1x1 conv M -> N that recombines the basis responses and carries the original bias.

``method="pca"`` puts the basis = S_M V_M^T (projections of the filters on the top-M principal
directions of the uncentred W W^T) and the recombination = U_M, as the authors' default;
``method="svd"`` splits sqrt(S_M) into both factors. Both give the same product.

Energy: the rank kept for ``energy=r`` is the smallest M with sum_{k<=M} s_k^2 / sum_k s_k^2 >= r
(squared singular values: the PCA eigenvalues). The authors' ``--lra_type svd`` used a *norm*
ratio sqrt(sum s_k^2)/||s|| >= r instead, so their svd r = 0.95 is our energy 0.9025; pass
``energy=r**2`` to match it. Here ``energy`` means the squared-singular-value share for both
methods.

FLOPs per output pixel: N*D dense, M*D + M*N decomposed, so a layer pays off when
M < N*D / (D + N). A grouped conv (g groups) is decomposed group by group (rank M per group; the
basis conv and the 1x1 conv keep the g groups); an nn.Linear becomes two Linears (D -> M -> N).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import nn

from dnnrepro.core.errors import ConfigError
from dnnrepro.core.models import layer_flops

METHODS = ("pca", "svd")


def _check_energy(energy: float) -> None:
    if not isinstance(energy, int | float) or not (0 < energy <= 1) or math.isnan(energy):
        raise ConfigError(
            f"energy must be in (0, 1] (a share of squared singular values), not {energy!r}"
        )


def _matrix(weight: torch.Tensor) -> torch.Tensor:
    if not torch.is_tensor(weight) or weight.dim() < 2:
        raise ConfigError("a low-rank weight needs at least 2 axes (filters, ...)")
    return weight.detach().reshape(weight.shape[0], -1).double()


def singular_values(weight: torch.Tensor) -> torch.Tensor:
    """Singular values (descending, float64) of the (N, D) filter matrix of ``weight``."""
    return torch.linalg.svdvals(_matrix(weight))


def energy_curve(weight: torch.Tensor) -> torch.Tensor:
    """Cumulative energy share kept at ranks 1..min(N, D): cumsum(s^2) / sum(s^2), float64."""
    s2 = singular_values(weight) ** 2
    total = s2.sum()
    if total <= 0:
        return torch.ones_like(s2)
    return s2.cumsum(0) / total


def rank_for_energy(weight: torch.Tensor, energy: float = 0.95) -> int:
    """Smallest rank M whose top-M squared singular values keep at least ``energy`` of the total.

    ``weight``: (N, ...) one filter per row. ``energy`` in (0, 1]; 1.0 gives the full rank
    min(N, D). An all-zero weight gives 1.
    """
    _check_energy(energy)
    curve = energy_curve(weight)
    if energy >= 1.0:
        return len(curve)
    # a relative slack of 1e-12 so that a target hit exactly is not missed by rounding
    return int((curve < energy * (1 - 1e-12)).sum()) + 1


DECOMPOSABLE = (nn.Conv2d, nn.Linear)


def _groups(layer: nn.Module) -> int:
    return layer.groups if isinstance(layer, nn.Conv2d) else 1


def group_weights(layer: nn.Module) -> list[torch.Tensor]:
    """The filter blocks of a Conv2d (one per group: (N/g, C/g, kh, kw)) or a Linear ([(N, D)])."""
    return list(layer.weight.detach().chunk(_groups(layer), dim=0))


def max_rank(layer: nn.Module) -> int:
    """Full rank per group: min(filters per group, weights per filter)."""
    block = group_weights(layer)[0]
    return min(block.shape[0], block[0].numel())


def layer_rank_for_energy(layer: nn.Module, energy: float = 0.95) -> int:
    """``rank_for_energy`` of a Conv2d/Linear; for a grouped conv the largest over its groups
    (every group gets the same rank, as the authors' fixed per-group ranks)."""
    return max(rank_for_energy(w, energy) for w in group_weights(layer))


def _factors(weight: torch.Tensor, rank: int, method: str):
    """(basis (M, D), recombination (N, M), s (M,), total energy) of the top-``rank`` SVD."""
    mat = _matrix(weight)
    u, s, vh = torch.linalg.svd(mat, full_matrices=False)
    total = float((s**2).sum())
    u, s, vh = u[:, :rank], s[:rank], vh[:rank]
    if method == "pca":
        return s[:, None] * vh, u, s, total
    root = s.sqrt()
    return root[:, None] * vh, u * root[None, :], s, total


class _LowRank(nn.Module):
    """Shared part of the two decomposed layer types: ``lowrank`` then ``linear``."""

    rank: int
    max_rank: int
    energy_kept: float

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.lowrank(x))

    def extra_repr(self) -> str:
        return f"rank={self.rank}/{self.max_rank}, energy_kept={self.energy_kept:.4f}"


class LowRankConv2d(_LowRank):
    """``lowrank`` (M basis filters per group, no bias) then ``linear`` (1x1, M -> N per group,
    with the bias).

    Input (B, C, H, W) -> output (B, N, H', W'), the same shapes as the conv it replaces. A grouped
    conv (g groups) is decomposed group by group at rank M each: ``lowrank`` has g*M filters and
    g groups, ``linear`` is a grouped 1x1 conv g*M -> N, so groups never mix, as in the original.
    ``energy_kept``: the share of squared singular values kept at decomposition time (all groups).
    """

    def __init__(self, conv: nn.Conv2d, rank: int, method: str = "pca"):
        super().__init__()
        g, n_out = conv.groups, conv.out_channels
        bases, recombs, kept, total = [], [], 0.0, 0.0
        for block in group_weights(conv):
            basis, recomb, s, energy = _factors(block, rank, method)
            bases.append(basis)
            recombs.append(recomb)
            kept, total = kept + float((s**2).sum()), total + energy
        dtype, device = conv.weight.dtype, conv.weight.device
        self.lowrank = nn.Conv2d(
            conv.in_channels,
            g * rank,
            conv.kernel_size,
            conv.stride,
            conv.padding,
            conv.dilation,
            groups=g,
            bias=False,
            padding_mode=conv.padding_mode,
        ).to(device=device, dtype=dtype)
        self.linear = nn.Conv2d(g * rank, n_out, 1, groups=g, bias=conv.bias is not None).to(
            device=device, dtype=dtype
        )
        with torch.no_grad():
            basis = torch.cat(bases).reshape(g * rank, *conv.weight.shape[1:])
            self.lowrank.weight.copy_(basis.to(dtype))
            # group i's outputs (rows) read only group i's M basis responses (columns)
            self.linear.weight.copy_(torch.cat(recombs).reshape(n_out, rank, 1, 1).to(dtype))
            if conv.bias is not None:
                self.linear.bias.copy_(conv.bias)
        self.energy_kept = kept / total if total > 0 else 1.0
        self.rank = rank
        self.max_rank = max_rank(conv)


class LowRankLinear(_LowRank):
    """An nn.Linear (N x D) as ``lowrank`` (D -> M, no bias) then ``linear`` (M -> N, with the bias):
    the SVD of the weight split into two Linears (the authors' ``--enable_fc``).

    Input (..., D) -> output (..., N). Exact at full rank M = min(N, D) (to float rounding).
    """

    def __init__(self, fc: nn.Linear, rank: int, method: str = "pca"):
        super().__init__()
        basis, recomb, s, total = _factors(fc.weight, rank, method)
        dtype, device = fc.weight.dtype, fc.weight.device
        self.lowrank = nn.Linear(fc.in_features, rank, bias=False).to(device=device, dtype=dtype)
        self.linear = nn.Linear(rank, fc.out_features, bias=fc.bias is not None).to(
            device=device, dtype=dtype
        )
        with torch.no_grad():
            self.lowrank.weight.copy_(basis.to(dtype))
            self.linear.weight.copy_(recomb.to(dtype))
            if fc.bias is not None:
                self.linear.bias.copy_(fc.bias)
        self.energy_kept = float((s**2).sum()) / total if total > 0 else 1.0
        self.rank = rank
        self.max_rank = max_rank(fc)


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent_name, _, attr = name.rpartition(".")
    return (model.get_submodule(parent_name) if parent_name else model), attr


def _targets(
    model: nn.Module, ranks: Mapping[str, int] | None, exclude: Iterable[str], linear: bool
) -> list[str]:
    modules = dict(model.named_modules())
    kinds = DECOMPOSABLE if linear else (nn.Conv2d,)
    layers = [n for n, m in modules.items() if isinstance(m, DECOMPOSABLE) and n]
    names = (
        list(ranks) if ranks is not None else [n for n in layers if isinstance(modules[n], kinds)]
    )
    exclude = list(exclude)
    for name in [*names, *exclude]:
        if name not in modules:
            raise ConfigError(
                f"{name!r} is not a layer of the model; conv and linear layers are: "
                f"{', '.join(layers)}"
            )
        module = modules[name]
        if not isinstance(module, DECOMPOSABLE):
            raise ConfigError(
                f"{name!r} is a {type(module).__name__}; decompose handles nn.Conv2d and "
                "nn.Linear layers only"
            )
    return [n for n in names if n not in exclude]


def decompose(
    model: nn.Module,
    energy: float = 0.95,
    ranks: Mapping[str, int] | None = None,
    method: str = "pca",
    exclude: Sequence[str] = (),
    inplace: bool = False,
    linear: bool = False,
) -> nn.Module:
    """Replace layers by LowRankConv2d / LowRankLinear; returns the model (a deep copy unless
    ``inplace``).

    ``ranks`` {layer name: rank} decomposes exactly those layers (nn.Conv2d, grouped or not, and
    nn.Linear) at those ranks; a grouped conv's rank is per group. Otherwise every nn.Conv2d (and
    every nn.Linear when ``linear``) not in ``exclude`` gets ``layer_rank_for_energy(layer,
    energy)``. At full rank the outputs equal the original's to float rounding.
    """
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    _check_energy(energy)
    targets = _targets(model, ranks, exclude, linear)
    out = model if inplace else copy.deepcopy(model)
    for name in targets:
        layer = out.get_submodule(name)
        top = max_rank(layer)
        if ranks is not None:
            rank = ranks[name]
            if not isinstance(rank, int) or isinstance(rank, bool) or not 1 <= rank <= top:
                block = group_weights(layer)[0]
                raise ConfigError(
                    f"rank for {name!r} must be an integer in [1, {top}] (min of "
                    f"{block.shape[0]} filters and {block[0].numel()} weights per filter"
                    f"{' per group' if _groups(layer) > 1 else ''}), not {rank!r}"
                )
        else:
            rank = layer_rank_for_energy(layer, energy)
        parent, attr = _parent(out, name)
        kind = LowRankConv2d if isinstance(layer, nn.Conv2d) else LowRankLinear
        setattr(parent, attr, kind(layer, rank, method))
    return out


def ranks_for_energy(
    model: nn.Module, energy: float = 0.95, exclude: Sequence[str] = ()
) -> dict[str, int]:
    """{conv name: layer_rank_for_energy(conv, energy)} for every nn.Conv2d not in ``exclude``
    (per group for grouped convs)."""
    _check_energy(energy)
    return {
        name: layer_rank_for_energy(m, energy)
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d) and name not in exclude
    }


def lowrank_report(
    model: nn.Module, input_shape: Sequence[int] | None = None, energy: float = 0.95
) -> list[dict]:
    """One row per conv (dense or decomposed) and per decomposed linear layer: rank, max rank,
    energy kept, MACs, params.

    Dense convs: ``rank`` is the full rank and ``rank_at_energy`` the rank ``energy`` would need.
    Decomposed ones: ``rank`` is M (per group) and ``energy_kept`` the share kept. ``macs``
    (multiply-accumulates for one input of ``input_shape`` = (C, H, W)) is None without an input
    shape.
    """
    _check_energy(energy)
    flops = layer_flops(model, input_shape) if input_shape is not None else None
    rows = []
    inner = {
        f"{name}.{child}"
        for name, m in model.named_modules()
        if isinstance(m, _LowRank)
        for child in ("lowrank", "linear")
    }
    for name, m in model.named_modules():
        if isinstance(m, _LowRank):
            params = sum(p.numel() for p in m.parameters())
            macs = None
            if flops is not None:
                macs = flops.get(f"{name}.lowrank", 0) + flops.get(f"{name}.linear", 0)
            rows.append(
                dict(
                    layer=name,
                    decomposed=True,
                    rank=m.rank,
                    max_rank=m.max_rank,
                    energy_kept=m.energy_kept,
                    rank_at_energy=None,
                    macs=macs,
                    params=params,
                )
            )
        elif isinstance(m, nn.Conv2d) and name not in inner:
            rows.append(
                dict(
                    layer=name,
                    decomposed=False,
                    rank=max_rank(m),
                    max_rank=max_rank(m),
                    energy_kept=1.0,
                    rank_at_energy=layer_rank_for_energy(m, energy),
                    macs=None if flops is None else flops.get(name, 0),
                    params=sum(p.numel() for p in m.parameters()),
                )
            )
    return rows


def format_report(rows: list[dict]) -> str:
    """The report as a fixed-width text table."""
    head = f"{'layer':16s} {'rank':>9s} {'energy':>7s} {'rank@E':>7s} {'MACs':>12s} {'params':>9s}"
    lines = [head]
    for r in rows:
        rank = f"{r['rank']}/{r['max_rank']}"
        at = "" if r["rank_at_energy"] is None else str(r["rank_at_energy"])
        macs = "" if r["macs"] is None else f"{r['macs']:,}"
        lines.append(
            f"{r['layer']:16s} {rank:>9s} {r['energy_kept']:7.4f} {at:>7s} {macs:>12s} "
            f"{r['params']:>9,}"
        )
    return "\n".join(lines)
