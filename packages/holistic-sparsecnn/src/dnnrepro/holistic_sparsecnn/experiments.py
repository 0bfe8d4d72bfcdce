"""Measurements shared by the reproduction (paper.py) and the benchmark (bench.py).

AlexNet layer shapes are CaffeNet's, one group at a time for the grouped layers (conv2, conv4,
conv5 have groups=2 in CaffeNet; both groups are the same convolution shape, so the speedup of one
group is the layer's speedup). Weights are random Gaussians with random positions of the
non-zeros at the pruned CaffeNet per-layer densities of SkimCaffe's README.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from dnnrepro.core.bench import threads as _threads
from dnnrepro.core.bench import time_callable

from . import roofline
from .csr import to_csr
from .direct_conv import direct_sparse_conv2d

ALEXNET = {
    "conv2": dict(in_channels=48, out_channels=128, kernel=5, hw=27, padding=2),
    "conv3": dict(in_channels=256, out_channels=384, kernel=3, hw=13, padding=1),
    "conv4": dict(in_channels=192, out_channels=192, kernel=3, hw=13, padding=1),
    "conv5": dict(in_channels=192, out_channels=128, kernel=3, hw=13, padding=1),
}
# Non-zero fractions of SkimCaffe's pruned CaffeNet (sparsity 85.65/93.1/91.81/88.49%).
CAFFENET_DENSITY = {"conv2": 0.1435, "conv3": 0.069, "conv4": 0.0819, "conv5": 0.1151}

# CaffeNet conv5 per image, both groups (the brief's derived check): 149.5 MFLOP, input 384 and
# output 256 channels of 13x13, 256*192*3*3 float32 weights.
CAFFENET_CONV5 = roofline.LayerCost(
    flops=2.0 * 256 * 192 * 9 * 169,
    act_bytes=(384 + 256) * 169 * 4.0,
    weight_bytes=256 * 192 * 9 * 4.0,
)


def layer_cost(args: dict, batch: int) -> roofline.LayerCost:
    return roofline.LayerCost.conv(
        args["in_channels"],
        args["out_channels"],
        args["kernel"],
        args["hw"],
        padding=args["padding"],
        batch=batch,
    )


def measure_layer(
    args: dict,
    densities,
    batch: int,
    threads: int,
    seconds: float = 1.0,
    repeats: int = 10,
    seed: int = 0,
) -> dict:
    """Time torch's dense conv2d and the direct sparse conv at each non-zero fraction.

    Returns {"dense_s", "dense_gflops", "points": [{x, sparse_s, speedup, effective_gflops,
    actual_gflops}]}; effective GFLOP/s counts the dense FLOPs, actual only the non-zero ones.
    Timings are the minimum over ``repeats`` calls (the least disturbed on a shared machine);
    dense is timed before the first and after every sparse point and its minimum is used.
    """
    g = torch.Generator().manual_seed(seed)
    k = args["kernel"]
    inp = torch.rand(batch, args["in_channels"], args["hw"], args["hw"], generator=g)
    shape = (args["out_channels"], args["in_channels"], k, k)
    dense_w = torch.randn(shape, generator=g)
    cost = layer_cost(args, batch)
    out = {"points": []}

    def dense() -> float:
        return time_callable(
            lambda: F.conv2d(inp, dense_w, None, 1, args["padding"]),
            warmup=1,
            repeats=repeats,
            max_seconds=seconds,
        ).min

    sparse_times, dense_times = [], []
    with _threads(threads):
        dense_times.append(dense())
        for x in densities:
            w = roofline.random_sparse_weight(shape, x, g)
            csr = to_csr(w, inp.shape, args["padding"])
            ts = time_callable(
                lambda csr=csr: direct_sparse_conv2d(inp, csr, padding=args["padding"]),
                warmup=1,
                repeats=repeats,
                max_seconds=seconds,
            ).min
            sparse_times.append((csr.density, ts))
            # Dense is re-timed after every sparse point: on a shared machine the load changes
            # within seconds, and the minimum over all dense samples is the least disturbed one.
            dense_times.append(dense())
    td = min(dense_times)
    out["dense_s"] = td
    out["dense_gflops"] = cost.flops / td / 1e9
    for x, ts in sparse_times:
        out["points"].append(
            {
                "x": x,
                "sparse_s": ts,
                "speedup": td / ts,
                "effective_gflops": cost.flops / ts / 1e9,
                "actual_gflops": x * cost.flops / ts / 1e9,
            }
        )
    return out


def crossover(points: list[dict]) -> float | None:
    """The non-zero fraction where the measured speedup falls through 1 (log-log interpolation
    between the two grid points around it); None when it never crosses inside the grid."""
    pts = sorted(points, key=lambda p: p["x"])
    for a, b in zip(pts, pts[1:], strict=False):
        if a["speedup"] >= 1.0 > b["speedup"]:
            la, lb = math.log(a["speedup"]), math.log(b["speedup"])
            t = la / (la - lb)
            return math.exp(math.log(a["x"]) + t * (math.log(b["x"]) - math.log(a["x"])))
    return None


def geomean(values) -> float:
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")
