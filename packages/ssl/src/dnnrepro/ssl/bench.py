"""``python -m dnnrepro.ssl.bench --out paper_results/ssl``: per-layer speed of the LeNet-3-like net.

Measures, at batch 256 and 2 threads, in one process: each conv of the SSL LeNet-3 row (seed 0)
against the dense baseline, as GEMM on the compacted lowered matrix and end to end (the shrunk layer
module vs the original Conv2d); and each conv of the magnitude-pruned net at the same per-layer
density, as CSR sparse x dense GEMM vs dense GEMM. Models come from the small-profile run's work
folder (runs/ssl/small/<fingerprint>/models, the newest); when absent they are trained first (resumable, a few minutes).
Target from issue 5: geomean end-to-end conv speedup >= 3x with test error within 0.5 pp.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from dnnrepro.core import checkpoint, models
from dnnrepro.core.bench import write_bench
from dnnrepro.core.paper import RunContext, code_fingerprint
from dnnrepro.core.train import evaluate

from .experiment import PROFILES, ROWS, lenet_baseline, run_row, run_unstructured
from .paper import PAPER
from .serialize import load_shrunk
from .speed import csr_speedups, geomean, layer_speedups


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dnnrepro.ssl.bench")
    parser.add_argument("--out", default="paper_results/ssl")
    parser.add_argument("--work-dir", default="runs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    fingerprint = code_fingerprint("dnnrepro.core", "dnnrepro.ssl")
    root = Path(args.work_dir) / "ssl" / "small"
    # the small-profile run keeps its state under runs/ssl/small/<code fingerprint>; reuse the
    # newest run's saved models when there is one, else train them under this code's folder
    saved = sorted(
        (p.parent.parent for p in root.glob("*/models/lenet3-s0.json")),
        key=lambda p: p.stat().st_mtime,
    )
    ctx = RunContext(
        paper=PAPER,
        profile="small",
        seeds=[0],
        out_dir=Path(args.out),
        work_dir=saved[-1] if saved else root / fingerprint[:16],
        threads=args.threads,
        fingerprint=fingerprint,
    )
    prof = PROFILES["small"]
    stored = ctx.work("models")
    if not (
        checkpoint.exists(stored / "lenet3-s0") and checkpoint.exists(stored / "unstructured-s0")
    ):
        like = ctx.stage("lenet3-s0", lambda: run_row(ctx, prof, ROWS["lenet3"], 0))
        ctx.stage("unstructured-s0", lambda: run_unstructured(ctx, prof, like, 0))
    print(f"models from {stored}")
    small = load_shrunk(ctx.work("models") / "lenet3-s0")
    pruned = models.LeNet(1, 28, 10)
    checkpoint.load_weights(ctx.work("models") / "unstructured-s0", pruned)
    dense, _ = lenet_baseline(ctx, prof)
    dense = dense.cpu().eval()
    test = ctx.load("mnist5k", "test")
    example = test[0][:16]
    acc = {
        "dense": evaluate(dense, test)["accuracy"],
        "ssl_lenet3": evaluate(small, test)["accuracy"],
        "magnitude_pruned": evaluate(pruned.eval(), test)["accuracy"],
    }
    structured = layer_speedups(
        dense, small, example, batch=args.batch, n_threads=args.threads, repeats=args.repeats
    )
    unstructured = csr_speedups(
        pruned, example, batch=args.batch, n_threads=args.threads, repeats=args.repeats
    )
    e2e = geomean(r["layer_speedup"] for r in structured)
    entries = [
        {"name": f"ssl_lenet3.{r['layer']}", "batch": args.batch, **r} for r in structured
    ] + [{"name": f"magnitude.{r['layer']}", "batch": args.batch, **r} for r in unstructured]
    entries.append(
        {
            "name": "summary",
            "batch": args.batch,
            "threads": args.threads,
            "test_accuracy": acc,
            "error_increase_pp": 100 * (acc["dense"] - acc["ssl_lenet3"]),
            "geomean_conv_gemm_speedup": geomean(r["gemm_speedup"] for r in structured),
            "geomean_conv_layer_speedup": e2e,
            "geomean_conv_csr_speedup": geomean(r["csr_speedup"] for r in unstructured),
            "target": "geomean end-to-end conv speedup >= 3x, error within 0.5 pp",
            "target_met": bool(e2e >= 3 and 100 * (acc["dense"] - acc["ssl_lenet3"]) <= 0.5),
        }
    )
    path = write_bench(args.out, "ssl", entries)
    for e in entries:
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in e.items()})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
