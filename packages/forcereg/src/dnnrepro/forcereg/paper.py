"""The paper's claims as data, the settings of each profile, and ``run(ctx)``.

Small profile (2 CPU cores, a few minutes): LeNet on mnist5k, starting from the pinned core
baseline, and the authors' CIFAR-10 "full" ConvNet on a 2,000-image subset of syndigits,
pretrained here once. Each seed continues the same pretrained net with and without force for the
same steps, then decomposes and fine-tunes both (see experiment.py). Seeds change the data order
of the continuation and fine-tuning, not the pretrained start.
"""

from __future__ import annotations

import statistics

from dnnrepro.core.models import LeNet, resnet20
from dnnrepro.core.paper import Paper, RunContext
from dnnrepro.core.results import Claim, at_least, at_most
from dnnrepro.core.train import TrainConfig

from .convnet import ConvNet
from .experiment import Setup, run_seed, sweep
from .figures import draw_figures

TITLE = "Coordinating Filters for Faster Deep Neural Networks (Force Regularization)"
POSTER = "ICCV'17 poster (authors' repo docs/ICCV17-Poster.pdf)"
RANK_VALUE = "ranks at <= 5% PCA error drop well below the baseline's"


def _rank_claim(net: str, where: str, profiles=("small", "paper")) -> Claim:
    return Claim(
        id=f"rank_{net}",
        statement="Force regularization lowers the rank each layer needs (95% energy)",
        paper_value=RANK_VALUE,
        unit="",
        source=f"abstract; {POSTER} rank figures",
        confidence="verified",
        metric=f"total rank at 95% energy, force / control ({where})",
        rule=at_most(0.7),
        profiles=profiles,
        scale_note="Paper: ResNet-20/GoogLeNet/AlexNet figures, no table available; 'well below' "
        "is declared here as a ratio of at most 0.7.",
    )


def _acc_claim(net: str, where: str) -> Claim:
    return Claim(
        id=f"accuracy_{net}",
        statement="... at equal accuracy of the force-regularized dense net",
        paper_value="no accuracy loss (L2/L1 force, Fig. 6)",
        unit="",
        source="abstract; poster Fig. 6",
        confidence="verified",
        metric=f"test accuracy force - control, pp ({where})",
        rule=at_least(-0.5),
        test_size=1000 if net == "lenet" else 2000,
        test_scale=100.0,
        test_difference=True,
    )


def _curve_claim(net: str, where: str) -> Claim:
    return Claim(
        id=f"curve_{net}",
        statement="Decomposed at equal ranks, the force net's accuracy dominates the baseline's",
        paper_value="force lowers rank at equal error",
        unit="",
        source="abstract; poster",
        confidence="verified",
        metric=f"min over rank fractions 0.1-0.5 of acc(force) - acc(control), no fine-tuning, "
        f"pp ({where})",
        rule=at_least(-0.2),
        scale_note="Tolerance of 0.2 pp (2 of 1,000 test images) for evaluation noise.",
        test_size=1000 if net == "lenet" else 2000,
        test_scale=100.0,
        test_difference=True,
    )


def _finetune_claim(net: str, where: str) -> Claim:
    return Claim(
        id=f"finetune_{net}",
        statement="Low-rank fine-tuning from the force net converges faster toward higher accuracy",
        paper_value="converge faster toward higher accuracy",
        unit="",
        source="abstract; poster fine-tuning curves (AlexNet)",
        confidence="verified",
        metric=f"accuracy after the first fine-tuning epoch, force start - control start, pp, "
        f"both decomposed to the force net's 95%-energy ranks ({where})",
        rule=at_least(0.0),
        test_size=1000 if net == "lenet" else 2000,
        test_scale=100.0,
        test_difference=True,
    )


LENET, CONVNET = "LeNet, mnist5k", "ConvNet, syndigits 2k"

CLAIMS = [
    _rank_claim("lenet", LENET),
    _acc_claim("lenet", LENET),
    _curve_claim("lenet", LENET),
    _finetune_claim("lenet", LENET),
    _rank_claim("convnet", CONVNET),
    _acc_claim("convnet", CONVNET),
    _curve_claim("convnet", CONVNET),
    _finetune_claim("convnet", CONVNET),
    Claim(
        id="cpu_speedup",
        statement="The decomposed network runs faster on CPU",
        paper_value="4.05x (AlexNet, CPU, small accuracy loss); 2x (GPU, no loss)",
        unit="",
        source="abstract",
        confidence="verified",
        metric="conv-stack wall-clock speedup, dense control / decomposed force net, batch 256, "
        "run's thread count (ConvNet)",
        rule=at_least(2.0),
        scale_note="ConvNet conv1 (25 weights per filter) is not decomposed: it cannot pay off.",
        timing=True,
    ),
    Claim(
        id="speedup_accuracy_loss",
        statement="... at small accuracy loss",
        paper_value="no loss (GPU 2x) / small loss (CPU 4.05x)",
        unit="",
        source="abstract",
        confidence="verified",
        metric="accuracy of the dense control - the decomposed, fine-tuned force net, pp (ConvNet)",
        rule=at_most(0.5),
        test_size=2000,
        test_scale=100.0,
        test_difference=True,
    ),
    Claim(
        id="sparsify",
        statement="Lower-rank networks can be further sparsified",
        paper_value="lra + connection pruning: higher conv compression than deep compression",
        unit="",
        source="abstract; poster",
        confidence="verified",
        metric="accuracy loss, pp, after magnitude-pruning 50% of every basis conv's weights and "
        "one masked fine-tuning epoch, vs before pruning (ConvNet)",
        rule=at_most(0.5),
        test_size=2000,
        test_scale=100.0,
        test_difference=True,
    ),
    _rank_claim("resnet20", "ResNet-20, CIFAR-10", profiles=("paper",)),
    Claim(
        id="alexnet_gpu",
        statement="AlexNet runs 2x faster on a GPU without accuracy loss",
        paper_value="2",
        unit="x",
        source="abstract",
        confidence="verified",
        metric="speedup (needs ImageNet; not supported by dnnrepro.core.data)",
        rule=at_least(2.0),
        profiles=("paper",),
        timing=True,
    ),
    Claim(
        id="alexnet_cpu",
        statement="AlexNet runs 4.05x faster on CPU with small accuracy loss",
        paper_value="4.05",
        unit="x",
        source="abstract",
        confidence="verified",
        metric="speedup (needs ImageNet; not supported by dnnrepro.core.data)",
        rule=at_least(4.0),
        profiles=("paper",),
        timing=True,
    ),
]

# Force strength and kind were chosen by a pilot on LeNet (seed 1, before any claim was run):
# 4 epochs of continuation at lr 0.01 from the pinned baseline gave, for the degradation force,
# strength 1.5e-3: accuracy -0.4 pp, conv2 rank 43 -> 33; 2e-3: -1.6 pp, 43 -> 17; 2.5e-3:
# -1.8 pp, 43 -> 4 (a sharp trade-off). 2e-3 is the middle; the sweep figure shows the rest.
STRENGTH, KIND = 2e-3, "degradation"
SWEEP = {"smoke": (0.0, STRENGTH), "small": (0.0, 1e-3, 1.5e-3, STRENGTH, 3e-3)}


def _sgd(epochs, lr, wd, **kw) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=64, lr=lr, momentum=0.9, weight_decay=wd, **kw)


def setups(profile: str) -> list[Setup]:
    """The experiments of ``profile``: name -> Setup."""
    if profile == "smoke":
        tiny = dict(max_steps=3)
        return [
            Setup(
                "lenet",
                "digits",
                lambda: LeNet(1, 8, 10),
                cont=_sgd(1, 0.01, 5e-4, **tiny),
                finetune=_sgd(1, 0.005, 5e-4, **tiny),
                strength=STRENGTH,
                kind=KIND,
                pretrain=_sgd(1, 0.05, 5e-4, **tiny),
                fractions=(0.2, 0.5),
            ),
            Setup(
                "convnet",
                "digits",
                lambda: ConvNet(1, 8, 10, widths=(8, 8, 16)),
                cont=_sgd(1, 0.01, 5e-4, **tiny),
                finetune=_sgd(1, 0.005, 5e-4, **tiny),
                strength=STRENGTH,
                kind=KIND,
                pretrain=_sgd(1, 0.05, 5e-4, **tiny),
                exclude=("conv1",),
                fractions=(0.2, 0.5),
                time_batch=16,
                time_repeats=2,
                prune_sparsity=0.5,
            ),
        ]
    if profile == "small":
        return [
            Setup(
                "lenet",
                "mnist5k",
                lambda: LeNet(1, 28, 10),
                cont=_sgd(4, 0.01, 5e-4),
                finetune=_sgd(2, 0.005, 5e-4),
                strength=STRENGTH,
                kind=KIND,
                baseline="lenet-mnist5k",
            ),
            Setup(
                "convnet",
                "syndigits",
                lambda: ConvNet(1, 28, 10),
                cont=_sgd(4, 0.01, 4e-3),
                finetune=_sgd(2, 0.005, 4e-3),
                strength=STRENGTH,
                kind=KIND,
                pretrain=_sgd(8, 0.05, 4e-3, schedule="cosine"),
                train_subset=2000,
                exclude=("conv1",),
                time_batch=256,
                time_repeats=5,
                prune_sparsity=0.5,
            ),
        ]
    # paper: the authors' recipes, converted from iterations to epochs (see README)
    resnet_cfg = dict(batch_size=128, momentum=0.9, weight_decay=1e-4, schedule="step")
    return [
        Setup(
            "lenet",
            "mnist",
            lambda: LeNet(1, 28, 10),
            cont=_sgd(11, 0.01, 5e-4),
            finetune=_sgd(11, 0.001, 5e-4),
            strength=1e-3,
            kind="constant",
            pretrain=_sgd(11, 0.01, 5e-4),
        ),
        Setup(
            "convnet",
            "cifar10",
            lambda: ConvNet(3, 32, 10),
            cont=TrainConfig(
                epochs=480,
                batch_size=100,
                lr=0.001,
                momentum=0.9,
                weight_decay=4e-3,
                schedule="step",
                milestones=(400, 440),
            ),
            finetune=TrainConfig(
                epochs=160,
                batch_size=100,
                lr=0.001,
                momentum=0.9,
                weight_decay=4e-3,
                schedule="step",
                milestones=(60, 120),
            ),
            strength=1e-3,
            kind="degradation",
            pretrain=TrainConfig(
                epochs=480,
                batch_size=100,
                lr=0.001,
                momentum=0.9,
                weight_decay=4e-3,
                schedule="step",
                milestones=(400, 440),
            ),
            exclude=("conv1",),
            time_batch=256,
            prune_sparsity=0.5,
        ),
        Setup(
            "resnet20",
            "cifar10",
            lambda: resnet20(in_channels=3, num_classes=10),
            cont=TrainConfig(epochs=164, lr=0.01, milestones=(82, 123), **resnet_cfg),
            finetune=TrainConfig(epochs=164, lr=0.01, milestones=(82, 123), **resnet_cfg),
            strength=1e-3,
            kind="degradation",
            pretrain=TrainConfig(epochs=164, lr=0.1, milestones=(82, 123), **resnet_cfg),
            exclude=("conv1",),
            time_batch=256,
        ),
    ]


def _pp(a: float, b: float) -> float:
    return 100.0 * (a - b)


def _record_setup(ctx: RunContext, setup: Setup, out: dict) -> None:
    name = setup.name
    ctrl, frc = out["control"], out["force"]
    ctx.record(f"rank_{name}", frc["total_rank"] / ctrl["total_rank"])
    if name == "resnet20":
        return
    ctx.record(f"accuracy_{name}", _pp(frc["accuracy"], ctrl["accuracy"]))
    ctx.record(f"curve_{name}", min(_pp(p["force"], p["control"]) for p in out["curve"]))
    ctx.record(f"finetune_{name}", _pp(frc["finetune_curve"][1], ctrl["finetune_curve"][1]))
    if "timing" in out:
        ctx.record("cpu_speedup", out["timing"]["speedup"])
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
    if name == "resnet20":
        return
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
    if "timing" in runs[0]:
        t = [r["timing"] for r in runs]
        ctx.note(
            "cpu_speedup",
            f"dense {1e3 * mean(x['dense_seconds'] for x in t):.1f} ms vs decomposed "
            f"{1e3 * mean(x['decomposed_seconds'] for x in t):.1f} ms per batch of "
            f"{t[0]['batch']} on {t[0]['threads']} threads; shared machine, best of 3 medians.",
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


def run(ctx: RunContext) -> None:
    """Run every setup of the profile over the seeds; record claims, figures and details."""
    if ctx.profile == "paper":
        for cid in ("alexnet_gpu", "alexnet_cpu"):
            ctx.note(cid, "not run: needs ImageNet, which dnnrepro.core.data does not load.")
    results: dict[str, list[dict]] = {}
    for setup in setups(ctx.profile):
        runs = [
            ctx.stage(f"{setup.name}-seed{seed}", lambda s=seed, su=setup: run_seed(ctx, su, s))
            for seed in ctx.seeds
        ]
        for out in runs:
            _record_setup(ctx, setup, out)
        _summarize(ctx, setup, runs)
        results[setup.name] = runs
    ctx.detail("runs", results)
    sweep_rows = []
    if ctx.profile in SWEEP:
        first = setups(ctx.profile)[0]
        sweep_rows = ctx.stage(
            f"{first.name}-sweep", lambda: sweep(ctx, first, SWEEP[ctx.profile], ctx.seeds[0])
        )
        ctx.detail(
            "strength_sweep",
            {
                "setup": first.name,
                "kind": first.kind,
                "rows": sweep_rows,
            },
        )
    draw_figures(ctx, results, sweep_rows)


def _add_commands(sub) -> None:
    from .cli import add_commands

    add_commands(sub)


PAPER = Paper(
    name="forcereg",
    title=TITLE,
    arxiv="1703.09746",
    version="0.1.0",
    claims=CLAIMS,
    run=run,
    default_seeds={"smoke": 1, "small": 3, "paper": 1},
    add_commands=_add_commands,
    source_module="dnnrepro.forcereg",
)
