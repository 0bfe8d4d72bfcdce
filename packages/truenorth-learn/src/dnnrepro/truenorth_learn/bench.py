"""Benchmark of the deployment simulator: synapse evaluations per second.

    python -m dnnrepro.truenorth_learn.bench --out paper_results/truenorth-learn

Times the torch simulator on 2 threads (64 copies x 16 ticks over the mnist5k test split, the
issue's budget: under 30 s) against a baseline measured in the same run: the straightforward
simulation that loops over copies one at a time (no batching across copies). On a CUDA machine
with CuPy it also times the GPU kernels on the same job. Writes bench.json.
"""

from __future__ import annotations

import argparse
import os

import torch

from dnnrepro.core.bench import threads, time_callable, write_bench
from dnnrepro.core.data import load

from .simulate import simulate_counts, simulate_counts_torch, synapse_evaluations
from .tea import build


def _per_copy_loop(model, x, copies, ticks, seed):
    """Baseline: the same counts computed one copy at a time (copy index shifted per call)."""
    from .simulate import _stage_forward, export, sample_crossbars, sample_inputs

    flat = x.reshape(len(x), -1)
    stages = export(model)
    onehot = torch.nn.functional.one_hot(model.class_of, model.num_classes).float()
    out = torch.empty(copies, ticks, len(x), model.num_classes, dtype=torch.int32)
    for k in range(copies):
        ws = [[sample_crossbars(la, 1, seed, copy0=k) for la in st] for st in stages]
        for t in range(ticks):
            h = sample_inputs(flat, t, seed)
            for st, w in zip(stages, ws, strict=True):
                h = _stage_forward(h, st, w)
            out[k, t] = (h[0] @ onehot).round().to(torch.int32)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="paper_results/truenorth-learn")
    ap.add_argument("--threads", default="2,1", help="thread counts to time, comma separated")
    ap.add_argument("--copies", type=int, default=64)
    ap.add_argument("--ticks", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    x, _ = load("mnist5k", "test")
    model = build("mnist-5core")
    model.reset_parameters(0)
    events = synapse_evaluations(model, len(x), args.copies, args.ticks)
    entries = []
    for n_threads in [int(t) for t in str(args.threads).split(",")]:
        entries.append(_cpu_entry(model, x, args, n_threads, events))
    gpu_entry(model, x, args, events, entries)
    path = write_bench(args.out, "truenorth-learn", entries)
    for e in entries:
        print(
            e["name"], f"{e['seconds']:.2f} s", f"{e['synapse_evaluations_per_second']:.3e} syn/s"
        )
    print(path)
    return 0


def _cpu_entry(model, x, args, n_threads, events) -> dict:
    with threads(n_threads) as n:
        fast = time_callable(
            lambda: simulate_counts_torch(model, x, args.copies, args.ticks, 0),
            warmup=0,
            repeats=args.repeats,
        )
        small_copies = max(1, args.copies // 8)  # the slow baseline on fewer copies, scaled
        base = time_callable(
            lambda: _per_copy_loop(model, x, small_copies, args.ticks, 0), warmup=0, repeats=1
        )
        base_per_copy = base.median / small_copies
        fast_per_copy = fast.median / args.copies
        return {
            "name": f"deploy-simulator-torch-cpu-{n}-threads",
            "job": f"mnist-5core, {len(x)} test images, {args.copies} copies x {args.ticks} ticks",
            "threads": n,
            "seconds": fast.median,
            "synapse_evaluations_per_second": events / fast.median,
            "under_30_s": fast.median < 30.0,
            "baseline": "per-copy loop (no batching over copies), timed on "
            f"{small_copies} copies and scaled per copy",
            "baseline_seconds_per_copy": base_per_copy,
            "seconds_per_copy": fast_per_copy,
            "speedup": base_per_copy / fast_per_copy,
            "timing": fast.as_dict(),
            # other jobs on a shared machine oversubscribe the cores; say how loaded it was
            "load_average_1min": os.getloadavg()[0],
        }


def gpu_entry(model, x, args, events, entries) -> None:
    """Time the CUDA simulator on the same job when a GPU and CuPy are present."""
    from dnnrepro.core.kernels import cuda_available

    if cuda_available():
        mc, xc = model.cuda(), x.cuda()
        gpu = time_callable(
            lambda: simulate_counts(mc, xc, args.copies, args.ticks, 0, backend="cuda"),
            warmup=1,
            repeats=5,
            sync=torch.cuda.synchronize,
        )
        entries.append(
            {
                "name": "deploy-simulator-cuda",
                "device": torch.cuda.get_device_name(0),
                "seconds": gpu.median,
                "synapse_evaluations_per_second": events / gpu.median,
                "speedup_vs_cpu_torch": entries[0]["seconds"] / gpu.median,
                "timing": gpu.as_dict(),
            }
        )


if __name__ == "__main__":
    raise SystemExit(main())
