"""One reproduction experiment: pretrain, continue with and without force, decompose, fine-tune.

For a network/dataset ``Setup`` and one seed:

1. start from a pretrained dense net (the pinned core baseline, or a run trained once here);
2. continue training it for the same steps twice: ``control`` (weight decay only) and ``force``
   (weight decay + ForceRegularizer), the paper's "retrain a trained net with force" recipe;
3. measure per layer the rank that keeps ``energy`` of the squared singular values, and accuracy;
4. decompose both at the same per-layer rank fractions (accuracy vs total rank, no fine-tuning);
5. decompose both at the force net's ranks and fine-tune both the same way (convergence curves);
6. optionally time the conv stack (dense control vs decomposed force net) and prune the basis
   layers of the fine-tuned decomposed net by magnitude, then fine-tune with the mask.

Every training run checkpoints under ``ctx.work(...)``; a killed run resumes where it stopped.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from dnnrepro.core import baselines, checkpoint
from dnnrepro.core.bench import threads, time_callable
from dnnrepro.core.models import count_params
from dnnrepro.core.paper import RunContext
from dnnrepro.core.train import TrainConfig, evaluate, fit, seed_everything

from .lowrank import decompose, lowrank_report, ranks_for_energy
from .prune import prune_basis
from .regularizer import ForceRegularizer


@dataclass(frozen=True)
class Setup:
    """A network on a dataset, with the schedule of every stage (see the module doc)."""

    name: str
    dataset: str
    build: Callable[[], nn.Module]
    cont: TrainConfig  # continuation (control and force runs); its seed is replaced per seed
    finetune: TrainConfig  # after decomposition (and after pruning, with epochs=prune_epochs)
    strength: float
    kind: str = "degradation"
    force_layers: tuple[str, ...] | None = None  # None: every conv
    baseline: str | None = None  # a dnnrepro.core.baselines name to start from
    pretrain: TrainConfig | None = None  # else: train the start here once
    train_subset: int | None = None  # first k training images of a stratified shuffle
    exclude: tuple[str, ...] = ()  # convs not decomposed (too small to pay off)
    energy: float = 0.95
    fractions: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5)
    time_batch: int | None = None  # batch for conv-stack timing; None: no timing
    time_repeats: int = 10
    prune_sparsity: float | None = None
    prune_epochs: int = 1
    notes: dict[str, str] = field(default_factory=dict)


def _subset(x: torch.Tensor, y: torch.Tensor, k: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    if k is None or k >= len(x):
        return x, y
    # a fixed shuffle (independent of the run seed) so every seed and stage sees the same images
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(1703))[:k]
    return x[order], y[order]


def start_model(ctx: RunContext, setup: Setup, train, test) -> nn.Module:
    """The pretrained dense net every seed of ``setup`` starts from."""
    if setup.baseline is not None:
        return baselines.get(setup.baseline, ctx.data_dir, train=True)
    stem = ctx.work(setup.name, "pretrained") / "weights"
    model = setup.build()
    if checkpoint.exists(stem):
        checkpoint.load_weights(stem, model)
        return model
    seed_everything(setup.pretrain.seed)
    model = setup.build()
    ctx.log(f"{setup.name}: pretraining on {setup.dataset} ({setup.pretrain.epochs} epochs)")
    result = fit(
        model,
        train,
        setup.pretrain,
        test=test,
        checkpoint_dir=ctx.work(setup.name, "pretrain-run"),
    )
    checkpoint.save_weights(stem, model, {"test_accuracy": result.final["test_accuracy"]})
    return model


def _accuracy(model: nn.Module, test) -> float:
    return evaluate(model, test)["accuracy"]


def _total(ranks: dict[str, int], layers) -> int:
    return sum(ranks[n] for n in layers)


def _fraction_ranks(model: nn.Module, layers, fraction: float) -> dict[str, int]:
    out = {}
    for name in layers:
        conv = model.get_submodule(name)
        max_rank = min(conv.out_channels, conv.weight[0].numel())
        out[name] = max(1, min(max_rank, math.ceil(fraction * max_rank)))
    return out


def _conv_stack(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    return model.features if hasattr(model, "features") else model


def run_seed(ctx: RunContext, setup: Setup, seed: int) -> dict:
    """Everything measured for one seed of ``setup``; JSON-able (stored by ``ctx.stage``)."""
    x, y = ctx.load(setup.dataset, "train")
    train = _subset(x, y, setup.train_subset)
    test = ctx.load(setup.dataset, "test")
    start = start_model(ctx, setup, train, test)
    work = (setup.name, f"seed{seed}")
    cont = replace(setup.cont, seed=seed)

    nets: dict[str, nn.Module] = {}
    for arm in ("control", "force"):
        model = copy.deepcopy(start)
        hooks = []
        if arm == "force":
            per_layer = None if setup.force_layers is None else dict.fromkeys(setup.force_layers, 1)
            hooks = [ForceRegularizer(model, setup.strength, setup.kind, per_layer)]
        ctx.log(f"{setup.name} seed {seed}: continuing {arm} ({cont.epochs} epochs)")
        fit(model, train, cont, test=test, callbacks=hooks, checkpoint_dir=ctx.work(*work, arm))
        nets[arm] = model

    out: dict = {"start_accuracy": _accuracy(start, test)}
    layers = [n for n in ranks_for_energy(start) if n not in setup.exclude]
    for arm, model in nets.items():
        ranks = ranks_for_energy(model, setup.energy)
        out[arm] = {
            "accuracy": _accuracy(model, test),
            "ranks": ranks,
            "total_rank": _total(ranks, ranks),
        }

    # accuracy vs total rank, no fine-tuning: the same rank fractions for both nets
    curve = []
    for fraction in setup.fractions:
        ranks = _fraction_ranks(start, layers, fraction)
        point = {"fraction": fraction, "total_rank": _total(ranks, layers)}
        for arm, model in nets.items():
            point[arm] = _accuracy(decompose(model, ranks=ranks), test)
        curve.append(point)
    out["curve"] = curve

    # fine-tuning at equal ranks: the force net's ranks at the energy threshold
    ranks = {n: out["force"]["ranks"][n] for n in layers}
    out["finetune_ranks"] = ranks
    tuned: dict[str, nn.Module] = {}
    for arm, model in nets.items():
        dec = decompose(model, ranks=ranks)
        before = _accuracy(dec, test)
        ft = replace(setup.finetune, seed=seed)
        ctx.log(f"{setup.name} seed {seed}: fine-tuning decomposed {arm} ({ft.epochs} epochs)")
        result = fit(dec, train, ft, test=test, checkpoint_dir=ctx.work(*work, f"finetune-{arm}"))
        curve = [h["test_accuracy"] for h in result.history]
        if not curve:  # stopped by max_steps inside the first epoch (smoke runs)
            curve = [result.final["test_accuracy"]]
        out[arm]["finetune_curve"] = [before, *curve]
        tuned[arm] = dec

    shape = tuple(test[0].shape[1:])
    out["report"] = {
        "dense_control": lowrank_report(nets["control"], shape, setup.energy),
        "decomposed_force": lowrank_report(tuned["force"], shape, setup.energy),
    }
    out["params"] = {
        "dense": count_params(nets["control"]),
        "decomposed": count_params(tuned["force"]),
    }

    if setup.time_batch:
        batch = torch.rand(setup.time_batch, *shape, generator=torch.Generator().manual_seed(0))
        dense, low = _conv_stack(nets["control"]).__call__, _conv_stack(tuned["force"]).__call__
        with threads(ctx.threads) as n, torch.no_grad():
            for model in (nets["control"], tuned["force"]):
                model.eval()
            # interleave the two so drifting load on a shared machine hits both alike
            t_dense, t_low = [], []
            for _ in range(3):
                t_dense.append(time_callable(lambda: dense(batch), 1, setup.time_repeats).median)
                t_low.append(time_callable(lambda: low(batch), 1, setup.time_repeats).median)
        out["timing"] = {
            "batch": setup.time_batch,
            "threads": n,
            "dense_seconds": min(t_dense),
            "decomposed_seconds": min(t_low),
            "speedup": min(t_dense) / min(t_low),
        }

    if setup.prune_sparsity is not None:
        pruned = copy.deepcopy(tuned["force"])
        mask = prune_basis(pruned, setup.prune_sparsity)
        just_pruned = _accuracy(pruned, test)
        ft = replace(setup.finetune, seed=seed, epochs=setup.prune_epochs)
        ctx.log(f"{setup.name} seed {seed}: pruning basis layers to {setup.prune_sparsity:.0%}")
        fit(
            pruned,
            train,
            ft,
            test=test,
            callbacks=[mask],
            checkpoint_dir=ctx.work(*work, "prune"),
        )
        dense_conv = sum(r["params"] for r in out["report"]["dense_control"])
        # every conv weight (dense or decomposed) minus the pruned zeros
        kept = sum(r["params"] for r in lowrank_report(pruned)) - sum(
            int((pruned.get_parameter(k) == 0).sum()) for k in mask.masks
        )
        out["prune"] = {
            "sparsity": setup.prune_sparsity,
            "accuracy_before": out["force"]["finetune_curve"][-1],
            "accuracy_pruned": just_pruned,
            "accuracy_after": _accuracy(pruned, test),
            "conv_params_dense": dense_conv,
            "conv_nonzeros_after": kept,
        }
    return out


def sweep(ctx: RunContext, setup: Setup, strengths: tuple[float, ...], seed: int = 0) -> list[dict]:
    """Rank and accuracy of the continued net for each force strength (one seed; 0 = control).

    The paper's lambda trade-off (its Fig. 6): larger strength, lower ranks, usually lower
    accuracy. Runs that ``run_seed`` already made (strength 0 and ``setup.strength``) resume from
    their finished checkpoints instead of training again.
    """
    x, y = ctx.load(setup.dataset, "train")
    train = _subset(x, y, setup.train_subset)
    test = ctx.load(setup.dataset, "test")
    start = start_model(ctx, setup, train, test)
    cont = replace(setup.cont, seed=seed)
    rows = []
    for strength in strengths:
        if strength == 0:
            folder = ctx.work(setup.name, f"seed{seed}", "control")
        elif strength == setup.strength:
            folder = ctx.work(setup.name, f"seed{seed}", "force")
        else:
            folder = ctx.work(setup.name, "sweep", f"{setup.kind}-{strength:g}")
        model = copy.deepcopy(start)
        per_layer = None if setup.force_layers is None else dict.fromkeys(setup.force_layers, 1)
        hooks = [ForceRegularizer(model, strength, setup.kind, per_layer)] if strength else []
        ctx.log(f"{setup.name} sweep: strength {strength:g}")
        fit(model, train, cont, test=test, callbacks=hooks, checkpoint_dir=folder)
        ranks = ranks_for_energy(model, setup.energy)
        rows.append(
            {
                "strength": strength,
                "accuracy": _accuracy(model, test),
                "ranks": ranks,
                "total_rank": sum(ranks.values()),
            }
        )
    return rows
