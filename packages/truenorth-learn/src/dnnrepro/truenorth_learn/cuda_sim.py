"""The deployment simulator on a GPU: the kernels of kernels/deploy.cu driven from torch.

Same semantics and the same counter-based random numbers as simulate.simulate_counts_torch, so
both return identical counts for the same (model, x, copies, ticks, seed). One launch of
``tn_spike_layer`` integrates one layer for every copy and every tick of a chunk of images.
"""

from __future__ import annotations

import numpy as np
import torch

from dnnrepro.core.errors import ConfigError
from dnnrepro.core.kernels import get_kernel, to_cupy

from . import rng
from .deployed import check_run, deployed_layers
from .tea import TeaNet

PKG, CU = "dnnrepro.truenorth_learn", "deploy.cu"
TILE, ROWS = 32, 8


def _keys(seed: int, streams: list[int]):
    import cupy

    return cupy.asarray(np.array([rng.stream_key(seed, s) for s in streams], dtype=np.uint32))


def _grid1d(total: int, block: int = 256) -> tuple[int]:
    return (int(min(max(1, -(-total // block)), 65535 * 8)),)


def sample_crossbars_cuda(p: torch.Tensor, s: torch.Tensor, layer_id: int, copies: int, seed: int):
    """(copies, a, m) int8 sampled weights of one layer (p float32, s int8 on the GPU)."""
    a, m = p.shape
    out = torch.empty(copies, a, m, dtype=torch.int8, device=p.device)
    keys = _keys(seed, [rng.synapse_stream(layer_id, k) for k in range(copies)])
    kern = get_kernel(PKG, CU, "tn_sample_synapses")
    total = copies * a * m
    kern(
        _grid1d(total),
        (256,),
        (
            to_cupy(p.contiguous()),
            to_cupy(s.contiguous()),
            keys,
            to_cupy(out),
            np.int32(copies),
            np.int32(a * m),
        ),
    )
    return out


def sample_inputs_cuda(
    x: torch.Tensor, ticks: int, seed: int, n_offset: int = 0, copies: int | None = None
) -> torch.Tensor:
    """Input spikes for probabilities x (N, P) float32 on the GPU, uint8.

    ``copies=None``: one source shared by every copy, (ticks, N, P). ``copies=K``: every copy
    draws its own spikes (key ``rng.input_copy_key``), (K * ticks, N, P) copy-major, i.e. row
    ``k * ticks + t`` is tick t of copy k. The kernel is the same: it takes one key per output
    slab, so K * ticks slabs with per-copy keys give the independent sources.
    """
    import cupy

    n, pix = x.shape
    if copies is None:
        keys = _keys(seed, [rng.input_stream(t) for t in range(ticks)])
        slabs = ticks
    else:
        host = [rng.input_copy_key(seed, t, k) for k in range(copies) for t in range(ticks)]
        keys = cupy.asarray(np.array(host, dtype=np.uint32))
        slabs = copies * ticks
    out = torch.empty(slabs, n, pix, dtype=torch.uint8, device=x.device)
    kern = get_kernel(PKG, CU, "tn_sample_inputs")
    kern(
        _grid1d(slabs * n * pix),
        (256,),
        (
            to_cupy(x.contiguous()),
            keys,
            to_cupy(out),
            np.int32(slabs),
            np.int32(n),
            np.int32(pix),
            np.int64(n_offset),
        ),
    )
    return out


def spike_layer_cuda(h, src, w, leak, out, col0: int) -> None:
    """Fill out[:, :, col0:col0+m] with the spikes of one layer.

    h (K_in, B, F) uint8, src (a,) int32, w (K, a, m) int8, leak (m,) int32, out (K, B, F_out).
    """
    k_in, b, f = h.shape
    k, a, m = w.shape
    f_out = out.shape[2]
    kern = get_kernel(PKG, CU, "tn_spike_layer")
    grid = (-(-m // TILE), -(-b // TILE), k)
    kern(
        grid,
        (TILE, ROWS),
        (
            to_cupy(h),
            to_cupy(src),
            to_cupy(w),
            to_cupy(leak),
            to_cupy(out),
            np.int32(k_in),
            np.int32(b),
            np.int32(f),
            np.int32(a),
            np.int32(m),
            np.int32(f_out),
            np.int32(col0),
        ),
    )


@torch.no_grad()
def simulate_counts_cuda(
    model: TeaNet,
    x: torch.Tensor,
    copies: int,
    ticks: int,
    seed: int,
    n_offset: int = 0,
    memory_mb: float = 1024.0,
    inputs: str = "independent",
) -> torch.Tensor:
    """(copies, ticks, N, num_classes) int32 counts on the GPU; see simulate_counts_torch
    (``inputs``: "independent" input spike sources per copy, or one "shared" source)."""
    if inputs not in ("shared", "independent"):
        raise ConfigError(f"inputs must be 'shared' or 'independent', not {inputs!r}")
    device = torch.device("cuda")
    flat = check_run(model, x, copies, ticks, seed).to(device)
    stages = deployed_layers(model, device)
    if max(float(la.s.abs().max()) for st in stages for la in st) > 127:
        raise ConfigError("the CUDA simulator stores weights as int8: |weight| must be <= 127")
    weights = [
        [sample_crossbars_cuda(la.p, la.s.to(torch.int8), la.layer_id, copies, seed) for la in st]
        for st in stages
    ]
    srcs = [[la.src.to(torch.int32) for la in st] for st in stages]
    leaks = [[la.leak.to(torch.int32) for la in st] for st in stages]
    widths = [sum(la.shape[1] for la in st) for st in stages]
    onehot = torch.nn.functional.one_hot(model.class_of.to(device), model.num_classes).float()
    n = len(flat)
    n_sources = 1 if inputs == "shared" else copies
    per_image = ticks * copies * max(widths) * 2 + ticks * n_sources * flat.shape[1]
    rows = max(1, int(memory_mb * 2**20 // per_image))
    rows = min(rows, max(1, 65535 * TILE // ticks))  # grid.y of tn_spike_layer is at most 65535
    counts = torch.empty(copies, ticks, n, model.num_classes, dtype=torch.int32, device=device)
    for r0 in range(0, n, rows):
        xs = flat[r0 : r0 + rows]
        nr = len(xs)
        per_copy = None if inputs == "shared" else copies
        h = sample_inputs_cuda(xs, ticks, seed, n_offset + r0, per_copy)
        h = h.view(n_sources, ticks * nr, -1)
        for st, ws, ss, ls, width in zip(stages, weights, srcs, leaks, widths, strict=True):
            out = torch.empty(copies, ticks * nr, width, dtype=torch.uint8, device=device)
            col0 = 0
            for la, w, s, lk in zip(st, ws, ss, ls, strict=True):
                spike_layer_cuda(h, s, w, lk, out, col0)
                col0 += la.shape[1]
            h = out
        c = (h.view(copies, ticks, nr, -1).float() @ onehot).round().to(torch.int32)
        counts[:, :, r0 : r0 + nr] = c
    return counts
