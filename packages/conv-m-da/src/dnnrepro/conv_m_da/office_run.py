"""The paper profile: Office-31 (6 tasks) and Office-Caltech-10 (12 tasks) with the paper-size net.

Data: see :mod:`dnnrepro.conv_m_da.office`. ImageNet-initialized weights are used when the file
``<data dir>/conv-m-da/compact_imagenet.safetensors`` exists (a dnnrepro checkpoint of
``compact_net(1000, "paper", 3)`` written with ``dnnrepro.core.checkpoint.save_weights``; no such
weights are published, since the paper's code and models are not). Otherwise the network starts
from scratch, which the notes say.
"""

from __future__ import annotations

import statistics
from typing import Any

import torch
from torch import nn

from dnnrepro.core import checkpoint
from dnnrepro.core import data as core_data
from dnnrepro.core.paper import RunContext

from . import office
from .adapt import METHODS, AdaptConfig, adapt
from .networks import compact_net


def _init_network(ctx: RunContext, num_classes: int) -> nn.Module:
    net = compact_net(1000, "paper", 3)
    stem = core_data.data_dir(ctx.data_dir) / "conv-m-da" / "compact_imagenet"
    if checkpoint.exists(stem):
        checkpoint.load_weights(stem, net)
    net.fc = nn.Linear(net.feature_dim, num_classes)
    net.num_classes = num_classes
    return net.cuda() if torch.cuda.is_available() else net


def run_paper(ctx: RunContext, settings: dict[str, Any]) -> None:
    """Every Office task, every method, ``ctx.seeds``. The target domain's images are both the
    unlabelled training set and the test set (the usual transductive Office protocol); their
    labels are used only for the test accuracy."""
    root = core_data.data_dir(ctx.data_dir)
    wins, rows = 0, {}
    weights = root / "conv-m-da" / "compact_imagenet"
    init_note = (
        f"ImageNet-initialized from {weights}"
        if checkpoint.exists(weights)
        else "from scratch (no ImageNet weights supplied)"
    )
    for benchmark in office.BENCHMARKS:
        domains = {
            d: office.load_domain(root, benchmark, d, settings["size"])
            for d in office.BENCHMARKS[benchmark][1]
        }
        num_classes = int(max(int(y.max()) for _, y in domains.values())) + 1
        for src, tgt in office.tasks(benchmark):
            name = f"{benchmark}:{office.SHORT[src]}->{office.SHORT[tgt]}"
            accs: dict[str, list[float]] = {m: [] for m in METHODS}
            for seed in ctx.seeds:

                def cell(src=src, tgt=tgt, seed=seed, name=name, domains=domains, k=num_classes):
                    torch.manual_seed(seed)
                    net = _init_network(ctx, k)
                    cfg = AdaptConfig(
                        seed=seed,
                        batch_size=settings["batch_size"],
                        bottleneck=settings["bottleneck"],
                        bottleneck_dropout=settings["bottleneck_dropout"],
                        discriminator_hidden=settings["discriminator_hidden"],
                    )
                    work = name.replace(":", "-").replace("->", "_to_") + f"-seed{seed}"
                    kw = {"target_test": domains[tgt], "config": cfg}
                    pre = adapt(
                        net, domains[src], domains[tgt][0], "source_only",
                        steps=settings["pretrain"], checkpoint_dir=ctx.work(work, "pretrain"), **kw,
                    )  # fmt: skip
                    out = {}
                    for m in METHODS:
                        r = adapt(
                            pre.model, domains[src], domains[tgt][0], m,
                            steps=settings["steps"], checkpoint_dir=ctx.work(work, m), **kw,
                        )  # fmt: skip
                        out[m] = 100.0 * r.metrics["target_test_accuracy"]
                    return out

                value = ctx.stage(name.replace(":", "-").replace("->", "_to_") + f"-s{seed}", cell)
                for m in METHODS:
                    accs[m].append(value[m])
            means = {m: statistics.fmean(v) for m, v in accs.items()}
            rows[name] = means
            wins += means["ours"] > max(means[m] for m in METHODS if m != "ours")
    ctx.record("office-state-of-the-art", wins)
    ctx.note("office-state-of-the-art", f"Paper-size Conv-M net {init_note}.")
    ctx.detail("office_target_accuracy_percent", rows)
