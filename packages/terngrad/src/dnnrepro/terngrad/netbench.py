"""Measured speedup on a real slow network, and the performance model checked against it.

    dnnrepro terngrad netbench [--workers 2 4] [--rates 100 1000] [--models fc25m lenet] ...
    python -m dnnrepro.terngrad.netbench --out paper_results/terngrad      (needs root, ip, tc)

For every (N, rate) a :class:`~dnnrepro.terngrad.netns.SlowNetwork` is built and one gloo worker per
namespace runs, in order: micro-measurements (local forward+backward time of each model, a 4-byte
allreduce for the per-message latency, an 8 MB allreduce for the link bandwidth), then for each
model fp32 DDP and TernGrad DDP with every exact wire format for ``steps`` timed steps after
``warmup``. Step time is the median; communication = step - the model's local compute time. The
bytes are the hook's own counters (fp32: 4 bytes a parameter through DDP's allreduce).

Prediction (the model of :mod:`dnnrepro.terngrad.perfmodel` with measured machine parameters):
T = T_comp + sum over collectives (bytes sent / bandwidth + messages * latency) + T_codec, where
T_codec is the locally measured ternarize + pack + decode time of the model's gradient.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from dnnrepro.core.errors import ConfigError, DnnreproError

from .wire import COLLECTIVE_KIND, EXACT_WIRES, collective_bytes, network_bytes

NET_MODELS = ("fc25m", "lenet")
SETTINGS = ("workers", "rates", "models", "wires", "steps", "warmup", "delay_ms")


def build_net_model(name: str) -> tuple[torch.nn.Module, tuple[int, ...]]:
    """("fc25m": a 25.2M-parameter FC stack, communication-bound; "lenet": compute-bound)."""
    from torch import nn

    from dnnrepro.core.models import LeNet

    torch.manual_seed(0)
    if name == "fc25m":
        model = nn.Sequential(
            nn.Linear(1024, 4096), nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(),
            nn.Linear(4096, 1024), nn.ReLU(), nn.Linear(1024, 10),
        )  # fmt: skip
        return model, (1024,)
    if name == "lenet":
        return LeNet(1, 28, 10), (1, 28, 28)
    raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(NET_MODELS)}")


def _median_time(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def worker_main(config: dict[str, Any], rank: int, out_path: str) -> None:
    """One rank inside its namespace: measure, then write a JSON result to ``out_path``."""
    import datetime

    import torch.distributed as dist
    import torch.nn.functional as F
    from torch import nn

    from .hook import TernGradState, terngrad_hook
    from .packing import pack_trits, unpack_trits
    from .ternarize import ternarize

    torch.set_num_threads(1)
    world = config["workers"]
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://{config['master']}:{config['port']}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=config.get("collective_timeout", 300)),
    )
    result: dict[str, Any] = {"rank": rank, "runs": []}
    small = torch.zeros(1)
    dist.all_reduce(small)
    result["latency_s"] = _median_time(lambda: dist.all_reduce(small), 20) / (2 * (world - 1))
    big = torch.zeros(2 * 1024 * 1024)  # 8 MB
    t = _median_time(lambda: dist.all_reduce(big), 3)
    result["bandwidth_Bps"] = network_bytes({"float_allreduce": big.numel() * 4}, world) / t
    for name in config["models"]:
        model, shape = build_net_model(name)
        batch = config["batch"]
        gen = torch.Generator().manual_seed(rank)
        x = torch.randn(batch, *shape, generator=gen)
        y = torch.randint(0, 10, (batch,), generator=gen)

        def local_step(model=model, x=x, y=y):
            model.zero_grad()
            F.cross_entropy(model(x), y).backward()

        local_step()
        compute = _median_time(local_step, 5)
        flat = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
        s = float(2.5 * flat.std(correction=0))

        def codec(flat=flat, s=s):
            t, _ = ternarize(flat, scaler=s, seed=1, check_finite=False)
            unpack_trits(pack_trits(t, "base3"), flat.numel(), "base3")

        codec_s = _median_time(codec, 3)
        numel = flat.numel()
        for method in ["fp32", *config["wires"]]:
            model, _ = build_net_model(name)
            ddp = nn.parallel.DistributedDataParallel(model)
            state = None
            if method != "fp32":
                state = TernGradState(wire=method, codec="base3", model=model)
                ddp.register_comm_hook(state, terngrad_hook)
            opt = torch.optim.SGD(model.parameters(), lr=1e-4)
            times = []
            for step in range(config["warmup"] + config["steps"]):
                dist.barrier()
                t0 = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(ddp(x), y).backward()
                opt.step()
                if step >= config["warmup"]:
                    times.append(time.perf_counter() - t0)
            if state is None:
                handed = {"float_allreduce": 4 * numel}
            else:
                handed = dict(state.wire_stats["steps"][-1])
            result["runs"].append(
                {
                    "model": name,
                    "method": method,
                    "numel": numel,
                    "layers": len(list(model.parameters())),
                    "step_s": statistics.median(times),
                    "compute_s": compute,
                    "codec_s": codec_s,
                    "handed": handed,
                    "buckets": state.wire_stats["buckets"] if state else None,
                }
            )
    dist.destroy_process_group()
    Path(out_path).write_text(json.dumps(result))


def predict(
    run: dict[str, Any], workers: int, latency_s: float, bandwidth_Bps: float, buckets: int = 1
) -> float:
    """Predicted step time from the measured machine parameters and the counted bytes.

    Messages are counted per bucket (TernGrad: from the hook's bucket log; fp32: ``buckets``,
    DDP's bucket count for the same model)."""
    sent = network_bytes(run["handed"], workers)
    per_kind = {
        "allreduce": 2 * (workers - 1),
        "all_to_all": workers - 1,
        "all_gather": workers - 1,
    }
    per_bucket = (
        [b["handed"] for b in run["buckets"]] if run["buckets"] else [run["handed"]] * buckets
    )
    messages = sum(per_kind[COLLECTIVE_KIND[k]] for h in per_bucket for k in h)
    codec = run["codec_s"] if run["method"] != "fp32" else 0.0
    return run["compute_s"] + sent / bandwidth_Bps + messages * latency_s + codec


def run_config(
    workers: int,
    rate_mbit: float,
    models: list[str],
    wires: list[str],
    steps: int = 3,
    warmup: int = 1,
    batch: int = 16,
    delay_ms: float = 0.0,
    timeout_s: float = 1200,
) -> dict[str, Any]:
    """Build the network, run one worker per namespace, tear down; returns the rows."""
    from .launch import free_port
    from .netns import SlowNetwork

    config = {
        "workers": workers,
        "models": models,
        "wires": wires,
        "steps": steps,
        "warmup": warmup,
        "batch": batch,
        "port": free_port(),
    }
    with SlowNetwork(workers, rate_mbit, delay_ms) as net, tempfile.TemporaryDirectory() as tmp:
        config["master"] = net.addresses[0]
        cfg_path = Path(tmp) / "config.json"
        cfg_path.write_text(json.dumps(config))
        procs = []
        for i in range(workers):
            env = {**os.environ, "GLOO_SOCKET_IFNAME": net.interfaces[i], "OMP_NUM_THREADS": "1"}
            cmd = [*net.exec_prefix(i), sys.executable, "-m", "dnnrepro.terngrad.netbench",
                   "--worker", str(cfg_path), str(i), str(Path(tmp) / f"rank{i}.json")]  # fmt: skip
            procs.append(
                subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            )
        deadline = time.monotonic() + timeout_s
        try:
            for p in procs:
                p.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        failed = [i for i, p in enumerate(procs) if p.returncode != 0]
        if failed:
            tail = procs[failed[0]].stdout.read().decode(errors="replace")[-600:]
            raise DnnreproError(
                f"netbench worker(s) {failed} failed (N={workers}, {rate_mbit} Mbit/s): {tail}"
            )
        ranks = [json.loads((Path(tmp) / f"rank{i}.json").read_text()) for i in range(workers)]
    r0 = ranks[0]
    lat = statistics.median(r["latency_s"] for r in ranks)
    bw = statistics.median(r["bandwidth_Bps"] for r in ranks)
    rows = []
    n_buckets = {r["model"]: len(r["buckets"]) for r in r0["runs"] if r["buckets"]}
    for run in r0["runs"]:
        if run["method"] == "fp32":
            match = True  # DDP allreduces every fp32 gradient once: 4 bytes a parameter
        else:
            match = all(
                collective_bytes(run["method"], "base3", b["shape"][0], workers, *b["shape"][1:])
                == b["handed"]
                for b in run["buckets"]
            ) and all(
                sum(b["handed"].get(k, 0) for b in run["buckets"]) == v
                for k, v in run["handed"].items()
            )
        rows.append(
            {
                **run,
                "workers": workers,
                "rate_mbit": rate_mbit,
                "comm_s": max(0.0, run["step_s"] - run["compute_s"]),
                "predicted_s": predict(run, workers, lat, bw, n_buckets.get(run["model"], 1)),
                "bytes_match_formula": match,
            }
        )
    fp = {r["model"]: r["step_s"] for r in rows if r["method"] == "fp32"}
    pfp = {r["model"]: r["predicted_s"] for r in rows if r["method"] == "fp32"}
    for r in rows:
        r["speedup"] = fp[r["model"]] / r["step_s"]
        r["predicted_speedup"] = pfp[r["model"]] / r["predicted_s"]
        r["speedup_error"] = abs(r["predicted_speedup"] - r["speedup"]) / r["speedup"]
    return {
        "workers": workers,
        "rate_mbit": rate_mbit,
        "latency_s": lat,
        "bandwidth_Bps": bw,
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dnnrepro.terngrad.netbench")
    parser.add_argument(
        "--worker", nargs=3, metavar=("CONFIG", "RANK", "OUT"), help=argparse.SUPPRESS
    )
    parser.add_argument("--out", default="paper_results/terngrad")
    parser.add_argument("--workers", type=int, nargs="*", default=[2, 4])
    parser.add_argument("--rates", type=float, nargs="*", default=[100.0, 1000.0], help="Mbit/s")
    parser.add_argument("--models", nargs="*", default=list(NET_MODELS))
    parser.add_argument("--wires", nargs="*", default=list(EXACT_WIRES))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    if args.worker:
        cfg, rank, out = args.worker
        worker_main(json.loads(Path(cfg).read_text()), int(rank), out)
        return 0
    return run_and_write(args)


def run_and_write(args) -> int:
    from dnnrepro.core.io import write_json

    for m in args.models:
        build_net_model(m)  # validates the names
    unknown = set(args.wires) - set(EXACT_WIRES)
    if unknown:
        raise ConfigError(f"unknown or inexact wires {sorted(unknown)}; choose from {EXACT_WIRES}")
    settings = {k: v for k, v in vars(args).items() if k in SETTINGS}
    configs = []
    for n in args.workers:
        for rate in args.rates:
            print(f"netbench: N={n}, {rate:g} Mbit/s", file=sys.stderr, flush=True)
            configs.append(
                run_config(
                    n,
                    rate,
                    args.models,
                    args.wires,
                    args.steps,
                    args.warmup,
                    delay_ms=args.delay_ms,
                )
            )
            # written after every configuration: an interrupted sweep keeps what it measured
            write_json(Path(args.out) / "net.json", {"configs": configs, "settings": settings})
    doc = {"configs": configs, "settings": settings}
    _figure(doc, Path(args.out))
    for c in configs:
        for r in c["rows"]:
            print(
                f"N={c['workers']} {c['rate_mbit']:>6g} Mbit/s {r['model']:6s} {r['method']:10s} "
                f"step {r['step_s']:.3f} s (pred {r['predicted_s']:.3f}) speedup {r['speedup']:.2f} "
                f"(pred {r['predicted_speedup']:.2f}) bytes==formula {r['bytes_match_formula']}"
            )
    return 0


def _figure(doc: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dnnrepro.core.results import save_figure

    rows = [r for c in doc["configs"] for r in c["rows"]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for r in rows:
        label = f"N={r['workers']} {r['rate_mbit']:g}M {r['model']} {r['method']}"
        axes[0].scatter(r["predicted_s"], r["step_s"], s=14)
        axes[0].annotate(label, (r["predicted_s"], r["step_s"]), fontsize=5)
        axes[1].scatter(r["predicted_speedup"], r["speedup"], s=14)
        axes[1].annotate(label, (r["predicted_speedup"], r["speedup"]), fontsize=5)
    for ax, what in zip(axes, ("step time (s)", "speedup vs fp32"), strict=True):
        lo = min(min(ax.get_xlim()), min(ax.get_ylim()))
        hi = max(max(ax.get_xlim()), max(ax.get_ylim()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlabel(f"predicted {what}")
        ax.set_ylabel(f"measured {what}")
    axes[0].set_xscale("log")
    axes[0].set_yscale("log")
    save_figure(out, "net", fig, doc)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
