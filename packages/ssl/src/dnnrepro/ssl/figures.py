"""The three figures of paper_results/ssl: structure per layer, error vs speedup, depth removed."""

from __future__ import annotations

import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def draw_figures(ctx, results: dict[str, list[dict]], timings: dict, unstructured) -> None:
    """structure_per_layer, error_vs_speedup and depth_removed, from stage results only."""
    _structure(ctx, results)
    _error_vs_speed(ctx, results, timings)
    _depth(ctx, results)


def _structure(ctx, results) -> None:
    """Remaining filters and columns (%) per layer for each LeNet/MLP row, seed 0."""
    rows = [n for n in results if not n.startswith("depth")]
    fig, axes = plt.subplots(1, len(rows), figsize=(3 * len(rows), 3), sharey=True)
    data = {}
    for ax, name in zip(axes, rows, strict=True):
        layers = results[name][0]["layers"]
        labels = [r["name"].split(".")[-1] for r in layers]
        filt = [100 * r["filters"][0] / r["filters"][1] for r in layers]
        cols = [100 * r["fibres"][0] / r["fibres"][1] for r in layers]
        flop = [100 * r["flop_fraction"] for r in layers]
        xs = range(len(labels))
        ax.bar([x - 0.27 for x in xs], filt, 0.27, label="filters / rows")
        ax.bar(list(xs), cols, 0.27, label="columns")
        ax.bar([x + 0.27 for x in xs], flop, 0.27, label="FLOPs")
        ax.set_xticks(list(xs), labels, rotation=45)
        ax.set_title(name)
        data[name] = {"layers": labels, "filters_pct": filt, "columns_pct": cols, "flops_pct": flop}
    axes[0].set_ylabel("% remaining (seed 0)")
    axes[0].legend(fontsize=7)
    ctx.figure("structure_per_layer", fig, data)


def _error_vs_speed(ctx, results, timings) -> None:
    """Test error increase vs conv geomean speedup (first seed's net), LeNet rows."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    data = {}
    for name, t in timings.items():
        err = results[name][0]["error_increase_pp"]
        gemm, layer = t["conv_gemm_geomean"], t["conv_layer_geomean"]
        if gemm is not None:
            ax.scatter([gemm], [err], label=f"{name} GEMM per image")
        if layer is not None:
            ax.scatter([layer], [err], marker="x", label=f"{name} layer end to end")
        data[name] = {"gemm": gemm, "layer": layer, "error_increase_pp": err}
    ax.axvline(1.0, color="grey", lw=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("geomean conv speedup vs dense (log)")
    ax.set_ylabel("test error increase (pp)")
    ax.legend(fontsize=6)
    ctx.figure("error_vs_speedup", fig, data)
    plt.close(fig)


def _depth(ctx, results) -> None:
    """Fraction of seeds in which each residual block was removed."""
    rs = results["depth"]
    blocks = [f"stages.{i}.{j}" for i in range(3) for j in range(_blocks_per_stage(rs))]
    share = [statistics.fmean(b in r["removed_blocks"] for r in rs) for b in blocks]
    fig, ax = plt.subplots(figsize=(5, 2.8))
    ax.bar(range(len(blocks)), share)
    ax.set_xticks(range(len(blocks)), blocks, rotation=60, fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of seeds removed")
    ax.set_title("depth-wise SSL: residual blocks removed")
    ctx.figure("depth_removed", fig, {"blocks": blocks, "share_removed": share})


def _blocks_per_stage(rs) -> int:
    convs = [r["name"] for r in rs[0]["layers"] if r["name"].startswith("stages.0.")]
    return max(1, len({n.split(".")[2] for n in convs}))
