"""Benchmark (``dnnrepro holistic-sparsecnn bench``): the direct sparse conv against torch's
dense conv2d (oneDNN) and against im2col + SGEMM, interleaved in one process.

For AlexNet conv2-5 (27x27 and 13x13 outputs), batch 32 (``--quick``: batch 4, three
densities), across x in [0.01, 0.9], one bench.json entry per (layer, x, baseline) with the core's timing protocol
(median ratio, bootstrap interval, other-process CPU share), plus effective GFLOP/s (dense FLOPs
/ sparse time), actual GFLOP/s (non-zero FLOPs / sparse time) and both as a fraction of the
float32 GEMM rate measured in the same run, and the kernel's SIMD width. The CPU model and ISA
flags are in the provenance written by the core. The issue-19 target is the conv3-5 geomean at
x = 0.1 (``alexnet_conv3_5_x0.1_geomean_vs_conv2d``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dnnrepro.core.bench import bench_entry, geomean, interleaved_ratio

from . import cpu_kernel, roofline
from .experiment import ALEXNET, layer_cost, layer_pair

GRID = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.9)
DENSE = "torch.nn.functional.conv2d (dense, oneDNN)"
IM2COL = "im2col (F.unfold) + torch.mm (dense SGEMM)"
SPARSE = "direct_sparse_conv2d (CSR with input offsets, numba, explicit-SIMD micro-kernel)"


def _im2col(args: dict, batch: int, seed: int = 0):
    """im2col + SGEMM of the layer: the lowering the paper's dense baseline used."""
    g = torch.Generator().manual_seed(seed)
    k, pad = args["kernel"], args["padding"]
    inp = torch.rand(batch, args["in_channels"], args["hw"], args["hw"], generator=g)
    w = torch.randn(args["out_channels"], args["in_channels"] * k * k, generator=g)

    def call():
        cols = F.unfold(inp, k, padding=pad)  # (B, C*k*k, Ho*Wo)
        return torch.matmul(w, cols)

    return call


def bench(opts) -> list[dict]:
    """bench.json entries (see the module doc); ``opts`` is the core's BenchOptions."""
    batch, grid, repeats, seconds = (
        (4, (0.05, 0.1, 0.5), 7, 1.0)
        if opts.quick
        else (
            32,
            GRID,
            9,
            6.0,
        )
    )
    peak = roofline.measure_flops(threads=opts.threads, seconds=0.5 if opts.quick else 2.0)
    entries = []
    at_01: dict[str, list[float]] = {DENSE: [], IM2COL: []}
    for name in ("conv2", "conv3", "conv4", "conv5"):
        args = ALEXNET[name]
        cost = layer_cost(args, batch)
        lowered = _im2col(args, batch)
        for x in grid:
            sparse, dense = layer_pair(args, x, batch)
            for baseline, label in ((dense, DENSE), (lowered, IM2COL)):
                m = interleaved_ratio(sparse, baseline, repeats=repeats, max_seconds=seconds)
                eff = cost.flops / m.candidate_s / 1e9
                entries.append(
                    bench_entry(
                        f"alexnet_{name}_x{x:.3f}_vs_{'conv2d' if label == DENSE else 'im2col'}",
                        m,
                        baseline=label,
                        candidate=SPARSE,
                        layer=name,
                        batch=batch,
                        x=x,
                        effective_gflops=eff,
                        actual_gflops=x * eff,
                        baseline_gflops=cost.flops / m.baseline_s / 1e9,
                        gemm_peak_gflops=peak / 1e9,
                        effective_fraction_of_peak=eff * 1e9 / peak,
                        actual_fraction_of_peak=x * eff * 1e9 / peak,
                        simd_floats=cpu_kernel.VL,
                    )
                )
                if name != "conv2" and abs(x - 0.1) < 1e-9:
                    at_01[label].append(m.ratio)
    for label, ratios in at_01.items():
        if ratios:
            short = "conv2d" if label == DENSE else "im2col"
            entries.append(
                {
                    "name": f"alexnet_conv3_5_x0.1_geomean_vs_{short}",
                    "baseline": label,
                    "batch": batch,
                    "threads": opts.threads,
                    "geomean_ratio": geomean(ratios),
                    "simd_floats": cpu_kernel.VL,
                    "target": ">= 3x over dense conv2d on every CPU (issue 19 item 3)"
                    if label == DENSE
                    else "second baseline (the paper's lowered SGEMM)",
                }
            )
    return entries
