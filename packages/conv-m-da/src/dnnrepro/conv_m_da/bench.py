"""Throughput of the compact and squeeze-like networks against the inception-like (GoogLeNet-style)
network, same input, same threads: ``dnnrepro conv-m-da bench [--quick]``.

For each size (digit: 1x16x16, batch 64; paper: 3x224x224, batch 4), each network and each mode
(train: forward + backward + SGD step; infer: forward without grad), the speed ratio against the
inception-like network is measured with :func:`dnnrepro.core.bench.interleaved_ratio` (calls
alternate, ratio of medians, bootstrap 95% interval; > 1: faster than inception). Parameters and
MACs per image are kept with each entry. No claim is a timing claim: these numbers are context.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from dnnrepro.core.bench import bench_entry, interleaved_ratio
from dnnrepro.core.models import count_params
from dnnrepro.core.paper import BenchOptions

from .networks import NETWORKS, macs

SETUPS = {
    "small": {"classes": 10, "shape": (1, 16, 16), "batch": 64, "repeats": 9},
    "paper": {"classes": 1000, "shape": (3, 224, 224), "batch": 4, "repeats": 7},
}
# the quick (smoke) run: small shapes only, so it takes seconds
QUICK_SETUPS = {
    "small": {"classes": 10, "shape": (1, 16, 16), "batch": 8, "repeats": 7},
    "paper": {"classes": 1000, "shape": (3, 32, 32), "batch": 1, "repeats": 7},
}


def _calls(kind: str, size: str, setup: dict) -> tuple[Any, Any, torch.nn.Module]:
    """(train step, inference call, network) of ``kind`` on a fixed random batch."""
    torch.manual_seed(0)
    net = NETWORKS[kind](setup["classes"], size, setup["shape"][0])
    x = torch.rand(setup["batch"], *setup["shape"])
    y = torch.randint(0, setup["classes"], (setup["batch"],))
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)

    def train_step():
        net.train()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        opt.step()

    def infer():
        net.eval()
        with torch.no_grad():
            net(x)

    return train_step, infer, net


def bench(opts: BenchOptions) -> list[dict]:
    """bench.json entries: one per (size, network other than inception, mode)."""
    setups = QUICK_SETUPS if opts.quick else SETUPS
    entries = []
    for size, setup in setups.items():
        base_train, base_infer, base_net = _calls("inception", size, setup)
        for kind in NETWORKS:
            if kind == "inception":
                continue
            train, infer, net = _calls(kind, size, setup)
            for mode, cand, base in (("train", train, base_train), ("infer", infer, base_infer)):
                m = interleaved_ratio(
                    cand,
                    base,
                    repeats=setup["repeats"],
                    warmup=1,
                    max_seconds=2.0 if opts.quick else 30.0,
                )
                entries.append(
                    bench_entry(
                        f"{mode}-{kind}-vs-inception-{size}",
                        m,
                        baseline=f"inception-like {mode} call, {size} size",
                        candidate=f"{kind} {mode} call, {size} size",
                        network=kind,
                        size=size,
                        mode=mode,
                        input=list(setup["shape"]),
                        batch=setup["batch"],
                        params=count_params(net),
                        baseline_params=count_params(base_net),
                        macs_per_image=macs(net, setup["shape"]),
                        baseline_macs_per_image=macs(base_net, setup["shape"]),
                    )
                )
    return entries
