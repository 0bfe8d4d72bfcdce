"""The runs: one seed of the paper's experiment on one dataset, in named steps, and ``run(ctx)``.

A seed (:func:`run_seed`): pretrain the target (:func:`prepare_target`), draw the seeds, held-out
and re-training indices (:func:`draw_indices`), make poisons with every method
(:func:`direct_poisons`, :func:`generative_poisons`, :func:`adaptive_poisons` for an attacker who
knows the detector, :func:`control_poisons`), time the methods
with the interleaved protocol (:func:`measure_speed`), measure the damage under the three
re-training protocols (:func:`measure_damage`) and run the detector (:func:`run_detector`).

Returns plain JSON-able dicts, so a finished seed is stored with ``ctx.stage`` and reused after a
kill. Every value a non-timing claim uses is computed from the seed's inputs and the persisted
checkpoints of the target and auto-encoder (nothing from in-process counters).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from dnnrepro.core import device as core_device
from dnnrepro.core.bench import RatioMeasurement, bootstrap_ratio_interval, interleaved_ratio
from dnnrepro.core.paper import RunContext

from .config import PROFILES, Setting
from .detect import LossDetector, roc_auc, roc_curve
from .direct import DirectGradientAttack
from .evaluate import evaluate
from .generative import GenerativeAttack, Generator, pretrain_autoencoder
from .report import record_claims, summarize, write_notes
from .retrain import Retraining, flip_labels
from .targets import TARGETS, center_crop, train_target

ATTACKS = ("direct-faithful", "direct-exact", "generative-faithful", "generative-unrolled")
ADAPTIVE = ("direct-faithful-adaptive", "generative-faithful-adaptive")
CONTROLS = ("label-flip", "clean")


@dataclass
class SeedData:
    """Tensors of one seed, on the run's device: the attacker's clean data, the poison seeds, the
    test split and the index sets (detector hold-out, clean stream, clean re-training samples)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_seed: torch.Tensor
    y_seed: torch.Tensor
    hold: torch.Tensor
    stream: torch.Tensor
    retrain_idx: torch.Tensor

    @property
    def clean(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x_train, self.y_train

    @property
    def test(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x_test, self.y_test


def _prepare(x: torch.Tensor, dataset: str) -> torch.Tensor:
    crop = TARGETS[dataset].crop
    return center_crop(x, crop) if crop else x


def prepare_target(setting: Setting, train, seed: int, work_dir, device) -> tuple:
    """Pretrain (or load from ``work_dir/target``) the target: (model, info)."""
    return train_target(
        setting.dataset,
        train,
        seed,
        None if work_dir is None else work_dir / "target",
        max_steps=setting.target_max_steps,
        epochs=setting.target_epochs,
        device=device,
    )


def draw_indices(setting: Setting, data, seed: int, device) -> SeedData:
    """The poison seeds, detector hold-out / clean stream and re-training samples of ``seed``."""
    (x_train, y_train), (x_test, y_test) = data
    ds = setting.dataset
    # attacks and evaluation see the network's input size (CIFAR: the 28x28 center crop)
    x_train, x_test = _prepare(x_train, ds).to(device), _prepare(x_test, ds).to(device)
    y_train, y_test = y_train.to(device), y_test.to(device)
    gen = torch.Generator().manual_seed(10_000 + seed)
    seeds_idx = torch.randperm(len(x_train), generator=gen)[: setting.n_poisons]
    test_perm = torch.randperm(len(x_test), generator=gen)
    retrain_idx = torch.randperm(len(x_train), generator=gen)[: setting.retrain_clean]
    return SeedData(
        x_train,
        y_train,
        x_test,
        y_test,
        x_train[seeds_idx],
        y_train[seeds_idx],
        test_perm[: setting.holdout],
        test_perm[setting.holdout :],
        retrain_idx,
    )


def _direct_attack(setting: Setting, model, d: SeedData, mode: str, seed: int):
    return DirectGradientAttack(
        model,
        d.clean,
        mode=mode,
        delta=setting.delta,
        step=setting.step,
        rounds=setting.direct_rounds,
        num_normal=setting.num_normal,
        retraining=Retraining(setting.victim_lr),
        seed=seed,
    )


def direct_poisons(setting: Setting, model, d: SeedData, seed: int, sync, log) -> dict:
    """Direct poisons, faithful (finite differences) and exact (ours): {name: (attack, x_p, y_p,
    seconds per poison)}."""
    out = {}
    for mode in ("faithful", "exact"):
        attack = _direct_attack(setting, model, d, mode, seed)
        t0 = time.perf_counter()
        x_p, y_p = attack.poison(d.x_seed, d.y_seed)
        if sync:
            sync()
        per = (time.perf_counter() - t0) / setting.n_poisons
        out[f"direct-{mode}"] = (attack, x_p, y_p, per)
        log(f"{setting.dataset} seed {seed}: direct-{mode} {per:.3g} s/poison")
    return out


def _generative_attack(setting: Setting, model, d: SeedData, g, reward: str, seed: int):
    return GenerativeAttack(
        model,
        d.clean,
        generator=g,
        rounds=setting.generator_rounds,
        generator_lr=setting.generator_lr,
        reward=reward,
        num_normal=setting.generator_num_normal,
        retraining=Retraining(setting.generator_victim_lr),
        seed=seed,
    )


def generative_poisons(setting: Setting, model, d: SeedData, seed: int, work_dir, log) -> tuple:
    """One auto-encoder (pretrained, or loaded from ``work_dir/autoencoder``), two reward rules.

    Returns ({name: (attack, x_p, y_p)}, auto-encoder state, pretraining seconds, test MSE).
    """
    shape = tuple(d.x_train.shape[1:])
    torch.manual_seed(seed)
    autoencoder = Generator(shape, setting.generator_hidden).to(d.x_train.device)
    ae_dir = None if work_dir is None else work_dir / "autoencoder"
    pretrain_seconds = pretrain_autoencoder(autoencoder, d.x_train, setting.autoencoder, ae_dir)[
        "seconds"
    ]
    ae_state = {k: v.clone() for k, v in autoencoder.state_dict().items()}
    with torch.no_grad():
        ae_mse = float(((autoencoder(d.x_test[:500]) - d.x_test[:500]) ** 2).mean())
    out = {}
    for reward in ("faithful", "unrolled"):
        g = Generator(shape, setting.generator_hidden).to(d.x_train.device)
        g.load_state_dict(ae_state)  # both reward rules start from the same auto-encoder
        attack = _generative_attack(setting, model, d, g, reward, seed).fit()
        x_p, y_p = attack.poison(d.x_seed, d.y_seed)
        out[f"generative-{reward}"] = (attack, x_p, y_p)
        log(f"{setting.dataset} seed {seed}: generative-{reward} fit {attack.reward_seconds:.2f} s")
    return out, ae_state, pretrain_seconds, ae_mse


def adaptive_poisons(setting: Setting, model, d: SeedData, generative: dict, seed: int) -> dict:
    """Poisons of an attacker who knows the detector (issue 22 item 3): the faithful direct and
    generative attacks with every poison projected under the detector's threshold at the largest
    quantile (same hold-out as :func:`run_detector`). {name: (x_p, y_p, evasion stats)}."""
    det = LossDetector(model, (d.x_test[d.hold], d.y_test[d.hold]), quantile=max(setting.quantiles))
    direct = _direct_attack(setting, model, d, "faithful", seed).set_evasion(det)
    x_p, y_p = direct.poison(d.x_seed, d.y_seed)
    out = {"direct-faithful-adaptive": (x_p, y_p, dict(direct.evasion_stats))}
    gen = generative["generative-faithful"][0].set_evasion(det)
    x_g, y_g = gen.poison(d.x_seed, d.y_seed)
    out["generative-faithful-adaptive"] = (x_g, y_g, dict(gen.evasion_stats))
    gen.set_evasion(None)
    return out


def control_poisons(d: SeedData) -> dict:
    """The controls at the same budget: the seeds with flipped labels, and the clean seeds."""
    return {
        "label-flip": (d.x_seed.clone(), flip_labels(d.y_seed)),
        "clean": (d.x_seed.clone(), d.y_seed.clone()),
    }


def _shifted(m: RatioMeasurement, extra_seconds: float) -> RatioMeasurement:
    """``m`` with ``extra_seconds`` added to every candidate call (a fixed cost per poison)."""
    cand = [c + extra_seconds for c in m.candidate_samples]
    low, high = bootstrap_ratio_interval(list(m.baseline_samples), cand)
    c_med = float(np.median(cand))
    return replace(
        m,
        ratio=m.baseline_s / c_med,
        low=low,
        high=high,
        candidate_s=c_med,
        candidate_samples=tuple(cand),
    )


def measure_speed(
    setting: Setting, model, d: SeedData, direct, generative, ae_state, fit_seconds, sync, seed
) -> dict:
    """Seconds per poison, batch 1, interleaved timing (see claims.py for the two readings).

    - forward: one generator pass vs the faithful direct attack on one seed;
    - refit: the generator re-fit from the auto-encoder (its reward rounds) plus one pass, as the
      authors' script makes each poison, vs the same direct attack;
    - amortized: forward plus generator training (pretraining + reward rounds) spread over
      ``amortize_over`` poisons.
    """
    one_x, one_y = d.x_seed[:1], d.y_seed[:1]
    direct_attack = direct["direct-faithful"][0]
    gen_attack = generative["generative-faithful"][0]
    shape = tuple(d.x_train.shape[1:])
    g = Generator(shape, setting.generator_hidden).to(d.x_train.device)
    refitter = _generative_attack(setting, model, d, g, "faithful", seed)

    def baseline():
        direct_attack.poison(one_x, one_y)

    def forward():
        gen_attack.generate(one_x)

    def refit():
        g.load_state_dict(ae_state)
        refitter.history.clear()
        refitter.fit()
        refitter.generate(one_x)

    reps = setting.timing_repeats
    fwd = interleaved_ratio(forward, baseline, repeats=reps, warmup=2, sync=sync, seed=seed)
    ref = interleaved_ratio(refit, baseline, repeats=reps, warmup=1, sync=sync, seed=seed)
    amortized = _shifted(fwd, fit_seconds / setting.amortize_over)
    t_direct, t_gen = fwd.baseline_s, fwd.candidate_s
    return {
        "forward": fwd.as_dict(),
        "refit": ref.as_dict(),
        "amortized": amortized.as_dict(),
        "amortize_over": setting.amortize_over,
        "generator_fit_seconds": fit_seconds,
        # poisons after which the generator, its training included, has paid off
        "break_even_poisons": fit_seconds / (t_direct - t_gen) if t_direct > t_gen else None,
        "speedup": fwd.ratio,
        "speedup_refit_per_poison": ref.ratio,
        "amortized_speedup": amortized.ratio,
    }


def measure_damage(setting: Setting, model, d: SeedData, poisons: dict, normal, seed) -> dict:
    """Every method and control under the three re-training protocols (evaluate.py)."""
    victim = Retraining(setting.victim_lr)
    retrain = (d.x_train[d.retrain_idx], d.y_train[d.retrain_idx])
    damage = {}
    for name, pair in poisons.items():
        per_point = evaluate(model, pair, d.test, normal, "per_point", victim)
        seq = evaluate(model, pair, d.test, normal, "sequential", victim, counts=setting.counts)
        frac = evaluate(
            model,
            pair,
            d.test,
            normal,
            "fraction",
            victim,
            fractions=setting.fractions,
            retrain=retrain,
            seed=seed,
        )
        damage[name] = {
            "before": per_point["before"],
            "per_point_drop_pp": per_point["accuracy_drop_pp"],
            "per_point_after": per_point["after"],
            "sequential": seq["curve"],
            "fraction": frac["curve"],
        }
    return damage


def _binary(n_neg: int, n_pos: int) -> np.ndarray:
    return np.concatenate([np.zeros(n_neg, bool), np.ones(n_pos, bool)])


def run_detector(setting: Setting, model, d: SeedData, poisons: dict) -> tuple[dict, dict]:
    """The loss detector calibrated on the held-out clean test images, at every quantile:
    (detection rates per method and pooled, ROC curves per method)."""
    stream = (d.x_test[d.stream], d.y_test[d.stream])
    detection: dict = {"clean_stream": {}, "methods": {}}
    names = (*ATTACKS, *ADAPTIVE, "label-flip")
    for q in setting.quantiles:
        det = LossDetector(model, (d.x_test[d.hold], d.y_test[d.hold]), quantile=q)
        report, _ = det.detect(*stream)
        detection["clean_stream"][str(q)] = {
            "fpr": report["flagged_fraction"],
            "n": report["n"],
            "threshold": report["threshold"],
        }
        for name in names:
            xp, yp = poisons[name]
            truth = torch.zeros(len(stream[0]) + len(xp), dtype=torch.bool, device=xp.device)
            truth[len(stream[0]) :] = True
            rep, _ = det.detect(torch.cat([stream[0], xp]), torch.cat([stream[1], yp]), truth)
            detection["methods"].setdefault(name, {})[str(q)] = {
                k: rep[k] for k in ("tpr", "fpr", "auc", "threshold")
            }
    # scores at the last (largest) quantile's detector; the loss score does not depend on q
    scores_clean = det.losses(*stream).cpu().numpy()
    roc, pooled = {}, []
    for name in names:
        s = det.losses(*poisons[name]).cpu().numpy()
        if name in ("direct-faithful", "generative-faithful"):
            pooled.append(s)
        fpr, tpr, _ = roc_curve(
            np.concatenate([scores_clean, s]), _binary(len(scores_clean), len(s))
        )
        roc[name] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
    q_main = str(max(setting.quantiles))
    thr = detection["clean_stream"][q_main]["threshold"]
    adaptive = np.concatenate([det.losses(*poisons[name]).cpu().numpy() for name in ADAPTIVE])
    detection["adaptive_pooled"] = {
        "tpr": float((adaptive > thr).mean()),
        "quantile": float(q_main),
    }
    pooled_scores = np.concatenate(pooled)
    detection["pooled"] = {
        "tpr": float((pooled_scores > thr).mean()),
        "auc": roc_auc(
            np.concatenate([scores_clean, pooled_scores]),
            _binary(len(scores_clean), len(pooled_scores)),
        ),
        "quantile": float(q_main),
    }
    return detection, roc


def run_seed(setting: Setting, data, seed: int, work_dir=None, log=print, device=None) -> dict:
    """Run every method for one seed. ``data`` = ((x_train, y_train), (x_test, y_test)).

    ``work_dir`` (a folder) holds the resumable target and auto-encoder checkpoints. ``device``
    defaults to CUDA when available, else the CPU.
    """
    device = core_device(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    ds = setting.dataset
    model, target_info = prepare_target(setting, data[0], seed, work_dir, device)
    log(f"{ds} seed {seed}: target trained ({target_info['seconds']:.1f} s)")
    d = draw_indices(setting, data, seed, device)

    direct = direct_poisons(setting, model, d, seed, sync, log)
    generative, ae_state, pretrain_s, ae_mse = generative_poisons(
        setting, model, d, seed, work_dir, log
    )
    fit_s = pretrain_s + generative["generative-faithful"][0].reward_seconds
    speed = measure_speed(setting, model, d, direct, generative, ae_state, fit_s, sync, seed)
    speed["seconds_per_poison"] = {
        **{name: v[3] for name, v in direct.items()},
        "generative-faithful": speed["forward"]["candidate_s"],
        "generative-unrolled": speed["forward"]["candidate_s"],  # same network, same pass
    }

    poisons = {name: (v[1], v[2]) for name, v in direct.items()}
    poisons.update({name: (v[1], v[2]) for name, v in generative.items()})
    adaptive = adaptive_poisons(setting, model, d, generative, seed)
    poisons.update({name: (v[0], v[1]) for name, v in adaptive.items()})
    poisons.update(control_poisons(d))
    normal = direct["direct-faithful"][0].normal  # the same normal samples for the metric
    damage = measure_damage(setting, model, d, poisons, normal, seed)
    detection, roc = run_detector(setting, model, d, poisons)

    generators = {
        name: {
            "pretrain_seconds": pretrain_s,
            "reward_seconds": v[0].reward_seconds,
            "fit_seconds": pretrain_s + v[0].reward_seconds,
            "history": v[0].history,
        }
        for name, v in generative.items()
    }
    k = min(3, setting.n_poisons)
    samples = {"seed": d.x_seed[:k].flatten(1).tolist()}
    samples.update(
        {name: pair[0][:k].flatten(1).tolist() for name, pair in poisons.items() if name != "clean"}
    )
    return _finite_or_none(
        {
            "dataset": ds,
            "seed": seed,
            "image_shape": list(d.x_train.shape[1:]),
            "target": {**target_info, **damage["clean"]["before"]},
            "autoencoder_test_mse": ae_mse,
            "generators": generators,
            "speed": speed,
            "damage": damage,
            "detection": detection,
            "evasion": {name: v[2] for name, v in adaptive.items()},
            "roc": roc,
            "samples": samples,
            "labels": {
                "seed": d.y_seed[:k].tolist(),
                "poison": flip_labels(d.y_seed[:k]).tolist(),
            },
        }
    )


def _finite_or_none(obj):
    """Replace NaN/inf by None, recursively: JSON has no NaN."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite_or_none(v) for v in obj]
    return obj


def run(ctx: RunContext) -> None:
    """Every dataset of the profile, every seed (each seed one resumable stage), then figures."""
    from .figures import plot_all  # matplotlib only when a run makes figures

    profile = PROFILES[ctx.profile]
    all_results = {}
    for setting in profile.settings:
        data = (
            ctx.load(setting.dataset, "train"),
            ctx.load(setting.dataset, "test"),
        )
        results = []
        for seed in ctx.seeds:
            work = ctx.work(setting.dataset, f"seed{seed}")
            results.append(
                ctx.stage(
                    f"{setting.dataset}-seed{seed}",
                    lambda s=setting, d=data, seed=seed, w=work: run_seed(s, d, seed, w, ctx.log),
                )
            )
        main = setting.dataset == profile.main
        record_claims(ctx, setting.dataset, main, results)
        summary = summarize(results)
        if main:
            write_notes(ctx, summary)
        ctx.detail(
            setting.dataset,
            {
                "summary": summary,
                "per_seed": [
                    {k: r[k] for k in ("seed", "target", "autoencoder_test_mse")} for r in results
                ],
            },
        )
        all_results[setting.dataset] = results
    plot_all(ctx, all_results)
