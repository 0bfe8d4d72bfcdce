"""TernGrad's claims as data, and the run that measures them at each profile.

small (2 CPU cores): LeNet and a 784-300-100-10 MLP on mnist5k (3968 training images, so every
total batch of 64 splits evenly), total batch 64, momentum 0.9, lr 0.05 (the script's 0.01 is for
10,000 steps) with the authors' poly schedule (power 0.5), weight decay 5e-4 in the loss (so it is ternarized, as in the authors' code),
every tensor ternarized (the LeNet script's quantize_logits and size_to_binarize 1). Emulated
workers N in {2..64} and real gloo DDP processes for N in {2, 4}; 3 seeds. Accuracies are after
one epoch (62 steps): far shorter than the paper's 10,000 iterations, so the comparisons are
between arms trained identically, not against the paper's absolute accuracy.
"""

from __future__ import annotations

import statistics
from typing import Any

import torch

from dnnrepro.core import train
from dnnrepro.core.paper import Paper, RunContext
from dnnrepro.core.results import Claim, at_least, at_most, between, within

from . import perfmodel
from .emulate import EmulatorConfig, VirtualWorkers
from .models import build_model
from .packing import packed_trit_bytes
from .ternarize import layer_scaler, ternarize
from .wire import WIRES, collective_bytes, fp32_ring_bytes_per_element, network_bytes

SCALE = (
    "mnist5k (3968 images), 62 steps at total batch 64 and lr 0.05 vs 10,000 iterations at lr 0.01 "
    "on full MNIST"
)
CLAIMS = [
    Claim(
        id="lenet-matches-fp32",
        statement="LeNet: TernGrad matches fp32 SGD for N = 2..64 workers at total batch 64",
        paper_value="-0.22 .. +0.15",
        unit="pp accuracy vs fp32",
        source="LeNet figure",
        confidence="secondary",
        metric="worst (min over N in 2..64) TernGrad(c=2.5) minus fp32 test accuracy, pp, emulated workers",
        rule=at_least(-1.0),
        scale_note=SCALE + ".",
        test_size=1000,
        test_scale=100.0,
        test_difference=True,
    ),
    Claim(
        id="mlp-matches-fp32",
        statement="A fully connected net (784-300-100-10): TernGrad matches fp32 SGD",
        paper_value="no MLP in the paper (our FC-heavy check)",
        unit="",
        source="extension",
        confidence="unverified",
        metric="worst (min over N in {2, 8, 32}) TernGrad(c=2.5) minus fp32 test accuracy, pp",
        rule=at_least(-1.0),
        scale_note=SCALE + ".",
        test_size=1000,
        test_scale=100.0,
        test_difference=True,
    ),
    Claim(
        id="gloo-matches-fp32",
        statement="Real gloo DDP with the hook (a2a, base3): TernGrad matches fp32 DDP on LeNet",
        paper_value="-0.22 .. +0.15",
        unit="pp accuracy vs fp32",
        source="LeNet figure",
        confidence="secondary",
        metric="worst (min over N in {2, 4} processes) TernGrad minus fp32 DDP test accuracy, pp",
        rule=at_least(-1.0),
        scale_note=SCALE + "; real processes on 2 cores.",
        test_size=1000,
        test_scale=100.0,
        test_difference=True,
    ),
    Claim(
        id="gloo-ranks-identical",
        statement="All ranks hold bit-identical parameters after training (each applies the same decoded mean)",
        paper_value="identical parameters on every rank",
        unit="",
        source="parameter localization, Sec. 3",
        confidence="verified",
        metric="fraction of gloo training runs (fp32 and TernGrad, N in {2, 4}) whose ranks' parameter sha256 agree",
        rule=at_least(1.0),
        kind="check",
        kind_reason="an invariant of our DDP hook (every rank applies the same decoded mean)",
    ),
    Claim(
        id="noclip-loses-accuracy",
        statement="Without gradient clipping TernGrad loses accuracy that clipping (c = 2.5) recovers",
        paper_value="+2.98 (AlexNet 2 workers: 57.61 vs 54.63 top-1)",
        unit="pp",
        source="Table 2",
        confidence="secondary",
        metric="mean over N in {2, 16} (small) of TernGrad(c=2.5) minus TernGrad(no clip) accuracy on LeNet, pp",
        rule=at_least(0.5),
        scale_note="LeNet/mnist5k instead of AlexNet/ImageNet; the brief expects the gap, if any, only on large models.",
        test_size=1000,
        test_scale=100.0,
        test_difference=True,
    ),
    Claim(
        id="unbiased",
        statement="Stochastic ternarization is unbiased: E[g~] = g",
        paper_value="E[g~] = g",
        unit="",
        source="Sec. 3 / poster",
        confidence="verified",
        metric="observed ||mean of K draws - g||^2 over its expectation sum_k Var_k / K, real LeNet gradients (1 = unbiased)",
        rule=between(0.8, 1.25),
        kind="check",
        kind_reason="an identity of stochastic ternarization (E[g~] = g), checked on our implementation",
    ),
    Claim(
        id="second-moment",
        statement="E||g~||^2 = ||g||_inf * ||g||_1 (the variance bound behind assumption A3)",
        paper_value="E||g~||^2 = ||g||_inf ||g||_1",
        unit="",
        source="Sec. 3 (derived)",
        confidence="verified",
        metric="mean over draws of ||g~||^2 divided by ||g||_inf ||g||_1, real LeNet gradients",
        rule=within(1.0, 0.02),
        kind="check",
        kind_reason="an identity of stochastic ternarization, checked on our implementation",
    ),
    Claim(
        id="bound-ordering",
        statement="||g||_2^2 <= ||g||_inf ||g||_1 (A3 is stronger than SGD's bound)",
        paper_value="<= 1",
        unit="ratio",
        source="poster, slides p.6",
        confidence="verified",
        metric="max over layers and batches of ||g||^2 / (||g||_inf ||g||_1), real LeNet gradients",
        rule=at_most(1.0),
        kind="check",
        kind_reason="a norm inequality that holds for every vector (||g||_2^2 <= ||g||_inf ||g||_1)",
    ),
    Claim(
        id="aggregate-levels",
        statement="With shared scalers the aggregate of N workers takes at most 2N+1 values",
        paper_value="2N+1",
        unit="levels",
        source="Eq. 4 (summary)",
        confidence="secondary",
        metric="max over layers, steps and N of (distinct values of the emulated mean gradient) / (2N+1)",
        rule=at_most(1.0),
        kind="check",
        kind_reason="arithmetic: N ternary vectors with a shared scaler sum to at most 2N+1 levels",
    ),
    Claim(
        id="fc-zeros",
        statement="Most ternary gradient elements are zero with clipping",
        paper_value="71.32% (AlexNet fc6)",
        unit="zeros",
        source="Fig. 4c",
        confidence="unverified",
        metric="fraction of zero trits in LeNet fc1 with c = 2.5 over the emulated runs (N = 2)",
        rule=between(0.6, 0.8),
        scale_note="LeNet fc1 instead of AlexNet fc6.",
    ),
    Claim(
        id="upload-compression",
        statement="Upload compression vs fp32 close to 32/log2(3)",
        paper_value="20.18",
        unit="x",
        source="Sec. 3",
        confidence="secondary",
        metric="32 bits / bits per element of base3-packed trits of a LeNet gradient (431,080 elements)",
        rule=within(20.18, 0.5),
        kind="check",
        kind_reason="arithmetic: 32 bits over the bits per element of base-3 packing (32/log2(3) by definition)",
    ),
    Claim(
        id="bytes-a2a-n4",
        statement="Default exact wire (a2a, base3) vs fp32 ring allreduce at N = 4",
        paper_value=">= 10 (issue target; 10.7x for 2-bit in the brief's table)",
        unit="x fewer bytes",
        source="brief 1.9",
        confidence="secondary",
        metric="fp32 ring bytes / a2a-base3 bytes one rank sends per LeNet step, N = 4 (formula checked against gloo counts)",
        rule=at_least(10.0),
        kind="check",
        kind_reason="the bytes formula of our wire, evaluated; not a measurement of the paper's result",
    ),
    Claim(
        id="bytes-a2a-n32",
        statement="Default exact wire (a2a, base3) vs fp32 ring allreduce at N = 32",
        paper_value=">= 7 (issue target; 7.1x for 2-bit in the brief's table)",
        unit="x fewer bytes",
        source="brief 1.9",
        confidence="secondary",
        metric="fp32 ring bytes / a2a-base3 bytes one rank sends per LeNet step, N = 32 (formula)",
        rule=at_least(7.0),
        kind="check",
        kind_reason="the bytes formula of our wire, evaluated; not a measurement of the paper's result",
    ),
    Claim(
        id="bytes-formula-exact",
        statement="The wire formula equals the bytes the hook hands to each collective",
        paper_value="exact",
        unit="bytes",
        source="our engine",
        confidence="verified",
        metric="max |counted - formula| bytes over every wire, codec and collective, gloo N in {2, 4, 8}",
        rule=at_most(0.0),
        kind="check",
        kind_reason="self-consistency of our engine: counted bytes equal the formula",
    ),
    Claim(
        id="perf-speedup-grows-with-workers",
        statement="Modelled TernGrad speedup grows with the number of GPUs (1..512)",
        paper_value="qualitative",
        unit="",
        source="Fig. 5, slides p.11",
        confidence="verified",
        metric="fraction of GPU-count doublings (1..512, 3 nets x 2 clusters, a2a-base3) where the speedup does not fall",
        rule=at_least(0.9),
        scale_note="our own performance model (the paper's formula is unpublished); assumed GPU rates.",
    ),
    Claim(
        id="perf-speedup-lower-bandwidth",
        statement="Modelled speedup is larger on 1 Gb/s Ethernet than on 100 Gb/s InfiniBand",
        paper_value="qualitative",
        unit="",
        source="Fig. 5",
        confidence="verified",
        metric="min over nets and N in 8..512 of speedup(Ethernet) / speedup(InfiniBand)",
        rule=at_least(1.0),
        scale_note="our own performance model.",
    ),
    Claim(
        id="perf-speedup-fc-layers",
        statement="Modelled speedup is larger for nets with more FC parameters: VGG-A > AlexNet > GoogLeNet",
        paper_value="qualitative",
        unit="",
        source="Fig. 5",
        confidence="verified",
        metric="fraction of (cluster, N in 8..512) points where speedup VGG-A >= AlexNet >= GoogLeNet",
        rule=at_least(0.9),
        scale_note="our own performance model.",
    ),
    Claim(
        id="perf-alexnet-8gpu-ethernet",
        statement="AlexNet on 8 GPUs over Ethernet: modelled speedup",
        paper_value="3.04",
        unit="x",
        source="Fig. 5",
        confidence="unverified",
        metric="modelled speedup, AlexNet, 8 GPUs, ethernet-1g, a2a-base3",
        rule=between(1.52, 6.08),
        scale_note="within a factor 2 of the paper's number; our model's GPU rate is assumed.",
    ),
    Claim(
        id="net-speedup-fc25m",
        statement="Real slow network: TernGrad DDP steps faster than fp32 DDP on a communication-bound model",
        paper_value=">= 3 (issue target; paper: up to 3.2x modelled)",
        unit="x",
        source="issue 4 / Fig. 5",
        confidence="unverified",
        metric="fp32 step time / TernGrad (a2a, base3) step time, 25.2M-parameter FC stack, 4 namespaces at 100 Mbit/s",
        rule=at_least(3.0),
        scale_note="measured by `dnnrepro terngrad netbench` (net.json); not run when net.json is absent.",
        timing=True,
    ),
    Claim(
        id="net-model-error",
        statement="The performance model, fed with measured machine parameters, predicts the measured speedups",
        paper_value="within 25% (issue target)",
        unit="",
        source="issue 4",
        confidence="unverified",
        metric="max over every netbench configuration of |predicted - measured speedup| / measured speedup",
        rule=at_most(0.25),
        scale_note="from net.json; not run when it is absent.",
        kind="check",
        timing=True,
        kind_reason="our performance model checked against our own network measurements",
    ),
    Claim(
        id="net-bytes-exact",
        statement="On the real network the bytes each rank hands to each collective equal the wire formula",
        paper_value="exact",
        unit="",
        source="issue 4",
        confidence="verified",
        metric="fraction of netbench TernGrad runs whose per-bucket counted bytes equal collective_bytes",
        rule=at_least(1.0),
        scale_note="from net.json; not run when it is absent.",
        kind="check",
        kind_reason="self-consistency of our engine: counted bytes equal collective_bytes",
    ),
    Claim(
        id="cifarnet-table1",
        statement="CifarNet/CIFAR-10, Adam 2e-4, total batch 128, 2 workers, 300K steps: TernGrad close to fp32",
        paper_value="-0.92 (85.64 vs 86.56)",
        unit="pp",
        source="Table 1",
        confidence="secondary",
        metric="TernGrad minus fp32 test accuracy, pp, emulated 2 workers, the paper's hyper-parameters",
        rule=at_least(-1.5),
        profiles=("paper",),
    ),
    Claim(
        id="alexnet-table2",
        statement="AlexNet/ImageNet, 2/4/8 workers: TernGrad matches fp32 top-1",
        paper_value="+0.28 / -0.04 / +0.92",
        unit="pp top-1",
        source="Table 2",
        confidence="secondary",
        metric="TernGrad minus fp32 top-1, pp",
        rule=at_least(-1.0),
        profiles=("paper",),
        scale_note="needs ImageNet and an AlexNet loader, which dnnrepro-core does not provide: not run.",
    ),
]

# profile -> settings of the accuracy experiments
PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {
        "dataset": "mnist5k",
        "train_examples": 640,
        "steps": 3,
        "lenet_n": (2,),
        "noclip_n": (2,),
        "mlp_n": (2,),
        "gloo_n": (2,),
        "bytes_n": (2,),
    },
    "small": {
        "dataset": "mnist5k",
        "train_examples": 3968,
        "steps": 62,
        "lenet_n": (2, 4, 8, 16, 32, 64),
        "noclip_n": (2, 16),
        "mlp_n": (2, 8, 32),
        "gloo_n": (2, 4),
        "bytes_n": (2, 4, 8),
    },
    "paper": {
        "dataset": "mnist",
        "train_examples": None,
        "steps": 10_000,
        "lenet_n": (2, 4, 8, 16, 32, 64),
        "noclip_n": (2, 8, 32),
        "mlp_n": (2, 8, 32),
        "gloo_n": (2, 4),
        "bytes_n": (2, 4, 8),
    },
}
MOMENTUM, WD, BATCH = 0.9, 5e-4, 64
# the LeNet script's lr is 0.01 for 10,000 steps; the small profile's 62 steps need a larger one
LR = {"smoke": 0.05, "small": 0.05, "paper": 0.01}


def _train_config(steps: int, n_examples: int, seed: int, lr: float) -> train.TrainConfig:
    per_epoch = n_examples // BATCH
    return train.TrainConfig(
        epochs=-(-steps // per_epoch),
        batch_size=BATCH,
        lr=lr,
        momentum=MOMENTUM,
        schedule="poly",
        power=0.5,
        seed=seed,
        max_steps=steps,
        progress=False,
    )


def _emulated_run(ctx: RunContext, p: dict, model_name: str, workers: int, arm: str, seed: int):
    """Train one arm ("fp32", "terngrad", "noclip") with N virtual workers; returns metrics."""

    def run() -> dict:
        ctx.log(f"emulated {model_name} {arm} N={workers} seed {seed}")
        x, y = ctx.load(p["dataset"], "train")
        xt, yt = ctx.load(p["dataset"], "test")
        if p["train_examples"]:
            x, y = x[: p["train_examples"]], y[: p["train_examples"]]
        x, y = x[: len(x) // BATCH * BATCH], y[: len(y) // BATCH * BATCH]
        torch.manual_seed(seed)
        model = build_model(model_name, x.shape[1:])
        emu = EmulatorConfig(
            clip_c=None if arm == "noclip" else 2.5, seed=seed, enabled=arm != "fp32"
        )
        vw = VirtualWorkers(model, workers, emu, weight_decay=WD)
        result = train.fit(
            model,
            (x, y),
            _train_config(p["steps"], len(x), seed, LR[ctx.profile]),
            test=(xt, yt),
            grad_fn=vw.grad_fn,
            checkpoint_dir=ctx.work("emulated", model_name, arm, f"n{workers}", f"seed{seed}"),
        )
        zeros = vw.stats.get("zero_fraction", {})
        return {
            "accuracy": result.final["test_accuracy"],
            "zero_fraction": {k: statistics.fmean(v) for k, v in zeros.items()},
            "seconds": result.seconds,
        }

    return ctx.stage(f"emulated-{model_name}-{arm}-n{workers}-seed{seed}", run)


def _bytes_configs() -> dict[str, dict]:
    configs = {}
    for wire in WIRES:
        for codec in ("2bit", "base3"):
            configs[f"{wire}/{codec}"] = {"wire": wire, "codec": codec}
    configs["allgather/noshare"] = {"wire": "allgather", "scaler_sharing": False}
    return configs


def _gloo_runs(ctx: RunContext, p: dict, workers: int, train_jobs: bool) -> dict:
    """One launch of ``workers`` gloo processes: fp32 and TernGrad DDP (a2a, base3) training for
    every seed (when ``train_jobs``), then one step of every wire format whose byte counts are
    compared with the formula. Returns {"train": [...], "bytes_max_abs_diff": int}."""
    from .launch import launch
    from .workers import check_model, gloo_worker

    def run() -> dict:
        jobs = []
        for seed in ctx.seeds if train_jobs else []:
            for method in ("fp32", "terngrad"):
                jobs.append(
                    {
                        "model": "lenet",
                        "dataset": p["dataset"],
                        "data_dir": str(ctx.data_dir) if ctx.data_dir else None,
                        "train_examples": p["train_examples"] or None,
                        "batch": BATCH,
                        "epochs": 1,
                        "max_steps": p["steps"],
                        "lr": LR[ctx.profile],
                        "momentum": MOMENTUM,
                        "schedule": "poly",
                        "power": 0.5,
                        "weight_decay": WD,
                        "seed": seed,
                        "method": method,
                        "wire": "a2a",
                        "codec": "base3",
                        "clip_c": 2.5,
                    }
                )
        if jobs:
            ctx.load(p["dataset"], "train")  # for provenance; the workers load it themselves
        configs = _bytes_configs()
        args = {"jobs": jobs, "check": {"configs": configs, "steps": 1}}
        per_rank = launch(gloo_worker, workers, args, timeout_s=1800)
        runs = []
        for j, job in enumerate(jobs):
            ranks = [r["train"][j] for r in per_rank]
            runs.append(
                {
                    "seed": job["seed"],
                    "method": job["method"],
                    "accuracy": ranks[0]["final"]["test_accuracy"],
                    "identical": len({r["digest"] for r in ranks}) == 1,
                    "wire_total": ranks[0]["wire_total"],
                    "steps": ranks[0]["steps"],
                    "seconds": ranks[0]["seconds"],
                }
            )
        sizes = [q.numel() for q in check_model().parameters()]
        worst = 0
        for label, opt in configs.items():
            formula = collective_bytes(
                opt["wire"],
                opt.get("codec", "2bit"),
                sum(sizes),
                workers,
                len(sizes),
                scaler_sharing=opt.get("scaler_sharing", True),
            )
            for r in per_rank:
                counted = r["check"][label]["wire_steps"][0]
                for key in set(formula) | set(counted):
                    worst = max(worst, abs(formula.get(key, 0) - counted.get(key, 0)))
        return {"train": runs, "bytes_max_abs_diff": worst, "bytes_configs": len(configs)}

    return ctx.stage(f"gloo-n{workers}", run)


def _gradient_identities(ctx: RunContext, p: dict, seed: int) -> dict:
    """Unbiasedness, second moment and bound ordering on real LeNet gradients."""

    def run() -> dict:
        x, y = ctx.load(p["dataset"], "train")
        torch.manual_seed(seed)
        model = build_model("lenet", x.shape[1:])
        gen = torch.Generator().manual_seed(seed)
        draws = 40 if ctx.profile == "smoke" else 200
        err, expected, moment, bound = 0.0, 0.0, [], []
        for _ in range(2):
            model.zero_grad()
            idx = torch.randint(0, len(x), (BATCH,), generator=gen)
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            for _, prm in model.named_parameters():
                g = prm.grad.detach().reshape(-1).double()
                s = float(layer_scaler(prm.grad, None))
                acc = torch.zeros_like(g)
                sq = 0.0
                for _ in range(draws):
                    t, _ = ternarize(prm.grad, clip_c=None, generator=gen)
                    est = t.reshape(-1).double() * s
                    acc += est
                    sq += float((est * est).sum())
                err += float(((acc / draws - g) ** 2).sum())
                expected += float((s * g.abs() - g * g).sum()) / draws
                linf_l1 = s * float(g.abs().sum())
                moment.append((sq / draws) / linf_l1)
                bound.append(float((g * g).sum()) / linf_l1)
        return {
            "error_ratio": err / expected,
            "moment_ratio": statistics.fmean(moment),
            "bound_max": max(bound),
            "draws": draws,
        }

    return ctx.stage(f"identities-seed{seed}", run)


def lenet_numel_layers() -> tuple[int, int]:
    model = build_model("lenet", (1, 28, 28))
    return sum(p.numel() for p in model.parameters()), len(list(model.parameters()))


def bytes_per_element(wire: str, codec: str, workers: int) -> float | None:
    """Bytes one rank sends per gradient element for a LeNet-sized bucket (None: not allowed)."""
    numel, layers = lenet_numel_layers()
    if wire == "fp32":
        return fp32_ring_bytes_per_element(workers)
    if wire == "int8" and workers > 127:
        return None
    return network_bytes(collective_bytes(wire, codec, numel, workers, layers), workers) / numel


def run(ctx: RunContext) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = PROFILES[ctx.profile]
    # ---- accuracy vs workers (emulated), LeNet and MLP
    table: dict[str, dict] = {}
    lenet_gap, mlp_gap, clip_gap, zeros, levels_ok = {}, {}, {}, [], []
    for seed in ctx.seeds:
        fp = {m: _emulated_run(ctx, p, m, 1, "fp32", seed)["accuracy"] for m in ("lenet", "mlp")}
        row = table.setdefault(f"seed{seed}", {"fp32": fp})
        tg, nc, ml = {}, {}, {}
        for n in p["lenet_n"]:
            r = _emulated_run(ctx, p, "lenet", n, "terngrad", seed)
            tg[n] = r["accuracy"]
            if n == 2:
                zeros.append(r["zero_fraction"].get("fc1.weight", float("nan")))
        for n in p["noclip_n"]:
            nc[n] = _emulated_run(ctx, p, "lenet", n, "noclip", seed)["accuracy"]
        for n in p["mlp_n"]:
            ml[n] = _emulated_run(ctx, p, "mlp", n, "terngrad", seed)["accuracy"]
        row.update(lenet_terngrad=tg, lenet_noclip=nc, mlp_terngrad=ml)
        lenet_gap[seed] = min(100 * (a - fp["lenet"]) for a in tg.values())
        mlp_gap[seed] = min(100 * (a - fp["mlp"]) for a in ml.values())
        clip_gap[seed] = statistics.fmean(100 * (tg[n] - nc[n]) for n in nc if n in tg)
        ctx.record("lenet-matches-fp32", lenet_gap[seed])
        ctx.record("mlp-matches-fp32", mlp_gap[seed])
        ctx.record("noclip-loses-accuracy", clip_gap[seed])
    for z in zeros:
        ctx.record("fc-zeros", z)
    ctx.detail("accuracy_emulated", table)

    # ---- aggregate levels on real gradients (emulated, one step, every N)
    ctx.log("aggregate levels")
    levels_ok = _levels_check(ctx, p)
    ctx.record("aggregate-levels", levels_ok)

    # ---- real gloo DDP
    ctx.log(f"gloo DDP runs, N in {p['gloo_n']}; byte counts, N in {p['bytes_n']}")
    launches = {n: _gloo_runs(ctx, p, n, n in p["gloo_n"]) for n in p["bytes_n"]}
    gloo: dict[int, list[dict]] = {n: launches[n]["train"] for n in p["gloo_n"]}
    ctx.detail("gloo", {str(n): v for n, v in gloo.items()})
    identical = [r["identical"] for runs in gloo.values() for r in runs]
    ctx.record("gloo-ranks-identical", sum(identical) / len(identical))
    for seed in ctx.seeds:
        gaps = []
        for runs in gloo.values():
            acc = {r["method"]: r["accuracy"] for r in runs if r["seed"] == seed}
            gaps.append(100 * (acc["terngrad"] - acc["fp32"]))
        ctx.record("gloo-matches-fp32", min(gaps))

    # ---- gradient identities
    ctx.log("gradient identities")
    for seed in ctx.seeds:
        ident = _gradient_identities(ctx, p, seed)
        ctx.record("unbiased", ident["error_ratio"])
        ctx.record("second-moment", ident["moment_ratio"])
        ctx.record("bound-ordering", ident["bound_max"])

    # ---- bytes on the wire
    numel, _ = lenet_numel_layers()
    ctx.record("upload-compression", 32 / (8 * packed_trit_bytes(numel, "base3") / numel))
    worst = max(launch["bytes_max_abs_diff"] for launch in launches.values())
    ctx.record("bytes-formula-exact", worst)
    for n, cid in ((4, "bytes-a2a-n4"), (32, "bytes-a2a-n32")):
        ctx.record(cid, fp32_ring_bytes_per_element(n) / bytes_per_element("a2a", "base3", n))
    ns = [2, 4, 8, 16, 32, 64, 128, 256, 512]
    curves = {"fp32 ring": [bytes_per_element("fp32", "", n) for n in ns]}
    for wire in WIRES:
        for codec in (
            ("2bit", "base3") if wire in ("a2a", "allgather", "a2a-reternarize") else ("2bit",)
        ):
            label = wire if wire in ("int8", "fields") else f"{wire} {codec}"
            curves[label] = [bytes_per_element(wire, codec, n) for n in ns]
    ctx.detail("bytes_per_element", {"workers": ns, "curves": curves})
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, ys in curves.items():
        ax.plot(ns, ys, marker="o", ms=3, label=label, lw=2.5 if label == "fp32 ring" else 1.2)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("workers N")
    ax.set_ylabel("bytes sent per gradient element per worker")
    ax.set_title("LeNet bucket; formula = counted bytes (gloo, N = 2, 4, 8)")
    ax.legend(fontsize=7, ncol=2)
    ctx.figure("bytes_per_element", fig, {"workers": ns, "curves": curves})

    # ---- accuracy figure
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, model, key, ns_ in (
        (axes[0], "lenet", "lenet_terngrad", p["lenet_n"]),
        (axes[1], "mlp", "mlp_terngrad", p["mlp_n"]),
    ):
        fp_mean = statistics.fmean(table[f"seed{s}"]["fp32"][model] for s in ctx.seeds)
        ax.axhline(100 * fp_mean, color="k", ls="--", label="fp32 (any N)")
        ys = [statistics.fmean(table[f"seed{s}"][key][n] for s in ctx.seeds) for n in ns_]
        ax.plot(ns_, [100 * v for v in ys], marker="o", label="TernGrad c=2.5 (emulated)")
        if model == "lenet":
            ys = [
                statistics.fmean(table[f"seed{s}"]["lenet_noclip"][n] for s in ctx.seeds)
                for n in p["noclip_n"]
            ]
            ax.plot(p["noclip_n"], [100 * v for v in ys], marker="s", label="TernGrad no clip")
            for n, runs in gloo.items():
                for method, mk in (("fp32", "x"), ("terngrad", "^")):
                    acc = statistics.fmean(r["accuracy"] for r in runs if r["method"] == method)
                    ax.scatter(
                        [n],
                        [100 * acc],
                        marker=mk,
                        color="r",
                        zorder=5,
                        label=f"gloo {method}" if n == p["gloo_n"][0] else None,
                    )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("workers N (total batch 64)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(
            f"{model} on {p['dataset']}, {p['steps']} steps, mean of {len(ctx.seeds)} seeds"
        )
        ax.legend(fontsize=7)
    ctx.figure("accuracy_vs_workers", fig, table)

    _perfmodel_claims(ctx, plt)
    _net_claims(ctx)
    _paper_only(ctx)


def _net_claims(ctx: RunContext) -> None:
    """Claims measured by ``dnnrepro terngrad netbench`` (needs root), read from its net.json."""
    import json

    # netbench writes to the package's results folder, one above the profile's out_dir
    path = ctx.out_dir.parent / "net.json"
    if ctx.profile == "smoke" or not path.exists():
        return
    doc = json.loads(ctx.input(path).read_text())
    rows = [r for c in doc["configs"] for r in c["rows"]]
    target = [
        r for r in rows
        if r["model"] == "fc25m" and r["workers"] == 4 and r["rate_mbit"] == 100 and r["method"] == "a2a"
    ]  # fmt: skip
    if target:
        ctx.record("net-speedup-fc25m", target[0]["speedup"])
    ctx.record("net-model-error", max(r["speedup_error"] for r in rows))
    tern = [r for r in rows if r["method"] != "fp32"]
    ctx.record("net-bytes-exact", sum(r["bytes_match_formula"] for r in tern) / len(tern))
    ctx.detail("net", {"source": "net.json", "configs": len(doc["configs"])})
    if (ctx.out_dir.parent / "net.png").exists():
        ctx.figure("net", ctx.out_dir.parent / "net.png", doc)


def _levels_check(ctx: RunContext, p: dict) -> float:
    from .emulate import emulate

    def run() -> float:
        x, y = ctx.load(p["dataset"], "train")
        torch.manual_seed(0)
        model = build_model("lenet", x.shape[1:])
        worst = 0.0
        for n in p["lenet_n"]:
            per_worker = []
            for i in range(n):
                model.zero_grad()
                sl = slice(i * BATCH // n, (i + 1) * BATCH // n)
                torch.nn.functional.cross_entropy(model(x[sl]), y[sl]).backward()
                per_worker.append({k: v.grad.clone() for k, v in model.named_parameters()})
            mean = emulate(per_worker, EmulatorConfig(), step=0)
            worst = max(worst, max(v.unique().numel() / (2 * n + 1) for v in mean.values()))
        return worst

    return ctx.stage("levels", run)


def _perfmodel_claims(ctx: RunContext, plt) -> None:
    data = perfmodel.sweep("a2a", "base3")
    ctx.detail("perfmodel", data)
    counts = perfmodel.GPU_COUNTS
    holds, total = 0, 0
    for rows in data.values():
        for a, b in zip(rows, rows[1:], strict=False):
            holds += b["speedup"] >= a["speedup"] - 1e-9
            total += 1
    ctx.record("perf-speedup-grows-with-workers", holds / total)
    big = [i for i, n in enumerate(counts) if n >= 8]
    ratios = [
        data[f"{net}/ethernet-1g"][i]["speedup"] / data[f"{net}/infiniband-100g"][i]["speedup"]
        for net in perfmodel.NETWORKS
        for i in big
    ]
    ctx.record("perf-speedup-lower-bandwidth", min(ratios))
    ordered = [
        data[f"vgg-a/{cl}"][i]["speedup"]
        >= data[f"alexnet/{cl}"][i]["speedup"]
        >= data[f"googlenet/{cl}"][i]["speedup"]
        for cl in perfmodel.CLUSTERS
        for i in big
    ]
    ctx.record("perf-speedup-fc-layers", sum(ordered) / len(ordered))
    ctx.record("perf-alexnet-8gpu-ethernet", perfmodel.speedup("alexnet", "ethernet-1g", 8))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, cl in zip(axes, perfmodel.CLUSTERS, strict=True):
        for net in perfmodel.NETWORKS:
            rows = data[f"{net}/{cl}"]
            line = ax.plot(
                counts, [r["terngrad"] for r in rows], marker="o", ms=3, label=f"{net} TernGrad"
            )
            ax.plot(
                counts,
                [r["fp32"] for r in rows],
                ls="--",
                color=line[0].get_color(),
                label=f"{net} fp32",
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("GPUs")
        ax.set_ylabel("images / s (modelled)")
        ax.set_title(cl)
        ax.legend(fontsize=7)
    ctx.figure("perfmodel_throughput", fig, data)


def _paper_only(ctx: RunContext) -> None:
    if ctx.profile != "paper":
        return
    # CifarNet/CIFAR-10 (Table 1): Adam 2e-4, total batch 128, 2 workers, 300K steps, c = 2.5
    xtr, ytr = ctx.load("cifar10", "train")
    xte, yte = ctx.load("cifar10", "test")
    for seed in ctx.seeds:
        acc = {}
        for arm in ("fp32", "terngrad"):
            torch.manual_seed(seed)
            model = build_model("cifarnet", xtr.shape[1:])
            vw = VirtualWorkers(
                model, 2, EmulatorConfig(seed=seed, enabled=arm != "fp32"), weight_decay=4e-3
            )
            config = train.TrainConfig(
                steps=300_000,
                batch_size=128,
                lr=2e-4,
                optimizer="adam",
                seed=seed,
                checkpoint_every=1000,
                progress=False,
            )
            res = train.fit(
                model,
                (xtr, ytr),
                config,
                test=(xte, yte),
                grad_fn=vw.grad_fn,
                checkpoint_dir=ctx.work("cifarnet", arm, f"seed{seed}"),
            )
            acc[arm] = res.final["test_accuracy"]
        ctx.record("cifarnet-table1", 100 * (acc["terngrad"] - acc["fp32"]))
    ctx.note("alexnet-table2", "not run: dnnrepro-core has no ImageNet loader.")


def _add_commands(sub) -> None:
    from .cli import add_commands

    add_commands(sub)


PAPER = Paper(
    name="terngrad",
    title="TernGrad: Ternary Gradients to Reduce Communication in Distributed Deep Learning",
    arxiv="1705.07878",
    version="0.1.0",
    claims=CLAIMS,
    run=run,
    default_seeds={"smoke": 1, "small": 3, "paper": 1},
    add_commands=_add_commands,
    source_module="dnnrepro.terngrad",
)
