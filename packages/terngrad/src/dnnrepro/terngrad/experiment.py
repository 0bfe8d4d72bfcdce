"""The runs behind TernGrad's claims, as named steps of :func:`run` (one per block of claims).

Every expensive part is a ``ctx.stage`` whose result holds all the values the claims read, and
every training arm checkpoints through ``fit`` (the emulator's zero-trit counts included, as
callback state), so a run stopped at any point and resumed records the same values as a run
that was never stopped (issue 25 item 1).
"""

from __future__ import annotations

import json
import statistics

import torch

from dnnrepro.core import train
from dnnrepro.core.paper import RunContext

from . import figures, perfmodel
from .config import BATCH, CLIP_C, MOMENTUM, PROFILES, WEIGHT_DECAY, Profile
from .emulate import EmulatorConfig, VirtualWorkers, emulate
from .models import build_model
from .packing import packed_trit_bytes
from .ternarize import layer_scaler, ternarize
from .wire import (
    DEFAULT_CODEC,
    DEFAULT_WIRE,
    WIRES,
    collective_bytes,
    fp32_ring_bytes_per_element,
    network_bytes,
    resolve_wire,
)


def run(ctx: RunContext) -> None:
    """``PAPER.run``: every claim of :data:`dnnrepro.terngrad.claims.CLAIMS` at ``ctx.profile``."""
    p = PROFILES[ctx.profile]
    table = accuracy_vs_workers(ctx, p)
    ctx.record("aggregate-levels", levels_check(ctx, p))
    launches = gloo_runs(ctx, p)
    gradient_identities(ctx, p)
    curves = bytes_claims(ctx, launches)
    figures.bytes_per_element(ctx, curves)
    figures.accuracy_vs_workers(ctx, p, table, launches)
    perfmodel_claims(ctx)
    net_claims(ctx)
    paper_only(ctx, p)


# ---------------------------------------------------------------- emulated accuracy vs workers
def train_config(p: Profile, seed: int, **overrides) -> train.TrainConfig:
    """The LeNet script's optimizer: momentum 0.9, poly lr (power 0.5) to 0 at ``p.steps``."""
    base = dict(
        steps=p.steps,
        batch_size=BATCH,
        lr=p.lr,
        momentum=MOMENTUM,
        schedule="poly",
        power=0.5,
        seed=seed,
        checkpoint_every=p.checkpoint_every,
        progress=False,
    )
    return train.TrainConfig(**{**base, **overrides})


def emulated_run(ctx: RunContext, p: Profile, model_name: str, workers: int, arm: str, seed: int):
    """Train one arm ("fp32", "terngrad", "noclip") with N virtual workers.

    Returns {"accuracy", "zero_fraction": {param: fraction over all steps}, "seconds"}; the zero
    fractions come from the checkpointed counts, so a resumed arm reports the whole run's.
    """

    def run_arm() -> dict:
        ctx.log(f"emulated {model_name} {arm} N={workers} seed {seed}")
        x, y = ctx.load(p.dataset, "train")
        xt, yt = ctx.load(p.dataset, "test")
        if p.train_examples:
            x, y = x[: p.train_examples], y[: p.train_examples]
        x, y = x[: len(x) // BATCH * BATCH], y[: len(y) // BATCH * BATCH]
        torch.manual_seed(seed)
        model = build_model(model_name, x.shape[1:])
        emu = EmulatorConfig(
            clip_c=None if arm == "noclip" else CLIP_C, seed=seed, enabled=arm != "fp32"
        )
        vw = VirtualWorkers(model, workers, emu, weight_decay=WEIGHT_DECAY, emulator=p.emulator)
        result = train.fit(
            model,
            (x, y),
            train_config(p, seed),
            test=(xt, yt),
            grad_fn=vw.grad_fn,
            callbacks=[vw],
            checkpoint_dir=ctx.work("emulated", model_name, arm, f"n{workers}", f"seed{seed}"),
        )
        return {
            "accuracy": result.final["test_accuracy"],
            "zero_fraction": vw.zero_fraction(),
            "seconds": result.seconds,
        }

    return ctx.stage(
        f"emulated-{model_name}-{arm}-n{workers}-seed{seed}", run_arm, steps=p.steps, lr=p.lr
    )


def accuracy_vs_workers(ctx: RunContext, p: Profile) -> dict:
    """LeNet (c = 2.5 and no clip) and MLP arms against one fp32 arm per model, every seed.

    Records lenet-matches-fp32, mlp-matches-fp32, noclip-loses-accuracy and fc-zeros (one value
    per seed); returns the accuracy table {"seed<s>": {...}}.
    """
    table: dict[str, dict] = {}
    for seed in ctx.seeds:
        fp = {m: emulated_run(ctx, p, m, 1, "fp32", seed)["accuracy"] for m in ("lenet", "mlp")}
        tg, nc, ml = {}, {}, {}
        for n in p.lenet_n:
            r = emulated_run(ctx, p, "lenet", n, "terngrad", seed)
            tg[n] = r["accuracy"]
            if n == p.lenet_n[0]:
                ctx.record("fc-zeros", r["zero_fraction"]["fc1.weight"])
        for n in p.noclip_n:
            nc[n] = emulated_run(ctx, p, "lenet", n, "noclip", seed)["accuracy"]
        for n in p.mlp_n:
            ml[n] = emulated_run(ctx, p, "mlp", n, "terngrad", seed)["accuracy"]
        table[f"seed{seed}"] = {
            "fp32": fp,
            "lenet_terngrad": tg,
            "lenet_noclip": nc,
            "mlp_terngrad": ml,
        }
        ctx.record("lenet-matches-fp32", min(100 * (a - fp["lenet"]) for a in tg.values()))
        ctx.record("mlp-matches-fp32", min(100 * (a - fp["mlp"]) for a in ml.values()))
        ctx.record(
            "noclip-loses-accuracy", statistics.fmean(100 * (tg[n] - nc[n]) for n in nc if n in tg)
        )
    ctx.detail("accuracy_emulated", table)
    return table


# ---------------------------------------------------------------- aggregate levels
def levels_check(ctx: RunContext, p: Profile) -> float:
    """Max over layers and N of (distinct values of the emulated mean) / (2N+1), one step."""

    def run_levels() -> float:
        x, y = ctx.load(p.dataset, "train")
        torch.manual_seed(0)
        model = build_model("lenet", x.shape[1:])
        worst = 0.0
        for n in p.lenet_n:
            per_worker = []
            for i in range(n):
                model.zero_grad()
                sl = slice(i * BATCH // n, (i + 1) * BATCH // n)
                torch.nn.functional.cross_entropy(model(x[sl]), y[sl]).backward()
                per_worker.append({k: v.grad.clone() for k, v in model.named_parameters()})
            mean = emulate(per_worker, EmulatorConfig(), step=0)
            worst = max(worst, max(v.unique().numel() / (2 * n + 1) for v in mean.values()))
        return worst

    ctx.log("aggregate levels")
    return ctx.stage("levels", run_levels, n=list(p.lenet_n))


# ---------------------------------------------------------------- real gloo DDP
def bytes_configs() -> dict[str, dict]:
    """Every wire x codec, plus allgather without scaler sharing: the byte-count checks."""
    configs = {}
    for wire in WIRES:
        for codec in ("2bit", "base3"):
            configs[f"{wire}/{codec}"] = {"wire": wire, "codec": codec}
    # the codec named, not left to the hook's default: the formula below must use the same one
    configs["allgather/noshare"] = {
        "wire": "allgather",
        "codec": DEFAULT_CODEC,
        "scaler_sharing": False,
    }
    return configs


def gloo_launch(ctx: RunContext, p: Profile, workers: int, train_jobs: bool) -> dict:
    """One launch of ``workers`` gloo processes: fp32 and TernGrad DDP (a2a, base3) training for
    every seed (when ``train_jobs``), then one step of every wire format whose byte counts are
    compared with the formula. Returns {"train": [...], "bytes_max_abs_diff": int, ...}."""
    from .launch import launch
    from .workers import check_model, gloo_worker

    def run_launch() -> dict:
        jobs = []
        for seed in ctx.seeds if train_jobs else []:
            for method in ("fp32", "terngrad"):
                jobs.append(
                    {
                        "model": "lenet",
                        "dataset": p.dataset,
                        "data_dir": str(ctx.data_dir) if ctx.data_dir else None,
                        "train_examples": p.train_examples,
                        "batch": BATCH,
                        "steps": p.gloo_steps,
                        "lr": p.lr,
                        "momentum": MOMENTUM,
                        "schedule": "poly",
                        "power": 0.5,
                        "weight_decay": WEIGHT_DECAY,
                        "seed": seed,
                        "method": method,
                        "wire": "a2a",
                        "codec": "base3",
                        "clip_c": CLIP_C,
                    }
                )
        if jobs:
            ctx.load(p.dataset, "train")  # for provenance; the workers load it themselves
        configs = bytes_configs()
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
                opt["codec"],
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

    return ctx.stage(
        f"gloo-n{workers}",
        run_launch,
        train=train_jobs,
        seeds=list(ctx.seeds),
        steps=p.gloo_steps,
        lr=p.lr,
    )


def gloo_runs(ctx: RunContext, p: Profile) -> dict[int, dict]:
    """Real gloo DDP: records gloo-ranks-identical and gloo-matches-fp32 (one value per seed)."""
    ctx.log(f"gloo DDP runs, N in {p.gloo_n}; byte counts, N in {p.bytes_n}")
    launches = {n: gloo_launch(ctx, p, n, n in p.gloo_n) for n in sorted(set(p.bytes_n))}
    for n in p.gloo_n:
        if n not in launches:
            launches[n] = gloo_launch(ctx, p, n, True)
    gloo = {n: launches[n]["train"] for n in p.gloo_n}
    ctx.detail("gloo", {str(n): v for n, v in gloo.items()})
    identical = [r["identical"] for runs in gloo.values() for r in runs]
    ctx.record("gloo-ranks-identical", sum(identical) / len(identical))
    for seed in ctx.seeds:
        gaps = []
        for runs in gloo.values():
            acc = {r["method"]: r["accuracy"] for r in runs if r["seed"] == seed}
            gaps.append(100 * (acc["terngrad"] - acc["fp32"]))
        ctx.record("gloo-matches-fp32", min(gaps))
    return launches


# ---------------------------------------------------------------- gradient identities
def gradient_identities(ctx: RunContext, p: Profile) -> None:
    """Unbiasedness, second moment and bound ordering on real LeNet gradients, per seed."""
    ctx.log("gradient identities")
    for seed in ctx.seeds:
        ident = ctx.stage(
            f"identities-seed{seed}",
            lambda seed=seed: _identities(ctx, p, seed),
            draws=p.identity_draws,
        )
        ctx.record("unbiased", ident["error_ratio"])
        ctx.record("second-moment", ident["moment_ratio"])
        ctx.record("bound-ordering", ident["bound_max"])


def _identities(ctx: RunContext, p: Profile, seed: int) -> dict:
    x, y = ctx.load(p.dataset, "train")
    torch.manual_seed(seed)
    model = build_model("lenet", x.shape[1:])
    gen = torch.Generator().manual_seed(seed)
    draws = p.identity_draws
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


# ---------------------------------------------------------------- bytes on the wire
def lenet_numel_layers() -> tuple[int, int]:
    """(parameters, parameter tensors) of LeNet on 28x28 images."""
    model = build_model("lenet", (1, 28, 28))
    return sum(q.numel() for q in model.parameters()), len(list(model.parameters()))


def bytes_per_element(wire: str, codec: str, workers: int) -> float | None:
    """Bytes one rank sends per gradient element for a LeNet-sized bucket (None: not allowed)."""
    numel, layers = lenet_numel_layers()
    if wire == "fp32":
        return fp32_ring_bytes_per_element(workers)
    if wire == "int8" and workers > 127:
        return None
    return network_bytes(collective_bytes(wire, codec, numel, workers, layers), workers) / numel


def bytes_claims(ctx: RunContext, launches: dict[int, dict]) -> dict:
    """upload-compression, bytes-formula-exact, bytes-a2a-n4/n32; returns the per-wire curves."""
    numel, _ = lenet_numel_layers()
    ctx.record("upload-compression", 32 / (8 * packed_trit_bytes(numel, "base3") / numel))
    ctx.record("bytes-formula-exact", max(v["bytes_max_abs_diff"] for v in launches.values()))
    for n, cid in ((4, "bytes-a2a-n4"), (32, "bytes-a2a-n32")):
        default = resolve_wire(DEFAULT_WIRE, DEFAULT_CODEC, n)  # the API default, as the claim says
        ctx.record(
            cid, fp32_ring_bytes_per_element(n) / bytes_per_element(default, DEFAULT_CODEC, n)
        )
    ns = [2, 4, 8, 16, 32, 64, 128, 256, 512]
    curves = {"fp32 ring": [bytes_per_element("fp32", "", n) for n in ns]}
    for wire in WIRES:
        packed = wire in ("a2a", "allgather", "a2a-reternarize")
        for codec in ("2bit", "base3") if packed else ("2bit",):
            label = wire if wire in ("int8", "fields") else f"{wire} {codec}"
            curves[label] = [bytes_per_element(wire, codec, n) for n in ns]
    data = {"workers": ns, "curves": curves}
    ctx.detail("bytes_per_element", data)
    return data


# ---------------------------------------------------------------- performance model
def perfmodel_claims(ctx: RunContext) -> None:
    """The Fig. 5 trends on our own performance model (no measurement: pure arithmetic)."""
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
    figures.perfmodel_throughput(ctx, data)


# ---------------------------------------------------------------- slow-network measurements
def net_claims(ctx: RunContext) -> None:
    """Claims measured by ``dnnrepro terngrad netbench`` (needs root), read from its net.json.

    netbench writes to the package's results folder; the migrated pin keeps a copy in the
    profile's folder. Not run at smoke or when neither file exists.
    """
    if ctx.profile == "smoke":
        return
    found = [q for q in (ctx.out_dir.parent / "net.json", ctx.out_dir / "net.json") if q.exists()]
    if not found:
        return
    path = ctx.input(found[0])
    doc = json.loads(path.read_text())
    rows = [r for c in doc["configs"] for r in c["rows"]]
    target = [
        r for r in rows
        if r["model"] == "fc25m" and r["workers"] == 4 and r["rate_mbit"] == 100 and r["method"] == "a2a"
    ]  # fmt: skip
    if target:  # no timing-protocol record in net.json yet: the verdict says so
        ctx.record("net-speedup-fc25m", target[0]["speedup"])
    ctx.record("net-model-error", max(r["speedup_error"] for r in rows))
    tern = [r for r in rows if r["method"] != "fp32"]
    ctx.record("net-bytes-exact", sum(r["bytes_match_formula"] for r in tern) / len(tern))
    ctx.detail("net", {"source": path.name, "configs": len(doc["configs"])})
    png = path.with_suffix(".png")
    if png.exists():
        ctx.figure("net", png, doc)


# ---------------------------------------------------------------- paper profile only
def paper_only(ctx: RunContext, p: Profile) -> None:
    """Table 1 (CifarNet/CIFAR-10, Adam 2e-4, total batch 128, 2 workers, c = 2.5) when the
    profile asks for it; the AlexNet rows need ImageNet, which the core cannot load."""
    if ctx.profile != "paper":
        return
    ctx.note("alexnet-table2", "not run: dnnrepro-core has no ImageNet loader.")
    if p.cifarnet_steps is None:
        ctx.note(
            "cifarnet-table1",
            "not run: 300K steps x 2 arms is about 16 CPU hours, over the package's budget.",
        )
        return
    for seed in ctx.seeds:
        acc = {
            arm: ctx.stage(
                f"cifarnet-{arm}-seed{seed}",
                lambda arm=arm, seed=seed: _cifarnet_arm(ctx, p, arm, seed),
                steps=p.cifarnet_steps,
            )
            for arm in ("fp32", "terngrad")
        }
        ctx.record("cifarnet-table1", 100 * (acc["terngrad"] - acc["fp32"]))


def _cifarnet_arm(ctx: RunContext, p: Profile, arm: str, seed: int) -> float:
    xtr, ytr = ctx.load("cifar10", "train")
    xte, yte = ctx.load("cifar10", "test")
    torch.manual_seed(seed)
    model = build_model("cifarnet", xtr.shape[1:])
    # weight decay 4e-3 in the loss as the authors' script, hence per worker (see VirtualWorkers)
    emu = EmulatorConfig(seed=seed, enabled=arm != "fp32")
    vw = VirtualWorkers(model, 2, emu, weight_decay=4e-3)
    config = train.TrainConfig(
        steps=p.cifarnet_steps,
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
        callbacks=[vw],
        checkpoint_dir=ctx.work("cifarnet", arm, f"seed{seed}"),
    )
    return res.final["test_accuracy"]
