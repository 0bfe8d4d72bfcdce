"""Benchmarks: conv-stack speed of decomposed ConvNets, and the cost of the force term.

    python -m dnnrepro.forcereg.bench --out paper_results/forcereg [--threads 2] [--quick]

1. ``convnet_conv_stack``: ConvNet (1x28x28 input, batch 256) conv stack (``features``), dense vs
   decomposed with conv2 and conv3 at the same rank fraction of their full rank (conv1 stays
   dense), for several fractions, and at the ranks the last small-profile reproduction chose
   (read from paper_results/forcereg/results.json when present). Speedup = dense / decomposed
   median time, both measured in this run. Weights are random: speed depends on shapes only.
2. ``convnet_stack_breakdown``: each op of the dense conv stack timed alone; the share of conv2 +
   conv3 (the decomposed layers) bounds the possible speedup (``amdahl_bound``).
3. ``force_overhead``: time of ``force`` for one layer of 256 filters x 2304 weights (a 256->256
   3x3 conv), degradation and constant, as a share of one training step (forward, backward, SGD)
   of that layer on a batch of 64 maps of 14x14 (a ResNet-50 conv4-sized layer).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import nn

from dnnrepro.core.bench import threads, time_callable, write_bench

from .convnet import ConvNet
from .force import force
from .lowrank import decompose, lowrank_report


def _ranks_from_results(out_dir: Path) -> dict[str, int] | None:
    path = out_dir / "results.json"
    try:
        runs = json.loads(path.read_text())["details"]["runs"]["convnet"]
        return {k: int(v) for k, v in runs[0]["finetune_ranks"].items()}
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


def conv_stack_entries(
    out_dir: Path, n_threads: int, repeats: int, batch_size: int = 256
) -> list[dict]:
    torch.manual_seed(0)
    dense = ConvNet(1, 28, 10).eval()
    batch = torch.rand(batch_size, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    configs = []
    for fraction in (0.125, 0.25, 0.5, 1.0):
        ranks = {
            name: max(1, round(fraction * min(c.out_channels, c.weight[0].numel())))
            for name, c in (("conv2", dense.conv2), ("conv3", dense.conv3))
        }
        configs.append((f"fraction {fraction:g}", ranks))
    pinned = _ranks_from_results(out_dir)
    if pinned:
        configs.append(("ranks of the small reproduction (seed 0)", pinned))
    entries = []
    with threads(n_threads) as n, torch.no_grad():
        t_dense = time_callable(lambda: dense.features(batch), 2, repeats).median
        for label, ranks in configs:
            low = decompose(dense, ranks=ranks).eval()
            t_low = time_callable(lambda low=low: low.features(batch), 2, repeats).median
            # re-time the dense net right after, and keep its best, so drift on a shared machine
            # does not favour either side
            t_dense = min(t_dense, time_callable(lambda: dense.features(batch), 1, repeats).median)
            macs_d = sum(r["macs"] for r in lowrank_report(dense, (1, 28, 28)))
            macs_l = sum(r["macs"] for r in lowrank_report(low, (1, 28, 28)))
            entries.append(
                {
                    "name": "convnet_conv_stack",
                    "case": label,
                    "ranks": ranks,
                    "batch": batch_size,
                    "threads": n,
                    "dense_ms": 1e3 * t_dense,
                    "decomposed_ms": 1e3 * t_low,
                    "speedup": t_dense / t_low,
                    "mac_ratio": macs_d / macs_l,
                }
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dnnrepro.forcereg.bench")
    parser.add_argument("--out", default="paper_results/forcereg")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    out = Path(args.out)
    entries = conv_stack_entries(out, args.threads, args.repeats)
    entries.append(stack_breakdown_entry(args.threads, args.repeats))
    entries += force_overhead_entries(args.threads, args.repeats)
    for e in entries:
        value = e.get("speedup", e.get("share_of_step", e.get("amdahl_bound")))
        print(f"{e['name']:20s} {e['case']:42s} {value:.3f}")
    print(write_bench(out, "forcereg", entries))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
