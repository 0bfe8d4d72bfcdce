"""Extra subcommands: ``prune`` and ``roofline`` (``reproduce`` and ``bench`` come from the core)."""

from __future__ import annotations

import json
from pathlib import Path

from dnnrepro.core.errors import ConfigError


def add_commands(sub) -> None:
    p = sub.add_parser("roofline", help="measure F, B, alpha here; print AlexNet layer bounds")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=1, help="batch the model assumes (default 1)")
    p.set_defaults(func=_roofline)

    p = sub.add_parser("prune", help="guided (GSL) or uniform (ESL) pruning of a model")
    p.add_argument("--model", default="lenet", choices=["lenet", "alexnet-small"])
    p.add_argument("--dataset", default="mnist5k", help="a 1x28x28 dataset (mnist5k, syndigits)")
    p.add_argument("--mode", default="l1", choices=["l1", "dns"])
    p.add_argument("--uniform", action="store_true", help="ESL: same strength everywhere")
    p.add_argument("--strength", type=float, default=4e-3)
    p.add_argument("--conv-factor", type=float, default=2.0)
    p.add_argument("--fc-factor", type=float, default=0.5)
    p.add_argument("--adaptive-factor", type=float, default=0.0)
    p.add_argument("--periods", type=int, default=3)
    p.add_argument("--dense-epochs", type=int, default=4, help="alexnet-small: dense training")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="runs/holistic-sparsecnn/prune", help="output folder")
    p.add_argument("--data-dir", default=None)
    p.set_defaults(func=_prune)


def _roofline(args) -> int:
    from . import experiment, roofline

    if args.threads < 1 or args.batch < 1:
        raise ConfigError("--threads and --batch must be >= 1")
    m = roofline.measure_machine(args.threads)
    print(
        f"F {m.flops / 1e9:.1f} GFLOP/s (GEMM)  B {m.bandwidth / 1e9:.1f} GB/s (copy)  "
        f"alpha {m.alpha:.2f}  lower bound x < {roofline.lower_bound(m):.3f}"
    )
    for name, layer in experiment.ALEXNET.items():
        cost = experiment.layer_cost(layer, args.batch)
        xu = roofline.upper_bound(cost, m)
        print(
            f"AlexNet {name}: upper bound x = {xu:.4f}, best speedup "
            f"{roofline.max_speedup(cost, m):.2f}x, at x=0.1: "
            f"{roofline.predict_speedup(cost, m, 0.1):.2f}x"
        )
    return 0


def _prune(args) -> int:
    import torch

    from dnnrepro.core import baselines, checkpoint, data
    from dnnrepro.core.io import write_json
    from dnnrepro.core.train import TrainConfig, fit

    from .models import AlexNetSmall
    from .pruning import PruneConfig, guided_prune

    if args.threads < 1 or args.periods < 1:
        raise ConfigError("--threads and --periods must be >= 1")
    torch.set_num_threads(args.threads)
    x, y = data.load(args.dataset, "train", args.data_dir)
    xt, yt = data.load(args.dataset, "test", args.data_dir)
    if tuple(x.shape[1:]) != (1, 28, 28):
        raise ConfigError(f"--dataset must hold 1x28x28 images; {args.dataset} has {x.shape[1:]}")
    out = Path(args.out)
    if args.model == "lenet":
        model = baselines.get("lenet-mnist5k", args.data_dir, train=True)
    else:
        torch.manual_seed(0)
        model = AlexNetSmall()
        fit(
            model,
            (x, y),
            TrainConfig(epochs=args.dense_epochs, lr=0.02, schedule="cosine"),
            checkpoint_dir=out / "dense",
        )
    config = PruneConfig(
        strength=args.strength,
        conv_factor=args.conv_factor,
        fc_factor=args.fc_factor,
        adaptive_factor=args.adaptive_factor,
        mode=args.mode,
        guided=not args.uniform,
    )
    result = guided_prune(
        model,
        (x, y),
        test=(xt, yt),
        config=config,
        train=TrainConfig(epochs=1, lr=0.01),
        periods=args.periods,
        retrain=TrainConfig(epochs=1, lr=0.002, schedule="cosine", weight_decay=5e-4),
        checkpoint_dir=out,
        log=print,
    )
    checkpoint.save_weights(out / "final", model, {"model": args.model})
    write_json(out / "summary.json", result.summary())
    print(
        json.dumps(
            {
                "final": result.final,
                "layers": [
                    {"name": p.name, "density": round(p.density, 4), "status": p.status}
                    for p in result.layers
                ],
            },
            indent=1,
        )
    )
    print(f"weights: {out / 'final'}; summary: {out / 'summary.json'}")
    return 0
