"""Benchmark: the direct sparse conv against torch's dense conv2d (oneDNN) in the same run.

``python -m dnnrepro.holistic_sparsecnn.bench --out paper_results/holistic-sparsecnn`` writes
bench.json: for AlexNet conv3-5 (13x13 outputs), batch 32, across x in [0.01, 0.9]: dense and
sparse seconds, speedup, effective GFLOP/s (dense FLOPs / sparse time), actual GFLOP/s (non-zero
FLOPs / sparse time) and both as a fraction of the GEMM rate F measured in the same run.
"""

from __future__ import annotations

import argparse
import sys

from dnnrepro.core.bench import write_bench

from . import experiments, roofline

GRID = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.9)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="paper_results/holistic-sparsecnn")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="batch 4, three densities")
    args = parser.parse_args(argv)
    batch, grid = (4, (0.05, 0.1, 0.5)) if args.quick else (args.batch, GRID)
    peak = roofline.measure_flops(threads=args.threads)
    entries = []
    for name in ("conv3", "conv4", "conv5"):
        res = experiments.measure_layer(
            experiments.ALEXNET[name], grid, batch, args.threads, seconds=2.0, repeats=7
        )
        for p in res["points"]:
            entries.append(
                {
                    "name": f"alexnet_{name}_x{p['x']:.3f}",
                    "layer": name,
                    "batch": batch,
                    "threads": args.threads,
                    "x": p["x"],
                    "baseline": "torch.nn.functional.conv2d (dense, oneDNN)",
                    "dense_s": res["dense_s"],
                    "sparse_s": p["sparse_s"],
                    "speedup": p["speedup"],
                    "effective_gflops": p["effective_gflops"],
                    "actual_gflops": p["actual_gflops"],
                    "dense_gflops": res["dense_gflops"],
                    "gemm_peak_gflops": peak / 1e9,
                    "effective_fraction_of_peak": p["effective_gflops"] * 1e9 / peak,
                    "actual_fraction_of_peak": p["actual_gflops"] * 1e9 / peak,
                }
            )
            print(
                f"{name} x={p['x']:.3f} speedup {p['speedup']:.2f}x "
                f"eff {p['effective_gflops']:.1f} act {p['actual_gflops']:.1f} GF/s"
            )
    at90 = [e["speedup"] for e in entries if abs(e["x"] - 0.1) < 1e-3]
    if at90:
        entries.append(
            {
                "name": "alexnet_conv3_5_x0.1_geomean_speedup",
                "batch": batch,
                "threads": args.threads,
                "speedup": experiments.geomean(at90),
                "target": ">= 2.5x (issue 6)",
            }
        )
    path = write_bench(args.out, "holistic-sparsecnn", entries)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
