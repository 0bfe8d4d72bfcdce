"""The paper's claims (as data) and the reproduction run.

Park et al., "Faster CNNs with Direct Sparse Convolutions and Guided Pruning", ICLR 2017
(arXiv:1608.01409). Claims and rules were declared before any measurement.
"""

from __future__ import annotations

import math

import torch

from dnnrepro.core import baselines, checkpoint
from dnnrepro.core.bench import threads as _threads
from dnnrepro.core.bench import time_callable
from dnnrepro.core.errors import DataError
from dnnrepro.core.models import LeNet
from dnnrepro.core.paper import Paper, RunContext
from dnnrepro.core.results import Claim, at_least, at_most, between, within
from dnnrepro.core.train import TrainConfig, evaluate

from . import __version__, experiments, roofline
from .pruning import PruneConfig, guided_prune
from .sparse_module import csr_bytes, sparsify

CLAIMS = [
    Claim(
        id="sconv_speedup",
        statement="Direct sparse convolution beats dense on AlexNet conv2-5 at the pruned "
        "CaffeNet sparsities",
        paper_value="3.4 (Xeon E5-2697 v4), 7.3 (Atom C2750), 3.1 (Xeon Phi 7250)",
        unit="x over SGEMM",
        source="ICLR 2017 §3, abstract",
        confidence="verified",
        metric="geometric mean over conv2-5 of t(torch dense conv2d) / t(direct sparse), "
        "batch 32, 2 threads",
        rule=at_least(2.0),
        scale_note="2 shared CPU cores instead of an 18-core Xeon; the dense baseline is "
        "torch's conv2d (oneDNN), not SGEMM after lowering; weights are random at the "
        "CaffeNet per-layer densities 0.144/0.069/0.082/0.115; grouped layers timed per group.",
        timing=True,
    ),
    Claim(
        id="alpha",
        statement="Sparse compute overhead alpha in the compute-bound regime",
        paper_value="3 (Xeon), 1.2 (Atom)",
        unit="",
        source="ICLR 2017 §2.2, §3",
        confidence="verified",
        metric="alpha = t_sparse * F / (x * C) on CaffeNet conv3 (batch 4, x = 0.5), "
        "F = torch float32 GEMM rate",
        rule=between(1.0, 4.0),
        timing=True,
    ),
    Claim(
        id="lower_bound",
        statement="Sparse is slower than dense when x > 1/alpha (lower bound on sparsity)",
        paper_value="x > ~0.3 slower on Xeon (sparsity must exceed ~70%)",
        unit="",
        source="ICLR 2017 §2.2, Fig. 5(b)",
        confidence="verified",
        metric="measured crossover x (speedup = 1; geometric mean over conv3-5, batch 16) "
        "divided by the model's 1/alpha",
        rule=between(0.5, 2.0),
        timing=True,
    ),
    Claim(
        id="model_fit",
        statement="Measured speedup follows the roofline prediction across x in [0.01, 0.9]",
        paper_value="model 2-7x vs measured 3.4x at x ~ 0.09 (Xeon)",
        unit="",
        source="ICLR 2017 §2.2, §3, Fig. 5",
        confidence="verified",
        metric="fraction of (layer, x) points, conv3-5 x 8 densities, with measured/predicted "
        "speedup in [0.5, 2]",
        rule=at_least(0.75),
        timing=True,
    ),
    Claim(
        id="upper_bound_conv5",
        statement="Upper bound of useful sparsity for AlexNet conv5 on Xeon",
        paper_value="x ~ 0.02",
        unit="non-zero fraction",
        source="ICLR 2017 §2.2",
        confidence="verified",
        metric="roofline.upper_bound for CaffeNet conv5 per image with the paper's Table 1 "
        "Xeon F = 2150 GF/s, B = 122 GB/s, alpha = 3 (model arithmetic, no timing)",
        rule=within(0.02, 0.003),
        kind="check",
        kind_reason="computed from the paper's own Table 1 numbers (F, B): arithmetic, not a measurement",
    ),
    Claim(
        id="gsl_conv1_dense",
        statement="Guided pruning leaves the unprofitable conv1 dense",
        paper_value="conv1 not pruned (GESL, GDNS)",
        unit="",
        source="ICLR 2017 §2.3, §3",
        confidence="verified",
        metric="non-zero fraction of LeNet conv1 after GSL on mnist5k",
        rule=at_least(0.99),
        scale_note="LeNet on mnist5k (4,000 training images) from the pinned baseline, "
        "3 pruning periods of 1 epoch + 1 retraining epoch, instead of CaffeNet on ImageNet.",
    ),
    Claim(
        id="gsl_vs_esl_density",
        statement="Guided pruning prunes the profitable conv layers further than uniform L1",
        paper_value="GESL conv2-5 < 0.2 vs ESL ~ 0.4 non-zeros (ratio ~0.5)",
        unit="ratio",
        source="ICLR 2017 §3, Fig. 4",
        confidence="verified",
        metric="non-zero fraction of LeNet conv2 under GSL / under uniform L1 (ESL)",
        rule=at_most(0.75),
        tuned=("gsl_conv_factor",),
    ),
    Claim(
        id="gsl_accuracy",
        statement="... at equal accuracy",
        paper_value="no accuracy drop",
        unit="pp",
        source="ICLR 2017 §3",
        confidence="verified",
        metric="test accuracy GSL minus ESL, percentage points",
        rule=at_least(-0.5),
        test_size=1000,
        test_scale=100.0,
        test_difference=True,
    ),
    Claim(
        id="model_size",
        statement="Pruned model is smaller in CSR than dense",
        paper_value="4x smaller in CSR (8x fewer non-zeros, derived from the SkimCaffe model)",
        unit="x",
        source="SkimCaffe README (derived)",
        confidence="secondary",
        metric="dense float32 bytes / CSR bytes over all LeNet weights after GSL",
        rule=at_least(4.0),
    ),
    Claim(
        id="e2e_speedup",
        statement="End-to-end inference of the guided-pruned network is faster than dense",
        paper_value="not stated end to end (conv2-5 3.4x; conv1 33% of forward time)",
        unit="x",
        source="ICLR 2017 §3; SkimCaffe README log",
        confidence="secondary",
        metric="forward time of dense LeNet / sparsify(GSL LeNet), batch 256, 2 threads",
        rule=at_least(1.1),
        timing=True,
    ),
    Claim(
        id="e2e_accuracy",
        statement="... with accuracy within 0.5 pp of the dense original",
        paper_value="no top-1 drop",
        unit="pp",
        source="ICLR 2017 §3",
        confidence="verified",
        metric="test accuracy of sparsify(GSL LeNet) minus the dense baseline, pp",
        rule=at_least(-0.5),
        test_size=1000,
        test_scale=100.0,
        test_difference=True,
    ),
]

SETTINGS = {
    "smoke": dict(batch=2, sweep_batch=2, grid=(0.05, 0.5), seconds=0.1, repeats=2, steps=4),
    "small": dict(
        batch=32,
        sweep_batch=16,
        grid=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.9),
        seconds=0.6,
        repeats=5,
        steps=None,
    ),
}
# Method settings of the LeNet experiment (fixed before the small-profile run).
ESL = PruneConfig(strength=4e-3, guided=False)
GSL = PruneConfig(strength=4e-3, conv_factor=2.0, fc_factor=0.5, guided=True)
PERIODS = 3


def run(ctx: RunContext) -> None:
    if ctx.profile == "paper":
        raise DataError(
            "the paper profile prunes CaffeNet on ImageNet (ILSVRC 2012), which dnnrepro does not "
            "ship or fetch; run --profile small, or `dnnrepro holistic-sparsecnn bench` for the "
            "kernel at AlexNet shapes"
        )
    s = SETTINGS[ctx.profile]
    machine = roofline.Machine(
        **ctx.stage("machine", lambda: roofline.measure_machine(ctx.threads, 0.5).as_dict())
    )
    ctx.detail("machine", machine.as_dict())
    ctx.log(
        f"machine: F {machine.flops / 1e9:.1f} GF/s, B {machine.bandwidth / 1e9:.1f} GB/s, "
        f"alpha {machine.alpha:.2f}"
    )
    _kernel_claims(ctx, machine, s)
    for seed in ctx.seeds:
        _pruning_claims(ctx, machine, s, seed)


def _kernel_claims(ctx: RunContext, machine: roofline.Machine, s: dict) -> None:
    at_caffenet = ctx.stage(
        "alexnet_caffenet_density",
        lambda: {
            name: experiments.measure_layer(
                args,
                [experiments.CAFFENET_DENSITY[name]],
                s["batch"],
                ctx.threads,
                s["seconds"],
                s["repeats"],
            )
            for name, args in experiments.ALEXNET.items()
        },
    )
    speedups = {n: r["points"][0]["speedup"] for n, r in at_caffenet.items()}
    ctx.detail("alexnet_at_caffenet_density", at_caffenet)
    ctx.record("sconv_speedup", experiments.geomean(speedups.values()))
    ctx.note(
        "sconv_speedup",
        "per layer: " + ", ".join(f"{n} {v:.2f}x" for n, v in speedups.items()) + ".",
    )
    ctx.record("alpha", machine.alpha)
    ctx.note(
        "alpha",
        f"F {machine.flops / 1e9:.1f} GF/s (GEMM), B {machine.bandwidth / 1e9:.1f} "
        "GB/s (copy), measured in the same run on a shared machine.",
    )

    sweep = ctx.stage(
        "speedup_sweep",
        lambda: {
            name: experiments.measure_layer(
                experiments.ALEXNET[name],
                s["grid"],
                s["sweep_batch"],
                ctx.threads,
                s["seconds"],
                s["repeats"],
            )
            for name in ("conv3", "conv4", "conv5")
        },
    )
    crossings, within_2x, total = [], 0, 0
    fig_data = {}
    for name, res in sweep.items():
        cost = experiments.layer_cost(experiments.ALEXNET[name], s["sweep_batch"])
        for p in res["points"]:
            p["predicted"] = roofline.predict_speedup(cost, machine, p["x"])
            ratio = p["speedup"] / p["predicted"]
            within_2x += 0.5 <= ratio <= 2.0
            total += 1
        c = experiments.crossover(res["points"])
        if c is not None:
            crossings.append(c)
        fig_data[name] = {
            "points": res["points"],
            "x_upper": roofline.upper_bound(cost, machine),
            "crossover": c,
        }
    ctx.detail("speedup_sweep", fig_data)
    lower = roofline.lower_bound(machine)
    if crossings:
        ctx.record("lower_bound", experiments.geomean(crossings) / lower)
        ctx.note(
            "lower_bound",
            f"measured crossover x {experiments.geomean(crossings):.3f} "
            f"({len(crossings)} of 3 layers cross), model 1/alpha = {lower:.3f}.",
        )
    else:
        ctx.record("lower_bound", math.nan)
        ctx.note("lower_bound", "the measured speedup never crossed 1 inside the grid.")
    ctx.record("model_fit", within_2x / max(1, total))
    ctx.record(
        "upper_bound_conv5",
        roofline.upper_bound(experiments.CAFFENET_CONV5, roofline.XEON_E5_2697_V4),
    )
    here = roofline.upper_bound(experiments.CAFFENET_CONV5, machine)
    ctx.note(
        "upper_bound_conv5",
        f"Atom (Table 1, alpha 1.2): "
        f"{roofline.upper_bound(experiments.CAFFENET_CONV5, roofline.ATOM_C2750):.4f}; "
        f"this machine (measured F, B, alpha): {here:.4f}.",
    )
    _speedup_figure(ctx, fig_data, machine, s["sweep_batch"])


def _speedup_figure(ctx, fig_data, machine, batch) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [10 ** (-2 + 2 * i / 60) for i in range(61)]
    for color, (name, d) in zip(("C0", "C1", "C2"), fig_data.items(), strict=False):
        cost = experiments.layer_cost(experiments.ALEXNET[name], batch)
        ax.plot(
            xs, [roofline.predict_speedup(cost, machine, x) for x in xs], color=color, ls="--", lw=1
        )
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


def _lenet(ctx: RunContext, seed: int):
    if ctx.profile == "smoke":  # smoke proves nothing: an untrained net, no baseline training
        torch.manual_seed(seed)
        return LeNet(1, 28, 10)
    return baselines.get("lenet-mnist5k", ctx.data_dir, train=True)


def _prune(ctx, machine, s, seed, name, config):
    data, test = ctx.load("mnist5k", "train"), ctx.load("mnist5k", "test")
    work = ctx.work(f"seed{seed}", name)

    def go():
        model = _lenet(ctx, seed)
        result = guided_prune(
            model,
            data,
            test=test,
            input_shape=(1, 28, 28),
            machine=machine,
            config=config,
            train=TrainConfig(epochs=1, batch_size=64, lr=0.01, seed=seed, max_steps=s["steps"]),
            periods=PERIODS if s["steps"] is None else 2,
            retrain=TrainConfig(
                epochs=1,
                batch_size=64,
                lr=0.002,
                schedule="cosine",
                seed=seed,
                max_steps=s["steps"],
            ),
            checkpoint_dir=work,
            log=ctx.log,
        )
        checkpoint.save_weights(work / "final", model, {"method": name})
        return result.summary()

    summary = ctx.stage(f"prune_{name}_seed{seed}", go)
    model = LeNet(1, 28, 10)
    checkpoint.load_weights(work / "final", model)
    return model, summary


def _pruning_claims(ctx: RunContext, machine, s, seed: int) -> None:
    test = ctx.load("mnist5k", "test")
    gsl_model, gsl = _prune(ctx, machine, s, seed, "gsl", GSL)
    _esl_model, esl = _prune(ctx, machine, s, seed, "esl", ESL)
    dens = {
        m: {p["name"]: p["density"] for p in r["layers"]} for m, r in (("gsl", gsl), ("esl", esl))
    }
    ctx.detail(f"pruning_seed{seed}", {"gsl": gsl, "esl": esl})
    ctx.record("gsl_conv1_dense", dens["gsl"]["conv1"])
    ctx.note(
        "gsl_conv1_dense",
        "GSL decisions: "
        + "; ".join(f"{p['name']}: {p['status']} ({p['reason']})" for p in gsl["layers"])
        + ".",
    )
    ctx.record("gsl_vs_esl_density", dens["gsl"]["conv2"] / max(1e-9, dens["esl"]["conv2"]))
    ctx.note(
        "gsl_vs_esl_density",
        "non-zeros GSL "
        + ", ".join(f"{k} {v:.3f}" for k, v in dens["gsl"].items())
        + "; ESL "
        + ", ".join(f"{k} {v:.3f}" for k, v in dens["esl"].items())
        + ".",
    )
    acc_gsl, acc_esl = gsl["final"]["accuracy"], esl["final"]["accuracy"]
    ctx.record("gsl_accuracy", 100 * (acc_gsl - acc_esl))
    ctx.note("gsl_accuracy", f"GSL {acc_gsl:.4f}, ESL {acc_esl:.4f}.")
    size = csr_bytes(gsl_model)
    ctx.record("model_size", size["size_reduction"])
    ctx.note(
        "model_size",
        f"{size['nnz_reduction']:.2f}x fewer non-zeros; dense "
        f"{size['dense_bytes'] / 1e3:.0f} kB, CSR {size['csr_bytes'] / 1e3:.0f} kB.",
    )
    ctx.detail(f"model_size_seed{seed}", size)

    dense = _lenet(ctx, seed).eval()
    sparse = sparsify(gsl_model, (1, 28, 28), machine, batch=256)
    xb = test[0][:256]
    with _threads(ctx.threads), torch.no_grad():
        td = time_callable(lambda: dense(xb), 2, s["repeats"] * 2, max_seconds=s["seconds"]).min
        tsp = time_callable(lambda: sparse(xb), 2, s["repeats"] * 2, max_seconds=s["seconds"]).min
    ctx.record("e2e_speedup", td / tsp)
    ctx.note(
        "e2e_speedup",
        "swapped: "
        + (", ".join(r["layer"] for r in sparse.sparsified if r["swapped"]) or "none")
        + ".",
    )
    acc_sparse = evaluate(sparse, test)["accuracy"]
    acc_dense = evaluate(dense, test)["accuracy"]
    ctx.record("e2e_accuracy", 100 * (acc_sparse - acc_dense))
    ctx.note("e2e_accuracy", f"sparse {acc_sparse:.4f}, dense {acc_dense:.4f}.")
    ctx.detail(
        f"e2e_seed{seed}",
        {
            "dense_s": td,
            "sparse_s": tsp,
            "sparsified": sparse.sparsified,
        },
    )
    _density_figure(ctx, dens, seed)


def _density_figure(ctx, dens, seed) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dens["gsl"])
    fig, ax = plt.subplots(figsize=(5, 3.2))
    w = 0.38
    ax.bar(
        [i - w / 2 for i in range(len(names))],
        [dens["esl"][n] for n in names],
        w,
        label="uniform L1 (ESL)",
    )
    ax.bar(
        [i + w / 2 for i in range(len(names))],
        [dens["gsl"][n] for n in names],
        w,
        label="guided (GSL)",
    )
    ax.set_xticks(range(len(names)), names)
    ax.set(ylabel="non-zero fraction", ylim=(0, 1.05), title="LeNet on mnist5k, per layer")
    ax.legend(fontsize=8)
    ctx.figure(f"density_gsl_vs_esl_seed{seed}", fig, dens)


def _add_commands(sub) -> None:
    from .cli import add_commands

    add_commands(sub)


PAPER = Paper(
    name="holistic-sparsecnn",
    title="Faster CNNs with Direct Sparse Convolutions and Guided Pruning",
    arxiv="1608.01409",
    version=__version__,
    claims=CLAIMS,
    run=run,
    default_seeds={"smoke": 1, "small": 1, "paper": 1},
    add_commands=_add_commands,
    source_module="dnnrepro.holistic_sparsecnn",
)
