"""Extra subcommands: ``dnnrepro poisongen attack ...`` and ``dnnrepro poisongen detect ...``.

    dnnrepro poisongen attack --dataset digits --method direct-faithful --n 5 --out poisons
    dnnrepro poisongen detect --poisons poisons --quantile 0.99

``attack`` pretrains (or reuses) the target under --work-dir, makes poisons from training images,
saves them as a checkpoint (``<out>.json`` + safetensors: x, y, seed_x, seed_y) and prints their
effect under the authors' re-training protocol. ``detect`` loads the same target, calibrates the
loss threshold on half of the test set and reports TPR/FPR/AUC on the poisons mixed with the other
half.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from dnnrepro.core import checkpoint
from dnnrepro.core import data as core_data
from dnnrepro.core.errors import ConfigError
from dnnrepro.core.io import write_json, write_text

from .detect import LossDetector
from .direct import DirectGradientAttack
from .evaluate import evaluate
from .generative import GenerativeAttack
from .retrain import Retraining
from .targets import TARGETS, center_crop, train_target

METHODS = ("direct-faithful", "direct-exact", "generative-faithful", "generative-unrolled")


def _target(args):
    if args.dataset not in TARGETS:
        raise ConfigError(f"--dataset must be one of {', '.join(TARGETS)}, not {args.dataset!r}")
    train = core_data.load(args.dataset, "train", args.data_dir)
    test = core_data.load(args.dataset, "test", args.data_dir)
    steps = getattr(args, "target_steps", None)
    if steps is not None and steps < 1:
        raise ConfigError("--target-steps must be >= 1")
    name = f"{args.dataset}-seed{args.seed}" + (f"-steps{steps}" if steps else "")
    work = Path(args.work_dir) / "poisongen" / "cli" / name / "target"
    model, _ = train_target(args.dataset, train, args.seed, work, max_steps=steps)
    crop = TARGETS[args.dataset].crop
    if crop:
        train = (center_crop(train[0], crop), train[1])
        test = (center_crop(test[0], crop), test[1])
    return model, train, test


def _attack(args) -> int:
    if args.method not in METHODS:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)}, not {args.method!r}")
    if args.n < 1:
        raise ConfigError("--n must be >= 1")
    model, (x, y), test = _target(args)
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(10_000 + args.seed))
    seeds = (x[idx[: args.n]], y[idx[: args.n]])
    victim = Retraining(args.lr)
    kind, rule = args.method.split("-")
    if kind == "direct":
        attack = DirectGradientAttack(model, (x, y), mode=rule, retraining=victim, seed=args.seed)
    else:
        attack = GenerativeAttack(
            model, (x, y), reward=rule, rounds=args.rounds, retraining=victim, seed=args.seed
        ).fit()
    x_p, y_p = attack.poison(*seeds)
    stem = Path(args.out)
    meta = {
        "dataset": args.dataset,
        "seed": args.seed,
        "method": args.method,
        "lr": args.lr,
        "target_steps": args.target_steps,
    }
    checkpoint.save(stem, {"x": x_p, "y": y_p, "seed_x": seeds[0], "seed_y": seeds[1]}, meta)
    effect = evaluate(model, (x_p, y_p), test, attack.normal, "per_point", victim)
    print(
        json.dumps(
            {
                "saved": str(stem) + ".json",
                "n": args.n,
                "accuracy_before": effect["before"]["test_accuracy"],
                "accuracy_after_mean": effect["after"]["test_accuracy"],
                "accuracy_drop_pp": round(effect["accuracy_drop_pp"], 3),
            },
            indent=1,
        )
    )
    return 0


def _detect(args) -> int:
    tensors, meta = checkpoint.load(Path(args.poisons))
    if "x" not in tensors or "y" not in tensors:
        raise ConfigError(f"{args.poisons}: not a poisons file written by 'poisongen attack'")
    args.dataset, args.seed = meta["dataset"], meta["seed"]
    args.target_steps = meta.get("target_steps")
    model, _, (xt, yt) = _target(args)
    perm = torch.randperm(len(xt), generator=torch.Generator().manual_seed(args.seed))
    hold, stream = perm[: len(xt) // 2], perm[len(xt) // 2 :]
    detector = LossDetector(model, (xt[hold], yt[hold]), quantile=args.quantile)
    x = torch.cat([xt[stream], tensors["x"]])
    y = torch.cat([yt[stream], tensors["y"]])
    truth = torch.cat(
        [
            torch.zeros(len(stream), dtype=torch.bool),
            torch.ones(len(tensors["x"]), dtype=torch.bool),
        ]
    )
    report, _ = detector.detect(x, y, truth)
    print(json.dumps({"poisons": args.poisons, "method": meta["method"], **report}, indent=1))
    return 0


def _compare_defences(args) -> int:
    try:
        from .art_adapter import defence_table, table_markdown
    except ImportError as exc:
        raise ConfigError(str(exc)) from exc
    if args.n < 1:
        raise ConfigError("--n must be >= 1")
    args.seed = 0
    model, (x, y), (xt, yt) = _target(args)
    half = len(xt) // 2  # first half of the test split: the threshold's clean hold-out
    result = defence_table(model, (x, y), (xt[:half], yt[:half]), n_poisons=args.n)
    result["dataset"] = args.dataset
    out = Path(args.out)
    write_json(out / "defences.json", result)
    write_text(out / "defences.md", table_markdown(result) + "\n")
    print(table_markdown(result))
    print(f"wrote {out / 'defences.json'} and {out / 'defences.md'}")
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``attack`` and ``detect`` next to ``reproduce``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir", default=None, help="data folder (default $DNNREPRO_DATA or ./data)"
    )
    common.add_argument("--work-dir", default="runs", help="where the pretrained target is cached")
    a = subparsers.add_parser(
        "attack", parents=[common], help="make poisons against a pretrained target"
    )
    a.add_argument("--dataset", default="mnist5k", help=f"one of {', '.join(TARGETS)}")
    a.add_argument("--method", default="generative-faithful", help=" | ".join(METHODS))
    a.add_argument("--n", type=int, default=10, help="number of poisons")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--lr", type=float, default=0.05, help="victim re-training lr (bias 2x)")
    a.add_argument("--rounds", type=int, default=10, help="generator update rounds")
    a.add_argument("--out", default="poisons", help="checkpoint stem for the poisons")
    a.add_argument(
        "--target-steps",
        type=int,
        default=None,
        help="stop the target's pretraining after this many steps (quick trials; default: full recipe)",
    )
    a.set_defaults(func=_attack)
    d = subparsers.add_parser(
        "detect", parents=[common], help="run the loss detector on saved poisons"
    )
    d.add_argument("--poisons", default="poisons", help="stem written by 'attack'")
    d.add_argument("--quantile", type=float, default=0.99, help="in (0, 1)")
    d.set_defaults(func=_detect)
    c = subparsers.add_parser(
        "compare-defences",
        parents=[common],
        help="our loss filter vs ART's ActivationDefence and SpectralSignatureDefense (needs [art])",
    )
    c.add_argument("--dataset", default="mnist5k", help=f"one of {', '.join(TARGETS)}")
    c.add_argument("--n", type=int, default=20, help="poisons per kind")
    c.add_argument("--out", default="paper_results/poisongen", help="folder for defences.json/.md")
    c.add_argument("--target-steps", type=int, default=None, help="as for attack (quick trials)")
    c.set_defaults(func=_compare_defences)
