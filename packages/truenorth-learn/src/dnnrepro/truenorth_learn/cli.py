"""Extra subcommands: ``dnnrepro truenorth-learn train|deploy|map|export``.

dnnrepro truenorth-learn train --dataset digits --penalty l1_to_binary --strength 3 --out m
dnnrepro truenorth-learn deploy --model m --copies 16 --ticks 4
dnnrepro truenorth-learn map --arch mnist-5core        (or --model m)
dnnrepro truenorth-learn export --model m --copies 4 --out cores.json
dnnrepro truenorth-learn deploy --cores cores.json --dataset digits --ticks 4
"""

from __future__ import annotations

import json

from dnnrepro.core import checkpoint
from dnnrepro.core.data import load
from dnnrepro.core.errors import ConfigError

from .mapping import map_to_cores
from .penalty import KINDS
from .simulate import BACKENDS, INPUTS, deploy
from .tea import ARCHITECTURES, DATASET_ARCH, build
from .training import TeaTrainSpec, binary_fraction, train_tea


def _load_model(stem: str):
    _, meta = checkpoint.load(stem)
    arch = meta.get("arch")
    if arch not in ARCHITECTURES:
        raise ConfigError(f"{stem}: no known architecture in its metadata ({arch!r})")
    model = build(arch)
    checkpoint.load_weights(stem, model)
    return model, meta


def _train(args) -> int:
    if args.dataset not in DATASET_ARCH:
        raise ConfigError(f"--dataset must be one of {', '.join(DATASET_ARCH)}")
    spec = TeaTrainSpec(
        arch=DATASET_ARCH[args.dataset],
        epochs=args.epochs,
        lr=args.lr,
        seed=args.seed,
        penalty_kind=args.penalty,
        penalty_strength=args.strength if args.penalty else 0.0,
    )
    train, test = (
        load(args.dataset, "train", args.data_dir),
        load(args.dataset, "test", args.data_dir),
    )
    model, result = train_tea(spec, train, test, checkpoint_dir=args.out + ".run")
    meta = {"arch": spec.arch, "dataset": args.dataset, "spec": spec.__dict__, **result.final}
    checkpoint.save_weights(args.out, model, meta)
    print(
        f"{args.out}: float test accuracy {result.final['test_accuracy']:.4f}, "
        f"binary fraction of p {binary_fraction(model):.3f}"
    )
    return 0


def _deploy(args) -> int:
    if (args.model is None) == (args.cores is None):
        raise ConfigError("give exactly one of --model or --cores")
    if args.cores is not None:
        return _deploy_cores(args)
    model, meta = _load_model(args.model)
    dataset = args.dataset or meta.get("dataset")
    if dataset is None:
        raise ConfigError("give --dataset (the checkpoint does not name one)")
    x, y = load(dataset, "test", args.data_dir)
    if args.limit:
        x, y = x[: args.limit], y[: args.limit]
    res = deploy(model, (x, y), args.copies, args.ticks, args.seed, args.backend, args.inputs)
    print(json.dumps(res.as_dict()))
    return 0


def _deploy_cores(args) -> int:
    """Run the chip described by a core file (the copies it holds) for --ticks ticks."""
    import torch

    from .corefile import read_cores, simulate_cores
    from .simulate import ensemble_predictions

    doc = read_cores(args.cores)
    if args.dataset is None:
        raise ConfigError("give --dataset with --cores")
    x, y = load(args.dataset, "test", args.data_dir)
    if args.limit:
        x, y = x[: args.limit], y[: args.limit]
    counts = simulate_cores(doc, x, args.ticks, args.seed, inputs=args.inputs)
    class_size = torch.zeros(doc["num_classes"])
    for c in doc["cores"]:
        if c["copy"] == 0:
            for t in c["neuron_target"]:
                if isinstance(t, dict) and "class" in t:
                    class_size[t["class"]] += 1
    pred = ensemble_predictions(counts.to(torch.int64).sum((0, 1)), class_size)
    acc = float((pred == y).to(torch.float64).mean())
    print(json.dumps({"accuracy": acc, "copies": doc["copies"], "ticks": args.ticks}))
    return 0


def _export(args) -> int:
    from .corefile import export_cores, write_cores

    model, meta = _load_model(args.model)
    doc = export_cores(model, args.copies, args.seed, arch=meta.get("arch"))
    path = write_cores(args.out, doc)
    print(f"{path}: {len(doc['cores'])} cores ({args.copies} copies)")
    return 0


def _map(args) -> int:
    if (args.arch is None) == (args.model is None):
        raise ConfigError("give exactly one of --arch or --model")
    model = build(args.arch) if args.arch else _load_model(args.model)[0]
    plan = map_to_cores(model)
    print(plan.summary())
    if args.copies:
        print(f"{args.copies} copies use {plan.cores_for(args.copies)} cores")
    return 0


def add_commands(sub) -> None:
    t = sub.add_parser("train", help="train a TeaNet (Esser baseline, or with --penalty)")
    t.add_argument("--dataset", default="digits", help=f"one of {', '.join(DATASET_ARCH)}")
    t.add_argument("--penalty", default=None, choices=KINDS)
    t.add_argument("--strength", type=float, default=3.0)
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--lr", type=float, default=0.02)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--data-dir", default=None)
    t.add_argument("--out", required=True, help="checkpoint stem for the trained model")
    t.set_defaults(func=_train)
    d = sub.add_parser("deploy", help="simulate the sampled chip: copies x ticks")
    d.add_argument("--model", default=None, help="checkpoint stem of a trained model")
    d.add_argument("--cores", default=None, help="a core file written by `export`")
    d.add_argument("--dataset", default=None)
    d.add_argument("--copies", type=int, default=1)
    d.add_argument("--ticks", type=int, default=1)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--limit", type=int, default=None, help="first N test images only")
    d.add_argument("--backend", default="auto", choices=BACKENDS)
    d.add_argument(
        "--inputs",
        default="independent",
        choices=INPUTS,
        help="one input spike source per copy (independent, default) or one for all (shared)",
    )
    d.add_argument("--data-dir", default=None)
    d.set_defaults(func=_deploy)
    m = sub.add_parser("map", help="place a network on TrueNorth cores and check the limits")
    m.add_argument("--arch", default=None, choices=list(ARCHITECTURES))
    m.add_argument("--model", default=None)
    m.add_argument("--copies", type=int, default=None)
    m.set_defaults(func=_map)
    e = sub.add_parser("export", help="write every core of sampled copies as JSON (README schema)")
    e.add_argument("--model", required=True, help="checkpoint stem of a trained model")
    e.add_argument("--copies", type=int, default=1)
    e.add_argument("--seed", type=int, default=0, help="seed of the sampled crossbars")
    e.add_argument("--out", required=True, help="the JSON file to write")
    e.set_defaults(func=_export)
