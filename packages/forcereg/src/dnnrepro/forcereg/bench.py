"""Benchmarks of ``dnnrepro forcereg bench`` (``Paper(bench=...)``; writes bench.json).

Ratios are dense / decomposed conv-stack time under the core timing protocol
(``bench.interleaved_ratio``: interleaved calls, median ratio, bootstrap interval, machine load).
Weights are random: speed depends on shapes and ranks only.

1. ``alexnet_conv_stack`` / ``alexnet_torch_lowrank``: AlexNet's five conv layers at their real
   shapes (group-split, 227x227, batch 1 and 32), decomposed at the paper's ranks (conv1 8, conv2
   40, conv3 150, conv4 160, conv5 120, per group) by ``decompose``, and the same ranks built as
   plain torch conv pairs (the baseline a user would write).
2. ``convnet_conv_stack``: the ConvNet (1x28x28, batch 256) with conv2 and conv3 at rank
   fractions 1/8 .. 1 of their full rank, and at the ranks of the last small reproduction (read
   from that run's own stage, found with ``run_folder``; else from the pinned small results).
3. ``convnet_stack_breakdown`` (untimed row): each op of the dense ConvNet stack alone; the share
   of conv2 + conv3 bounds any speedup (``amdahl_bound``).
4. ``force_overhead`` (untimed rows): time of ``force`` for one 256 x 2304 layer as a share of one
   training step of that layer (batch 64 of 14x14 maps).

``--quick`` shrinks shapes and repeats (tests, CI).
"""

from __future__ import annotations

import json

import torch
from torch import nn

from dnnrepro.core.bench import RatioMeasurement, bench_entry, threads, time_callable
from dnnrepro.core.paper import BenchOptions

from .alexnet import PAPER_RANKS
from .convnet import ConvNet
from .curve import conv_macs
from .force import force
from .lowrank import decompose, max_rank
from .speed import alexnet_speed, stack_ratio


def small_run_ranks(opts: BenchOptions) -> dict[str, int] | None:
    """The ConvNet ranks of the small reproduction's seed 0: its stored stage, else the pinned
    small results; None when neither exists."""
    candidates = []
    if opts.paper is not None:
        candidates.append((opts.run_folder("small") / "stages" / "convnet-seed0.json", "stage"))
    candidates.append((opts.out_dir / "small" / "results.json", "results"))
    for path, kind in candidates:
        try:
            doc = json.loads(path.read_text())
            run = doc["value"] if kind == "stage" else doc["details"]["runs"]["convnet"][0]
            return {k: int(v) for k, v in run["finetune_ranks"].items()}
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            continue
    return None


def _entry(name: str, m: dict, **extra) -> dict:
    return bench_entry(name, RatioMeasurement.from_dict(m), **extra)


def alexnet_entries(opts: BenchOptions) -> list[dict]:
    size, batches, repeats = (67, (1,), 7) if opts.quick else (227, (1, 32), 9)
    out = alexnet_speed(PAPER_RANKS, size, batches, repeats, opts.threads)
    entries = []
    for b, got in out["batches"].items():
        common = dict(
            batch=int(b),
            input=f"3x{size}x{size}",
            ranks=out["ranks"],
            mac_ratio=out["macs"]["dense"] / out["macs"]["decomposed"],
        )
        entries.append(
            _entry(
                "alexnet_conv_stack",
                got["decomposed"],
                baseline="dense AlexNet conv stack",
                candidate="decompose() at the paper's ranks",
                **common,
            )
        )
        entries.append(
            _entry(
                "alexnet_torch_lowrank",
                got["torch_lowrank"],
                baseline="dense AlexNet conv stack",
                candidate="plain torch conv pairs at the same ranks",
                **common,
            )
        )
    return entries


def conv_stack_entries(opts: BenchOptions, batch_size: int = 256) -> list[dict]:
    batch_size, repeats = (8, 7) if opts.quick else (batch_size, 9)
    torch.manual_seed(0)
    dense = ConvNet(1, 28, 10).eval()
    batch = torch.rand(batch_size, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    configs = []
    for fraction in (0.125, 0.25, 0.5, 1.0):
        ranks = {
            name: max(1, round(fraction * max_rank(c)))
            for name, c in (("conv2", dense.conv2), ("conv3", dense.conv3))
        }
        configs.append((f"fraction {fraction:g}", ranks))
    pinned = small_run_ranks(opts)
    if pinned:
        configs.append(("ranks of the small reproduction (seed 0)", pinned))
    entries = []
    macs_d = conv_macs(dense, (1, 28, 28))
    for label, ranks in configs:
        low = decompose(dense, ranks=ranks).eval()
        m = stack_ratio(dense, low, batch, repeats, opts.threads)
        entries.append(
            _entry(
                "convnet_conv_stack",
                m,
                baseline="dense ConvNet conv stack",
                candidate=f"conv2/conv3 decomposed ({label})",
                case=label,
                ranks=ranks,
                batch=batch_size,
                mac_ratio=macs_d / conv_macs(low, (1, 28, 28)),
            )
        )
    return entries


def stack_breakdown_entry(n_threads: int, repeats: int, batch_size: int = 256) -> dict:
    """Where the dense ConvNet conv stack spends its time: each op timed alone (ms).

    Only conv2 and conv3 are decomposed, so their share bounds any speedup (Amdahl's law).
    """
    torch.manual_seed(0)
    m = ConvNet(1, 28, 10).eval()
    x = torch.rand(batch_size, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    F = torch.nn.functional
    with threads(n_threads) as n, torch.no_grad():
        a = m.conv1(x)
        b = F.relu(F.max_pool2d(a, 3, 2, ceil_mode=True))
        c = F.relu(m.conv2(b))
        d = F.avg_pool2d(c, 3, 2, ceil_mode=True)
        e = F.relu(m.conv3(d))
        ops = {
            "conv1": lambda: m.conv1(x),
            "maxpool1+relu": lambda: F.relu(F.max_pool2d(a, 3, 2, ceil_mode=True)),
            "conv2": lambda: m.conv2(b),
            "relu2+avgpool2": lambda: F.avg_pool2d(F.relu(c), 3, 2, ceil_mode=True),
            "conv3": lambda: m.conv3(d),
            "relu3+avgpool3": lambda: F.avg_pool2d(F.relu(e), 3, 2, ceil_mode=True),
        }
        ms = {k: 1e3 * time_callable(f, 1, repeats).median for k, f in ops.items()}
    total = sum(ms.values())
    return {
        "name": "convnet_stack_breakdown",
        "case": "dense, ops timed alone",
        "batch": batch_size,
        "threads": n,
        "ms": ms,
        "decomposable_share": (ms["conv2"] + ms["conv3"]) / total,
        "amdahl_bound": total / (total - ms["conv2"] - ms["conv3"]),
    }


def force_overhead_entries(n_threads: int, repeats: int, step_batch: int = 64) -> list[dict]:
    torch.manual_seed(0)
    layer = nn.Conv2d(256, 256, 3, padding=1)
    opt = torch.optim.SGD(layer.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(step_batch, 256, 14, 14)

    def step():
        opt.zero_grad(set_to_none=True)
        layer(x).square().mean().backward()
        opt.step()

    entries = []
    with threads(n_threads) as n:
        t_step = time_callable(step, 2, repeats).median
        for kind in ("degradation", "constant"):
            t_force = time_callable(lambda kind=kind: force(layer.weight, kind), 2, repeats).median
            entries.append(
                {
                    "name": "force_overhead",
                    "case": kind,
                    "filters": 256,
                    "weights_per_filter": 2304,
                    "step_batch": f"{step_batch} x 256 x 14 x 14",
                    "threads": n,
                    "step_ms": 1e3 * t_step,
                    "force_ms": 1e3 * t_force,
                    "share_of_step": t_force / t_step,
                }
            )
    return entries


def bench(opts: BenchOptions) -> list[dict]:
    """Every entry of bench.json (see the module doc)."""
    repeats = 2 if opts.quick else 10
    entries = alexnet_entries(opts)
    entries += conv_stack_entries(opts)
    entries.append(stack_breakdown_entry(opts.threads, repeats, 8 if opts.quick else 256))
    entries += force_overhead_entries(opts.threads, repeats, 2 if opts.quick else 64)
    return entries
