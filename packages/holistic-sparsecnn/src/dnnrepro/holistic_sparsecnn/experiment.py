"""The reproduction run (``run(ctx)``, registered in paper.py) and the layer measurements it
shares with the benchmark (bench.py).

The run, in named steps: :func:`machine_constants` (F, B, alpha; measured once and stored, or
given back from a pinned results.json), :func:`kernel_claims` (sparse vs dense conv at AlexNet
shapes), then per seed :func:`pruning_claims` (GSL vs ESL on LeNet, end to end).

AlexNet layer shapes are CaffeNet's, one group at a time for the grouped layers (conv2, conv4,
conv5 have groups=2 in CaffeNet; both groups are the same convolution shape, so the speedup of one
group is the layer's speedup). Weights are random Gaussians with random positions of the
non-zeros at the pruned CaffeNet per-layer densities of SkimCaffe's README.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from dnnrepro.core import baselines, checkpoint
from dnnrepro.core.bench import geomean, interleaved_ratio, time_callable
from dnnrepro.core.bench import threads as _threads
from dnnrepro.core.errors import ConfigError
from dnnrepro.core.models import LeNet
from dnnrepro.core.paper import RunContext
from dnnrepro.core.train import evaluate, fit

from . import figures, roofline
from .config import PROFILES, KernelSettings, Profile, PruningSettings
from .csr import to_csr
from .direct_conv import direct_sparse_conv2d
from .pruning import guided_prune
from .sparse_module import csr_bytes, sparsify

ALEXNET = {
    "conv2": dict(in_channels=48, out_channels=128, kernel=5, hw=27, padding=2),
    "conv3": dict(in_channels=256, out_channels=384, kernel=3, hw=13, padding=1),
    "conv4": dict(in_channels=192, out_channels=192, kernel=3, hw=13, padding=1),
    "conv5": dict(in_channels=192, out_channels=128, kernel=3, hw=13, padding=1),
}
# Non-zero fractions of SkimCaffe's pruned CaffeNet (sparsity 85.65/93.1/91.81/88.49%).
CAFFENET_DENSITY = {"conv2": 0.1435, "conv3": 0.069, "conv4": 0.0819, "conv5": 0.1151}

# CaffeNet conv5 per image, both groups (the brief's derived check): 149.5 MFLOP, input 384 and
# output 256 channels of 13x13, 256*192*3*3 float32 weights.
CAFFENET_CONV5 = roofline.LayerCost(
    flops=2.0 * 256 * 192 * 9 * 169,
    act_bytes=(384 + 256) * 169 * 4.0,
    weight_bytes=256 * 192 * 9 * 4.0,
)


def layer_cost(args: dict, batch: int) -> roofline.LayerCost:
    return roofline.LayerCost.conv(
        args["in_channels"],
        args["out_channels"],
        args["kernel"],
        args["hw"],
        padding=args["padding"],
        batch=batch,
    )


def measure_layer(
    args: dict,
    densities,
    batch: int,
    threads: int,
    seconds: float = 1.0,
    repeats: int = 10,
    seed: int = 0,
) -> dict:
    """Time torch's dense conv2d and the direct sparse conv at each non-zero fraction.

    Returns {"dense_s", "dense_gflops", "points": [{x, sparse_s, speedup, effective_gflops,
    actual_gflops}]}; effective GFLOP/s counts the dense FLOPs, actual only the non-zero ones.
    Timings are the minimum over ``repeats`` calls (the least disturbed on a shared machine);
    dense is timed before the first and after every sparse point and its minimum is used.
    """
    g = torch.Generator().manual_seed(seed)
    k = args["kernel"]
    inp = torch.rand(batch, args["in_channels"], args["hw"], args["hw"], generator=g)
    shape = (args["out_channels"], args["in_channels"], k, k)
    dense_w = torch.randn(shape, generator=g)
    cost = layer_cost(args, batch)
    out = {"points": []}

    def dense() -> float:
        return time_callable(
            lambda: F.conv2d(inp, dense_w, None, 1, args["padding"]),
            warmup=1,
            repeats=repeats,
            max_seconds=seconds,
        ).min

    sparse_times, dense_times = [], []
    with _threads(threads):
        dense_times.append(dense())
        for x in densities:
            w = roofline.random_sparse_weight(shape, x, g)
            csr = to_csr(w, inp.shape, args["padding"])
            ts = time_callable(
                lambda csr=csr: direct_sparse_conv2d(inp, csr, padding=args["padding"]),
                warmup=1,
                repeats=repeats,
                max_seconds=seconds,
            ).min
            sparse_times.append((csr.density, ts))
            # Dense is re-timed after every sparse point: on a shared machine the load changes
            # within seconds, and the minimum over all dense samples is the least disturbed one.
            dense_times.append(dense())
    td = min(dense_times)
    out["dense_s"] = td
    out["dense_gflops"] = cost.flops / td / 1e9
    for x, ts in sparse_times:
        out["points"].append(
            {
                "x": x,
                "sparse_s": ts,
                "speedup": td / ts,
                "effective_gflops": cost.flops / ts / 1e9,
                "actual_gflops": x * cost.flops / ts / 1e9,
            }
        )
    return out


def crossover(points: list[dict]) -> float | None:
    """The non-zero fraction where the measured speedup falls through 1 (log-log interpolation
    between the two grid points around it); None when it never crosses inside the grid."""
    pts = sorted(points, key=lambda p: p["x"])
    for a, b in zip(pts, pts[1:], strict=False):
        if a["speedup"] >= 1.0 > b["speedup"]:
            la, lb = math.log(a["speedup"]), math.log(b["speedup"])
            t = la / (la - lb)
            return math.exp(math.log(a["x"]) + t * (math.log(b["x"]) - math.log(a["x"])))
    return None


def layer_pair(args: dict, x: float, batch: int, seed: int = 0):
    """(sparse call, dense call) of one AlexNet layer at non-zero fraction ``x``: random input
    and a Gaussian weight with random non-zero positions (the same weight for both)."""
    g = torch.Generator().manual_seed(seed)
    k = args["kernel"]
    inp = torch.rand(batch, args["in_channels"], args["hw"], args["hw"], generator=g)
    w = roofline.random_sparse_weight((args["out_channels"], args["in_channels"], k, k), x, g)
    csr = to_csr(w, inp.shape, args["padding"])
    pad = args["padding"]
    return (
        lambda: direct_sparse_conv2d(inp, csr, padding=pad),
        lambda: F.conv2d(inp, w, None, 1, pad),
    )


def caffenet_speedup(batch: int, repeats: int, max_seconds: float | None) -> dict:
    """Sparse vs dense conv2-5 at the pruned CaffeNet densities, by the core's timing protocol:
    ``{"total": ratio of the summed times, "layers": {name: per-layer ratio}}`` (each a
    ``RatioMeasurement.as_dict()``)."""
    pairs = {
        name: layer_pair(args, CAFFENET_DENSITY[name], batch) for name, args in ALEXNET.items()
    }
    layers = {
        name: interleaved_ratio(sparse, dense, repeats=repeats, max_seconds=max_seconds).as_dict()
        for name, (sparse, dense) in pairs.items()
    }

    def all_sparse():
        for sparse, _ in pairs.values():
            sparse()

    def all_dense():
        for _, dense in pairs.values():
            dense()

    total = interleaved_ratio(all_sparse, all_dense, repeats=repeats, max_seconds=max_seconds)
    return {"total": total.as_dict(), "layers": layers}


# --------------------------------------------------------------------------- the run

# Environment variable naming a results.json (or a JSON object with flops, bandwidth, alpha)
# whose machine constants a run uses instead of measuring them: a rerun on another machine, or
# after the machine stage was lost, then reproduces the pinned pruning decisions exactly.
MACHINE_ENV = "DNNREPRO_HSC_MACHINE"


def run(ctx: RunContext) -> None:
    profile = PROFILES[ctx.profile]
    ctx.load(profile.pruning.dataset, "test")  # a missing dataset fails now, not after timing
    machine = machine_constants(ctx, profile)
    kernel_claims(ctx, machine, profile.kernel)
    for seed in ctx.seeds:
        pruning_claims(ctx, machine, profile, seed)


def machine_constants(ctx: RunContext, profile: Profile) -> roofline.Machine:
    """F, B and alpha of the roofline model: measured once per run folder (a stage), recorded in
    results.json (details ``machine``, ``machine_alpha_timing``), and taken back from the file
    named by ``$DNNREPRO_HSC_MACHINE`` when set. Records the ``alpha`` claim."""
    given = os.environ.get(MACHINE_ENV)
    if given:
        stored = _given_machine(ctx, Path(given))
    else:
        k = profile.kernel

        def measure() -> dict:
            flops = roofline.measure_flops(threads=ctx.threads, seconds=k.machine_seconds)
            bandwidth = roofline.measure_bandwidth(threads=ctx.threads, seconds=k.machine_seconds)
            alpha = roofline.alpha_ratio(repeats=k.repeats, max_seconds=4 * k.machine_seconds)
            m = roofline.Machine(
                flops, bandwidth, alpha.ratio, name=f"this machine ({ctx.threads} threads)"
            )
            return {"machine": m.as_dict(), "alpha_timing": alpha.as_dict()}

        stored = ctx.stage("machine", measure)
    machine = roofline.Machine(**stored["machine"])
    ctx.detail("machine", machine.as_dict())
    ctx.log(
        f"machine: F {machine.flops / 1e9:.1f} GF/s, B {machine.bandwidth / 1e9:.1f} GB/s, "
        f"alpha {machine.alpha:.2f}"
    )
    if stored.get("alpha_timing"):
        ctx.detail("machine_alpha_timing", stored["alpha_timing"])
        ctx.record_timing("alpha", stored["alpha_timing"])
    else:  # a given machine without its timing record: the value alone, undecided
        ctx.record("alpha", machine.alpha)
    ctx.note(
        "alpha",
        f"F {machine.flops / 1e9:.1f} GF/s (torch.mm 1024^2), B {machine.bandwidth / 1e9:.1f} "
        "GB/s (copy)" + (f"; constants given back from {given}" if given else "") + ".",
    )
    return machine


def _given_machine(ctx: RunContext, path: Path) -> dict:
    """{"machine", "alpha_timing"} from a results.json (details) or a plain machine JSON."""
    ctx.input(path)
    try:
        doc = json.loads(path.read_text())
        if "details" in doc:
            return {
                "machine": doc["details"]["machine"],
                "alpha_timing": doc["details"].get("machine_alpha_timing"),
            }
        roofline.Machine(**doc)  # validates
        return {"machine": doc, "alpha_timing": None}
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"${MACHINE_ENV}={path} holds no machine constants ({exc}); point it at a "
            'results.json of this package or at {"flops", "bandwidth", "alpha"}'
        ) from exc


def kernel_claims(ctx: RunContext, machine: roofline.Machine, k: KernelSettings) -> None:
    """sconv_speedup (interleaved timing), the speedup sweep (lower_bound, model_fit) and the
    upper bound of CaffeNet conv5 from the paper's Table 1 (upper_bound_conv5)."""
    at_caffenet = ctx.stage(
        "alexnet_caffenet_density",
        lambda: caffenet_speedup(k.batch, k.repeats, k.seconds),
        batch=k.batch,
    )
    ctx.detail("alexnet_at_caffenet_density", at_caffenet)
    ctx.record_timing("sconv_speedup", at_caffenet["total"])
    ctx.note(
        "sconv_speedup",
        "per layer: "
        + ", ".join(f"{n} {r['ratio']:.2f}x" for n, r in at_caffenet["layers"].items())
        + f"; geometric mean {geomean(r['ratio'] for r in at_caffenet['layers'].values()):.2f}x.",
    )

    sweep = ctx.stage(
        "speedup_sweep",
        lambda: {
            name: measure_layer(
                ALEXNET[name], k.grid, k.sweep_batch, ctx.threads, k.seconds / 4, k.repeats
            )
            for name in ("conv3", "conv4", "conv5")
        },
        batch=k.sweep_batch,
        grid=list(k.grid),
    )
    crossings, within_2x, total = [], 0, 0
    fig_data = {}
    for name, res in sweep.items():
        cost = layer_cost(ALEXNET[name], k.sweep_batch)
        for p in res["points"]:
            p["predicted"] = roofline.predict_speedup(cost, machine, p["x"])
            within_2x += 0.5 <= p["speedup"] / p["predicted"] <= 2.0
            total += 1
        c = crossover(res["points"])
        if c is not None:
            crossings.append(c)
        fig_data[name] = {
            "points": res["points"],
            "x_upper": roofline.upper_bound(cost, machine),
            "crossover": c,
        }
    ctx.detail("speedup_sweep", fig_data)
    lower = roofline.lower_bound(machine)
    # lower_bound and model_fit are speed claims read off a sweep of minimum times, not one
    # interleaved ratio: recorded as values, they stay undecided (no timing-protocol record).
    if crossings:
        ctx.record("lower_bound", geomean(crossings) / lower)
        ctx.note(
            "lower_bound",
            f"measured crossover x {geomean(crossings):.3f} ({len(crossings)} of 3 layers "
            f"cross), model 1/alpha = {lower:.3f}.",
        )
    else:
        ctx.record("lower_bound", math.nan)
        ctx.note("lower_bound", "the measured speedup never crossed 1 inside the grid.")
    ctx.record("model_fit", within_2x / max(1, total))
    ctx.record("upper_bound_conv5", roofline.upper_bound(CAFFENET_CONV5, roofline.XEON_E5_2697_V4))
    here = roofline.upper_bound(CAFFENET_CONV5, machine)
    ctx.note(
        "upper_bound_conv5",
        f"Atom (Table 1, alpha 1.2): "
        f"{roofline.upper_bound(CAFFENET_CONV5, roofline.ATOM_C2750):.4f}; "
        f"this machine (measured F, B, alpha): {here:.4f}.",
    )
    figures.speedup_figure(ctx, fig_data, machine, k.sweep_batch)


def dense_lenet(ctx: RunContext, p: PruningSettings, seed: int) -> LeNet:
    """The dense LeNet every method starts from (see PruningSettings.dense)."""
    if p.dense == "random":  # smoke proves nothing: an untrained net, no training
        torch.manual_seed(seed)
        return LeNet(1, 28, 10)
    if p.dense.startswith("baseline:"):
        return baselines.get(p.dense.split(":", 1)[1], ctx.data_dir, train=True)
    if p.dense != "train" or p.dense_train is None:
        raise ConfigError(f"PruningSettings.dense {p.dense!r} is not random/baseline:<n>/train")
    work = ctx.work("dense")

    def train() -> dict:
        torch.manual_seed(p.dense_train.seed)
        model = LeNet(1, 28, 10)
        data, test = ctx.load(p.dataset, "train"), ctx.load(p.dataset, "test")
        res = fit(model, data, p.dense_train, test=test, checkpoint_dir=work)
        checkpoint.save_weights(work / "final", model, {"what": "dense LeNet"})
        return {"test_accuracy": res.final["test_accuracy"], "steps": res.steps}

    info = ctx.stage("dense", train)
    ctx.detail("dense", info)
    model = LeNet(1, 28, 10)
    checkpoint.load_weights(work / "final", model)
    return model


def prune_method(
    ctx: RunContext, machine: roofline.Machine, p: PruningSettings, seed: int, name: str
) -> tuple[LeNet, dict]:
    """One method (p.methods[name]) from the dense LeNet: a stage holding its summary, the
    pruned weights in the run folder (fit checkpoints make it resumable mid-way)."""
    work = ctx.work(f"seed{seed}", name)

    def go() -> dict:
        data, test = ctx.load(p.dataset, "train"), ctx.load(p.dataset, "test")
        model = dense_lenet(ctx, p, seed)
        result = guided_prune(
            model,
            data,
            test=test,
            input_shape=(1, 28, 28),
            machine=machine,
            config=p.methods[name],
            train=dataclasses.replace(p.train, seed=seed),
            periods=p.periods,
            retrain=dataclasses.replace(p.retrain, seed=seed),
            checkpoint_dir=work,
            log=ctx.log,
        )
        checkpoint.save_weights(work / "final", model, {"method": name, "seed": seed})
        return result.summary()

    summary = ctx.stage(f"prune_{name}_seed{seed}", go)
    model = LeNet(1, 28, 10)
    checkpoint.load_weights(work / "final", model)
    return model, summary


def pruning_claims(ctx: RunContext, machine: roofline.Machine, profile: Profile, seed: int):
    """GSL vs ESL (and the other methods, details only) on LeNet for one seed; end to end."""
    p = profile.pruning
    test = ctx.load(p.dataset, "test")
    results = {name: prune_method(ctx, machine, p, seed, name) for name in p.methods}
    gsl_model, gsl = results["gsl"]
    esl = results["esl"][1]
    dens = {
        m: {layer["name"]: layer["density"] for layer in r["layers"]}
        for m, (_, r) in results.items()
    }
    ctx.detail(f"pruning_seed{seed}", {m: r for m, (_, r) in results.items()})
    ctx.record("gsl_conv1_dense", dens["gsl"]["conv1"])
    ctx.note(
        "gsl_conv1_dense",
        f"seed {seed}, GSL decisions: "
        + "; ".join(f"{x['name']}: {x['status']} ({x['reason']})" for x in gsl["layers"])
        + ".",
    )
    ctx.record("gsl_vs_esl_density", dens["gsl"]["conv2"] / max(1e-9, dens["esl"]["conv2"]))
    ctx.note(
        "gsl_vs_esl_density",
        f"seed {seed}: non-zeros "
        + "; ".join(
            f"{m.upper()} " + ", ".join(f"{k} {v:.3f}" for k, v in d.items())
            for m, d in dens.items()
        )
        + ".",
    )
    acc_gsl, acc_esl = gsl["final"]["accuracy"], esl["final"]["accuracy"]
    ctx.record("gsl_accuracy", 100 * (acc_gsl - acc_esl))
    ctx.note("gsl_accuracy", f"seed {seed}: GSL {acc_gsl:.4f}, ESL {acc_esl:.4f}.")
    size = csr_bytes(gsl_model)
    ctx.record("model_size", size["size_reduction"])
    ctx.note(
        "model_size",
        f"seed {seed}: {size['nnz_reduction']:.2f}x fewer non-zeros; dense "
        f"{size['dense_bytes'] / 1e3:.0f} kB, CSR {size['csr_bytes'] / 1e3:.0f} kB.",
    )
    ctx.detail(f"model_size_seed{seed}", size)
    end_to_end(ctx, profile, seed, gsl_model, gsl, test)
    figures.density_figure(ctx, dens, seed)


def end_to_end(ctx: RunContext, profile: Profile, seed: int, gsl_model, gsl: dict, test) -> None:
    """sparsify(GSL LeNet) against its dense start: accuracy (every seed) and forward time
    (interleaved, first seed only: a timing claim takes one measurement per run)."""
    p = profile.pruning
    dense = dense_lenet(ctx, p, seed).eval()
    # the machine the pruning used (from its stage), so the swap decisions come from stored state
    machine = roofline.Machine(**gsl["machine"])
    sparse = sparsify(gsl_model, (1, 28, 28), machine, batch=p.e2e_batch)
    acc_sparse = evaluate(sparse, test)["accuracy"]
    acc_dense = evaluate(dense, test)["accuracy"]
    ctx.record("e2e_accuracy", 100 * (acc_sparse - acc_dense))
    ctx.note("e2e_accuracy", f"seed {seed}: sparse {acc_sparse:.4f}, dense {acc_dense:.4f}.")
    detail = {"sparsified": sparse.sparsified}
    if seed == ctx.seeds[0]:
        xb = test[0][: p.e2e_batch]
        k = profile.kernel

        def measure() -> dict:
            with torch.no_grad():
                m = interleaved_ratio(
                    lambda: sparse(xb), lambda: dense(xb), repeats=k.repeats, max_seconds=k.seconds
                )
            return m.as_dict()

        timing = ctx.stage("e2e_timing", measure, seed=seed, batch=p.e2e_batch)
        ctx.record_timing("e2e_speedup", timing)
        ctx.note(
            "e2e_speedup",
            "swapped: "
            + (", ".join(r["layer"] for r in sparse.sparsified if r["swapped"]) or "none")
            + ".",
        )
        detail["timing"] = timing
    ctx.detail(f"e2e_seed{seed}", detail)
