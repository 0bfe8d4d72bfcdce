"""The run's figures: measured vs modelled speedup over density, and per-layer density by
method. Each is saved with its data (``ctx.figure``); matplotlib is imported only here."""

from __future__ import annotations

from . import roofline


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def speedup_figure(ctx, fig_data: dict, machine: roofline.Machine, batch: int) -> None:
    """speedup_vs_density.png: measured points and the roofline prediction (dashed) for
    AlexNet conv3-5 at ``batch``; ``fig_data``: {layer: {"points": [...], ...}}."""
    from .experiment import ALEXNET, layer_cost

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [10 ** (-2 + 2 * i / 60) for i in range(61)]
    for color, (name, d) in zip(("C0", "C1", "C2"), fig_data.items(), strict=False):
        cost = layer_cost(ALEXNET[name], batch)
        predicted = [roofline.predict_speedup(cost, machine, x) for x in xs]
        ax.plot(xs, predicted, color=color, ls="--", lw=1)
        ax.plot(
            [p["x"] for p in d["points"]],
            [p["speedup"] for p in d["points"]],
            "o-",
            color=color,
            label=f"{name} measured",
        )
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.axvline(roofline.lower_bound(machine), color="gray", ls=":", lw=0.8)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="non-zero fraction x",
        ylabel="speedup over torch dense conv2d",
        title=f"AlexNet conv3-5, batch {batch} (dashed: roofline model)",
    )
    ax.legend(fontsize=8)
    ctx.figure("speedup_vs_density", fig, fig_data)
    plt.close(fig)


def density_figure(ctx, dens: dict[str, dict[str, float]], seed: int) -> None:
    """density_by_method_seed<seed>.png: non-zero fraction per layer, one bar per method."""
    plt = _pyplot()
    methods = list(dens)
    names = list(dens[methods[0]])
    fig, ax = plt.subplots(figsize=(5, 3.2))
    w = 0.8 / len(methods)
    for i, m in enumerate(methods):
        ax.bar(
            [j + (i - (len(methods) - 1) / 2) * w for j in range(len(names))],
            [dens[m][n] for n in names],
            w,
            label=m.upper(),
        )
    ax.set_xticks(range(len(names)), names)
    ax.set(ylabel="non-zero fraction", ylim=(0, 1.05), title=f"LeNet, per layer (seed {seed})")
    ax.legend(fontsize=8)
    ctx.figure(f"density_by_method_seed{seed}", fig, dens)
    plt.close(fig)
