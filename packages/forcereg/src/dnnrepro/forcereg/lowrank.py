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
M < N*D / (D + N).
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


class LowRankConv2d(nn.Module):
    """``lowrank`` (M basis filters, no bias) then ``linear`` (1x1, M -> N, with the bias).

    Input (B, C, H, W) -> output (B, N, H', W'), the same shapes as the conv it replaces.
    ``energy_kept``: the share of squared singular values kept at decomposition time.
    """

    def __init__(self, conv: nn.Conv2d, rank: int, method: str = "pca"):
        super().__init__()
        n_out = conv.out_channels
        mat = _matrix(conv.weight)
        u, s, vh = torch.linalg.svd(mat, full_matrices=False)
        u, s, vh = u[:, :rank], s[:rank], vh[:rank]
        if method == "pca":
            basis, recomb = s[:, None] * vh, u
        else:
            root = s.sqrt()
            basis, recomb = root[:, None] * vh, u * root[None, :]
        dtype = conv.weight.dtype
        self.lowrank = nn.Conv2d(
            conv.in_channels,
            rank,
            conv.kernel_size,
            conv.stride,
            conv.padding,
            conv.dilation,
            groups=1,
            bias=False,
            padding_mode=conv.padding_mode,
        ).to(device=conv.weight.device, dtype=dtype)
        self.linear = nn.Conv2d(rank, n_out, 1, bias=conv.bias is not None).to(
            device=conv.weight.device, dtype=dtype
        )
        with torch.no_grad():
            self.lowrank.weight.copy_(basis.reshape(rank, *conv.weight.shape[1:]).to(dtype))
            self.linear.weight.copy_(recomb.reshape(n_out, rank, 1, 1).to(dtype))
            if conv.bias is not None:
                self.linear.bias.copy_(conv.bias)
        full = (singular_values(conv.weight) ** 2).sum()
        self.energy_kept = float((s**2).sum() / full) if full > 0 else 1.0
        self.rank = rank
        self.max_rank = min(mat.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.lowrank(x))

    def extra_repr(self) -> str:
        return f"rank={self.rank}/{self.max_rank}, energy_kept={self.energy_kept:.4f}"


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent_name, _, attr = name.rpartition(".")
    return (model.get_submodule(parent_name) if parent_name else model), attr


def _targets(
    model: nn.Module, ranks: Mapping[str, int] | None, exclude: Iterable[str]
) -> list[str]:
    modules = dict(model.named_modules())
    convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d) and n]
    names = list(ranks) if ranks is not None else convs
    exclude = list(exclude)
    for name in [*names, *exclude]:
        if name not in modules:
            raise ConfigError(
                f"{name!r} is not a layer of the model; conv layers are: {', '.join(convs)}"
            )
        module = modules[name]
        if not isinstance(module, nn.Conv2d):
            raise ConfigError(
                f"{name!r} is a {type(module).__name__}; decompose handles nn.Conv2d layers only"
            )
        if module.groups != 1:
            raise ConfigError(
                f"{name!r} is a grouped conv (groups={module.groups}); decompose each group as "
                "its own conv first, or exclude it"
            )
    return [n for n in names if n not in exclude]


def decompose(
    model: nn.Module,
    energy: float = 0.95,
    ranks: Mapping[str, int] | None = None,
    method: str = "pca",
    exclude: Sequence[str] = (),
    inplace: bool = False,
) -> nn.Module:
    """Replace conv layers by LowRankConv2d; returns the model (a deep copy unless ``inplace``).

    ``ranks`` {layer name: rank} decomposes exactly those layers at those ranks; otherwise every
    nn.Conv2d not in ``exclude`` gets ``rank_for_energy(weight, energy)``. At full rank the outputs
    equal the original's to float rounding.
    """
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    _check_energy(energy)
    targets = _targets(model, ranks, exclude)
    out = model if inplace else copy.deepcopy(model)
    for name in targets:
        conv = out.get_submodule(name)
        max_rank = min(conv.out_channels, conv.weight[0].numel())
        if ranks is not None:
            rank = ranks[name]
            if not isinstance(rank, int) or not 1 <= rank <= max_rank:
                raise ConfigError(
                    f"rank for {name!r} must be an integer in [1, {max_rank}] "
                    f"(min of {conv.out_channels} filters and {conv.weight[0].numel()} weights "
                    f"per filter), not {rank!r}"
                )
        else:
            rank = rank_for_energy(conv.weight, energy)
        parent, attr = _parent(out, name)
        setattr(parent, attr, LowRankConv2d(conv, rank, method))
    return out


def ranks_for_energy(
    model: nn.Module, energy: float = 0.95, exclude: Sequence[str] = ()
) -> dict[str, int]:
    """{conv name: rank_for_energy(weight, energy)} for every nn.Conv2d not in ``exclude``."""
    _check_energy(energy)
    return {
        name: rank_for_energy(m.weight, energy)
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d) and name not in exclude
    }


def lowrank_report(
    model: nn.Module, input_shape: Sequence[int] | None = None, energy: float = 0.95
) -> list[dict]:
    """One row per conv (dense or decomposed): rank, max rank, energy kept, MACs, params.

    Dense convs: ``rank`` is the full rank and ``rank_at_energy`` the rank ``energy`` would need.
    Decomposed ones: ``rank`` is M and ``energy_kept`` the share kept. ``macs`` (multiply-
    accumulates for one input of ``input_shape`` = (C, H, W)) is None without an input shape.
    """
    _check_energy(energy)
    flops = layer_flops(model, input_shape) if input_shape is not None else None
    rows = []
    inner = {
        f"{name}.{child}"
        for name, m in model.named_modules()
        if isinstance(m, LowRankConv2d)
        for child in ("lowrank", "linear")
    }
    for name, m in model.named_modules():
        if isinstance(m, LowRankConv2d):
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
            max_rank = min(m.out_channels, m.weight[0].numel())
            rows.append(
                dict(
                    layer=name,
                    decomposed=False,
                    rank=max_rank,
                    max_rank=max_rank,
                    energy_kept=1.0,
                    rank_at_energy=rank_for_energy(m.weight, energy),
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
