"""Measured speedups of a shrunk network, timed with the core's interleaved protocol.

- ``gemm``: the paper's measure. The lowered weight matrix (N x K) times a random patch matrix
  (K x L) against the compact matrix (N' x K') of surviving rows and columns times (K' x L), with
  L the layer's output positions for **one image** (the authors lowered and timed one image at a
  time, ``LOWERED_CCNMM``) and, reported next to it, for a batch (K x B*L). Only the GEMM is timed.
- ``layer``: end to end. The original layer module on its real input shape against the shrunk
  layer module (LoweredConv2d / InputGather / smaller Conv2d) on its own input shape.
- ``network``: the whole dense ``nn.Module`` against the whole shrunk one (batch 1 and a batch).
- ``csr``: for non-structured sparsity, the same N x K matrix stored as torch sparse CSR times the
  dense patch matrix, against the dense GEMM.

Every ratio is baseline time / candidate time from :func:`dnnrepro.core.bench.interleaved_ratio`
(alternating calls, bootstrap interval, machine load). A per-image GEMM of LeNet takes
microseconds, so each timed call repeats it ``inner`` times.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from dnnrepro.core.bench import RatioMeasurement, geomean, interleaved_ratio, threads
from dnnrepro.core.models import forward_probe

from .report import _layers, _matrix


def _inputs(model: nn.Module, input_shape) -> dict[str, tuple[tuple[int, ...], int]]:
    """{layer: (input shape of one example, output positions)} from one probe forward."""
    seen: dict[str, tuple[tuple[int, ...], int]] = {}

    def record(name, _m, inp, out):
        positions = int(out[0].numel() // out.shape[1]) if out.ndim > 2 else 1
        seen.setdefault(name, (tuple(inp[0].shape[1:]), positions))

    forward_probe(model, tuple(input_shape), _layers(model), record)
    return seen


def _repeat(fn, inner: int):
    def call():
        for _ in range(inner):
            fn()

    return call


def compact(module: nn.Module) -> torch.Tensor:
    """The lowered weight of a (shrunk) layer without its all-zero rows and columns."""
    w, _, _ = _matrix(module)
    return w[w.ne(0).any(dim=1)][:, w.ne(0).any(dim=0)].contiguous()


def gemm_ratio(
    dense: torch.Tensor,
    small: torch.Tensor,
    columns: int,
    *,
    repeats: int = 9,
    inner: int = 1,
    seed: int = 0,
) -> RatioMeasurement:
    """Interleaved ratio of ``dense @ X`` (K x columns) over ``small @ X'`` (K' x columns)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(dense.shape[1], columns, generator=gen)
    xs = torch.rand(small.shape[1], columns, generator=gen)
    with torch.no_grad():
        return interleaved_ratio(
            _repeat(lambda: torch.mm(small, xs), inner),
            _repeat(lambda: torch.mm(dense, x), inner),
            repeats=repeats,
            seed=seed,
        )


def _inner_for(columns: int, rows: int, k: int) -> int:
    """Calls per timed sample so that one sample is about 1e6 multiply-adds or more."""
    return max(1, min(2000, 1_000_000 // max(1, rows * k * columns)))


def layer_speedups(
    original: nn.Module,
    shrunk: nn.Module,
    input_shape,
    batch: int = 256,
    n_threads: int = 2,
    repeats: int = 9,
    convs_only: bool = True,
) -> list[dict]:
    """Per layer of ``original``: per-image GEMM, batched GEMM and end-to-end layer ratios.

    ``input_shape``: one example's shape (C, H, W) or (F,). A layer removed with its block reports
    ``None`` ratios. Each ratio comes with its bootstrap interval (``*_low``, ``*_high``) and the
    FLOP bound ``flop_bound`` = N*K / (N'*K') that a GEMM ratio cannot honestly exceed.
    """
    orig_layers, new_layers = _layers(original), _layers(shrunk)
    orig_in, new_in = _inputs(original, input_shape), _inputs(shrunk, input_shape)
    rows = []
    with threads(n_threads), torch.no_grad():
        for name, module in orig_layers.items():
            if convs_only and isinstance(module, nn.Linear):
                continue
            dense, _, _ = _matrix(module)
            shape, positions = orig_in[name]
            row: dict = {"layer": name, "rows": dense.shape[0], "columns": dense.shape[1]}
            if name not in new_layers:
                row.update(kept_rows=0, kept_columns=0, gemm_speedup=None, layer_speedup=None)
                rows.append(row)
                continue
            small = compact(new_layers[name])
            row.update(
                kept_rows=small.shape[0],
                kept_columns=small.shape[1],
                flop_fraction=small.numel() / dense.numel(),
                flop_bound=dense.numel() / max(1, small.numel()),
            )
            n, k = dense.shape
            one = gemm_ratio(
                dense, small, positions, repeats=repeats, inner=_inner_for(positions, n, k)
            )
            many = gemm_ratio(dense, small, batch * positions, repeats=repeats)
            xo = torch.rand(batch, *shape)
            xs = torch.rand(batch, *new_in[name][0])
            mod, new_mod = module.eval(), shrunk.get_submodule(name).eval()
            layer = interleaved_ratio(
                lambda m=new_mod, x=xs: m(x), lambda m=mod, x=xo: m(x), repeats=repeats
            )
            row.update(
                gemm_speedup=one.ratio,
                gemm_low=one.low,
                gemm_high=one.high,
                gemm_busy=one.busy,
                gemm_batched_speedup=many.ratio,
                gemm_batched_low=many.low,
                gemm_batched_high=many.high,
                layer_speedup=layer.ratio,
                layer_low=layer.low,
                layer_high=layer.high,
                single_image=one.as_dict(),
            )
            rows.append(row)
    return rows


def network_ratio(
    dense: nn.Module, shrunk: nn.Module, input_shape, batch: int, repeats: int = 9
) -> RatioMeasurement:
    """Whole-network forward time of ``dense`` over ``shrunk`` on a random batch (eval mode)."""
    x = torch.rand(batch, *input_shape, generator=torch.Generator().manual_seed(0))
    d, s = dense.eval(), shrunk.eval()
    inner = max(1, 64 // batch)
    with torch.no_grad():
        return interleaved_ratio(
            _repeat(lambda: s(x), inner), _repeat(lambda: d(x), inner), repeats=repeats
        )


def _csr(dense: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta": known, not news
        warnings.simplefilter("ignore", UserWarning)
        return dense.to_sparse_csr()


def csr_speedups(
    sparse_model: nn.Module, input_shape, n_threads: int = 2, repeats: int = 9
) -> list[dict]:
    """Per conv of a non-structured sparse network: per-image CSR (sparse x dense) GEMM vs the
    dense GEMM."""
    shapes = _inputs(sparse_model, input_shape)
    rows = []
    gen = torch.Generator().manual_seed(0)
    with threads(n_threads), torch.no_grad():
        for name, module in _layers(sparse_model).items():
            if not isinstance(module, nn.Conv2d):
                continue
            dense, _, _ = _matrix(module)
            cols = shapes[name][1]
            x = torch.rand(dense.shape[1], cols, generator=gen)
            csr = _csr(dense)
            inner = _inner_for(cols, *dense.shape)
            m = interleaved_ratio(
                _repeat(lambda c=csr, x=x: torch.mm(c, x), inner),
                _repeat(lambda d=dense, x=x: torch.mm(d, x), inner),
                repeats=repeats,
            )
            rows.append(
                {
                    "layer": name,
                    "density": float(dense.ne(0).float().mean()),
                    "csr_speedup": m.ratio,
                    "csr_low": m.low,
                    "csr_high": m.high,
                }
            )
    return rows


def structured_over_csr(
    shrunk: nn.Module, pruned: nn.Module, input_shape, repeats: int = 9
) -> RatioMeasurement:
    """Per-image conv GEMMs: the magnitude-pruned net's CSR products (baseline) over the SSL net's
    compact dense products (candidate), every conv of each net in one timed call."""
    gen = torch.Generator().manual_seed(0)
    ssl_in, pruned_in = _inputs(shrunk, input_shape), _inputs(pruned, input_shape)
    ssl_ops, csr_ops = [], []
    for name, module in _layers(shrunk).items():
        if isinstance(module, nn.Linear):
            continue
        small = compact(module)
        ssl_ops.append((small, torch.rand(small.shape[1], ssl_in[name][1], generator=gen)))
    for name, module in _layers(pruned).items():
        if not isinstance(module, nn.Conv2d):
            continue
        dense, _, _ = _matrix(module)
        csr_ops.append((_csr(dense), torch.rand(dense.shape[1], pruned_in[name][1], generator=gen)))

    def run(ops):
        for w, x in ops:
            torch.mm(w, x)

    with torch.no_grad():
        return interleaved_ratio(
            _repeat(lambda: run(ssl_ops), 50), _repeat(lambda: run(csr_ops), 50), repeats=repeats
        )


def conv_geomean(rows: list[dict], key: str) -> float | None:
    """Geometric mean of ``key`` over the rows that have it (None when none does)."""
    vals = [r[key] for r in rows if r.get(key) is not None]
    return geomean(vals) if vals else None
