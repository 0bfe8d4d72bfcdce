"""What is left of each layer: filters, channels, shape fibres, FLOPs and parameters.

Works on sparse (zeroed) and on shrunk networks alike: a shrunk layer is compared with its own
original size when ``reference`` (the network before shrinking) is given.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from dnnrepro.core.models import forward_probe

from .modules import InputGather, LoweredConv2d


@dataclass
class LayerReport:
    """One Conv2d/Linear layer. Counts are (remaining, total); FLOPs are multiply-accumulates for
    one input example: dense = N*K*L, structured = N'*K'*L (rows N, columns K of the lowered
    matrix, L output positions; L = 1 for Linear)."""

    name: str
    kind: str
    filters: tuple[int, int]
    channels: tuple[int, int]
    fibres: tuple[int, int]
    positions: int
    flops_dense: int
    flops_structured: int
    params_nonzero: int
    params_total: int

    @property
    def flop_fraction(self) -> float:
        return self.flops_structured / max(self.flops_dense, 1)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["flop_fraction"] = self.flop_fraction
        return d


def _matrix(module: nn.Module) -> tuple[torch.Tensor, int, int]:
    """(lowered weight N x K with zero columns restored, input channels, positions per channel)."""
    if isinstance(module, LoweredConv2d):
        kh, kw = module.kernel_size
        full = torch.zeros(module.out_channels, module.in_channels * kh * kw)
        full[:, module.index] = module.weight.detach()
        return full, module.in_channels, kh * kw
    if isinstance(module, nn.Conv2d):
        w = module.weight.detach()
        return w.reshape(w.shape[0], -1), w.shape[1], w.shape[2] * w.shape[3]
    w = module.weight.detach()
    return w, w.shape[1], 1


def _layers(model: nn.Module) -> dict[str, nn.Module]:
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, InputGather):
            out[name] = m.inner
        elif isinstance(m, nn.Conv2d | nn.Linear | LoweredConv2d) and not name.endswith(".inner"):
            out[name] = m
    return out


def _positions(model: nn.Module, input_shape) -> dict[str, int]:
    """Output positions (pixels, or 1 for a vector) each layer computes for one input."""
    counts: dict[str, int] = {}

    def record(name, _m, _inp, out):
        counts[name] = int(out[0].numel() // out.shape[1]) if out.ndim > 2 else 1

    forward_probe(model, input_shape, _layers(model), record)
    return counts


def sparsity_report(
    model: nn.Module, input_shape, reference: nn.Module | None = None
) -> list[LayerReport]:
    """Per Conv2d/Linear layer of ``model``: what remains (non-zero rows, channels, columns).

    ``input_shape`` (C, H, W) or (F,): one example's shape. With ``reference`` (the network before
    shrinking) the totals and dense FLOPs are the reference's, so a shrunk network reports against
    its original size; layers the reference lacks (removed blocks) are reported with 0 remaining.
    """
    own = _layers(model)
    positions = _positions(model, input_shape)
    totals = _layers(reference) if reference is not None else own
    ref_positions = _positions(reference, input_shape) if reference is not None else positions
    rows = []
    for name, ref_module in totals.items():
        ref_w, ref_c, ref_rs = _matrix(ref_module)
        n_total, k_total = ref_w.shape
        module = own.get(name)
        if module is None:  # removed with its residual block
            n = c = k = nz = 0
        else:
            w, _, rs = _matrix(module)
            row_used = w.ne(0).any(dim=1)
            col_used = w.ne(0).any(dim=0)
            n, k = int(row_used.sum()), int(col_used.sum())
            c = int(col_used.reshape(-1, rs).any(dim=1).sum())
            nz = int(w.ne(0).sum()) + (
                int(module.bias.ne(0).sum()) if module.bias is not None else 0
            )
        positions_ref = ref_positions.get(name, 1)
        kind = "linear" if isinstance(ref_module, nn.Linear) else "conv"
        total_params = ref_w.numel() + (
            ref_module.bias.numel() if ref_module.bias is not None else 0
        )
        rows.append(
            LayerReport(
                name,
                kind,
                (n, n_total),
                (c, ref_c),
                (k, k_total),
                positions_ref,
                n_total * k_total * positions_ref,
                n * k * positions_ref,
                nz,
                total_params,
            )
        )
    return rows


def format_report(rows: list[LayerReport]) -> str:
    """A plain-text table of :func:`sparsity_report`."""
    lines = [
        f"{'layer':24s} {'filters':>11s} {'channels':>11s} {'fibres':>13s} {'FLOP %':>7s} {'params':>17s}"
    ]
    for r in rows:
        lines.append(
            f"{r.name:24s} {r.filters[0]:>5d}/{r.filters[1]:<5d} {r.channels[0]:>5d}/{r.channels[1]:<5d} "
            f"{r.fibres[0]:>6d}/{r.fibres[1]:<6d} {100 * r.flop_fraction:>6.1f}% "
            f"{r.params_nonzero:>8d}/{r.params_total:<8d}"
        )
    return "\n".join(lines)
