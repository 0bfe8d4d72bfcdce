"""Side by side with pytorch-adapt: our DANN and DAN against the peer library's, all else equal.

Command (from the repository root; the peer lives in its own venv so that it can never replace the
project's torch, see the package README, section "Side by side with pytorch-adapt")::

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice -n 19 /work/venvs/padapt/bin/python \\
        packages/conv-m-da/compare/peer_side_by_side.py \\
        --out packages/conv-m-da/compare/peer_side_by_side.json

    # the same code path in seconds (2 seeds, a few steps, 128 images per split; writes nowhere
    # unless --out is given)
    ... peer_side_by_side.py --tiny

The venv (as used for the pinned JSON): ``python3 -m venv /work/venvs/padapt``; ``pip install -c
constraints.txt torch==2.13.0`` (the CPU wheel on the local disk; an unpinned torch pulls a CUDA
build), then ``pip install --no-deps`` of pytorch-adapt==0.0.83, pytorch-metric-learning==1.6.3
(the version pytorch-adapt pins), torchmetrics==1.9.0, lightning-utilities==0.15.3, packaging,
and under ``-c constraints.txt`` numpy, tqdm, scipy, safetensors; finally ``pip install
--no-deps -e shared -e packages/conv-m-da``. torchvision and scikit-learn are not needed: only
``pytorch_adapt.hooks``, ``.layers``, ``.models`` and ``.weighters`` are imported (a torchvision
wheel built for CUDA torch would not import against the CPU torch anyway).

Protocol, per seed (fixed here before any run, never changed after looking at a result):

1. the small profile's cell on TASK (digits -> mnist5k, 1x16x16): ``compact_net`` built under
   ``torch.manual_seed(seed)``, PRETRAIN source-only steps with ``adapt`` (Adam lr 1e-3,
   weight decay 5e-4, batch 32);
2. from that one pre-trained network, four arms of STEPS steps each:

   - ``ours-dann`` / ``ours-dan``: ``adapt(pre.model, ..., method="dann" | "dan")``, exactly as
     the experiment runs them;
   - ``theirs-dann``: pytorch-adapt's ``DANNHook``; ``theirs-dan``: its ``AlignerPlusCHook``
     with an ``AlignerHook`` on the features and ``MMDLoss(mmd_type="linear")``;

   with the same network (backbone + bottleneck = their G, classifier = their C, copied from the
   pre-trained net), the same source batches (the core loop's permutation of (seed, epoch)) and
   target batches (:class:`~dnnrepro.conv_m_da.adapt.TargetBatches`), the same Adam settings,
   the same learning-rate schedule (DANN: lr / (1 + 10 p)^0.75; DAN: constant), the same
   gradient-reversal coefficient 2/(1+exp(-10 p)) - 1 (set with their
   ``GradientReversal.update_weight`` every step), the same ramp of the MMD weight, and the same
   loss weights (their ``SumWeighter``: CE + 0.5 BCE_src + 0.5 BCE_tgt for DANN, CE + ramp * MMD
   for DAN; their default ``MeanWeighter`` would divide the total by the number of terms);
3. the target TEST accuracy of each arm's last iterate; AdaBN and the source-only network are
   recorded as references.

What stays theirs (the implementation differences this comparison measures):

- their hooks forward the source and the target batch SEPARATELY through G (and D), so
  BatchNorm normalizes each domain with its own batch statistics during training; ours forwards
  the joint batch;
- their discriminator is ``pytorch_adapt.models.Discriminator`` (Linear-ReLU-Linear-ReLU-Linear,
  hidden 256 as ours; no BatchNorm, which a per-domain forward would turn into a per-domain
  normalization that hides the domain offset); ours has BatchNorm after each hidden layer;
- their MMD bandwidth is the median of the source-source squared distances (kernel scales
  1/(2 * 2^k) so that each kernel is exp(-d^2 / (2 * 2^k * median)), k = -3..1); ours uses the
  mean pairwise squared distance of the joint batch; their linear estimator drops the last
  sample of an odd batch, ours falls back to the biased estimator there.

Diagnostic (``--diagnostic``, decided AFTER the main run showed ours-dan above theirs-dan in every
seed; post hoc, reported as such): the same seeds and steps, one arm ``theirs-dan-our-mmd``:
their DAN hook with our ``mk_mmd`` (joint-batch mean bandwidth) as its loss function. If it lands
near ``ours-dan``, the bandwidth explains the gap; near ``theirs-dan``, the per-domain forward
does. It reuses the main run's JSON (``--main``) for the other arms and checks that its
source-only accuracies equal that run's (same pre-trained networks).

Output: JSON with the per-seed accuracies (%), a t-interval (``dnnrepro.core.stats``) over seeds
per arm, and the paired per-seed difference ours - theirs per method with its t-interval
("matches within the interval" = the interval of the difference contains 0).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import platform
import sys
import time
from importlib import metadata

import torch
from torch import nn

from dnnrepro.conv_m_da.adapt import AdaptConfig, TargetBatches, adapt
from dnnrepro.conv_m_da.losses import mk_mmd
from dnnrepro.conv_m_da.networks import compact_net
from dnnrepro.conv_m_da.tasks import load_task
from dnnrepro.core import stats
from dnnrepro.core.io import write_json
from dnnrepro.core.train import evaluate

# -- fixed before any run (the small profile's settings; see the module doc) --------------------
TASK = "digits->mnist5k"
SEEDS = (0, 1, 2, 3, 4)
PRETRAIN = 300
STEPS = 200
BATCH = 32
TINY = {"seeds": (0, 1), "pretrain": 6, "steps": 4, "limit": 128}
ARMS = ("source_only", "adabn", "ours-dann", "theirs-dann", "ours-dan", "theirs-dan")


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The core loop's source permutation of ``epoch`` (dnnrepro.core.train.fit: a function of
    (seed, epoch)), so their arms see the same source batches as ours."""
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=gen)


def our_mmd(kernels):
    """Our MK-MMD as a loss function for their AlignerHook (the linear estimator, biased on an odd
    or unequal batch pair, as AdaptationObjective does)."""

    def fn(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        linear = len(source) == len(target) and len(source) % 2 == 0
        return mk_mmd(source, target, kernels, "linear" if linear else "biased")

    return fn


def train_theirs(
    method: str, pre_model: nn.Module, task, config: AdaptConfig, mmd_fn=None
) -> nn.Module:
    """Run pytorch-adapt's DANN or DAN hook for ``config.steps`` steps from ``pre_model``.

    ``mmd_fn``: replaces their ``MMDLoss`` in the DAN hook (the diagnostic).

    Returns the trained network (an AdaptationNet copy whose modules their G and C trained).
    """
    from pytorch_adapt.hooks import (
        AlignerHook,
        AlignerPlusCHook,
        DANNHook,
        FeaturesForDomainLossHook,
        GradientReversalHook,
    )
    from pytorch_adapt.layers import MMDLoss
    from pytorch_adapt.models import Discriminator
    from pytorch_adapt.weighters import SumWeighter

    c = dataclasses.replace(config, method=method).resolved()
    objective = c.objective()  # only its schedules: grl_coeff(step) (also the MMD weight's ramp)
    train = c.train_config()
    xs, ys = task.source_train
    net = copy.deepcopy(pre_model)
    torch.manual_seed(c.seed)  # the new heads' initialization, as adapt does
    G = nn.Sequential(net.features, net.bottleneck)
    C = net.classifier
    models = {"G": G, "C": C}
    if method == "dann":
        models["D"] = Discriminator(in_size=c.bottleneck, h=c.discriminator_hidden)
    opts = [
        torch.optim.Adam(m.parameters(), lr=c.lr, betas=train.betas, weight_decay=c.weight_decay)
        for m in models.values()
    ]
    if method == "dann":
        f_hook = FeaturesForDomainLossHook()
        grl = GradientReversalHook(weight=0.0, apply_to=f_hook.out_keys)
        half = 0.5 * c.lambda_domain
        weights = {"src_c_loss": 1.0, "src_domain_loss": half, "target_domain_loss": half}
        weighter = SumWeighter(weights=weights)
        hook = DANNHook(opts=opts, weighter=weighter, f_hook=f_hook, gradient_reversal=grl)
    elif method == "dan":
        scales = torch.tensor([1.0 / (2.0 * k) for k in c.kernels])
        loss_fn = MMDLoss(kernel_scales=scales, mmd_type="linear") if mmd_fn is None else mmd_fn
        weighter = SumWeighter(weights={"src_c_loss": 1.0, "features_confusion_loss": 0.0})
        hook = AlignerPlusCHook(
            opts=opts,
            weighter=weighter,
            loss_fn=loss_fn,
            aligner_hook=AlignerHook(loss_fn, layer="features"),
        )
    else:
        raise ValueError(f"no peer arm for {method!r}")
    batches = TargetBatches(task.target_train[0], c.batch_size, c.seed)
    per_epoch = max(1, math.ceil(len(xs) / c.batch_size))
    torch.manual_seed(c.seed)  # as fit does before its first step
    for m in models.values():
        m.train()
    step, epoch = 0, 0
    while step < c.steps:
        order = epoch_order(len(xs), c.seed, epoch)
        for j in range(per_epoch):
            if step >= c.steps:
                break
            idx = order[j * c.batch_size :][: c.batch_size]
            xb, yb = xs[idx], ys[idx]
            xt = batches(step, len(xb))
            lr = train.lr_at(step, per_epoch)
            for opt in opts:
                for group in opt.param_groups:
                    group["lr"] = lr
            coeff = objective.grl_coeff(step)
            if method == "dann":
                grl.fn.update_weight(coeff)
            else:
                ramp = coeff if c.ramp_weights else 1.0
                weighter.weights["features_confusion_loss"] = ramp * c.lambda_mmd
            inputs = {
                **models,
                "src_imgs": xb,
                "src_labels": yb,
                "target_imgs": xt,
                "src_domain": torch.zeros(len(xb)),
                "target_domain": torch.ones(len(xt)),
            }
            hook(inputs)
            step += 1
        epoch += 1
    return net


def accuracy(model: nn.Module, pair) -> float:
    """Test accuracy in percent."""
    return 100.0 * evaluate(model, pair)["accuracy"]


def run_seed(
    seed: int, task, pretrain: int, steps: int, log, arms: tuple[str, ...] = ARMS
) -> dict[str, float]:
    """The ``arms`` of one seed (source_only first); target test accuracies (%)."""
    cfg = AdaptConfig(seed=seed, batch_size=BATCH)
    torch.manual_seed(seed)
    net = compact_net(10, "small", task.source_train[0].shape[1])
    xt = task.target_train[0]  # images only: target labels never reach training
    pre = adapt(net, task.source_train, xt, "source_only", steps=pretrain, config=cfg)
    out = {"source_only": accuracy(pre.model, task.target_test)}
    timing = {}
    for arm in arms[1:]:
        start = time.perf_counter()
        side, _, method = arm.partition("-")
        if arm == "theirs-dan-our-mmd":
            cfg_t = dataclasses.replace(cfg, steps=steps)
            model = train_theirs("dan", pre.model, task, cfg_t, mmd_fn=our_mmd(cfg.kernels))
        elif arm == "adabn":
            model = adapt(pre.model, task.source_train, xt, "adabn", config=cfg).model
        elif side == "ours":
            model = adapt(pre.model, task.source_train, xt, method, steps=steps, config=cfg).model
        else:
            cfg_t = dataclasses.replace(cfg, steps=steps)
            model = train_theirs(method, pre.model, task, cfg_t)
        out[arm] = accuracy(model, task.target_test)
        timing[arm] = time.perf_counter() - start
        log(f"seed {seed} {arm}: {out[arm]:.2f}% ({timing[arm]:.0f} s)")
    return out


def interval(values: list[float]) -> dict:
    if len(values) < 2:
        return {"mean": values[0] if values else None, "n": len(values)}
    return stats.t_interval(values).as_dict()


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in (
        "torch",
        "pytorch-adapt",
        "pytorch-metric-learning",
        "dnnrepro-core",
        "dnnrepro-conv-m-da",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="JSON file to write (atomic)")
    parser.add_argument("--tiny", action="store_true", help="2 seeds, a few steps: code path only")
    parser.add_argument(
        "--diagnostic", action="store_true", help="the post-hoc DAN arm (module doc)"
    )
    parser.add_argument("--main", help="the main run's JSON (with --diagnostic)")
    args = parser.parse_args(argv)
    if args.diagnostic:
        return diagnostic(args)
    seeds, pretrain, steps, limit = SEEDS, PRETRAIN, STEPS, None
    if args.tiny:
        seeds, pretrain, steps, limit = (
            TINY["seeds"],
            TINY["pretrain"],
            TINY["steps"],
            TINY["limit"],
        )
    torch.set_num_threads(1)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    task = load_task(TASK, limit=limit)
    start = time.perf_counter()
    per_seed = {arm: [] for arm in ARMS}
    for seed in seeds:
        accs = run_seed(seed, task, pretrain, steps, log)
        for arm in ARMS:
            per_seed[arm].append(accs[arm])
    diffs = {
        m: [o - t for o, t in zip(per_seed[f"ours-{m}"], per_seed[f"theirs-{m}"], strict=True)]
        for m in ("dann", "dan")
    }
    summary = {arm: interval(v) for arm, v in per_seed.items()}
    paired = {m: interval(v) for m, v in diffs.items()}
    match = {m: (p["low"] <= 0.0 <= p["high"]) if "low" in p else None for m, p in paired.items()}
    result = {
        "task": TASK,
        "tiny": bool(args.tiny),
        "seeds": list(seeds),
        "pretrain_steps": pretrain,
        "steps": steps,
        "batch_size": BATCH,
        "limit": limit,
        "metric": "target test accuracy (%), last iterate",
        "per_seed_percent": per_seed,
        "interval_percent": summary,
        "ours_minus_theirs_pp": {m: {"per_seed": diffs[m], **paired[m]} for m in diffs},
        "matches_within_interval": match,
        "versions": versions(),
        "threads": torch.get_num_threads(),
        "wall_seconds": time.perf_counter() - start,
    }
    for arm in ARMS:
        s = summary[arm]
        band = f" [{s['low']:.2f}, {s['high']:.2f}]" if "low" in s else ""
        print(f"{arm:12s} {s['mean']:.2f}%{band} n={s['n']}")
    for m, p in paired.items():
        band = f" [{p['low']:.2f}, {p['high']:.2f}]" if "low" in p else ""
        print(f"ours - theirs {m}: {p['mean']:+.2f} pp{band}; match: {match[m]}")
    if args.out:
        write_json(args.out, result)
    return 0


def diagnostic(args) -> int:
    """``theirs-dan-our-mmd`` per seed, set against the main run's arms (module doc)."""
    import json

    if not args.main:
        raise SystemExit("--diagnostic needs --main <the main run's JSON>")
    main_run = json.loads(open(args.main).read())
    seeds, pretrain, steps, limit = SEEDS, PRETRAIN, STEPS, None
    if args.tiny:
        seeds, pretrain, steps, limit = (TINY[k] for k in ("seeds", "pretrain", "steps", "limit"))
    if [main_run["seeds"], main_run["pretrain_steps"], main_run["steps"]] != [
        list(seeds),
        pretrain,
        steps,
    ]:
        raise SystemExit(f"{args.main} was run with other seeds or steps")
    torch.set_num_threads(1)
    task = load_task(TASK, limit=limit)
    start = time.perf_counter()
    arms = ("source_only", "theirs-dan-our-mmd")
    per_seed = {arm: [] for arm in arms}
    for seed in seeds:
        accs = run_seed(seed, task, pretrain, steps, lambda m: print(m, file=sys.stderr), arms)
        for arm in arms:
            per_seed[arm].append(accs[arm])
    same_start = per_seed["source_only"] == main_run["per_seed_percent"]["source_only"]
    new = per_seed["theirs-dan-our-mmd"]
    ours, theirs = (main_run["per_seed_percent"][a] for a in ("ours-dan", "theirs-dan"))
    result = {
        "post_hoc": True,
        "seeds": list(seeds),
        "pretrain_steps": pretrain,
        "steps": steps,
        "same_pretrained_networks_as_main_run": same_start,
        "per_seed_percent": per_seed,
        "interval_percent": {"theirs-dan-our-mmd": interval(new)},
        "ours_dan_minus_this_pp": interval([a - b for a, b in zip(ours, new, strict=True)]),
        "this_minus_theirs_dan_pp": interval([a - b for a, b in zip(new, theirs, strict=True)]),
        "versions": versions(),
        "wall_seconds": time.perf_counter() - start,
    }
    for key in ("interval_percent", "ours_dan_minus_this_pp", "this_minus_theirs_dan_pp"):
        print(key, json.dumps(result[key]))
    print("same pre-trained networks as the main run:", same_start)
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
