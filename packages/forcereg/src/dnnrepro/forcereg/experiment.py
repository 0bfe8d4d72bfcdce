"""The reproduction's experiments and ``run(ctx)``.

Two experiments (their settings per profile are in config.py):

A. Continuation (small profile; ``run_seed``). For a network/dataset ``Setup`` and one seed:

1. start from a pretrained dense net (the pinned core baseline, or a run trained once here);
2. continue training it for the same steps twice: ``control`` (weight decay only) and ``force``
   (weight decay + ForceRegularizer), the paper's "retrain a trained net with force" recipe;
3. measure per layer the rank that keeps ``energy`` of the squared singular values, and accuracy;
4. decompose both at the same per-layer rank fractions (accuracy vs total rank, no fine-tuning);
5. decompose both at the force net's ranks and fine-tune both the same way (convergence curves);
6. optionally time the conv stack (dense control vs decomposed force net; seed 0 only, under
   the timing protocol) and prune the basis layers of the fine-tuned decomposed net by
   magnitude, then fine-tune with the mask.

B. From scratch (paper profile; ``scratch_seed``). For a ``ScratchRecipe`` and one seed, every arm
   (no force, constant force, degradation force) trains from that seed's own initialization with
   the authors' schedule; each dense net is decomposed at a sweep of energy thresholds and
   fine-tuned briefly (the accuracy-vs-FLOPs curve, curve.py); the no-force net is also decomposed
   at each force net's ranks (post-hoc SVD + fine-tuning at equal MACs and steps).

Plus the AlexNet conv-shape speed ratio (speed.py). Every training run checkpoints under
``ctx.work(...)`` and every seed is a ``ctx.stage``: a killed run resumes where it stopped, and
every recorded value is read from stored stage results (nothing from in-process counters).
"""

from __future__ import annotations

import copy
import math
import statistics
from dataclasses import replace

import torch
from torch import nn

from dnnrepro.core import baselines, checkpoint
from dnnrepro.core.models import count_params
from dnnrepro.core.paper import RunContext
from dnnrepro.core.train import evaluate, fit, seed_everything

from .config import PROFILES, Arm, ScratchRecipe, Setup
from .curve import conv_macs, energy_ranks, iso_accuracy_ratio
from .figures import draw_figures, draw_scratch_figures
from .lowrank import decompose, lowrank_report, max_rank, ranks_for_energy
from .prune import prune_basis
from .regularizer import ForceRegularizer
from .schedule import CaffeMultiStep
from .speed import alexnet_speed, stack_ratio


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
        top = max_rank(model.get_submodule(name))
        out[name] = max(1, min(top, math.ceil(fraction * top)))
    return out


def run_seed(ctx: RunContext, setup: Setup, seed: int, timed: bool = False) -> dict:
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

    if setup.time_batch and timed:
        # one machine measurement per run (seed 0), stored with the stage: a resume reuses it
        batch = torch.rand(setup.time_batch, *shape, generator=torch.Generator().manual_seed(0))
        m = stack_ratio(
            copy.deepcopy(nets["control"]),
            copy.deepcopy(tuned["force"]),
            batch,
            setup.time_repeats,
            ctx.threads,
        )
        out["timing"] = {"batch": setup.time_batch, "measurement": m}

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


# --------------------------------------------------------------------------- B. from scratch


def initial_model(recipe: ScratchRecipe, seed: int) -> nn.Module:
    """The dense net seed ``seed`` starts from: ``recipe.build()`` under that seed, so every seed
    is an independent start (and the same seed always the same one)."""
    seed_everything(seed)
    return recipe.build()


def _force_hooks(model: nn.Module, arm: Arm, layers: tuple[str, ...]) -> list:
    if not arm.strength:
        return []
    return [ForceRegularizer(model, arm.strength, arm.kind, dict.fromkeys(layers, 1.0))]


def _ranks_tag(ranks: dict[str, int]) -> str:
    return "-".join(f"{k}{v}" for k, v in sorted(ranks.items())) or "dense"


def train_arm(ctx: RunContext, recipe: ScratchRecipe, arm: Arm, seed: int, train, test):
    """Train one arm from the seed's initialization (resumable); returns the dense net."""
    model = initial_model(recipe, seed)
    cfg = replace(recipe.train, seed=seed)
    # the schedule callback comes last: it scales the gradient after the force was added
    hooks = [*_force_hooks(model, arm, recipe.force_layers)]
    hooks.append(CaffeMultiStep(recipe.milestones, recipe.gamma))
    ctx.log(f"{recipe.name} seed {seed}: training {arm.name} ({cfg.steps} steps)")
    folder = ctx.work(recipe.name, f"seed{seed}", arm.name)
    fit(model, train, cfg, test=test, callbacks=hooks, checkpoint_dir=folder)
    return model


def curve_point(
    ctx: RunContext,
    recipe: ScratchRecipe,
    name: str,
    model: nn.Module,
    ranks: dict[str, int],
    seed: int,
    train,
    test,
) -> dict:
    """Decompose ``model`` at ``ranks``, fine-tune ``recipe.finetune`` steps, evaluate.

    Checkpoints are keyed by the net and the ranks, so equal ranks (two energies, or the post-hoc
    arm at the baseline's own ranks) share one fine-tuning run. No rank that pays off: the dense
    net, not fine-tuned.
    """
    shape = tuple(test[0].shape[1:])
    dec = decompose(model, ranks=ranks) if ranks else copy.deepcopy(model)
    point = {"ranks": dict(ranks), "macs": conv_macs(dec, shape)}
    if ranks:
        point["accuracy_before"] = _accuracy(dec, test)
        folder = ctx.work(recipe.name, f"seed{seed}", f"ft-{name}-{_ranks_tag(ranks)}")
        fit(dec, train, replace(recipe.finetune, seed=seed), test=test, checkpoint_dir=folder)
    point["accuracy"] = _accuracy(dec, test)
    return point


def scratch_seed(ctx: RunContext, recipe: ScratchRecipe, seed: int) -> dict:
    """Everything measured for one seed of ``recipe``; JSON-able (stored by ``ctx.stage``).

    {"init_sum", "arms": {arm: {accuracy, ranks95, macs}}, "curves": {curve: [point, ...]}} with
    one curve per arm and "posthoc-<force arm>" (the no-force net at that arm's ranks); each curve
    starts with the dense point (energy 1.0, no decomposition), then one point per energy.
    """
    train = ctx.load(recipe.dataset, "train")
    test = ctx.load(recipe.dataset, "test")
    shape = tuple(test[0].shape[1:])
    init = initial_model(recipe, seed)
    out: dict = {
        "init_sum": float(sum(p.detach().double().abs().sum() for p in init.parameters())),
        "arms": {},
        "curves": {},
    }
    nets = {arm.name: train_arm(ctx, recipe, arm, seed, train, test) for arm in recipe.arms}
    for name, model in nets.items():
        dense = {"energy": 1.0, "ranks": {}, "macs": conv_macs(model, shape)}
        dense["accuracy"] = _accuracy(model, test)
        out["arms"][name] = {
            "accuracy": dense["accuracy"],
            "ranks95": ranks_for_energy(model, 0.95),
            "macs": dense["macs"],
        }
        out["curves"][name] = [dense]
    control = recipe.arms[0].name
    for name in nets:
        if name != control:
            out["curves"][f"posthoc-{name}"] = [dict(out["curves"][control][0])]
    for energy in recipe.energies:
        for name, model in nets.items():
            ranks = energy_ranks(model, energy)
            point = curve_point(ctx, recipe, name, model, ranks, seed, train, test)
            out["curves"][name].append({"energy": energy, **point})
            if name != control:
                # post-hoc SVD of the no-force net at this force net's ranks: equal MACs
                post = curve_point(ctx, recipe, control, nets[control], ranks, seed, train, test)
                out["curves"][f"posthoc-{name}"].append({"energy": energy, **post})
    return out


def iso_ratios(recipe: ScratchRecipe, out: dict) -> dict[str, float]:
    """Per force arm, the iso-accuracy MACs ratio against the no-force curve (key "<arm>") and
    against post-hoc SVD of the no-force net at equal MACs (key "posthoc-<arm>")."""
    control = recipe.arms[0].name
    base = out["arms"][control]
    ratios = {}
    for arm in recipe.arms[1:]:
        for key, ref in ((arm.name, control), (f"posthoc-{arm.name}", f"posthoc-{arm.name}")):
            ratios[key] = iso_accuracy_ratio(
                out["curves"][arm.name],
                out["curves"][ref],
                base["accuracy"],
                base["macs"],
                recipe.tolerance,
            )
    return ratios


# --------------------------------------------------------------------------- recording


def _pp(a: float, b: float) -> float:
    return 100.0 * (a - b)


def _record_setup(ctx: RunContext, setup: Setup, out: dict) -> None:
    name = setup.name
    ctrl, frc = out["control"], out["force"]
    ctx.record(f"rank_{name}", frc["total_rank"] / ctrl["total_rank"])
    ctx.record(f"accuracy_{name}", _pp(frc["accuracy"], ctrl["accuracy"]))
    ctx.record(f"curve_{name}", min(_pp(p["force"], p["control"]) for p in out["curve"]))
    ctx.record(f"finetune_{name}", _pp(frc["finetune_curve"][1], ctrl["finetune_curve"][1]))
    if setup.time_batch:
        ctx.record("speedup_accuracy_loss", _pp(ctrl["accuracy"], frc["finetune_curve"][-1]))
    if "prune" in out:
        p = out["prune"]
        ctx.record("sparsify", _pp(p["accuracy_before"], p["accuracy_after"]))


def _summarize(ctx: RunContext, setup: Setup, runs: list[dict]) -> None:
    name = setup.name
    mean = statistics.fmean
    ranks_c = {k: mean(r["control"]["ranks"][k] for r in runs) for k in runs[0]["control"]["ranks"]}
    ranks_f = {k: mean(r["force"]["ranks"][k] for r in runs) for k in runs[0]["force"]["ranks"]}
    ctx.note(
        f"rank_{name}",
        "mean ranks per layer, control "
        + ", ".join(f"{k} {v:.1f}" for k, v in ranks_c.items())
        + "; force "
        + ", ".join(f"{k} {v:.1f}" for k, v in ranks_f.items())
        + f" (start net accuracy {runs[0]['start_accuracy']:.4f}).",
    )
    ctx.note(
        f"accuracy_{name}",
        f"control {mean(r['control']['accuracy'] for r in runs):.4f}, force "
        f"{mean(r['force']['accuracy'] for r in runs):.4f} ({setup.kind} force, strength "
        f"{setup.strength:g}).",
    )
    ctx.note(
        f"finetune_{name}",
        "final accuracy after fine-tuning: control start "
        f"{mean(r['control']['finetune_curve'][-1] for r in runs):.4f}, force start "
        f"{mean(r['force']['finetune_curve'][-1] for r in runs):.4f}; right after decomposition "
        f"{mean(r['control']['finetune_curve'][0] for r in runs):.4f} vs "
        f"{mean(r['force']['finetune_curve'][0] for r in runs):.4f}.",
    )
    timed = [r["timing"] for r in runs if "timing" in r]
    if timed:
        t = timed[0]
        m = t["measurement"]
        ctx.record_timing("cpu_speedup", m)
        ctx.note(
            "cpu_speedup",
            f"dense {1e3 * m['baseline_s']:.1f} ms vs decomposed {1e3 * m['candidate_s']:.1f} ms "
            f"per batch of {t['batch']} on {m['threads']} threads (medians of {m['repeats']} "
            "interleaved calls, seed 0).",
        )
        macs_d = sum(x["macs"] for x in runs[0]["report"]["dense_control"])
        macs_l = sum(x["macs"] for x in runs[0]["report"]["decomposed_force"])
        ctx.note("speedup_accuracy_loss", f"conv MACs {macs_d:,} -> {macs_l:,} (seed 0).")
    if "prune" in runs[0]:
        p = [r["prune"] for r in runs]
        ctx.note(
            "sparsify",
            f"accuracy {mean(x['accuracy_before'] for x in p):.4f} -> pruned "
            f"{mean(x['accuracy_pruned'] for x in p):.4f} -> masked fine-tune "
            f"{mean(x['accuracy_after'] for x in p):.4f}; conv weights {p[0]['conv_params_dense']:,}"
            f" dense -> {p[0]['conv_nonzeros_after']:,} nonzero after LRA + pruning (seed 0).",
        )


def _record_scratch(ctx: RunContext, recipe: ScratchRecipe, runs: list[dict]) -> None:
    mean = statistics.fmean
    control = recipe.arms[0].name
    for out in runs:
        arms = out["arms"]
        ctx.record(
            "accuracy_lenet_mnist", _pp(arms["constant"]["accuracy"], arms[control]["accuracy"])
        )
        ratios = iso_ratios(recipe, out)
        ctx.record("flops_lenet_mnist", ratios["constant"])
        ctx.record("flops_lenet_mnist_l2", ratios["degradation"])
        ctx.record("posthoc_lenet_mnist", ratios["posthoc-constant"])
    acc = {a.name: mean(r["arms"][a.name]["accuracy"] for r in runs) for a in recipe.arms}
    ctx.note(
        "accuracy_lenet_mnist",
        "mean dense test accuracy: " + ", ".join(f"{k} {v:.4f}" for k, v in acc.items()) + ".",
    )
    ranks = {
        a.name: {
            k: mean(r["arms"][a.name]["ranks95"][k] for r in runs)
            for k in runs[0]["arms"][a.name]["ranks95"]
        }
        for a in recipe.arms
    }
    text = "; ".join(
        f"{arm} " + ", ".join(f"{k} {v:.1f}" for k, v in r.items()) for arm, r in ranks.items()
    )
    ctx.note("flops_lenet_mnist", f"Information only, mean ranks at 95% energy: {text}.")
    ctx.detail("scratch", {"recipe": recipe.name, "runs": runs})


def _record_speed(ctx: RunContext, claim_batch: int, out: dict) -> None:
    got = out["batches"][str(claim_batch)]
    ctx.record_timing("alexnet_conv_speedup", got["decomposed"])
    plain = got["torch_lowrank"]
    ctx.note(
        "alexnet_conv_speedup",
        f"conv MACs {out['macs']['dense']:,} -> {out['macs']['decomposed']:,} per image at "
        f"{out['input_size']}x{out['input_size']}; plain torch two-conv baseline at the same "
        f"ranks: {plain['ratio']:.2f}x [{plain['low']:.2f}, {plain['high']:.2f}] (batch "
        f"{claim_batch}).",
    )
    ctx.detail("alexnet_speed", out)


# --------------------------------------------------------------------------- run


def run(ctx: RunContext) -> None:
    """Run the profile's experiments over the seeds; record claims, figures and details."""
    profile = PROFILES[ctx.profile]
    for cid in ("alexnet_gpu", "alexnet_cpu"):
        ctx.note(cid, "not run: needs ImageNet, which dnnrepro.core.data does not load.")
    ctx.note("rank_resnet20", "not run: needs CIFAR-10, which is not in the shared data.")
    results: dict[str, list[dict]] = {}
    for setup in profile.setups:
        runs = [
            ctx.stage(
                f"{setup.name}-seed{seed}",
                lambda s=seed, su=setup: run_seed(ctx, su, s, timed=s == ctx.seeds[0]),
            )
            for seed in ctx.seeds
        ]
        for out in runs:
            _record_setup(ctx, setup, out)
        _summarize(ctx, setup, runs)
        results[setup.name] = runs
    sweep_rows = []
    if results:
        ctx.detail("runs", results)
        first = profile.setups[0]
        if profile.sweep:
            sweep_rows = ctx.stage(
                f"{first.name}-sweep", lambda: sweep(ctx, first, profile.sweep, ctx.seeds[0])
            )
            ctx.detail(
                "strength_sweep", {"setup": first.name, "kind": first.kind, "rows": sweep_rows}
            )
        draw_figures(ctx, results, sweep_rows)
    if profile.scratch is not None:
        recipe = profile.scratch
        runs = [
            ctx.stage(f"{recipe.name}-seed{seed}", lambda s=seed: scratch_seed(ctx, recipe, s))
            for seed in ctx.seeds
        ]
        _record_scratch(ctx, recipe, runs)
        draw_scratch_figures(ctx, recipe, runs)
    if profile.speed is not None:
        sp = profile.speed
        out = ctx.stage(
            "alexnet-speed",
            lambda: alexnet_speed(sp.ranks, sp.input_size, sp.batches, sp.repeats, ctx.threads),
        )
        _record_speed(ctx, sp.claim_batch, out)
