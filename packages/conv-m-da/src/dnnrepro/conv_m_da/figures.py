"""The figures of a run: accuracy per task and method (and per network), features before/after."""

from __future__ import annotations

from typing import Any


def _pyplot():
    """matplotlib (an extra: [reproduce]) imported on first use, with a file-only backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


METHOD_LABELS = {
    "source_only": "source only",
    "adabn": "AdaBN",
    "dan": "DAN",
    "dann": "DANN",
    "cdan": "CDAN",
    "ours": "ours",
}


def accuracy_figure(table: dict, nets: dict, net_task: str | None) -> tuple[Any, dict]:
    """Left: target accuracy (mean +- std over seeds) per task and method, Conv-M net.
    Right (when ``nets`` is given): source-only vs ours per network on ``net_task``."""
    plt = _pyplot()
    if nets:
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    else:
        fig, ax = plt.subplots(figsize=(9, 3.8))
    tasks = list(table)
    methods = [m for m in METHOD_LABELS if m in next(iter(table.values()))]
    width = 0.8 / len(methods)
    for i, m in enumerate(methods):
        xs = [t + (i - (len(methods) - 1) / 2) * width for t in range(len(tasks))]
        ax.bar(
            xs,
            [table[t][m]["mean"] for t in tasks],
            width,
            yerr=[table[t][m]["std"] for t in tasks],
            label=METHOD_LABELS[m],
            capsize=2,
        )
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_ylabel("target test accuracy (%)")
    ax.set_title("Conv-M net (digit size): methods per task")
    ax.legend(fontsize=8)
    if not nets:
        fig.tight_layout()
        return fig, {"tasks": table}
    kinds = list(nets)
    for i, (key, label) in enumerate(
        (("source_only_target", "source only"), ("ours_target", "ours"))
    ):
        xs = [k + (i - 0.5) * 0.35 for k in range(len(kinds))]
        bx.bar(
            xs,
            [nets[k][key]["mean"] for k in kinds],
            0.35,
            yerr=[nets[k][key]["std"] for k in kinds],
            label=label,
            capsize=2,
        )
    bx.set_xticks(range(len(kinds)), [f"{k}\n{nets[k]['params'] / 1e3:.1f}k params" for k in kinds])
    bx.set_title(f"networks on {net_task}")
    bx.legend(fontsize=8)
    fig.tight_layout()
    return fig, {"tasks": table, "networks": nets}


def pca_figure(pca: dict, task: str) -> tuple[Any, dict]:
    """Bottleneck features of source and target test images, first two principal axes."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for ax, key, title in (
        (axes[0], "before", "source-only (before)"),
        (axes[1], "after", "ours (after adaptation)"),
    ):
        src, tgt = pca[key]
        ax.scatter([p[0] for p in src], [p[1] for p in src], s=4, alpha=0.5, label="source")
        ax.scatter([p[0] for p in tgt], [p[1] for p in tgt], s=4, alpha=0.5, label="target")
        mmd = pca[f"mmd_{key}"]
        ax.set_title(f"{title}\nMK-MMD^2 {mmd:.3f}")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].legend(fontsize=8, markerscale=3)
    fig.suptitle(f"features on {task} (PCA of the bottleneck)")
    fig.tight_layout()
    return fig, pca
