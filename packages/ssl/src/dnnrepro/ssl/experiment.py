"""The runs behind the claims: baselines, lambda tuning, one SSL row per seed, timing, and run(ctx).

Every expensive step is a ``ctx.stage`` whose JSON result is derived from what the step saved
(weights in the work folder, fit checkpoints), so a resumed run records the same values. Seeds
change the data order of SSL and fine-tuning (and, for the MLP and ResNet, the baseline's
initialisation); the LeNet rows of one profile share one baseline.
"""

from __future__ import annotations

import copy
import math
import statistics
from dataclasses import replace

import torch
from torch import nn

from dnnrepro.core import baselines, checkpoint, device, models, stats
from dnnrepro.core.errors import ConfigError
from dnnrepro.core.paper import RunContext
from dnnrepro.core.sparsity import FixedMask, magnitude_prune
from dnnrepro.core.train import evaluate, fit, seed_everything

from .claims import COMPARED, PAPER_FRACTION
from .config import PROFILES, ROWS, Profile, Row
from .figures import draw_figures
from .pruner_comparison import (
    INSTALL_HINT,
    layer_widths,
    prune_and_finetune,
    torch_pruning_available,
)
from .recipe import SSLConfig, learn_structure
from .report import sparsity_report
from .serialize import load_shrunk, save_shrunk
from .shrink import NetworkCollapsed, shrink
from .speed import conv_geomean, layer_speedups, network_ratio, structured_over_csr

ERROR_RULE_PP = 0.5  # the error claims' rule, reused by the combined structure-at-error claims


# --------------------------------------------------------------------------- baselines


def _train_base(ctx, stem_name, build, data, test, config, seed) -> nn.Module:
    """Train (once, resumably) and return a dense baseline; weights kept in the work folder."""
    stem = ctx.work("baselines") / stem_name

    def train() -> dict:
        seed_everything(seed)
        model = build().to(device())
        result = fit(
            model,
            data,
            replace(config, seed=seed),
            test=test,
            checkpoint_dir=ctx.work("train", stem_name),
        )
        checkpoint.save_weights(stem, model, {"accuracy": result.final["test_accuracy"]})
        return {"accuracy": result.final["test_accuracy"]}

    ctx.stage(f"base-{stem_name}", train)
    if not checkpoint.exists(stem):  # the stage was stored but the weights were deleted
        ctx.log(f"{stem} missing; retraining")
        train()
    model = build()
    checkpoint.load_weights(stem, model)
    return model.to(device())


def baseline(ctx: RunContext, prof: Profile, row: Row, seed: int, split: str):
    """(dense model, base description for save_shrunk, train data, eval data) of ``row``.

    ``split`` "train" trains on the whole training set and evaluates on test (reporting);
    "train_minus_val" trains on train minus val and evaluates on val (tuning).
    """
    evaluation = "test" if split == "train" else "val"
    if row.net == "lenet":
        name = prof.lenet_data
        data, held = ctx.load(name, split), ctx.load(name, evaluation)
        c, size = int(data[0].shape[1]), int(data[0].shape[2])
        base = {"name": "lenet", "kwargs": {"in_channels": c, "image_size": size}}
        if prof.lenet_base is None:
            # the pinned core baseline saw the whole training set (val included): tuning with it
            # picks a structure, which depends little on the val images it saw
            model = baselines.get("lenet-mnist5k", ctx.data_dir, train=True).to(device())
        else:
            build = lambda: models.LeNet(c, size, 10)  # noqa: E731
            stem = f"lenet-{name}-{split}-s{0 if split == 'train' else seed}"
            s = 0 if split == "train" else seed
            model = _train_base(ctx, stem, build, data, held, prof.lenet_base, s)
        return model, base, data, held
    if row.net == "mlp":
        name = prof.mlp_data
        data, held = ctx.load(name, split), ctx.load(name, evaluation)
        kwargs = {
            "in_features": int(data[0][0].numel()),
            "hidden": list(prof.mlp_hidden),
            "num_classes": 10,
        }
        model = _train_base(
            ctx,
            f"mlp-{name}-{split}-s{seed}",
            lambda: models.MLP(**kwargs),
            data,
            held,
            prof.mlp_base,
            seed,
        )
        return model, {"name": "mlp", "kwargs": kwargs}, data, held
    name = prof.resnet_data
    data, held = ctx.load(name, split), ctx.load(name, evaluation)
    kwargs = {"depth": prof.resnet_depth, "in_channels": int(data[0].shape[1]), "num_classes": 10}
    model = _train_base(
        ctx,
        f"resnet{prof.resnet_depth}-{name}-{split}-s{seed}",
        lambda: models.ResNet(**kwargs),
        data,
        held,
        prof.resnet_base,
        seed,
    )
    rest = {k: v for k, v in kwargs.items() if k != "depth"}
    named = prof.resnet_depth in (20, 32, 56)
    base = {"name": f"resnet{prof.resnet_depth}", "kwargs": rest} if named else None
    return model, base, data, held


def _ssl_config(prof: Profile, row: Row, strength: float, tuning: bool) -> SSLConfig:
    if row.net == "resnet":
        ssl, ft = prof.resnet_ssl, prof.resnet_finetune
    elif row.net == "mlp":
        ssl, ft = prof.mlp_ssl, prof.mlp_finetune
    else:
        ssl, ft = prof.ssl, prof.finetune
    if tuning:
        ssl, ft = prof.for_tuning(ssl), prof.for_tuning(ft)
    proximal = row.depth and prof.depth_proximal
    return SSLConfig(
        groups=row.plan(),
        strength=strength,
        depth=row.depth,
        ssl=ssl,
        finetune=ft,
        proximal=proximal,
        depth_groups="block" if proximal else "layer",
    )


# --------------------------------------------------------------------------- one row


def _fraction(layers: list[dict], names=None) -> float:
    picked = [r for r in layers if names is None or r["name"] in names]
    return sum(r["flops_structured"] for r in picked) / sum(r["flops_dense"] for r in picked)


def structure_metric(row: Row, layers: list[dict], removed: list[str]) -> float:
    """What the row's table reports: conv2's FLOP fraction (LeNet), the whole MLP's FLOP fraction,
    or the number of residual blocks removed (depth)."""
    if row.net == "lenet":
        return _fraction(layers, {"conv2"})
    if row.net == "mlp":
        return _fraction(layers)
    return float(len(removed))


def _removed_blocks(model: nn.Module) -> list[str]:
    from .modules import ResidualShortcut

    return [n for n, m in model.named_modules() if isinstance(m, ResidualShortcut)]


def ssl_row(
    ctx: RunContext, prof: Profile, row: Row, seed: int, strength: float, split: str = "train"
) -> dict:
    """SSL + fine-tune + shrink for one row, seed and lambda; JSON-able metrics.

    The shrunk model is saved (work folder ``models/``) so that timing can reload it.
    """
    dense, base, data, held = baseline(ctx, prof, row, seed, split)
    cfg = _ssl_config(prof, row, strength, tuning=split != "train")
    tag = f"{row.name}-{split}-s{seed}-l{strength:g}"
    sparse, metrics = learn_structure(
        dense, data, held, cfg, seed=seed, checkpoint_dir=ctx.work("ssl", tag)
    )
    sparse, dense = sparse.cpu(), dense.cpu()
    example = held[0][:16]
    kept: dict[str, list[int]] = {}
    try:
        small = shrink(sparse, example, kept=kept)
    except NetworkCollapsed as exc:
        if split == "train":  # a reporting run: the chosen lambda must leave a network
            raise
        # a tuning candidate too strong for this row: stored and listed, never chosen
        return {"collapsed": str(exc), "strength": strength, "split": split, "model": tag}
    with torch.no_grad():
        gap = float((small(example) - sparse.eval()(example)).abs().max())
    save_shrunk(ctx.work("models") / tag, small, base=base, meta={"row": row.name})
    dense_acc = evaluate(dense, held)["accuracy"]
    shrunk_acc = evaluate(small, held)["accuracy"]
    shape = tuple(example.shape[1:])
    report = [r.as_dict() for r in sparsity_report(small, shape, reference=dense)]
    removed = _removed_blocks(small)
    return {
        "ssl_accuracy": metrics["ssl_accuracy"],
        "zeroed_accuracy": metrics["zeroed_accuracy"],
        "groups_zeroed": metrics["groups_zeroed"],
        "strength": strength,
        "split": split,
        "base": base,
        "model": tag,
        "dense_accuracy": dense_acc,
        "shrunk_accuracy": shrunk_acc,
        "error_increase_pp": 100 * (dense_acc - shrunk_acc),
        "max_output_gap": gap,
        "params_dense": models.count_params(dense),
        "params_shrunk": models.count_params(small),
        "layers": report,
        "removed_blocks": removed,
        "structure": structure_metric(row, report, removed),
        "kept_filters": kept,  # original indices of the filters shrink kept, per pruned layer
    }


def time_row(ctx: RunContext, prof: Profile, row: Row, res: dict, seed: int) -> dict:
    """Per-layer and whole-network speed of one row's shrunk net against its dense baseline."""
    dense, _, _, held = baseline(ctx, prof, row, seed, "train")
    dense = dense.cpu().eval()
    small = load_shrunk(ctx.work("models") / res["model"])
    shape = tuple(held[0].shape[1:])
    layers = layer_speedups(
        dense,
        small,
        shape,
        batch=prof.bench_batch,
        n_threads=ctx.threads,
        repeats=prof.bench_repeats,
    )
    nets = {
        f"batch{b}": network_ratio(dense, small, shape, b, repeats=prof.bench_repeats).as_dict()
        for b in sorted({1, prof.bench_batch})
    }
    return {
        "layers": layers,
        "network": nets,
        "conv_gemm_geomean": conv_geomean(layers, "gemm_speedup"),
        "conv_layer_geomean": conv_geomean(layers, "layer_speedup"),
    }


def run_unstructured(ctx: RunContext, prof: Profile, like: dict, seed: int) -> dict:
    """Non-structured sparsity at the same per-layer density as a structured run.

    Magnitude pruning of the LeNet baseline (per layer, to ``like``'s non-zero weight count), then
    fine-tuning with the mask fixed for as many steps as SSL + fine-tune.
    """
    dense, _, data, test = baseline(ctx, prof, ROWS["lenet3"], seed, "train")
    model = copy.deepcopy(dense)
    masks = {}
    layers = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)}
    for rec in like["layers"]:
        m = layers[rec["name"]]
        keep = rec["params_nonzero"] - (m.bias.numel() if m.bias is not None else 0)
        keep = min(max(1, int(keep)), m.weight.numel())
        masks[f"{rec['name']}.weight"] = magnitude_prune(m.weight, 1 - keep / m.weight.numel())
    ssl, ft = prof.ssl, prof.finetune
    if ssl.steps is not None and ft.steps is not None:
        cfg = replace(ft, steps=ssl.steps + ft.steps, seed=seed + 2000)
    else:
        cfg = replace(ft, epochs=(ssl.epochs or 1) + (ft.epochs or 1), steps=None, seed=seed + 2000)
    fit(
        model,
        data,
        cfg,
        test=test,
        callbacks=[FixedMask(masks)],  # zeroes the pruned weights when training starts
        checkpoint_dir=ctx.work("ssl", f"unstructured-s{seed}"),
    )
    model = model.cpu()
    checkpoint.save_weights(
        ctx.work("models") / f"unstructured-s{seed}", model, {"row": "unstructured"}
    )
    dense_acc = evaluate(dense.cpu(), test)["accuracy"]
    acc = evaluate(model, test)["accuracy"]
    return {"accuracy": acc, "error_increase_pp": 100 * (dense_acc - acc)}


# --------------------------------------------------------------------------- side by side


def compare_row(
    ctx: RunContext, prof: Profile, row: Row, seed: int, ssl_res: dict, method: str
) -> dict:
    """One arm of issue 16's side by side: ``method`` (``groupnorm``, ``magnitude`` or the
    ``ssl_selection`` diagnostic) pruned to the per-layer widths of ``row``'s shrunk SSL net of
    ``seed``, from the same dense baseline, with SSL's sparse-phase length (groupnorm) and SSL's
    fine-tune budget and data order."""
    dense, _, data, held = baseline(ctx, prof, row, seed, "train")
    widths = layer_widths(load_shrunk(ctx.work("models") / ssl_res["model"]))
    cfg = _ssl_config(prof, row, ssl_res["strength"], tuning=False)
    model, metrics = prune_and_finetune(
        method,
        dense,
        data,
        held,
        widths,
        example=held[0][:16],
        finetune=cfg.finetune,
        sparse=cfg.ssl,
        seed=seed,
        reg=prof.groupnorm_reg,
        keep=ssl_res["kept_filters"],
        checkpoint_dir=ctx.work("ssl", f"compare-{row.name}-{method}-s{seed}"),
    )
    dense = dense.cpu()
    dense_acc = evaluate(dense, held)["accuracy"]
    report = [
        r.as_dict() for r in sparsity_report(model, tuple(held[0].shape[1:]), reference=dense)
    ]
    metrics.update(
        dense_accuracy=dense_acc,
        error_increase_pp=100 * (dense_acc - metrics["accuracy"]),
        structure=structure_metric(row, report, []),
        params=models.count_params(model),
    )
    return metrics


def _interval_text(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.2f}%"
    i = stats.t_interval(values)
    return f"{i.mean:.2f}% [{i.low:.2f}, {i.high:.2f}]"


def _record_comparison(ctx: RunContext, row: Row, ssl: list[dict], arms: dict) -> None:
    """One value per seed for each ``<row>_ssl_vs_<method>`` claim, and a note that ranks the
    methods by accuracy and shows where each one's accuracy goes (the issue's question whether
    SSL's deficit comes from our schedule or from the method)."""
    rivals = {m: rs for m, rs in arms.items() if m in COMPARED}  # ssl_selection: a diagnostic
    for method, rs in rivals.items():
        for s, r in zip(ssl, rs, strict=True):
            ctx.record(f"{row.name}_ssl_vs_{method}", 100 * (s["shrunk_accuracy"] - r["accuracy"]))
    acc = {"SSL": [100 * r["shrunk_accuracy"] for r in ssl]}
    acc.update({COMPARED[m]: [100 * r["accuracy"] for r in rs] for m, rs in rivals.items()})
    ranked = sorted(acc, key=lambda k: -statistics.fmean(acc[k]))
    widths = ", ".join(f"{k} {v}" for k, v in arms[next(iter(arms))][0]["widths"].items())
    n = len(ssl)
    means = {k: statistics.fmean(v) for k, v in acc.items()}
    tied = [k for k in ranked if means[k] == means[ranked[0]]]
    ranking = (
        f"Most accurate at {row.name}'s SSL widths (first seed: {widths}): "
        f"{' and '.join(tied) + ' (tied)' if len(tied) > 1 else ranked[0]}. Test accuracy, mean "
        + (f"over {n} seeds with 95% t-interval: " if n > 1 else "of one seed: ")
        + "; ".join(f"{k} {_interval_text(acc[k])}" for k in ranked)
        + ". Whether SSL's gap is beyond seed noise is the claim's paired interval."
    )

    def path(rs, keys):
        return " -> ".join(f"{label} {100 * _mean(rs, k):.2f}%" for label, k in keys)

    where = (
        " Where the accuracy goes (means): SSL "
        + path(
            ssl,
            [
                ("dense", "dense_accuracy"),
                ("after the SSL phase", "ssl_accuracy"),
                ("after zeroing weak groups", "zeroed_accuracy"),
                ("after the frozen fine-tune", "shrunk_accuracy"),
            ],
        )
        + (
            "; GroupNormPruner "
            + path(
                arms["groupnorm"],
                [
                    ("after sparse training", "sparse_accuracy"),
                    ("after pruning", "pruned_accuracy"),
                    ("after fine-tuning", "accuracy"),
                ],
            )
            if "groupnorm" in arms
            else ""
        )
        + (
            "; L1 pruning "
            + path(
                arms["magnitude"],
                [("after pruning", "pruned_accuracy"), ("after fine-tuning", "accuracy")],
            )
            if "magnitude" in arms
            else ""
        )
        + (
            "; SSL's own filters cut from the dense weights "
            + path(
                arms["ssl_selection"],
                [("after pruning", "pruned_accuracy"), ("after fine-tuning", "accuracy")],
            )
            + " (as good as L1 pruning: SSL picks good filters and loses accuracy in its "
            "sparse phase's weights, i.e. our schedule and lambda; as bad as SSL: the choice of "
            "filters itself)"
            if "ssl_selection" in arms
            else ""
        )
        + "."
    )
    for method in rivals:
        ctx.note(f"{row.name}_ssl_vs_{method}", ranking + where)


# --------------------------------------------------------------------------- tuning


def tune_row(ctx: RunContext, prof: Profile, row: Row) -> float:
    """lambda of ``row`` chosen by ``ctx.tune`` on the validation split with tuning seeds.

    Objective: the row's structure closest to the paper's FLOP fraction; for depth, the smallest
    lambda that removes at least one block (the paper's 20 -> 18 layers). Depth is not tuned
    towards "exactly one block": with the proximal step the count jumps (digits, tuning seed 1000:
    0, 0, 3, 5 blocks at lambda 0.25, 0.5, 1, 2), so "closest to 1" picked lambda 0.25, which
    removes none, over lambda 1, which removes three.
    """

    def evaluate_candidate(strength: float, seed: int, split: str) -> float:
        res = ctx.stage(
            f"tune-{row.name}",
            lambda: ssl_row(ctx, prof, row, seed, strength, split="train_minus_val"),
            strength=strength,
            seed=seed,
        )
        if res.get("collapsed"):  # NaN: the core's tune never chooses it
            ctx.log(f"tune {row.name} lambda {strength:g} seed {seed}: {res['collapsed']}")
            return math.nan
        ctx.log(
            f"tune {row.name} lambda {strength:g} seed {seed}: structure {res['structure']:.4f}, "
            f"{split} error {res['error_increase_pp']:+.2f} pp"
        )
        if row.depth:  # 1: the paper's structure is reached (a block removed), else 0
            return min(res["structure"], 1.0)
        return res["structure"]

    # "max" breaks ties by the first candidate: the smallest lambda that removes a block
    objective = "max" if row.depth else ("target", row.target)
    if list(row.candidates) != sorted(row.candidates):
        raise ConfigError(f"row {row.name}: lambda candidates must be in increasing order")
    record = ctx.tune(
        f"strength_{row.name}",
        list(row.candidates),
        evaluate_candidate,
        objective=objective,
        n_seeds=prof.tune_seeds,
    )
    return float(record.choice)


# --------------------------------------------------------------------------- run(ctx)


def _record_row(ctx: RunContext, row: Row, results: list[dict]) -> None:
    for res in results:
        if row.net == "resnet":
            ctx.record("depth_blocks_removed", len(res["removed_blocks"]))
            ctx.record("depth_error", res["error_increase_pp"])
            continue
        flops_id = f"{row.name}_conv2_flops" if row.net == "lenet" else f"{row.name}_flops"
        ctx.record(f"{row.name}_error", res["error_increase_pp"])
        ctx.record(flops_id, res["structure"])
        at = res["structure"] <= PAPER_FRACTION[row.name] and res["error_increase_pp"] <= (
            ERROR_RULE_PP
        )
        ctx.record(f"{row.name}_structure_at_error", 1.0 if at else 0.0)


def _record_speed(ctx: RunContext, row: Row, timing: dict) -> None:
    """conv2's per-image GEMM ratio; a ratio above its FLOP bound is a measurement error and is
    recorded without its timing record, so the claim stays inconclusive."""
    conv2 = next(r for r in timing["layers"] if r["layer"] == "conv2")
    claim = f"{row.name}_conv2_speedup"
    if conv2["gemm_speedup"] is None:
        ctx.note(claim, "conv2 was removed entirely.")
        return
    bound = conv2["flop_bound"]
    if conv2["gemm_speedup"] > bound:
        ctx.record(claim, conv2["gemm_speedup"])
        ctx.note(
            claim,
            f"Measured {conv2['gemm_speedup']:.2f}x exceeds the FLOP bound {bound:.2f}x: a "
            "measurement error, so no timing record is kept and the claim is inconclusive.",
        )
    else:
        ctx.record_timing(claim, conv2["single_image"])
    ctx.note(
        claim,
        f"Per-image GEMM {conv2['gemm_speedup']:.2f}x [{conv2['gemm_low']:.2f}, "
        f"{conv2['gemm_high']:.2f}], batched ({conv2.get('gemm_batched_speedup', 0):.2f}x), FLOP "
        f"bound {bound:.2f}x; whole network {timing['network']}",
    )


def run(ctx: RunContext) -> None:
    """Tune lambda per row, run every row for every seed, time seed 0's nets, record, draw."""
    prof = PROFILES[ctx.profile]
    for name in {prof.lenet_data, prof.mlp_data, prof.resnet_data}:
        ctx.load(name, "train")  # missing full data: one DataError before any training
    methods = [*COMPARED, "ssl_selection"]
    if prof.compare_rows and not torch_pruning_available():
        if ctx.profile != "smoke":  # a long run must not end without its side by side
            raise ConfigError(
                f"the {ctx.profile} profile compares with Torch-Pruning: {INSTALL_HINT}"
            )
        methods.remove("groupnorm")
        ctx.log("torch-pruning is not installed: the smoke side by side runs without groupnorm")
    results: dict[str, list[dict]] = {}
    timings: dict[str, dict] = {}
    strengths: dict[str, float] = {}
    first = ctx.seeds[0]
    for row in (ROWS[n] for n in prof.rows):
        strength = strengths[row.name] = tune_row(ctx, prof, row)
        rs = [
            ctx.stage(
                f"{row.name}-s{seed}",
                lambda r=row, s=seed, lam=strength: ssl_row(ctx, prof, r, s, lam),
                strength=strength,
            )
            for seed in ctx.seeds
        ]
        results[row.name] = rs
        _record_row(ctx, row, rs)
        if row.net == "lenet":
            timings[row.name] = ctx.stage(
                f"speed-{row.name}",
                lambda r=row, res=rs[0]: time_row(ctx, prof, r, res, first),
                strength=strength,
            )
            _record_speed(ctx, row, timings[row.name])
        for res in rs:
            ctx.log(
                f"{row.name} lambda {strength:g}: accuracy {res['dense_accuracy']:.4f} -> "
                f"{res['shrunk_accuracy']:.4f}, structure {res['structure']:.4f}, params "
                f"{res['params_dense']} -> {res['params_shrunk']}"
            )
        ctx.note(_note_claim(row), _row_text(rs))
    unstructured = [
        ctx.stage(
            f"unstructured-s{seed}",
            lambda s=seed, lk=like: run_unstructured(ctx, prof, lk, s),
            strength=strengths["lenet3"],
        )
        for seed, like in zip(ctx.seeds, results["lenet3"], strict=True)
    ]
    versus = ctx.stage(
        "speed-structured-vs-unstructured",
        lambda: _time_versus(ctx, prof, results["lenet3"][0], first),
        strength=strengths["lenet3"],
    )
    ctx.record_timing("structured_vs_unstructured", versus)
    ctx.note(
        "structured_vs_unstructured",
        f"Error increase: SSL LeNet-3 {_mean(results['lenet3'], 'error_increase_pp'):+.2f} pp, "
        f"magnitude pruning at the same per-layer density "
        f"{_mean(unstructured, 'error_increase_pp'):+.2f} pp.",
    )
    comparison = {}
    for name in prof.compare_rows:
        arms = {
            method: [
                ctx.stage(
                    f"compare-{name}-{method}-s{seed}",
                    lambda m=method, s=seed, res=res, r=ROWS[name]: compare_row(
                        ctx, prof, r, s, res, m
                    ),
                    strength=strengths[name],
                    reg=prof.groupnorm_reg if method == "groupnorm" else None,
                )
                for seed, res in zip(ctx.seeds, results[name], strict=True)
            ]
            for method in methods
        }
        _record_comparison(ctx, ROWS[name], results[name], arms)
        comparison[name] = arms
    ctx.note("resnet20_cifar_depth", "CIFAR-10 ResNet-20 is not run (CPU budget): see depth_*.")
    ctx.detail("comparison", comparison)
    ctx.detail("rows", results)
    ctx.detail("speed", timings)
    ctx.detail("unstructured", unstructured)
    ctx.detail("strength", strengths)
    draw_figures(ctx, results, timings, unstructured)


def _time_versus(ctx: RunContext, prof: Profile, like: dict, seed: int) -> dict:
    small = load_shrunk(ctx.work("models") / like["model"])
    pruned = models.build(like["base"]["name"], **like["base"]["kwargs"])
    checkpoint.load_weights(ctx.work("models") / f"unstructured-s{seed}", pruned)
    shape = tuple(ctx.load(prof.lenet_data, "test")[0].shape[1:])
    return structured_over_csr(small, pruned, shape, repeats=prof.bench_repeats).as_dict()


def _note_claim(row: Row) -> str:
    return "depth_blocks_removed" if row.net == "resnet" else f"{row.name}_error"


def _mean(rows: list[dict], key: str) -> float:
    return statistics.fmean(r[key] for r in rows)


def _row_text(rs: list[dict]) -> str:
    parts = []
    for r in rs[0]["layers"]:
        parts.append(
            f"{r['name']} {r['filters'][0]}/{r['filters'][1]} filters, "
            f"{r['channels'][0]}/{r['channels'][1]} ch, {r['fibres'][0]}/{r['fibres'][1]} cols, "
            f"{100 * r['flop_fraction']:.1f}% FLOP"
        )
    removed = sorted({b for r in rs for b in r["removed_blocks"]})
    return (
        f"lambda {rs[0]['strength']:g} (tuned). First seed's structure: {'; '.join(parts)}. Mean over "
        f"seeds: dense accuracy {_mean(rs, 'dense_accuracy'):.4f}, shrunk "
        f"{_mean(rs, 'shrunk_accuracy'):.4f}; params {rs[0]['params_dense']} -> "
        f"{_mean(rs, 'params_shrunk'):.0f}; max |shrunk - sparse| output "
        f"{max(r['max_output_gap'] for r in rs):.1e}."
        + (f" Blocks removed over seeds: {removed}." if removed else "")
    )
