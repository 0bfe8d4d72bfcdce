"""The figure of one data set: accuracy vs copies and vs ticks, learned p, the tuning sweep."""

from __future__ import annotations

import statistics

from dnnrepro.core.paper import RunContext


def _mean(seeds: list[dict], key: str, field: str) -> list[float]:
    n = len(seeds[0][key][field])
    return [statistics.fmean(s[key][field][i] for s in seeds) for i in range(n)]


def curves(ctx: RunContext, ds: str, res: dict) -> None:
    """``<ds>_curves.png`` (+ .json): baseline vs the tuned penalty, means over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    best = res["selected"]
    seeds = list(res["seeds"].values())
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    data = {"selected": best}
    for key, style in (("baseline", "o-"), (best, "s-")):
        cgrid, tgrid = seeds[0][key]["copies_grid"], seeds[0][key]["ticks"]
        cc, tc = _mean(seeds, key, "copies_curve"), _mean(seeds, key, "ticks_curve")
        label = "Esser baseline" if key == "baseline" else f"fine-tuned {key}"
        axes[0].plot(cgrid, cc, style, label=label)
        mode = seeds[0][key]["inputs"]
        ci = _mean(seeds, key, "copies_curve_other")
        other = "shared" if mode == "independent" else "independent"
        axes[0].plot(cgrid, ci, style[0] + ":", label=f"{label}, {other} input spikes")
        axes[1].plot(tgrid, tc, style, label=label)
        shift = 0.012 if key != "baseline" else 0.0
        hist = seeds[0][key]["p_histogram"]
        axes[2].bar([i / 20 + shift for i in range(20)], hist, width=0.02, label=label)
        data[key] = {
            "copies": cgrid,
            "acc_vs_copies": cc,
            "inputs": mode,
            "acc_vs_copies_other_inputs": ci,
            "ticks": tgrid,
            "acc_vs_ticks": tc,
            "p_histogram_first_seed": hist,
        }
    fa = statistics.fmean(s["baseline"]["float_accuracy"] for s in seeds)
    axes[0].axhline(fa, color="gray", ls="--", lw=1, label="baseline float model")
    mode = seeds[0]["baseline"]["inputs"]
    axes[0].set(
        xscale="log",
        xlabel=f"copies (1 tick, {mode} input spikes)",
        ylabel="test accuracy",
        title=f"{ds}: copies",
    )
    axes[1].set(xscale="log", xlabel="ticks (1 copy)", ylabel="test accuracy", title=f"{ds}: ticks")
    axes[2].set(
        xlabel="connection probability p", ylabel="fraction", title="learned p (first seed)"
    )
    sweep = res["sweep"]
    for key, v in sweep.items():
        axes[3].scatter(v["binary_fraction"], v["val_copies_curve"][0], s=18)
        axes[3].annotate(key, (v["binary_fraction"], v["val_copies_curve"][0]), fontsize=6)
    axes[3].set(
        xlabel="fraction of binary p",
        ylabel="validation accuracy, 1 copy",
        title="tuning sweep (first tuning seed)",
    )
    data["sweep"] = {
        k: {"binary_fraction": v["binary_fraction"], "val_copies_curve": v["val_copies_curve"]}
        for k, v in sweep.items()
    }
    for ax in axes[:3]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    ctx.figure(f"{ds}_curves", fig, data)
    plt.close(fig)
