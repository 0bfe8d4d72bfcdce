"""Measured speedups of a shrunk network, layer by layer, two ways.

- ``gemm``: the paper's measure. The lowered weight matrix (N x K) times a random patch matrix
  (K x B*L) with torch.mm, against the compact matrix (N' x K') of surviving rows and columns times
  (K' x B*L). Only the GEMM is timed, as in the authors' ``LOWERED_CCNMM`` timer.
- ``layer``: end to end. The original layer module on its real input shape against the shrunk
  layer module (LoweredConv2d / InputGather / smaller Conv2d) on its own input shape, im2col and
  gathers included.
- ``csr``: for non-structured sparsity, the same N x K matrix stored as torch sparse CSR times the
  dense patch matrix, against the dense GEMM.

All ratios are baseline time / candidate time, medians of repeated calls in the same process, with
the thread count pinned (dnnrepro.core.bench).
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from dnnrepro.core.bench import threads, time_callable

from .report import _layers, _matrix


def _inputs(model: nn.Module, example: torch.Tensor) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = []
    for name, m in model.named_modules():
        if name and (name in _layers(model) or isinstance(m, nn.Conv2d | nn.Linear)):

            def hook(_m, inp, _out, name=name):
                shapes.setdefault(name, tuple(inp[0].shape[1:]))

            hooks.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model.eval()(example[:1])
    finally:
        for h in hooks:
            h.remove()
    return shapes


def _positions(module: nn.Module, shape: tuple[int, ...]) -> int:
    with torch.no_grad():
        out = module(torch.zeros(1, *shape))
    return int(out[0].numel() // out.shape[1]) if out.ndim > 2 else 1


def layer_speedups(
    original: nn.Module,
    shrunk: nn.Module,
    example: torch.Tensor,
    batch: int = 256,
    n_threads: int = 2,
    repeats: int = 7,
    convs_only: bool = True,
) -> list[dict]:
    """Per layer of ``original``: GEMM and end-to-end speedups of ``shrunk`` (see module doc).

    ``example``: one input batch of the network's input shape (only its shape is used; timings
    use random tensors with ``batch`` examples). A layer removed with its block reports ``None``.
    """
    orig_layers, new_layers = _layers(original), _layers(shrunk)
    orig_shapes, new_shapes = _inputs(original, example), _inputs(shrunk, example)
    rows = []
    gen = torch.Generator().manual_seed(0)
    with threads(n_threads), torch.no_grad():
        for name, module in orig_layers.items():
            if convs_only and isinstance(module, nn.Linear):
                continue
            dense, _, _ = _matrix(module)
            positions = _positions(module, orig_shapes[name])
            cols = batch * positions
            row = {"layer": name, "rows": dense.shape[0], "columns": dense.shape[1]}
            x = torch.rand(dense.shape[1], cols, generator=gen)
            base = time_callable(lambda d=dense, x=x: torch.mm(d, x), warmup=1, repeats=repeats)
            if name not in new_layers:
                row.update(kept_rows=0, kept_columns=0, gemm_speedup=None, layer_speedup=None)
                rows.append(row)
                continue
            w, _, _ = _matrix(new_layers[name])
            r_used, c_used = w.ne(0).any(dim=1), w.ne(0).any(dim=0)
            compact = w[r_used][:, c_used].contiguous()
            xc = torch.rand(compact.shape[1], cols, generator=gen)
            cand = time_callable(lambda c=compact, x=xc: torch.mm(c, x), warmup=1, repeats=repeats)
            # end to end: the whole layer module as the network runs it
            shrunk_module = shrunk.get_submodule(name)
            xo = torch.rand(batch, *orig_shapes[name], generator=gen)
            xs = torch.rand(batch, *new_shapes[name], generator=gen)
            t_orig = time_callable(lambda m=module, x=xo: m(x), warmup=1, repeats=repeats)
            t_new = time_callable(lambda m=shrunk_module, x=xs: m(x), warmup=1, repeats=repeats)
            row.update(
                kept_rows=int(r_used.sum()),
                kept_columns=int(c_used.sum()),
                flop_fraction=compact.numel() / dense.numel(),
                gemm_dense_s=base.median,
                gemm_compact_s=cand.median,
                gemm_speedup=base.median / cand.median,
                layer_dense_s=t_orig.median,
                layer_shrunk_s=t_new.median,
                layer_speedup=t_orig.median / t_new.median,
            )
            rows.append(row)
    return rows


def csr_speedups(
    sparse_model: nn.Module,
    example: torch.Tensor,
    batch: int = 256,
    n_threads: int = 2,
    repeats: int = 7,
) -> list[dict]:
    """Per conv of a non-structured sparse network: CSR (sparse x dense) GEMM vs dense GEMM."""
    shapes = _inputs(sparse_model, example)
    rows = []
    gen = torch.Generator().manual_seed(0)
    with threads(n_threads), torch.no_grad():
        for name, module in _layers(sparse_model).items():
            if not isinstance(module, nn.Conv2d):
                continue
            dense, _, _ = _matrix(module)
            cols = batch * _positions(module, shapes[name])
            x = torch.rand(dense.shape[1], cols, generator=gen)
            with warnings.catch_warnings():  # "sparse CSR support is in beta": known, not news
                warnings.simplefilter("ignore", UserWarning)
                csr = dense.to_sparse_csr()
            base = time_callable(lambda d=dense, x=x: torch.mm(d, x), warmup=1, repeats=repeats)
            cand = time_callable(lambda c=csr, x=x: torch.mm(c, x), warmup=1, repeats=repeats)
            rows.append(
                {
                    "layer": name,
                    "density": float(dense.ne(0).float().mean()),
                    "gemm_dense_s": base.median,
                    "csr_s": cand.median,
                    "csr_speedup": base.median / cand.median,
                }
            )
    return rows


def geomean(values) -> float | None:
    """Geometric mean of positive numbers (None when there are none, e.g. an MLP's convs)."""
    vals = [v for v in values if v is not None and v > 0]
    return math.exp(sum(math.log(v) for v in vals) / len(vals)) if vals else None
