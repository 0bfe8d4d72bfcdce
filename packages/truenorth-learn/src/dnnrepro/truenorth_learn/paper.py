"""Wen et al., DAC 2016: claims as data, and the run that measures them.

Small profile: mnist5k on the 5-core layout and scikit-learn digits on 2 cores, 3 seeds. Paper
profile: the same protocol on full MNIST (user-supplied IDX files). Protocol and iso-accuracy
metrics: see experiment.py. Rules were fixed before the first measurement.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from dnnrepro.core.paper import Paper, RunContext
from dnnrepro.core.results import Claim, at_least

from .experiment import (
    iso_metrics,
    load_trained,
    select,
    split_validation,
    test_curves,
    train_and_validate,
)
from .penalty import KINDS
from .tea import DATASET_ARCH
from .training import TeaTrainSpec

ESSER = "Esser et al. NIPS 2015 (the paper's baseline)"
ABSTRACT = "Wen et al. DAC 2016, abstract"
SCALE = (
    "mnist5k (4,000 train of which 20% validation, 1,000 test) on the 5-core layout; the paper's "
    "networks and data set sizes are not available."
)


def _triple(prefix: str, data: str, profiles=("small", "paper")) -> list[Claim]:
    return [
        Claim(
            id=f"{prefix}_core_reduction",
            statement=f"{data}: the variance-constrained model needs fewer copies (cores) to reach the "
            "baseline's best accuracy",
            paper_value="up to 68.8",
            unit="% fewer cores",
            source=ABSTRACT,
            confidence="verified",
            metric="1 - copies_penalised / copies_baseline at the baseline's 64-copy accuracy - 0.005, "
            "1 tick (fraction)",
            rule=at_least(0.5),
            profiles=profiles,
            scale_note="Iso-accuracy on our copy grid 1..64; the regularizer of the paper is unknown, we use "
            "the kind and strength selected on a validation split.",
        ),
        Claim(
            id=f"{prefix}_tick_speedup",
            statement=f"{data}: fewer ticks (temporal samples) reach the baseline's accuracy",
            paper_value="up to 6.5",
            unit="x speedup",
            source=ABSTRACT,
            confidence="verified",
            metric="ticks_baseline / ticks_penalised at 1 copy, target = baseline 16-tick accuracy - 0.005",
            rule=at_least(2.0),
            profiles=profiles,
        ),
        Claim(
            id=f"{prefix}_accuracy_kept",
            statement=f"{data}: accuracy is not lost (the paper: slightly improved)",
            paper_value="slightly better",
            unit="",
            source=ABSTRACT,
            confidence="verified",
            metric="penalised - baseline accuracy at 64 copies, 1 tick (fraction)",
            rule=at_least(-0.005),
            profiles=profiles,
            test_size=1000 if prefix == "mnist" else 364,
            test_difference=True,
        ),
    ]


CLAIMS = [
    Claim(
        id="mnist_copies_gain",
        statement="Averaging network copies raises the Esser baseline's accuracy toward the trained network",
        paper_value="92.7 -> 99.42",
        unit="% (1 -> 64 copies, MNIST)",
        source=ESSER,
        confidence="verified",
        metric="baseline accuracy(64 copies) - accuracy(1 copy), 1 tick (fraction)",
        rule=at_least(0.02),
        scale_note=SCALE,
        test_size=1000,
        test_difference=True,
    ),
    Claim(
        id="mnist_baseline_near_float",
        statement="The 64-copy ensemble approaches the expected-value (trained) network",
        paper_value="ensemble -> shadow network",
        unit="",
        source="Esser et al. 2015, method",
        confidence="secondary",
        metric="baseline accuracy(64 copies, 1 tick) - float model accuracy (fraction)",
        rule=at_least(-0.02),
        test_size=1000,
        test_difference=True,
    ),
    *_triple("mnist", "MNIST"),
    *_triple("digits", "8x8 digits (2 cores)"),
    Claim(
        id="penalty_binarizes",
        statement="The method biases connection probabilities toward 0/1",
        paper_value="biased toward binary",
        unit="",
        source="Wang, Wen, Song, Li, ASP-DAC 2017 (describing DAC'16)",
        confidence="secondary",
        metric="fraction of p within 0.01 of 0 or 1, penalised - baseline, MNIST",
        rule=at_least(0.2),
    ),
    Claim(
        id="mnist_esser_64copy",
        statement="Esser baseline reaches 99.42% on MNIST with 64 copies",
        paper_value="99.42",
        unit="%",
        source=ESSER,
        confidence="verified",
        metric="baseline accuracy, 64 copies, 1 tick, full MNIST (fraction)",
        rule=at_least(0.98),
        profiles=("paper",),
        scale_note="Needs full MNIST; our 5-core network is far smaller than Esser's, so a gap is expected.",
        test_size=10000,
    ),
]


@dataclass(frozen=True)
class Profile:
    """How big each part of the run is."""

    datasets: tuple[str, ...]
    epochs: dict
    kinds: tuple[str, ...]
    strengths: tuple[float, ...]
    copies: int = 64
    ticks: int = 16
    ticks_copies: int = 16
    val_copies: int = 16
    max_steps: int | None = None
    test_limit: int | None = None
    train_limit: int | None = None


PROFILES = {
    "smoke": Profile(
        ("mnist5k", "digits"),
        {"mnist5k": 1, "digits": 1},
        ("l1_to_binary",),
        (3.0,),
        copies=4,
        ticks=2,
        ticks_copies=2,
        val_copies=2,
        max_steps=2,
        test_limit=60,
        train_limit=300,
    ),
    "small": Profile(("mnist5k", "digits"), {"mnist5k": 6, "digits": 10}, KINDS, (1.0, 3.0, 10.0)),
    "paper": Profile(("mnist", "digits"), {"mnist": 15, "digits": 10}, KINDS, (1.0, 3.0, 10.0)),
}


def _key(kind, strength) -> str:
    return "baseline" if kind is None else f"{kind}@{strength:g}"


def _parse(key: str):
    if key == "baseline":
        return None, 0.0
    kind, strength = key.split("@")
    return kind, float(strength)


def _run_dataset(ctx: RunContext, prof: Profile, ds: str) -> dict:
    x, y = ctx.load(ds, "train")
    xt, yt = ctx.load(ds, "test")
    if prof.train_limit:
        x, y = x[: prof.train_limit], y[: prof.train_limit]
    if prof.test_limit:
        xt, yt = xt[: prof.test_limit], yt[: prof.test_limit]
    train, val = split_validation(x, y)
    arch = DATASET_ARCH[ds]

    def spec(key: str, seed: int) -> TeaTrainSpec:
        kind, strength = _parse(key)
        return TeaTrainSpec(
            arch=arch,
            epochs=prof.epochs[ds],
            seed=seed,
            penalty_kind=kind,
            penalty_strength=strength,
            max_steps=prof.max_steps,
        )

    def trained(key: str, seed: int) -> dict:
        work = ctx.work(ds, key, f"seed{seed}")
        ctx.log(f"{ds}: train {key} seed {seed}")
        return ctx.stage(
            f"{ds}-{key}-seed{seed}-train",
            lambda: train_and_validate(
                spec(key, seed), train, val, work, ctx.threads, prof.val_copies
            ),
        )

    keys = ["baseline"] + [_key(k, s) for k in prof.kinds for s in prof.strengths]
    sweep = {k: trained(k, 0) for k in keys}
    best, need = select({k: v["val_copies_curve"] for k, v in sweep.items()}, "baseline")
    ctx.log(f"{ds}: selected {best} on validation")
    results = {"selected": best, "sweep": sweep, "val_copies_needed": need, "seeds": {}}
    for seed in ctx.seeds:
        per = {}
        for key in ("baseline", best):
            trained(key, seed)
            work = ctx.work(ds, key, f"seed{seed}")

            def measure(key=key, work=work, seed=seed) -> dict:
                model = load_trained(arch, work)
                return test_curves(
                    model, (xt, yt), prof.copies, prof.ticks, prof.ticks_copies, 20_000 + seed
                )

            ctx.log(f"{ds}: deploy {key} seed {seed}")
            per[key] = ctx.stage(f"{ds}-{key}-seed{seed}-test", measure)
        per["iso"] = iso_metrics(per["baseline"], per[best])
        results["seeds"][seed] = per
    return results


def _record(ctx: RunContext, ds: str, res: dict) -> None:
    prefix = "mnist" if ds in ("mnist5k", "mnist") else "digits"
    best = res["selected"]
    for per in res["seeds"].values():
        base, pen, iso = per["baseline"], per[best], per["iso"]
        ctx.record(f"{prefix}_core_reduction", iso["core_reduction"])
        ctx.record(f"{prefix}_tick_speedup", iso["tick_speedup"])
        ctx.record(f"{prefix}_accuracy_kept", iso["accuracy_delta_max_copies"])
        if prefix == "mnist":
            ctx.record("mnist_copies_gain", base["copies_curve"][-1] - base["copies_curve"][0])
            ctx.record(
                "mnist_baseline_near_float", base["copies_curve"][-1] - base["float_accuracy"]
            )
            ctx.record("penalty_binarizes", pen["binary_fraction"] - base["binary_fraction"])
            if ds == "mnist":
                ctx.record("mnist_esser_64copy", base["copies_curve"][-1])
    seeds = list(res["seeds"].values())

    def mean(key, field):
        return statistics.fmean(s[key][field] for s in seeds)

    iso = [s["iso"] for s in seeds]
    text = (
        f"{ds}: selected penalty {best} (validation). Copies needed (mean over seeds) baseline "
        f"{statistics.fmean(i['copies_baseline'] for i in iso):.3g} vs penalised "
        f"{statistics.fmean(i['copies_penalised'] for i in iso):.3g}; ticks needed "
        f"{statistics.fmean(i['ticks_baseline'] for i in iso):.3g} vs "
        f"{statistics.fmean(i['ticks_penalised'] for i in iso):.3g}; accuracy at 1 copy/1 tick "
        f"{statistics.fmean(s['baseline']['copies_curve'][0] for s in seeds):.4f} vs "
        f"{statistics.fmean(s[best]['copies_curve'][0] for s in seeds):.4f}, at max copies "
        f"{statistics.fmean(s['baseline']['copies_curve'][-1] for s in seeds):.4f} vs "
        f"{statistics.fmean(s[best]['copies_curve'][-1] for s in seeds):.4f}; float model "
        f"{mean('baseline', 'float_accuracy'):.4f} vs {mean(best, 'float_accuracy'):.4f}."
    )
    ctx.note(f"{prefix}_core_reduction", text)
    ctx.note(f"{prefix}_tick_speedup", f"Selected {best}; numbers in the core_reduction note.")
    ctx.note(f"{prefix}_accuracy_kept", f"Selected {best}; numbers in the core_reduction note.")
    if prefix == "mnist":
        full = statistics.fmean(s["baseline"]["grid"][-1][-1] for s in seeds)
        k, t = seeds[0]["baseline"]["copies"][-1], seeds[0]["baseline"]["ticks"][-1]
        ctx.note(
            "mnist_baseline_near_float",
            f"At 1 tick every copy sees the same input spikes (one shared spike source), so copies "
            f"average only the crossbar noise; with {k} copies x {t} ticks the baseline reaches "
            f"{full:.4f} vs its float model {mean('baseline', 'float_accuracy'):.4f}.",
        )


def _figure(ctx: RunContext, ds: str, res: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    best = res["selected"]
    seeds = list(res["seeds"].values())
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    data = {"selected": best}
    for key, style in (("baseline", "o-"), (best, "s-")):
        cgrid = seeds[0][key]["copies_grid"]
        cc = [statistics.fmean(s[key]["copies_curve"][i] for s in seeds) for i in range(len(cgrid))]
        tgrid = seeds[0][key]["ticks"]
        tc = [statistics.fmean(s[key]["ticks_curve"][i] for s in seeds) for i in range(len(tgrid))]
        label = "Esser baseline" if key == "baseline" else f"penalty {key}"
        axes[0].plot(cgrid, cc, style, label=label)
        axes[1].plot(tgrid, tc, style, label=label)
        axes[2].bar(
            [i / 20 + (0.012 if key != "baseline" else 0) for i in range(20)],
            seeds[0][key]["p_histogram"],
            width=0.02,
            label=label,
        )
        data[key] = {
            "copies": cgrid,
            "acc_vs_copies": cc,
            "ticks": tgrid,
            "acc_vs_ticks": tc,
            "p_histogram_seed0": seeds[0][key]["p_histogram"],
        }
    fa = statistics.fmean(s["baseline"]["float_accuracy"] for s in seeds)
    axes[0].axhline(fa, color="gray", ls="--", lw=1, label="baseline float model")
    axes[0].set(
        xscale="log", xlabel="copies (1 tick)", ylabel="test accuracy", title=f"{ds}: copies"
    )
    axes[1].set(xscale="log", xlabel="ticks (1 copy)", ylabel="test accuracy", title=f"{ds}: ticks")
    axes[2].set(xlabel="connection probability p", ylabel="fraction", title="learned p (seed 0)")
    sweep = res["sweep"]
    for key, v in sweep.items():
        axes[3].scatter(v["binary_fraction"], v["val_copies_curve"][0], s=18)
        axes[3].annotate(key, (v["binary_fraction"], v["val_copies_curve"][0]), fontsize=6)
    axes[3].set(
        xlabel="fraction of binary p", ylabel="validation accuracy, 1 copy", title="sweep (seed 0)"
    )
    data["sweep"] = {
        k: {"binary_fraction": v["binary_fraction"], "val_copies_curve": v["val_copies_curve"]}
        for k, v in sweep.items()
    }
    for ax in axes[:3]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    ctx.figure(f"{ds}_curves", fig, data)


def run(ctx: RunContext) -> None:
    prof = PROFILES[ctx.profile]
    for ds in prof.datasets:
        res = _run_dataset(ctx, prof, ds)
        _record(ctx, ds, res)
        _figure(ctx, ds, res)
        ctx.detail(
            ds,
            {
                "selected": res["selected"],
                "val_copies_needed": res["val_copies_needed"],
                "sweep_validation": {
                    k: {
                        f: v[f]
                        for f in ("val_float_accuracy", "val_copies_curve", "binary_fraction")
                    }
                    for k, v in res["sweep"].items()
                },
                "iso_per_seed": {str(s): p["iso"] for s, p in res["seeds"].items()},
            },
        )


def _add_commands(sub) -> None:
    from .cli import add_commands

    add_commands(sub)


PAPER = Paper(
    name="truenorth-learn",
    title=(
        "A New Learning Method for Inference Accuracy, Core Occupation, and Performance "
        "Co-optimization on TrueNorth Chip"
    ),
    arxiv="1604.00697",
    version="0.1.0",
    claims=CLAIMS,
    run=run,
    default_seeds={"smoke": 1, "small": 3, "paper": 3},
    add_commands=_add_commands,
    source_module="dnnrepro.truenorth_learn",
)
