"""``dnnrepro forcereg train|decompose|report``: the method on your own runs.

    dnnrepro forcereg train --model lenet --dataset mnist5k --strength 2.5e-3 --out runs/fr/lenet
    dnnrepro forcereg decompose --weights runs/fr/lenet --energy 0.95 --finetune-epochs 2 \
        --out runs/fr/lenet-lra
    dnnrepro forcereg report --weights runs/fr/lenet-lra

Weights are core checkpoints (safetensors + JSON sidecar); the sidecar records the model, dataset
and, for decomposed nets, the ranks, so ``report`` and ``decompose`` rebuild the right network.
"""

from __future__ import annotations

import argparse

from torch import nn

from dnnrepro.core import checkpoint
from dnnrepro.core import data as core_data
from dnnrepro.core.errors import ConfigError, DataError
from dnnrepro.core.models import LeNet
from dnnrepro.core.train import TrainConfig, evaluate, fit, seed_everything

from .convnet import ConvNet
from .force import KINDS
from .lowrank import METHODS, decompose, format_report, lowrank_report
from .regularizer import ForceRegularizer

MODELS = {"lenet": LeNet, "convnet": ConvNet}


def build_model(name: str, dataset: str) -> nn.Module:
    """``name`` (lenet | convnet) sized for ``dataset``'s channels and image size."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    if dataset not in core_data.DATASETS:
        raise ConfigError(
            f"unknown dataset {dataset!r}; choose one of {', '.join(core_data.DATASETS)}"
        )
    info = core_data.DATASETS[dataset]
    return MODELS[name](info.channels, info.size, info.num_classes)


def _parse_ranks(text: str | None) -> dict[str, int] | None:
    if not text:
        return None
    ranks = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise ConfigError(f"--ranks items look like conv1=5,conv2=12; got {item!r}")
        ranks[name.strip()] = int(value)
    return ranks


def _parse_layers(text: str | None) -> dict[str, float] | None:
    if not text:
        return None
    out = {}
    for item in text.split(","):
        name, sep, mult = item.partition("=")
        try:
            out[name.strip()] = float(mult) if sep else 1.0
        except ValueError as exc:
            raise ConfigError(f"--layers items look like conv1 or conv1=0.5; got {item!r}") from exc
    return out


def load_model(stem: str) -> tuple[nn.Module, dict]:
    """Rebuild the network saved at ``stem`` (dense or decomposed) and load its weights."""
    if not checkpoint.exists(stem):
        raise DataError(f"no weights at {stem} (expected {stem}.json); run 'train' first")
    _, meta = checkpoint.load(stem)
    if "model" not in meta or "dataset" not in meta:
        raise DataError(f"{stem}.json was not written by 'dnnrepro forcereg' (no model/dataset)")
    model = build_model(meta["model"], meta["dataset"])
    if meta.get("ranks"):
        model = decompose(model, ranks=meta["ranks"], inplace=True)
    checkpoint.load_weights(stem, model)
    return model, meta


def _train(args) -> int:
    build_model(args.model, args.dataset)  # bad names fail before any data is read
    seed_everything(args.seed)
    model = build_model(args.model, args.dataset)
    hooks = []
    if args.strength:
        hooks = [ForceRegularizer(model, args.strength, args.kind, _parse_layers(args.layers))]
    cfg = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        momentum=0.9,
        weight_decay=args.weight_decay,
        seed=args.seed,
    )
    train = core_data.load(args.dataset, "train", args.data_dir)
    test = core_data.load(args.dataset, "test", args.data_dir)
    result = fit(model, train, cfg, test=test, callbacks=hooks, checkpoint_dir=f"{args.out}.run")
    meta = {
        "model": args.model,
        "dataset": args.dataset,
        "strength": args.strength,
        "kind": args.kind,
        "test_accuracy": result.final["test_accuracy"],
    }
    checkpoint.save_weights(args.out, model, meta)
    print(f"test accuracy {result.final['test_accuracy']:.4f}; saved {args.out}")
    print(format_report(lowrank_report(model, train[0].shape[1:], args.energy)))
    return 0


def _decompose(args) -> int:
    model, meta = load_model(args.weights)
    if meta.get("ranks"):
        raise ConfigError(f"{args.weights} is already decomposed; start from dense weights")
    ranks = _parse_ranks(args.ranks)
    dec = decompose(
        model, args.energy, ranks, args.method, tuple(_parse_layers(args.exclude) or ()), True
    )
    rows = lowrank_report(dec)
    new_ranks = {r["layer"]: r["rank"] for r in rows if r["decomposed"]}
    test = core_data.load(meta["dataset"], "test", args.data_dir)
    acc = evaluate(dec, test)["accuracy"]
    print(f"accuracy after decomposition {acc:.4f}")
    if args.finetune_epochs:
        train = core_data.load(meta["dataset"], "train", args.data_dir)
        cfg = TrainConfig(
            epochs=args.finetune_epochs,
            batch_size=64,
            lr=args.lr,
            momentum=0.9,
            weight_decay=args.weight_decay,
        )
        acc = fit(dec, train, cfg, test=test, checkpoint_dir=f"{args.out}.run").final[
            "test_accuracy"
        ]
        print(f"accuracy after {args.finetune_epochs} fine-tuning epochs {acc:.4f}")
    checkpoint.save_weights(args.out, dec, {**meta, "ranks": new_ranks, "test_accuracy": acc})
    info = core_data.DATASETS[meta["dataset"]]
    print(format_report(lowrank_report(dec, (info.channels, info.size, info.size))))
    print(f"saved {args.out}")
    return 0


def _report(args) -> int:
    model, meta = load_model(args.weights)
    info = core_data.DATASETS[meta["dataset"]]
    print(format_report(lowrank_report(model, (info.channels, info.size, info.size), args.energy)))
    test = core_data.load(meta["dataset"], "test", args.data_dir)
    print(f"test accuracy {evaluate(model, test)['accuracy']:.4f} on {meta['dataset']}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add train, decompose and report to ``dnnrepro forcereg``."""
    t = sub.add_parser("train", help="train a net with force regularization")
    t.add_argument("--model", default="lenet", help="lenet | convnet")
    t.add_argument("--dataset", default="mnist5k")
    t.add_argument("--strength", type=float, default=2.5e-3, help="force_decay (0: off)")
    t.add_argument("--kind", default="degradation", choices=KINDS)
    t.add_argument("--layers", default=None, help="conv1,conv2=0.5 (default: every conv)")
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=0.01)
    t.add_argument("--weight-decay", type=float, default=5e-4)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--energy", type=float, default=0.95, help="energy for the rank report")
    t.add_argument("--out", required=True, help="checkpoint stem to write")
    t.add_argument("--data-dir", default=None)
    t.set_defaults(func=_train)

    d = sub.add_parser("decompose", help="low-rank decompose saved weights, optionally fine-tune")
    d.add_argument("--weights", required=True)
    d.add_argument("--energy", type=float, default=0.95, help="share of squared singular values")
    d.add_argument("--ranks", default=None, help="conv1=5,conv2=12 (overrides --energy)")
    d.add_argument("--method", default="pca", choices=METHODS)
    d.add_argument("--exclude", default=None, help="convs to keep dense, e.g. conv1")
    d.add_argument("--finetune-epochs", type=int, default=0)
    d.add_argument("--lr", type=float, default=0.005)
    d.add_argument("--weight-decay", type=float, default=5e-4)
    d.add_argument("--out", required=True)
    d.add_argument("--data-dir", default=None)
    d.set_defaults(func=_decompose)

    r = sub.add_parser("report", help="per-layer rank, energy, MACs, params of saved weights")
    r.add_argument("--weights", required=True)
    r.add_argument("--energy", type=float, default=0.95)
    r.add_argument("--data-dir", default=None)
    r.set_defaults(func=_report)
