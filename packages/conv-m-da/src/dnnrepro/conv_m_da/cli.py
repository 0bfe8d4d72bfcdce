"""Extra commands: ``dnnrepro conv-m-da adapt ...`` and ``dnnrepro conv-m-da count``.

dnnrepro conv-m-da adapt --task syndigits->mnist5k --method ours --net compact --seed 0
dnnrepro conv-m-da adapt --task digits->mnist5k --method dann --select snd   # best SND checkpoint
dnnrepro conv-m-da count
"""

from __future__ import annotations

import argparse
import json

import torch

from dnnrepro.core.errors import ConfigError

from .adapt import METHODS, SELECTIONS, AdaptConfig, adapt
from .networks import ALEXNET_PARAMS, NETWORKS, build_network, macs
from .tasks import IMAGE_SIZE, TASKS, load_task


def _adapt(args) -> int:
    from dnnrepro.core import checkpoint
    from dnnrepro.core import data as core_data

    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    if args.pretrain < 0:
        raise ConfigError("--pretrain must be >= 0")
    if args.method == "adabn" and not args.pretrain:
        raise ConfigError("--method adabn adapts a trained network: give --pretrain > 0")
    task = load_task(
        args.task, lambda n, s: core_data.load(n, s, args.data_dir), size=args.image_size
    )
    cfg = AdaptConfig(
        seed=args.seed,
        batch_size=args.batch_size,
        lr=args.lr,
        lambda_domain=args.lambda_domain,
        lambda_mmd=args.lambda_mmd,
        lambda_entropy=args.lambda_entropy,
        select=args.select,
    )
    torch.manual_seed(args.seed)
    model = build_network(args.net, 10, "small", task.source_train[0].shape[1])
    common = {"target_test": task.target_test, "source_test": task.source_test, "config": cfg}
    report = {"task": args.task, "net": args.net, "method": args.method, "seed": args.seed}
    if args.pretrain:
        pre = adapt(
            model,
            task.source_train,
            task.target_train[0],
            "source_only",
            steps=args.pretrain,
            **common,
            select="last",  # pre-training is source-only: no target signal picks its checkpoint
        )
        model, report["pretrain"] = pre.model, pre.metrics
    result = adapt(
        model, task.source_train, task.target_train[0], args.method, steps=args.steps, **common
    )
    report.update(result.metrics, terms=result.terms, steps=result.steps)
    if result.selection:
        report["selection"] = {k: v for k, v in result.selection.items() if k != "scores"}
    if args.save:
        checkpoint.save_weights(args.save, result.model, {"report": report})
        report["saved"] = str(args.save)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        for key, value in report.items():
            if isinstance(value, float):
                value = f"{value:.4f}"
            print(f"{key:22s} {value}")
    return 0


def count_table() -> list[dict]:
    """Parameters and MACs of every network at both sizes (paper: 3x224x224, small: 1x16x16)."""
    from dnnrepro.core.models import count_params

    rows = []
    googlenet = count_params(NETWORKS["inception"](1000, "paper", 3))
    for size, classes, shape in (
        ("paper", 1000, (3, 224, 224)),
        ("small", 10, (1, IMAGE_SIZE, IMAGE_SIZE)),
    ):
        for kind, builder in NETWORKS.items():
            net = builder(classes, size, shape[0])
            n = count_params(net)
            rows.append(
                {
                    "network": kind,
                    "size": size,
                    "input": "x".join(map(str, shape)),
                    "params": n,
                    "macs": macs(net, shape),
                    "vs_googlenet": n / googlenet if size == "paper" else None,
                    "vs_alexnet": n / ALEXNET_PARAMS if size == "paper" else None,
                }
            )
    return rows


def _count(args) -> int:
    rows = count_table()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(
        f"{'network':10s} {'size':6s} {'input':10s} {'params':>11s} {'MACs':>14s}  vs GoogLeNet  vs AlexNet"
    )
    for r in rows:
        ratios = (
            f"  {r['vs_googlenet']:10.1%}  {r['vs_alexnet']:8.1%}"
            if r["vs_googlenet"] is not None
            else ""
        )
        print(
            f"{r['network']:10s} {r['size']:6s} {r['input']:10s} {r['params']:11,d} {r['macs']:14,d}{ratios}"
        )
    print("(inception = GoogLeNet v1 layout; AlexNet taken as 61M; paper: 4.1M = 59% / 6.7%)")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("adapt", help="one adaptation run on a digit task; prints accuracies")
    p.add_argument("--task", default="syndigits->mnist5k", choices=list(TASKS))
    p.add_argument("--method", default="ours", choices=list(METHODS))
    p.add_argument("--net", default="compact", choices=list(NETWORKS))
    p.add_argument("--pretrain", type=int, default=300, help="source-only steps first (0: none)")
    p.add_argument("--steps", type=int, default=200, help="adaptation steps")
    p.add_argument("--batch-size", type=int, default=32, help="per domain")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--lambda-domain", type=float, default=None)
    p.add_argument("--lambda-mmd", type=float, default=None)
    p.add_argument("--lambda-entropy", type=float, default=None)
    p.add_argument("--image-size", type=int, default=IMAGE_SIZE)
    p.add_argument(
        "--select",
        default="last",
        choices=list(SELECTIONS),
        help="checkpoint returned: the last iterate, or the best by an unsupervised validator "
        "(IM or SND on unlabelled target images)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--save", default=None, help="checkpoint stem for the adapted network")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_adapt)
    c = sub.add_parser(
        "count", help="parameters and MACs of the compact, squeeze and inception nets"
    )
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=_count)
