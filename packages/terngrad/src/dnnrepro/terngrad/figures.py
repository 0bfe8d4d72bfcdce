"""The reproduction's figures, drawn from values the run already recorded (nothing is measured here)."""

from __future__ import annotations

import statistics

from dnnrepro.core.paper import RunContext

from . import perfmodel
from .config import Profile


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bytes_per_element(ctx: RunContext, data: dict) -> None:
    """Bytes one worker sends per gradient element vs N, every wire (log-log)."""
    plt = _plt()
    ns, curves = data["workers"], data["curves"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, ys in curves.items():
        ax.plot(ns, ys, marker="o", ms=3, label=label, lw=2.5 if label == "fp32 ring" else 1.2)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("workers N")
    ax.set_ylabel("bytes sent per gradient element per worker")
    ax.set_title("LeNet bucket; formula = counted bytes (gloo, N = 2, 4, 8)")
    ax.legend(fontsize=7, ncol=2)
    ctx.figure("bytes_per_element", fig, data)


def accuracy_vs_workers(ctx: RunContext, p: Profile, table: dict, launches: dict) -> None:
    """Test accuracy vs N (mean over seeds): emulated TernGrad, no clip, fp32, gloo points."""
    plt = _plt()
    seeds = ctx.seeds

    def mean(key: str, sub) -> float:
        return statistics.fmean(table[f"seed{s}"][key][sub] for s in seeds)

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, model, key, ns in (
        (axes[0], "lenet", "lenet_terngrad", p.lenet_n),
        (axes[1], "mlp", "mlp_terngrad", p.mlp_n),
    ):
        ax.axhline(100 * mean("fp32", model), color="k", ls="--", label="fp32 (any N)")
        ax.plot(ns, [100 * mean(key, n) for n in ns], marker="o", label="TernGrad c=2.5 (emulated)")
        if model == "lenet":
            ax.plot(
                p.noclip_n,
                [100 * mean("lenet_noclip", n) for n in p.noclip_n],
                marker="s",
                label="TernGrad no clip",
            )
            for n in p.gloo_n:
                runs = launches[n]["train"]
                for method, mk in (("fp32", "x"), ("terngrad", "^")):
                    acc = statistics.fmean(r["accuracy"] for r in runs if r["method"] == method)
                    ax.scatter(
                        [n],
                        [100 * acc],
                        marker=mk,
                        color="r",
                        zorder=5,
                        label=f"gloo {method} ({p.gloo_steps} steps)" if n == p.gloo_n[0] else None,
                    )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("workers N (total batch 64)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{model} on {p.dataset}, {p.steps} steps, mean of {len(seeds)} seeds")
        ax.legend(fontsize=7)
    ctx.figure("accuracy_vs_workers", fig, table)


def perfmodel_throughput(ctx: RunContext, data: dict) -> None:
    """Modelled images/s vs GPUs, TernGrad (solid) and fp32 (dashed), per cluster."""
    plt = _plt()
    counts = perfmodel.GPU_COUNTS
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, cl in zip(axes, perfmodel.CLUSTERS, strict=True):
        for net in perfmodel.NETWORKS:
            rows = data[f"{net}/{cl}"]
            line = ax.plot(
                counts, [r["terngrad"] for r in rows], marker="o", ms=3, label=f"{net} TernGrad"
            )
            ax.plot(
                counts,
                [r["fp32"] for r in rows],
                ls="--",
                color=line[0].get_color(),
                label=f"{net} fp32",
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("GPUs")
        ax.set_ylabel("images / s (modelled)")
        ax.set_title(cl)
        ax.legend(fontsize=7)
    ctx.figure("perfmodel_throughput", fig, data)
