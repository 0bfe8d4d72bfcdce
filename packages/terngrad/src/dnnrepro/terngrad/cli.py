"""Extra subcommands: ``dnnrepro terngrad train`` and ``dnnrepro terngrad perfmodel``."""

from __future__ import annotations

import json

from dnnrepro.core.errors import ConfigError

from .models import MODELS
from .packing import CODECS
from .wire import DEFAULT_CODEC, DEFAULT_WIRE, WIRE_CHOICES, WIRES


def add_commands(sub) -> None:
    t = sub.add_parser("train", help="data-parallel training on N local gloo processes")
    t.add_argument("--workers", type=int, default=2, help="gloo processes (default 2)")
    t.add_argument("--model", default="lenet", choices=MODELS)
    t.add_argument("--dataset", default="mnist5k")
    t.add_argument("--data-dir", default=None)
    t.add_argument("--method", default="terngrad", choices=("terngrad", "fp32"))
    t.add_argument("--wire", default=DEFAULT_WIRE, choices=WIRE_CHOICES)
    t.add_argument("--codec", default=DEFAULT_CODEC, choices=CODECS)
    t.add_argument("--clip", type=float, default=2.5, help="clip factor c; 0 turns clipping off")
    t.add_argument("--no-scaler-sharing", action="store_true", help="only with --wire allgather")
    t.add_argument("--min-numel", type=int, default=0, help="smaller tensors travel as float")
    t.add_argument("--exclude", nargs="*", default=[], help="parameter names sent as float")
    t.add_argument("--batch", type=int, default=64, help="total batch over all workers")
    t.add_argument("--epochs", type=int, default=1)
    t.add_argument(
        "--steps", type=int, default=None, help="train this many steps (instead of --epochs)"
    )
    t.add_argument("--lr", type=float, default=0.01)
    t.add_argument("--weight-decay", type=float, default=5e-4)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--checkpoint-dir", default=None, help="resume from / save to this folder")
    t.add_argument("--timeout", type=float, default=3600, help="seconds before giving up")
    t.set_defaults(func=_train)

    p = sub.add_parser("perfmodel", help="modelled throughput and speedup (Fig. 5 trends)")
    p.add_argument("--net", default="alexnet", help="alexnet | googlenet | vgg-a")
    p.add_argument("--cluster", default="ethernet-1g", help="ethernet-1g | infiniband-100g")
    p.add_argument("--gpus", type=int, nargs="*", default=None, help="GPU counts (default 1..512)")
    p.add_argument("--wire", default="a2a", choices=WIRES)
    p.add_argument("--codec", default="base3", choices=CODECS)
    p.set_defaults(func=_perfmodel)

    nb = sub.add_parser(
        "netbench", help="measured step times on a slow network of namespaces (root, ip, tc)"
    )
    nb.add_argument("--out", default="paper_results/terngrad")
    nb.add_argument("--workers", type=int, nargs="*", default=[2, 4])
    nb.add_argument("--rates", type=float, nargs="*", default=[100.0, 1000.0], help="Mbit/s")
    nb.add_argument("--models", nargs="*", default=["fc25m", "lenet"])
    nb.add_argument("--wires", nargs="*", default=["int8", "fields", "a2a", "allgather"])
    nb.add_argument("--steps", type=int, default=3)
    nb.add_argument("--warmup", type=int, default=1)
    nb.add_argument("--delay-ms", type=float, default=0.0)
    nb.set_defaults(func=_netbench)


def _train(args) -> int:
    from .launch import launch
    from .workers import train_worker

    if args.workers < 1:
        raise ConfigError("--workers must be >= 1")
    if args.batch % args.workers:
        raise ConfigError(f"--batch {args.batch} must be divisible by --workers {args.workers}")
    if args.steps is not None and args.steps < 1:
        raise ConfigError("--steps must be >= 1")
    if args.clip < 0:
        raise ConfigError("--clip must be >= 0 (0 turns clipping off)")
    job = {
        "model": args.model,
        "dataset": args.dataset,
        "data_dir": args.data_dir,
        "batch": args.batch,
        "epochs": args.epochs,
        "steps": args.steps,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "seed": args.seed,
        "method": args.method,
        "wire": args.wire,
        "codec": args.codec,
        "clip_c": args.clip or None,
        "scaler_sharing": not args.no_scaler_sharing,
        "min_numel": args.min_numel,
        "exclude": args.exclude,
        "checkpoint_dir": args.checkpoint_dir,
    }
    if args.method == "terngrad":  # fail here, before any process starts
        from .hook import TernGradState
        from .wire import check_wire

        check_wire(args.wire, args.codec, args.workers, not args.no_scaler_sharing)
        TernGradState(wire=args.wire, codec=args.codec, clip_c=job["clip_c"])
    ranks = launch(train_worker, args.workers, job, timeout_s=args.timeout)
    summary = {
        "workers": args.workers,
        "method": args.method,
        "wire": args.wire if args.method == "terngrad" else "fp32 allreduce",
        "test_accuracy": ranks[0]["final"].get("test_accuracy"),
        "steps": ranks[0]["steps"],
        "seconds": round(ranks[0]["seconds"], 2),
        "ranks_identical": len({r["digest"] for r in ranks}) == 1,
        "bytes_handed_rank0": ranks[0]["wire_total"],
    }
    print(json.dumps(summary, indent=2))
    return 0


def _perfmodel(args) -> int:
    from . import perfmodel

    if args.net not in perfmodel.NETWORKS:
        raise ConfigError(
            f"unknown --net {args.net!r}; choose one of {', '.join(perfmodel.NETWORKS)}"
        )
    if args.cluster not in perfmodel.CLUSTERS:
        raise ConfigError(
            f"unknown --cluster {args.cluster!r}; choose one of {', '.join(perfmodel.CLUSTERS)}"
        )
    gpus = args.gpus or list(perfmodel.GPU_COUNTS)
    if any(g < 1 for g in gpus):
        raise ConfigError("--gpus must be integers >= 1")
    print(f"{'gpus':>5} {'fp32 img/s':>12} {'TernGrad img/s':>15} {'speedup':>8}")
    for n in gpus:
        fp = perfmodel.throughput(args.net, args.cluster, n, "fp32")
        tg = perfmodel.throughput(
            args.net, args.cluster, n, "terngrad", wire=args.wire, codec=args.codec
        )
        print(f"{n:>5} {fp:>12.0f} {tg:>15.0f} {tg / fp:>8.2f}")
    return 0


def _netbench(args) -> int:
    from .netbench import run_and_write
    from .netns import check_privileges

    check_privileges()
    if any(n < 1 for n in args.workers) or any(r <= 0 for r in args.rates) or args.steps < 1:
        raise ConfigError("--workers and --steps must be >= 1 and --rates > 0")
    return run_and_write(args)
