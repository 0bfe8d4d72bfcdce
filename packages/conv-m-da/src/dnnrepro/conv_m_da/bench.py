"""Throughput of the compact, squeeze-like and inception-like networks, same input, same threads.

    python -m dnnrepro.conv_m_da.bench --out paper_results/conv-m-da [--threads 2] [--quick]

For each size (digit: 1x16x16, batch 64; paper: 3x224x224, batch 4) and each network: parameters,
MACs per image, training images/s (forward + backward + SGD step) and inference images/s
(forward, no grad), and the speedup of each against the inception-like (GoogLeNet-style) network
timed in the same run. Timings are wall-clock medians (dnnrepro.core.bench.time_callable).
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F

from dnnrepro.core.bench import threads as pinned_threads
from dnnrepro.core.bench import time_callable, write_bench
from dnnrepro.core.models import count_params

from .networks import NETWORKS, macs

SETUPS = {
    "small": {"classes": 10, "shape": (1, 16, 16), "batch": 64, "repeats": 10},
    "paper": {"classes": 1000, "shape": (3, 224, 224), "batch": 4, "repeats": 4},
}


def _entry(kind: str, size: str, setup: dict, repeats: int, max_seconds: float) -> dict:
    torch.manual_seed(0)
    net = NETWORKS[kind](setup["classes"], size, setup["shape"][0])
    x = torch.rand(setup["batch"], *setup["shape"])
    y = torch.randint(0, setup["classes"], (setup["batch"],))
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)

    def train_step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        opt.step()

    def infer():
        with torch.no_grad():
            net(x)

    net.train()
    t_train = time_callable(train_step, warmup=1, repeats=repeats, max_seconds=max_seconds)
    net.eval()
    t_infer = time_callable(infer, warmup=1, repeats=repeats, max_seconds=max_seconds)
    return {
        "network": kind,
        "size": size,
        "input": list(setup["shape"]),
        "batch": setup["batch"],
        "params": count_params(net),
        "macs_per_image": macs(net, setup["shape"]),
        "train_images_per_s": setup["batch"] / t_train.median,
        "infer_images_per_s": setup["batch"] / t_infer.median,
        "train": t_train.as_dict(),
        "infer": t_infer.as_dict(),
    }


def run(n_threads: int = 2, quick: bool = False) -> list[dict]:
    entries = []
    with pinned_threads(n_threads):
        for size, setup in SETUPS.items():
            repeats = 3 if quick else setup["repeats"]
            rows = {k: _entry(k, size, setup, repeats, 2.0 if quick else 20.0) for k in NETWORKS}
            base = rows["inception"]
            for row in rows.values():
                row["baseline"] = "inception"
                row["train_speedup_vs_inception"] = (
                    row["train_images_per_s"] / base["train_images_per_s"]
                )
                row["infer_speedup_vs_inception"] = (
                    row["infer_images_per_s"] / base["infer_images_per_s"]
                )
                entries.append(row)
    return entries


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dnnrepro.conv_m_da.bench")
    p.add_argument("--out", default="paper_results/conv-m-da")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="3 repeats (smoke)")
    args = p.parse_args(argv)
    entries = run(args.threads, args.quick)
    path = write_bench(args.out, "conv-m-da", entries)
    for e in entries:
        print(
            f"{e['network']:10s} {e['size']:6s} params {e['params']:>10,d} MACs {e['macs_per_image']:>14,d}"
            f"  train {e['train_images_per_s']:9.1f} img/s (x{e['train_speedup_vs_inception']:.2f})"
            f"  infer {e['infer_images_per_s']:9.1f} img/s (x{e['infer_speedup_vs_inception']:.2f})"
        )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
