"""One seed of the paper's experiment on one dataset: pretrain the target, build poisons with every
method, time them, measure the damage under the re-training protocol, and run the detector.

Used by ``paper.run`` (the reproduce command) and by the CLI. Returns plain JSON-able dicts so the
result of a finished seed can be stored with ``ctx.stage`` and reused after a kill.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from dnnrepro.core import device as core_device
from dnnrepro.core.bench import time_callable
from dnnrepro.core.train import TrainConfig

from .detect import LossDetector, roc_auc, roc_curve
from .direct import DirectGradientAttack
from .evaluate import evaluate
from .generative import GenerativeAttack, Generator, pretrain_autoencoder
from .retrain import Retraining, flip_labels
from .targets import TARGETS, center_crop, train_target

ATTACKS = ("direct-faithful", "direct-exact", "generative-faithful", "generative-unrolled")
CONTROLS = ("label-flip", "clean")


@dataclass(frozen=True)
class Setting:
    """Sizes and hyper-parameters of one dataset's experiment at one profile.

    Defaults are the authors' MNIST values: delta 0.01, step 0.2, 5 direct rounds, victim lr 0.05,
    10 generator rounds at lr 0.005, 10 normal samples.
    """

    dataset: str
    n_poisons: int
    delta: float = 0.01
    step: float = 0.2
    direct_rounds: int = 5
    victim_lr: float = 0.05  # the victim's re-training lr (direct attack and evaluation)
    generator_victim_lr: float = 0.05  # the lr of the generative attack's pseudo-update
    generator_rounds: int = 10
    generator_lr: float = 0.005
    num_normal: int = 10
    generator_num_normal: int = 10
    generator_hidden: tuple[int, ...] = (200, 200)
    autoencoder: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=5, batch_size=64, lr=1e-3, optimizer="adam")
    )
    holdout: int = 500  # test images that calibrate the detector; the rest is the clean stream
    counts: tuple[int, ...] = (0, 1, 2, 5, 10)
    fractions: tuple[float, ...] = (0.0, 0.02, 0.05, 0.1)
    retrain_clean: int = 90
    target_max_steps: int | None = None
    target_epochs: int | None = None
    amortize_over: int = 1000  # poisons over which generator training is amortized
    quantiles: tuple[float, ...] = (0.95, 0.99)


def _prepare(x: torch.Tensor, dataset: str) -> torch.Tensor:
    crop = TARGETS[dataset].crop
    return center_crop(x, crop) if crop else x


def run_seed(setting: Setting, data, seed: int, work_dir=None, log=print, device=None) -> dict:
    """Run every method for one seed. ``data`` = ((x_train, y_train), (x_test, y_test)).

    ``work_dir`` (a folder) holds the resumable target and auto-encoder checkpoints. ``device``
    defaults to CUDA when available (the paper profile), else the CPU.
    """
    device = core_device(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    (x_train, y_train), (x_test, y_test) = data
    ds = setting.dataset
    target_dir = None if work_dir is None else work_dir / "target"
    ae_dir = None if work_dir is None else work_dir / "autoencoder"
    model, target_info = train_target(
        ds,
        (x_train, y_train),
        seed,
        target_dir,
        max_steps=setting.target_max_steps,
        epochs=setting.target_epochs,
        device=device,
    )
    # attacks and evaluation see the network's input size (CIFAR: the 28x28 center crop)
    x_train, x_test = _prepare(x_train, ds).to(device), _prepare(x_test, ds).to(device)
    y_train, y_test = y_train.to(device), y_test.to(device)
    gen = torch.Generator().manual_seed(10_000 + seed)
    seeds_idx = torch.randperm(len(x_train), generator=gen)[: setting.n_poisons]
    x_seed, y_seed = x_train[seeds_idx], y_train[seeds_idx]
    test_perm = torch.randperm(len(x_test), generator=gen)
    hold, stream = test_perm[: setting.holdout], test_perm[setting.holdout :]
    retrain_idx = torch.randperm(len(x_train), generator=gen)[: setting.retrain_clean]
    clean = (x_train, y_train)
    victim = Retraining(setting.victim_lr)
    log(f"{ds} seed {seed}: target trained ({target_info['seconds']:.1f} s)")

    poisons: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    timing: dict[str, float] = {}
    # --- direct method, faithful and exact
    for mode in ("faithful", "exact"):
        attack = DirectGradientAttack(
            model,
            clean,
            mode=mode,
            delta=setting.delta,
            step=setting.step,
            rounds=setting.direct_rounds,
            num_normal=setting.num_normal,
            retraining=victim,
            seed=seed,
        )
        t0 = time.perf_counter()
        poisons[f"direct-{mode}"] = attack.poison(x_seed, y_seed)
        if sync:
            sync()
        timing[f"direct-{mode}"] = (time.perf_counter() - t0) / setting.n_poisons
        log(f"{ds} seed {seed}: direct-{mode} {timing[f'direct-{mode}']:.3g} s/poison")
    normal = attack.normal  # the same normal samples (same seed) for the normal-loss metric
    # --- generative method: one pretrained auto-encoder, two reward rules
    torch.manual_seed(seed)
    autoencoder = Generator(tuple(x_train.shape[1:]), setting.generator_hidden).to(device)
    pretrain_seconds = pretrain_autoencoder(autoencoder, x_train, setting.autoencoder, ae_dir)[
        "seconds"
    ]
    ae_state = {k: v.clone() for k, v in autoencoder.state_dict().items()}
    generator_info = {}
    for reward in ("faithful", "unrolled"):
        g = Generator(tuple(x_train.shape[1:]), setting.generator_hidden).to(device)
        g.load_state_dict(ae_state)  # both reward rules start from the same auto-encoder
        attack = GenerativeAttack(
            model,
            clean,
            generator=g,
            rounds=setting.generator_rounds,
            generator_lr=setting.generator_lr,
            reward=reward,
            num_normal=setting.generator_num_normal,
            retraining=Retraining(setting.generator_victim_lr),
            seed=seed,
        ).fit()
        name = f"generative-{reward}"
        poisons[name] = attack.poison(x_seed, y_seed)
        one = x_seed[:1]
        per = time_callable(
            lambda a=attack, o=one: a.generate(o), warmup=5, repeats=200, sync=sync
        ).median
        batched = time_callable(
            lambda a=attack: a.generate(x_seed), warmup=2, repeats=20, sync=sync
        ).median
        timing[name] = per
        generator_info[name] = {
            "pretrain_seconds": pretrain_seconds,
            "reward_seconds": attack.reward_seconds,
            "fit_seconds": pretrain_seconds + attack.reward_seconds,
            "seconds_per_poison_batched": batched / setting.n_poisons,
            "history": attack.history,
        }
        log(f"{ds} seed {seed}: {name} {per:.3g} s/poison, fit {attack.reward_seconds:.2f} s")
    with torch.no_grad():
        ae_mse = float(((autoencoder(x_test[:500]) - x_test[:500]) ** 2).mean())
    poisons["label-flip"] = (x_seed.clone(), flip_labels(y_seed))
    poisons["clean"] = (x_seed.clone(), y_seed.clone())

    # --- damage under the re-training protocol
    test = (x_test, y_test)
    damage = {}
    for name, pair in poisons.items():
        per_point = evaluate(model, pair, test, normal, "per_point", victim)
        seq = evaluate(model, pair, test, normal, "sequential", victim, counts=setting.counts)
        frac = evaluate(
            model,
            pair,
            test,
            normal,
            "fraction",
            victim,
            fractions=setting.fractions,
            retrain=(x_train[retrain_idx], y_train[retrain_idx]),
            seed=seed,
        )
        damage[name] = {
            "per_point_drop_pp": per_point["accuracy_drop_pp"],
            "per_point_after": per_point["after"],
            "sequential": seq["curve"],
            "fraction": frac["curve"],
        }
    before = per_point["before"]

    # --- detector: calibrated on held-out clean test images
    stream_data = (x_test[stream], y_test[stream])
    detection: dict = {"clean_stream": {}, "methods": {}}
    for q in setting.quantiles:
        det = LossDetector(model, (x_test[hold], y_test[hold]), quantile=q)
        report, _ = det.detect(*stream_data)
        detection["clean_stream"][str(q)] = {
            "fpr": report["flagged_fraction"],
            "n": report["n"],
            "threshold": report["threshold"],
        }
        for name in (*ATTACKS, "label-flip"):
            xp, yp = poisons[name]
            x = torch.cat([stream_data[0], xp])
            y = torch.cat([stream_data[1], yp])
            truth = torch.zeros(len(x), dtype=torch.bool, device=device)
            truth[len(stream) :] = True
            rep, _ = det.detect(x, y, truth)
            detection["methods"].setdefault(name, {})[str(q)] = {
                k: rep[k] for k in ("tpr", "fpr", "auc", "threshold")
            }
    # pooled faithful attacks (the paper's two methods) vs the clean stream: scores for the ROC
    scores_clean = det.losses(*stream_data).cpu().numpy()
    roc = {}
    pooled = []
    for name in (*ATTACKS, "label-flip"):
        s = det.losses(*poisons[name]).cpu().numpy()
        if name in ("direct-faithful", "generative-faithful"):
            pooled.append(s)
        fpr, tpr, _ = roc_curve(
            np.concatenate([scores_clean, s]),
            np.concatenate([np.zeros(len(scores_clean), bool), np.ones(len(s), bool)]),
        )
        roc[name] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
    pooled_scores = np.concatenate(pooled)
    q_main = str(max(setting.quantiles))
    thr = detection["clean_stream"][q_main]["threshold"]
    detection["pooled"] = {
        "tpr": float((pooled_scores > thr).mean()),
        "auc": roc_auc(
            np.concatenate([scores_clean, pooled_scores]),
            np.concatenate([np.zeros(len(scores_clean), bool), np.ones(len(pooled_scores), bool)]),
        ),
        "quantile": float(q_main),
    }

    t_direct, t_gen = timing["direct-faithful"], timing["generative-faithful"]
    fit_s = generator_info["generative-faithful"]["fit_seconds"]
    n_a = setting.amortize_over
    speed = {
        "seconds_per_poison": timing,
        "speedup": t_direct / t_gen,
        "speedup_exact_vs_faithful": t_direct / timing["direct-exact"],
        "amortized_speedup": n_a * t_direct / (fit_s + n_a * t_gen),
        # the authors' generative script updates G for every poison it makes: count the reward
        # rounds per poison (auto-encoder pretraining excluded)
        "speedup_refit_per_poison": t_direct
        / (generator_info["generative-faithful"]["reward_seconds"] + t_gen),
        "amortize_over": n_a,
        "break_even_poisons": fit_s / (t_direct - t_gen) if t_direct > t_gen else None,
        "generator_fit_seconds": fit_s,
    }
    k = min(3, setting.n_poisons)
    samples = {"seed": x_seed[:k].flatten(1).tolist()}
    samples.update(
        {name: pair[0][:k].flatten(1).tolist() for name, pair in poisons.items() if name != "clean"}
    )
    return _finite_or_none(
        {
            "dataset": ds,
            "seed": seed,
            "image_shape": list(x_train.shape[1:]),
            "target": {**target_info, **before},
            "autoencoder_test_mse": ae_mse,
            "generators": generator_info,
            "speed": speed,
            "damage": damage,
            "detection": detection,
            "roc": roc,
            "samples": samples,
            "labels": {"seed": y_seed[:k].tolist(), "poison": flip_labels(y_seed[:k]).tolist()},
        }
    )


def _finite_or_none(obj):
    """Replace NaN/inf by None, recursively: JSON has no NaN (e.g. the train loss of a target
    that was loaded from a finished checkpoint, where no step ran)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite_or_none(v) for v in obj]
    return obj
