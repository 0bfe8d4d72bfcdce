"""The reproduction run: converged Esser baseline, penalty fine-tuning, iso-accuracy on the test split.

For each data set of the profile (config.py), in named steps:

1. :func:`load_splits`: ``train_minus_val`` to train on, ``val`` to tune on, ``test`` to report;
2. :func:`tune_penalty`: for each tuning seed (1000, ...), train the baseline to convergence, then
   fine-tune a copy of it with each candidate penalty (kind x strength); ``ctx.tune`` picks the
   candidate with the lowest :func:`protocol.tuning_metric` (copies needed on the validation
   split to reach the baseline's best validation accuracy minus the tolerance);
3. :func:`measure_seed`: for each reporting seed, the baseline and the chosen fine-tune, their
   test curves (means over simulator draws) and the iso-accuracy metrics;
4. :func:`record`: one value per seed and claim, and notes.

Every training is a resumable ``fit`` under ``ctx.work(...)`` and its validation numbers a stage;
every test measurement is a stage. Each recorded value is derived from stage results (which are
derived from saved weights), so a resumed run records the same values as a clean one.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from dnnrepro.core.paper import RunContext

from . import figures
from .config import PROFILES, DatasetPlan, Profile
from .protocol import (
    OTHER,
    curves_on_test,
    iso_metrics,
    load_trained,
    train_and_validate,
    tuning_metric,
)
from .tea import DATASET_ARCH
from .training import TeaTrainSpec

BASELINE = "baseline"


def candidate_key(kind: str, strength: float) -> str:
    return f"{kind}@{strength:g}"


def parse_key(key: str) -> tuple[str | None, float]:
    if key == BASELINE:
        return None, 0.0
    kind, strength = key.split("@")
    return kind, float(strength)


def claim_prefix(ds: str) -> str:
    return "mnist" if ds in ("mnist5k", "mnist") else "digits"


@dataclass
class Splits:
    train: tuple
    val: tuple
    test: tuple


def load_splits(ctx: RunContext, plan: DatasetPlan) -> Splits:
    """The core's splits of ``plan.dataset`` (first ``train_limit``/``test_limit`` images)."""
    ds = plan.dataset
    train, val, test = (ctx.load(ds, s) for s in ("train_minus_val", "val", "test"))
    if plan.train_limit:
        train = tuple(t[: plan.train_limit] for t in train)
        val = tuple(t[: plan.train_limit // 4] for t in val)
    if plan.test_limit:
        test = tuple(t[: plan.test_limit] for t in test)
    return Splits(train, val, test)


class Trainer:
    """Trains (resumably, as stages) the baseline and fine-tunes of one data set."""

    def __init__(self, ctx: RunContext, prof: Profile, plan: DatasetPlan, splits: Splits):
        self.ctx, self.prof, self.plan, self.splits = ctx, prof, plan, splits
        self.arch = DATASET_ARCH[plan.dataset]

    def _stage(self, key: str, seed: int, spec: TeaTrainSpec) -> dict:
        ds, ctx = self.plan.dataset, self.ctx
        work = ctx.work(ds, key, f"seed{seed}")
        stage_key = {
            f: getattr(spec, f)
            for f in ("arch", "epochs", "batch_size", "lr", "seed", "penalty_kind", "max_steps")
        }
        stage_key.update(
            strength=spec.penalty_strength,
            train_limit=self.plan.train_limit,
            base_epochs=self.plan.base_epochs,
            val_copies=self.prof.val_copies,
            draws=self.prof.draws,
            inputs=self.prof.inputs,
        )

        def fn() -> dict:
            ctx.log(f"{ds}: train {key} seed {seed}")
            return train_and_validate(
                spec,
                self.splits.train,
                self.splits.val,
                work,
                ctx.threads,
                self.prof.val_copies,
                self.prof.draws,
                self.prof.inputs,
            )

        return ctx.stage(f"{ds}-{key}-seed{seed}-train", fn, **stage_key)

    def baseline(self, seed: int) -> dict:
        """The Esser baseline trained to convergence (``base_epochs``)."""
        spec = TeaTrainSpec(
            arch=self.arch,
            epochs=self.plan.base_epochs,
            lr=self.plan.lr,
            seed=seed,
            max_steps=self.plan.max_steps,
        )
        return self._stage(BASELINE, seed, spec)

    def finetuned(self, key: str, seed: int) -> dict:
        """The baseline of ``seed``, fine-tuned with the penalty ``key`` (``finetune_epochs``)."""
        self.baseline(seed)
        kind, strength = parse_key(key)
        spec = TeaTrainSpec(
            arch=self.arch,
            epochs=self.plan.finetune_epochs,
            lr=self.plan.finetune_lr,
            seed=seed,
            penalty_kind=kind,
            penalty_strength=strength,
            max_steps=self.plan.max_steps,
            init_from=str(self.work(BASELINE, seed) / "final"),
        )
        return self._stage(key, seed, spec)

    def trained(self, key: str, seed: int) -> dict:
        return self.baseline(seed) if key == BASELINE else self.finetuned(key, seed)

    def work(self, key: str, seed: int):
        return self.ctx.work(self.plan.dataset, key, f"seed{seed}")


def tune_penalty(ctx: RunContext, prof: Profile, plan: DatasetPlan, trainer: Trainer):
    """``ctx.tune`` over the penalty candidates (validation split); returns the TuningRecord."""
    candidates = [candidate_key(k, s) for k in prof.kinds for s in prof.strengths]

    def evaluate(key: str, seed: int, split: str) -> float:
        base = trainer.baseline(seed)["val_copies_curve"]
        return tuning_metric(base, trainer.finetuned(key, seed)["val_copies_curve"], plan.tolerance)

    name = f"{claim_prefix(plan.dataset)}_penalty"
    return ctx.tune(name, candidates, evaluate, objective="min", n_seeds=prof.tuning_seeds)


def measure_seed(
    ctx: RunContext, prof: Profile, plan: DatasetPlan, trainer: Trainer, best: str, seed: int
) -> dict:
    """Test curves of the baseline and the fine-tuned ``best`` for one seed, and iso metrics."""
    ds = plan.dataset
    per = {}
    for key in (BASELINE, best):
        trainer.trained(key, seed)
        work = trainer.work(key, seed)

        def measure(key=key, work=work) -> dict:
            ctx.log(f"{ds}: deploy {key} seed {seed}")
            model = load_trained(trainer.arch, work)
            return curves_on_test(
                model,
                trainer.splits.test,
                prof.copies,
                prof.ticks,
                prof.ticks_copies,
                seed,
                prof.draws,
                prof.inputs,
            )

        per[key] = ctx.stage(
            f"{ds}-{key}-seed{seed}-test",
            measure,
            copies=prof.copies,
            ticks=prof.ticks,
            ticks_copies=prof.ticks_copies,
            draws=prof.draws,
            test_limit=plan.test_limit,
            inputs=prof.inputs,
        )
    per["iso"] = iso_metrics(per[BASELINE], per[best], plan.tolerance)
    return per


def run_dataset(ctx: RunContext, prof: Profile, plan: DatasetPlan) -> dict:
    splits = load_splits(ctx, plan)
    trainer = Trainer(ctx, prof, plan, splits)
    record = tune_penalty(ctx, prof, plan, trainer)
    best = record.choice
    ctx.log(f"{plan.dataset}: selected {best} on validation")
    first = record.seeds[0]
    sweep = {BASELINE: trainer.baseline(first)}
    sweep.update({k: trainer.finetuned(k, first) for k in record.candidates})
    seeds = {seed: measure_seed(ctx, prof, plan, trainer, best, seed) for seed in ctx.seeds}
    return {
        "selected": best,
        "tuning_metric": dict(zip(record.candidates, record.means, strict=True)),
        "sweep": sweep,
        "seeds": seeds,
    }


def record(ctx: RunContext, ds: str, res: dict) -> None:
    """One value per seed for every claim of ``ds``, and the notes."""
    prefix = claim_prefix(ds)
    best = res["selected"]
    for per in res["seeds"].values():
        base, pen, iso = per[BASELINE], per[best], per["iso"]
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
                ctx.record("mnist_esser_1copy", base["copies_curve"][0])
    seeds = list(res["seeds"].values())

    def mean(values) -> float:
        return statistics.fmean(values)

    iso = [s["iso"] for s in seeds]
    text = (
        f"{ds}: penalty {best} (tuned on validation), fine-tuning the converged baseline. Copies "
        f"needed (mean over seeds) baseline {mean(i['copies_baseline'] for i in iso):.3g} vs "
        f"penalised {mean(i['copies_penalised'] for i in iso):.3g}; ticks needed "
        f"{mean(i['ticks_baseline'] for i in iso):.3g} vs {mean(i['ticks_penalised'] for i in iso):.3g}"
        f" (tolerance {iso[0]['tolerance']:g}); accuracy at 1 copy/1 tick "
        f"{mean(s[BASELINE]['copies_curve'][0] for s in seeds):.4f} vs "
        f"{mean(s[best]['copies_curve'][0] for s in seeds):.4f}, at max copies "
        f"{mean(s[BASELINE]['copies_curve'][-1] for s in seeds):.4f} vs "
        f"{mean(s[best]['copies_curve'][-1] for s in seeds):.4f}; float model "
        f"{mean(s[BASELINE]['float_accuracy'] for s in seeds):.4f} vs "
        f"{mean(s[best]['float_accuracy'] for s in seeds):.4f}."
    )
    ctx.note(f"{prefix}_core_reduction", text)
    ctx.note(f"{prefix}_tick_speedup", f"Penalty {best}; numbers in the core_reduction note.")
    ctx.note(f"{prefix}_accuracy_kept", f"Penalty {best}; numbers in the core_reduction note.")
    if prefix == "mnist":
        full = mean(s[BASELINE]["grid"][-1][-1] for s in seeds)
        k, t = seeds[0][BASELINE]["copies"][-1], seeds[0][BASELINE]["ticks"][-1]
        other = mean(s[BASELINE]["copies_curve_other"][-1] for s in seeds)
        kc = seeds[0][BASELINE]["copies_grid"][-1]
        mode = seeds[0][BASELINE]["inputs"]
        ctx.note(
            "mnist_baseline_near_float",
            f"Input spikes: {mode} (config.Profile.inputs). With {k} copies x {t} ticks the "
            f"baseline reaches {full:.4f} vs its float model "
            f"{mean(s[BASELINE]['float_accuracy'] for s in seeds):.4f}; {kc} copies at 1 tick "
            f"with the other assumption ({OTHER[mode]} input spikes) reach {other:.4f}.",
        )


def run(ctx: RunContext) -> None:
    """``PAPER.run``: every data set of the profile (config.py)."""
    prof = PROFILES[ctx.profile]
    for plan in prof.datasets:
        res = run_dataset(ctx, prof, plan)
        record(ctx, plan.dataset, res)
        figures.curves(ctx, plan.dataset, res)
        ctx.detail(
            plan.dataset,
            {
                "inputs": prof.inputs,
                "selected": res["selected"],
                "tolerance": plan.tolerance,
                "tuning_metric": res["tuning_metric"],
                "sweep_validation_first_tuning_seed": {
                    k: {
                        f: v[f]
                        for f in ("val_float_accuracy", "val_copies_curve", "binary_fraction")
                    }
                    for k, v in res["sweep"].items()
                },
                "iso_per_seed": {str(s): p["iso"] for s, p in res["seeds"].items()},
                "curves_per_seed": {
                    str(s): {
                        k: {
                            f: p[k][f]
                            for f in (
                                "copies_grid",
                                "copies_curve",
                                "copies_curve_other",
                                "ticks",
                                "ticks_curve",
                                "grid",
                            )
                        }
                        for k in (BASELINE, res["selected"])
                    }
                    for s, p in res["seeds"].items()
                },
            },
        )
