"""Figures of the reproduction: accuracy vs poisons, time per poison, detector ROC, sample poisons.

Each figure is saved with the numbers it shows (``ctx.figure`` writes <name>.png and <name>.json).
"""

from __future__ import annotations

import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

STYLE = {
    "direct-faithful": ("tab:red", "-"),
    "direct-exact": ("tab:orange", "--"),
    "generative-faithful": ("tab:blue", "-"),
    "generative-unrolled": ("tab:cyan", "--"),
    "direct-faithful-adaptive": ("tab:red", "-."),
    "generative-faithful-adaptive": ("tab:blue", "-."),
    "label-flip": ("tab:gray", ":"),
    "clean": ("black", ":"),
}


def _mean_curve(results, method, kind, key):
    xs = [row[key] for row in results[0]["damage"][method][kind]]
    ys = [
        statistics.fmean(r["damage"][method][kind][i]["test_accuracy"] for r in results)
        for i in range(len(xs))
    ]
    return xs, [100 * y for y in ys]


def accuracy_figure(all_results: dict):
    """Test accuracy vs number of poisons (sequential) and vs poison fraction, per dataset."""
    names = list(all_results)
    fig, axes = plt.subplots(len(names), 2, figsize=(10, 3.6 * len(names)), squeeze=False)
    data = {}
    for row, ds in enumerate(names):
        results = all_results[ds]
        data[ds] = {}
        for method in results[0]["damage"]:
            color, ls = STYLE.get(method, (None, "-"))
            xs, ys = _mean_curve(results, method, "sequential", "count")
            fx, fy = _mean_curve(results, method, "fraction", "fraction")
            data[ds][method] = {"count": xs, "acc_seq": ys, "fraction": fx, "acc_frac": fy}
            axes[row, 0].plot(xs, ys, marker="o", color=color, ls=ls, label=method)
            axes[row, 1].plot([100 * f for f in fx], fy, marker="o", color=color, ls=ls)
        axes[row, 0].set(
            title=f"{ds}: one SGD step per poison, in turn",
            xlabel="poisons applied",
            ylabel="test accuracy (%)",
        )
        axes[row, 1].set(
            title=f"{ds}: one re-training epoch with poisons mixed in",
            xlabel="poison fraction (%)",
            ylabel="test accuracy (%)",
        )
        axes[row, 0].legend(fontsize=7)
    fig.suptitle(f"Accuracy vs poisons (mean over {len(all_results[names[0]])} seeds)")
    fig.tight_layout()
    return fig, data


def time_figure(all_results: dict):
    """Seconds per poison per method (log scale), per dataset."""
    methods = ["direct-faithful", "direct-exact", "generative-faithful", "generative-unrolled"]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    width = 0.8 / len(all_results)
    data = {}
    for i, (ds, results) in enumerate(all_results.items()):
        t = [
            statistics.fmean(r["speed"]["seconds_per_poison"][m] for r in results) for m in methods
        ]
        data[ds] = dict(zip(methods, t, strict=True))
        ax.bar(np.arange(len(methods)) + i * width, t, width, label=ds)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(methods)) + width * (len(all_results) - 1) / 2, methods)
    ax.set_ylabel("seconds per poison (batch 1)")
    ax.set_title("Time per poison (generator training excluded)")
    ax.legend()
    fig.tight_layout()
    return fig, data


def roc_figure(all_results: dict):
    """ROC of the loss detector on the first seed: poisons vs unseen clean test images."""
    names = list(all_results)
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 4), squeeze=False)
    data = {}
    for col, ds in enumerate(names):
        r = all_results[ds][0]
        data[ds] = r["roc"]
        ax = axes[0, col]
        for method, curve in r["roc"].items():
            color, ls = STYLE.get(method, (None, "-"))
            auc = r["detection"]["methods"][method]["0.99"]["auc"]
            ax.plot(
                curve["fpr"], curve["tpr"], color=color, ls=ls, label=f"{method} (AUC {auc:.3f})"
            )
        for q, v in r["detection"]["clean_stream"].items():
            ax.axvline(v["fpr"], color="k", lw=0.5, alpha=0.5)
            ax.text(v["fpr"], 0.02, f" q={q}", fontsize=7, rotation=90)
        ax.set(
            title=f"{ds}, seed {r['seed']}",
            xlabel="false-positive rate",
            ylabel="true-positive rate",
        )
        ax.set_xscale("symlog", linthresh=0.01)
        ax.set_xlim(0, 1)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle("Loss-threshold detector")
    fig.tight_layout()
    return fig, data


def samples_figure(all_results: dict):
    """Seed images and the poisons each method made from them (first seed): one column per
    method, one row per (dataset, sample)."""
    names = list(all_results)
    methods = list(all_results[names[0]][0]["samples"])
    rows = [(ds, j) for ds in names for j in range(len(all_results[ds][0]["samples"]["seed"]))]
    fig, axes = plt.subplots(
        len(rows), len(methods), figsize=(1.3 * len(methods), 1.4 * len(rows)), squeeze=False
    )
    data = {ds: all_results[ds][0]["samples"] for ds in names}
    for i, (ds, j) in enumerate(rows):
        r = all_results[ds][0]
        shape = r["image_shape"]
        for c, m in enumerate(methods):
            ax = axes[i, c]
            img = np.asarray(r["samples"][m][j]).reshape(shape).transpose(1, 2, 0)
            ax.imshow(img[..., 0] if shape[0] == 1 else img, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(m.replace("-", "\n"), fontsize=7)
            if c == 0:
                ax.set_ylabel(
                    f"{ds}\ny={r['labels']['seed'][j]} -> {r['labels']['poison'][j]}", fontsize=7
                )
    fig.suptitle("Seeds and poisons (poison label (y + 1) mod 10)", fontsize=8)
    fig.tight_layout()
    return fig, data


def plot_all(ctx, all_results: dict) -> None:
    """Write the four figures of the run into the results folder."""
    for name, make in (
        ("accuracy_vs_poisons", accuracy_figure),
        ("time_per_poison", time_figure),
        ("detector_roc", roc_figure),
        ("sample_poisons", samples_figure),
    ):
        fig, data = make(all_results)
        ctx.figure(name, fig, data)
