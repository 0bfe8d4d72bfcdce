"""GPU check of the TernGrad DDP hook (issue 18 item 5), with a CPU-only mode.

    python -m dnnrepro.terngrad.ddp_check [--out paper_results/gpu] [--quick] [--cpu-only]

1. World size 1 under NCCL (gloo with ``--cpu-only``): a few steps of the tiny check model with the
   hook (``register``) on every exact wire; the gradients must equal the emulator's bit for bit.
2. Two processes under gloo with CUDA tensors on the one GPU (CPU tensors with ``--cpu-only``):
   the same; the ranks must also end with identical parameters. A wire that gloo cannot carry for
   CUDA tensors is recorded as an error and fails the check.
3. The hook's per-bucket overhead at 25M elements (1M with ``--quick``) at world size 1: one
   25M-parameter Linear in one bucket; step = forward + backward (+ the hook) of plain model, DDP
   with the default allreduce hook, DDP with TernGrad, timed interleaved (``interleaved_ratio``);
   overhead = hook step - plain step; target: TernGrad's overhead <= 2x the default hook's.

Writes ``<out>/terngrad-ddp-<device name>.json`` (atomic) and exits 1 when a correctness check
fails. ``--cpu-only`` runs everything on the CPU (the test suite runs it that way).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from dnnrepro.core.io import write_json

from .emulate import emulated_check_run
from .launch import launch
from .workers import check_worker

WIRES = {
    "auto": {},
    "int8": {"wire": "int8"},
    "fields": {"wire": "fields"},
    "a2a": {"wire": "a2a"},
    "allgather": {"wire": "allgather"},
}
STEPS = 3


def emulated_grads(world: int, options: dict, steps: int = STEPS) -> tuple[list[dict], str]:
    """check_worker's run in one process with the (vectorized) emulator: (per step {name: list},
    digest)."""
    grads, digest = emulated_check_run(world, options, steps, vectorized=True)
    return [{n: g.tolist() for n, g in step.items()} for step in grads], digest


def _safe_worker(rank: int, world: int, args: dict) -> dict:
    """check_worker per config, an error recorded instead of raised (one wire failing on CUDA
    tensors under gloo must not hide the others)."""
    import torch.distributed as dist

    out = {}
    for label, options in args["configs"].items():
        try:
            out.update(check_worker(rank, world, {**args, "configs": {label: options}}))
        except Exception as exc:
            out[label] = {"error": f"{type(exc).__name__}: {exc}"[:400]}
            dist.barrier()
    return out


def correctness(world: int, device: str, backend: str) -> list[dict]:
    """Rows {world, device, backend, wire, ok, error}: hook == emulator, ranks identical."""
    configs = {label: {**o, "register": True, "device": device} for label, o in WIRES.items()}
    args = {"configs": configs, "steps": STEPS}
    results = launch(_safe_worker, world, args, timeout_s=600, backend=backend)
    rows = []
    for label, options in WIRES.items():
        runs = [r[label] for r in results]
        error = next((r["error"] for r in runs if r.get("error")), None)
        ok = False
        if error is None:
            want, digest = emulated_grads(world, options)
            same = all(r["digest"] == runs[0]["digest"] for r in runs)
            ok = same and runs[0]["grads"] == want and (world > 2 or runs[0]["digest"] == digest)
        rows.append(
            {
                "world": world,
                "device": device,
                "backend": backend,
                "wire": label,
                "ok": ok,
                "error": error,
            }
        )
    return rows


def overhead_worker(rank: int, world: int, args: dict) -> list[dict]:
    """Step times at world size 1 (see the module doc); returns two bench entries."""
    from torch import nn

    from dnnrepro.core.bench import bench_entry, interleaved_ratio

    from .hook import register

    device = torch.device(args["device"])
    side = args["side"]
    torch.manual_seed(0)
    x = torch.randn(8, side, device=device)

    def make(kind: str):
        torch.manual_seed(0)
        model = nn.Linear(side, side).to(device)
        if kind == "plain":
            net = model
        else:
            net = nn.parallel.DistributedDataParallel(model, bucket_cap_mb=4 * side * side / 2**20)
            if kind == "terngrad":
                register(net)

        def step() -> None:
            model.zero_grad(set_to_none=True)
            net(x).square().mean().backward()

        return step

    steps = {k: make(k) for k in ("plain", "default", "terngrad")}
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    out = []
    for kind in ("default", "terngrad"):
        m = interleaved_ratio(steps[kind], steps["plain"], repeats=args["repeats"], sync=sync)
        out.append(
            bench_entry(
                f"hook overhead per bucket of {side * side + side} elements: {kind}",
                m,
                baseline="forward + backward of the plain Linear (no DDP)",
                candidate=f"the same under DDP with the {kind} hook, world size 1",
                overhead_ms=1000 * (m.candidate_s - m.baseline_s),
                device=str(device),
            )
        )
    return out


def run(out_dir: Path, *, quick: bool, cpu_only: bool) -> dict[str, Any]:
    """All three parts; returns the record (also written to ``out_dir``)."""
    gpu = torch.cuda.is_available() and not cpu_only
    device = "cuda" if gpu else "cpu"
    rows = correctness(1, device, "nccl" if gpu else "gloo")
    rows += correctness(2, device, "gloo")
    side = 1000 if quick else 5000  # 1M or 25M elements in the one bucket
    args = {"device": device, "side": side, "repeats": 7 if quick else 9}
    timing = launch(overhead_worker, 1, args, timeout_s=1200, backend="nccl" if gpu else "gloo")[0]
    default, tern = (e["overhead_ms"] for e in timing)
    record = {
        "device": torch.cuda.get_device_name() if gpu else "cpu",
        "cpu_only": not gpu,
        "quick": quick,
        "correctness": rows,
        "passed": all(r["ok"] for r in rows),
        "overhead": timing,
        "overhead_ratio": tern / default if default > 0 else None,
        "overhead_target": "TernGrad overhead <= 2x the default hook's (world size 1)",
        "overhead_passed": None
        if any(e["busy"] for e in timing) or default <= 0
        else tern <= 2 * default,
    }
    name = record["device"].replace(" ", "-").lower()
    write_json(out_dir / f"terngrad-ddp-{name}.json", record)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dnnrepro.terngrad.ddp_check")
    parser.add_argument("--out", default="paper_results/gpu")
    parser.add_argument("--quick", action="store_true", help="1M-element bucket, fewer repeats")
    parser.add_argument("--cpu-only", action="store_true", help="CPU tensors, gloo everywhere")
    args = parser.parse_args(argv)
    record = run(Path(args.out), quick=args.quick, cpu_only=args.cpu_only)
    for r in record["correctness"]:
        status = "ok" if r["ok"] else f"FAILED {r['error'] or 'values differ'}"
        print(f"N={r['world']} {r['backend']} {r['device']} {r['wire']}: {status}")
    for e in record["overhead"]:
        print(f"{e['name']}: {e['overhead_ms']:.2f} ms")
    return 0 if record["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
