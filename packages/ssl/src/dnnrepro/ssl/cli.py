"""``dnnrepro ssl train|shrink|report``: learn a structure, remove it, inspect it.

    dnnrepro ssl train --model lenet --data mnist5k --groups filter,channel --layers conv1,conv2 \\
        --strength 0.08 --out runs/ssl/mine          # SSL + frozen fine-tune -> runs/ssl/mine/sparse
    dnnrepro ssl shrink runs/ssl/mine/sparse --out runs/ssl/mine/shrunk
    dnnrepro ssl report runs/ssl/mine/shrunk [--speed]

``train`` starts from the pinned core LeNet baseline for ``--model lenet --data mnist5k`` and from a
dense network it trains first otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from dnnrepro.core import baselines, checkpoint, models
from dnnrepro.core import data as _data
from dnnrepro.core.errors import ConfigError
from dnnrepro.core.train import TrainConfig, evaluate, fit, seed_everything

from .recipe import SSLConfig, learn_structure
from .report import format_report, sparsity_report
from .serialize import load_shrunk, save_shrunk
from .shrink import shrink
from .speed import layer_speedups


def _build_kwargs(model: str, x: torch.Tensor) -> dict:
    c, size = int(x.shape[1]), int(x.shape[2])
    if model == "lenet":
        return {"in_channels": c, "image_size": size}
    if model == "mlp":
        return {"in_features": int(x[0].numel())}
    if model in ("resnet20", "resnet32", "resnet56"):
        return {"in_channels": c}
    raise ConfigError(f"--model must be lenet, mlp, resnet20, resnet32 or resnet56, not {model!r}")


def _train(args) -> int:
    torch.set_num_threads(args.threads)
    x, y = _data.load(args.data, "train", args.data_dir)
    xt, yt = _data.load(args.data, "test", args.data_dir)
    kwargs = _build_kwargs(args.model, x)
    base = {"name": args.model, "kwargs": kwargs}
    out = Path(args.out)
    if args.model == "lenet" and args.data == "mnist5k":
        dense = baselines.get("lenet-mnist5k", args.data_dir, train=True)
    else:
        seed_everything(args.seed)
        dense = models.build(args.model, **kwargs)
        cfg = TrainConfig(
            epochs=args.base_epochs,
            lr=args.base_lr,
            weight_decay=args.weight_decay,
            schedule="cosine",
            seed=args.seed,
        )
        fit(dense, (x, y), cfg, test=(xt, yt), checkpoint_dir=out / "dense")
    groups = [g for g in args.groups.split(",") if g]
    plan = {n: groups for n in args.layers.split(",")} if args.layers else groups
    cfg = SSLConfig(
        groups=plan,
        strength=args.strength,
        depth=args.depth,
        ssl=TrainConfig(epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay),
        finetune=TrainConfig(
            epochs=args.finetune_epochs, lr=args.lr / 2, weight_decay=args.weight_decay
        ),
    )
    sparse, metrics = learn_structure(
        dense, (x, y), (xt, yt), cfg, seed=args.seed, checkpoint_dir=out / "work"
    )
    checkpoint.save_weights(out / "sparse", sparse, {"base": base, "dataset": args.data})
    print(
        f"dense accuracy {evaluate(dense, (xt, yt))['accuracy']:.4f}, SSL + fine-tune "
        f"{metrics['accuracy']:.4f}; saved {out / 'sparse'}"
    )
    print(format_report(sparsity_report(sparse, tuple(x.shape[1:]))))
    return 0


def _load_sparse(stem: str):
    _, meta = checkpoint.load(stem)
    base = meta.get("base")
    if not base:
        raise ConfigError(f"{stem}: not a checkpoint written by 'dnnrepro ssl train'")
    model = models.build(base["name"], **base["kwargs"])
    checkpoint.load_weights(stem, model)
    return model.eval(), meta


def _shrink(args) -> int:
    sparse, meta = _load_sparse(args.sparse)
    xt, _ = _data.load(meta["dataset"], "test", args.data_dir)
    small = shrink(sparse, xt[:16])
    with torch.no_grad():
        gap = float((small(xt[:256]) - sparse(xt[:256])).abs().max())
    save_shrunk(args.out, small, base=meta["base"], meta={"dataset": meta["dataset"]})
    print(
        f"params {models.count_params(sparse)} -> {models.count_params(small)}; "
        f"max |shrunk - sparse| on 256 test images {gap:.2e}; saved {args.out}"
    )
    return 0


def _report(args) -> int:
    _, meta = checkpoint.load(args.checkpoint)
    if "architecture" in meta:
        model = load_shrunk(args.checkpoint)
    else:
        model, meta = _load_sparse(args.checkpoint)
    dataset = meta.get("dataset")
    if not dataset:
        raise ConfigError(f"{args.checkpoint}: the checkpoint does not name its dataset")
    xt, yt = _data.load(dataset, "test", args.data_dir)
    reference = models.build(meta["base"]["name"], **meta["base"]["kwargs"]).eval()
    print(f"test accuracy {evaluate(model, (xt, yt))['accuracy']:.4f}")
    print(format_report(sparsity_report(model, tuple(xt.shape[1:]), reference=reference)))
    if args.speed:
        if "architecture" not in meta:
            raise ConfigError("--speed needs a shrunk checkpoint (run 'dnnrepro ssl shrink' first)")
        dense = models.build(meta["base"]["name"], **meta["base"]["kwargs"]).eval()
        for r in layer_speedups(dense, model, tuple(xt.shape[1:]), n_threads=args.threads):
            if r["gemm_speedup"] is None:
                print(f"{r['layer']:24s} removed")
            else:
                print(
                    f"{r['layer']:24s} GEMM {r['gemm_speedup']:.2f}x  layer {r['layer_speedup']:.2f}x"
                )
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="SSL + frozen fine-tune; saves <out>/sparse")
    t.add_argument("--model", default="lenet")
    t.add_argument("--data", default="mnist5k")
    t.add_argument("--groups", default="filter,channel", help="comma list of group kinds")
    t.add_argument("--layers", default="", help="comma list of layers (default: all)")
    t.add_argument("--depth", action="store_true", help="depth-wise SSL on residual convs")
    t.add_argument("--strength", type=float, default=0.03)
    t.add_argument("--epochs", type=int, default=4)
    t.add_argument("--finetune-epochs", type=int, default=1)
    t.add_argument("--lr", type=float, default=0.005)
    t.add_argument("--weight-decay", type=float, default=0.0)
    t.add_argument("--base-epochs", type=int, default=10)
    t.add_argument("--base-lr", type=float, default=0.05)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", required=True)
    t.set_defaults(func=_train)
    s = sub.add_parser("shrink", help="remove zero structures; saves a reloadable shrunk model")
    s.add_argument("sparse", help="checkpoint stem written by 'train'")
    s.add_argument("--out", required=True)
    s.set_defaults(func=_shrink)
    r = sub.add_parser("report", help="per-layer structure (and --speed) of a checkpoint")
    r.add_argument("checkpoint")
    r.add_argument("--speed", action="store_true")
    r.set_defaults(func=_report)
    for p in (t, s, r):
        p.add_argument("--data-dir", default=None)
        p.add_argument("--threads", type=int, default=2)
