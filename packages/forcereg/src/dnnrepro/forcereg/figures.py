"""Figures of a reproduction: ranks per layer, accuracy vs total rank, fine-tuning curves."""

from __future__ import annotations

import statistics

from dnnrepro.core.paper import RunContext


def _mean(values) -> float:
    return statistics.fmean(values)


def draw_figures(ctx: RunContext, results: dict[str, list[dict]], sweep: list[dict]) -> None:
    """Up to four figures (PNG + the JSON they are drawn from) into the results folder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in results if results[n]]
    if not names:
        return

    # 1. rank per layer at the energy threshold, with and without force (mean over seeds)
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.2), squeeze=False)
    data = {}
    for ax, name in zip(axes[0], names, strict=True):
        runs = results[name]
        layers = list(runs[0]["control"]["ranks"])
        ctrl = [_mean(r["control"]["ranks"][k] for r in runs) for k in layers]
        frc = [_mean(r["force"]["ranks"][k] for r in runs) for k in layers]
        maxr = [
            next(x["max_rank"] for x in runs[0]["report"]["dense_control"] if x["layer"] == k)
            for k in layers
        ]
        pos = range(len(layers))
        ax.bar([p - 0.2 for p in pos], ctrl, 0.4, label="control")
        ax.bar([p + 0.2 for p in pos], frc, 0.4, label="force")
        ax.plot(list(pos), maxr, "k_", markersize=18, label="full rank")
        ax.set_xticks(list(pos), layers)
        ax.set_title(f"{name}: rank at 95% energy")
        ax.legend(fontsize=8)
        data[name] = {"layers": layers, "control": ctrl, "force": frc, "max_rank": maxr}
    ctx.figure("ranks_per_layer", fig, data)

    # 2. accuracy vs total rank after decomposition, no fine-tuning
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.2), squeeze=False)
    data = {}
    for ax, name in zip(axes[0], names, strict=True):
        runs = results[name]
        totals = [p["total_rank"] for p in runs[0]["curve"]]
        series = {}
        for arm in ("control", "force"):
            acc = [_mean(r["curve"][i][arm] for r in runs) for i in range(len(totals))]
            ax.plot(totals, acc, "o-", label=arm)
            series[arm] = acc
        ax.set_xlabel("total rank of decomposed layers")
        ax.set_ylabel("test accuracy (no fine-tuning)")
        ax.set_title(name)
        ax.legend(fontsize=8)
        data[name] = {"total_rank": totals, **series}
    ctx.figure("accuracy_vs_rank", fig, data)

    # 3. fine-tuning curves at equal ranks (the force net's 95%-energy ranks)
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.2), squeeze=False)
    data = {}
    for ax, name in zip(axes[0], names, strict=True):
        runs = results[name]
        series = {}
        for arm in ("control", "force"):
            steps = len(runs[0][arm]["finetune_curve"])
            acc = [_mean(r[arm]["finetune_curve"][i] for r in runs) for i in range(steps)]
            ax.plot(range(steps), acc, "o-", label=f"{arm} start")
            series[arm] = acc
        ax.set_xlabel("fine-tuning epoch (0 = right after decomposition)")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"{name}: ranks {runs[0]['finetune_ranks']}", fontsize=8)
        ax.legend(fontsize=8)
        data[name] = {"ranks": runs[0]["finetune_ranks"], **series}
    ctx.figure("finetune_curves", fig, data)

    # 4. the strength trade-off: total rank and accuracy against the force strength
    if sweep:
        fig, ax = plt.subplots(figsize=(4.6, 3.2))
        lam = [r["strength"] for r in sweep]
        ax.plot(lam, [r["total_rank"] for r in sweep], "o-", color="C0")
        ax.set_xlabel("force strength (force_decay)")
        ax.set_ylabel("total rank at 95% energy", color="C0")
        ax2 = ax.twinx()
        ax2.plot(lam, [r["accuracy"] for r in sweep], "s--", color="C1")
        ax2.set_ylabel("test accuracy", color="C1")
        ax.set_title(f"{names[0]}: strength sweep (seed {ctx.seeds[0]})")
        ctx.figure("strength_sweep", fig, sweep)


def draw_scratch_figures(ctx: RunContext, recipe, runs: list[dict]) -> None:
    """The paper's trade-off: test accuracy against conv MACs after decomposition + fine-tuning,
    one line per seed and curve (force arms, no force, post-hoc SVD of the no-force net)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not runs:
        return
    names = list(runs[0]["curves"])
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    data = {}
    for i, name in enumerate(names):
        series = []
        for j, r in enumerate(runs):
            pts = sorted(r["curves"][name], key=lambda p: p["macs"])
            xs, ys = [p["macs"] for p in pts], [100 * p["accuracy"] for p in pts]
            style = "--" if name.startswith("posthoc") else "-"
            ax.plot(xs, ys, style + "o", color=f"C{i}", ms=3, lw=1, label=name if j == 0 else None)
            series.append({"seed": j, "macs": xs, "accuracy": [p["accuracy"] for p in pts]})
        data[name] = series
    control = recipe.arms[0].name
    dense = _mean(r["arms"][control]["accuracy"] for r in runs)
    ax.axhline(100 * (dense - recipe.tolerance), color="gray", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("conv MACs per image (decomposed + fine-tuned)")
    ax.set_ylabel("test accuracy, %")
    ax.set_ylim(max(0.0, 100 * dense - 10), 100)
    ax.set_title(f"{recipe.name}: accuracy vs FLOPs (dotted: dense no-force - 0.5 pp)", fontsize=9)
    ax.legend(fontsize=7)
    ctx.figure("accuracy_vs_flops", fig, data)
