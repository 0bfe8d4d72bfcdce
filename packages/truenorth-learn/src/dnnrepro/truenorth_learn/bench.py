"""Benchmark of the deployment simulator (``dnnrepro truenorth-learn bench``).

Two entries:

- ``deploy-simulator-batched-vs-per-copy``: the torch simulator (all copies in one batched
  matmul) against the straightforward simulation that loops over copies one at a time, timed
  interleaved (``bench.interleaved_ratio``) on the same job (8 copies x 4 ticks over the first
  1,000 test images; quick: 100);
- ``deploy-simulator-issue-budget`` (independent input spikes per copy, the default) and
  ``deploy-simulator-issue-budget-shared`` (one spike source for all copies): the issue's job,
  64 copies x 16 ticks over the full-MNIST test set (10,000 images; mnist5k's 1,000 when the IDX
  files are not in ``--data-dir``), timed once after a warm-up, against its 60 s budget on 2
  threads.

The GPU kernels are timed by tools/gpu_check.py (paper_results/gpu), not here.
"""

from __future__ import annotations

import time

import torch

from dnnrepro.core.bench import bench_entry, interleaved_ratio
from dnnrepro.core.data import load
from dnnrepro.core.errors import DataError
from dnnrepro.core.paper import BenchOptions

from .deployed import deployed_layers
from .simulate import (
    _stage_forward,
    sample_crossbars,
    sample_inputs,
    simulate_counts_torch,
    synapse_evaluations,
)
from .tea import build

BUDGET_S = 60.0


def per_copy_loop(model, x, copies, ticks, seed, inputs="independent"):
    """Baseline: the same counts as simulate_counts_torch, computed one copy at a time."""
    flat = x.reshape(len(x), -1)
    stages = deployed_layers(model)
    onehot = torch.nn.functional.one_hot(model.class_of, model.num_classes).float()
    out = torch.empty(copies, ticks, len(x), model.num_classes, dtype=torch.int32)
    for k in range(copies):
        ws = [[sample_crossbars(la, 1, seed, copy0=k) for la in st] for st in stages]
        for t in range(ticks):
            h = sample_inputs(flat, t, seed, copy=None if inputs == "shared" else k)
            for st, w in zip(stages, ws, strict=True):
                h = _stage_forward(h, st, w)
            out[k, t] = (h[0] @ onehot).round().to(torch.int32)
    return out


def _test_images(opts: BenchOptions) -> tuple[str, torch.Tensor]:
    try:
        return "mnist", load("mnist", "test", opts.data_dir)[0]
    except DataError:
        return "mnist5k", load("mnist5k", "test", opts.data_dir)[0]


def bench(opts: BenchOptions) -> list[dict]:
    """bench.json entries (see the module doc)."""
    name, x = _test_images(opts)
    model = build("mnist-5core")
    model.reset_parameters(0)
    n_ratio = 100 if opts.quick else 1000
    xs = x[:n_ratio]
    copies, ticks = (4, 2) if opts.quick else (8, 4)
    m = interleaved_ratio(
        lambda: simulate_counts_torch(model, xs, copies, ticks, 0),
        lambda: per_copy_loop(model, xs, copies, ticks, 0),
        repeats=7,
        warmup=1,
    )
    entries = [
        bench_entry(
            "deploy-simulator-batched-vs-per-copy",
            m,
            baseline="per-copy loop (one copy at a time, same counts)",
            candidate="simulate_counts_torch (copies batched in one matmul)",
            job=f"mnist-5core, {len(xs)} {name} test images, {copies} copies x {ticks} ticks",
        )
    ]
    full_copies, full_ticks = (8, 2) if opts.quick else (64, 16)
    xf = x[:200] if opts.quick else x
    for inputs, suffix in (("independent", ""), ("shared", "-shared")):
        simulate_counts_torch(model, xf[:100], full_copies, 1, 0, inputs=inputs)  # warm-up
        t0 = time.perf_counter()
        simulate_counts_torch(model, xf, full_copies, full_ticks, 0, inputs=inputs)
        seconds = time.perf_counter() - t0
        entries.append(
            {
                "name": f"deploy-simulator-issue-budget{suffix}",
                "job": f"mnist-5core, {len(xf)} {name} test images, {full_copies} copies x "
                f"{full_ticks} ticks, {inputs} input spikes",
                "threads": opts.threads,
                "seconds": seconds,
                "budget_s": BUDGET_S,
                "within_budget": seconds < BUDGET_S,
                "synapse_evaluations_per_second": synapse_evaluations(
                    model, len(xf), full_copies, full_ticks
                )
                / seconds,
            }
        )
    return entries
