"""Verify and time every CuPy kernel of every package against its plain-torch reference.

    python tools/gpu_check.py [--out paper_results/gpu] [--quick] [--cpu-only]

Runs with the system python on a machine with torch, CuPy and a CUDA GPU, with nothing installed
from this repository: it puts shared/src and packages/*/src on sys.path itself. Kernels are
discovered, not listed by hand: every ``packages/*/src/dnnrepro/<mod>/kernels/*.cu`` file, and the
``KernelCase`` list in ``dnnrepro.<mod>.gpu_cases.CASES`` (see dnnrepro.core.kernels.KernelCase).
A .cu file that no case exercises is reported as untested and fails the check.

For each case and size: fresh random inputs, output buffers poisoned (NaN, or 0x5A bytes for
integers), the kernel launched, the result compared with the reference computed in float64
(relative error = max|out - ref| / max|ref|; NaN never passes). Then the kernel, the best torch
alternative, and the GPU's ceilings measured in the same run (device-to-device copy bandwidth,
dense fp32/TF32 matmul rate) are timed with CUDA events (warm-up, median of repeats). Writes
``<out>/<gpu-name>.json`` and renders ``<out>/README.md`` from every record there. Exits 1 if any
kernel is wrong or untested. Without a GPU (or with --cpu-only) it still runs discovery and every
torch reference on the CPU and reports the kernels as skipped.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def add_source_paths(root: Path = ROOT) -> list[Path]:
    """Put shared/src and every packages/*/src on sys.path (PEP 420 joins the namespaces)."""
    paths = [root / "shared" / "src", *sorted((root / "packages").glob("*/src"))]
    for p in reversed(paths):
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))
    # a dnnrepro namespace imported before the paths were added would miss the new portions
    ns = sys.modules.get("dnnrepro")
    if ns is not None and hasattr(ns, "__path__"):
        for p in paths:
            portion = str(p / "dnnrepro")
            if Path(portion).is_dir() and portion not in list(ns.__path__):
                ns.__path__.append(portion)
    return paths


def discover(root: Path = ROOT) -> list[dict]:
    """Every package module with .cu files: {module, cu_files, cases, error}."""
    found = []
    for kdir in sorted((root / "packages").glob("*/src/dnnrepro/*/kernels")):
        cu_files = sorted(p.name for p in kdir.glob("*.cu"))
        if not cu_files:
            continue
        module = f"dnnrepro.{kdir.parent.name}"
        entry = {"module": module, "cu_files": cu_files, "cases": [], "error": None}
        try:
            entry["cases"] = list(importlib.import_module(f"{module}.gpu_cases").CASES)
        except Exception as exc:  # report, do not hide the other packages
            entry["error"] = f"{module}.gpu_cases: {type(exc).__name__}: {exc}"
        found.append(entry)
    return found


def rel_error(out, ref) -> float:
    """max|out - ref| / max|ref| in float64 (absolute error when ref is all zeros); NaN -> inf."""
    import torch

    o = out.detach().to("cpu", torch.float64)
    r = ref.detach().to("cpu", torch.float64)
    if o.shape != r.shape:
        return math.inf
    if not torch.isfinite(o).all():
        return math.inf
    scale = float(r.abs().max()) if r.numel() else 0.0
    diff = float((o - r).abs().max()) if r.numel() else 0.0
    return diff / scale if scale > 0 else diff


def poison(buffers: dict) -> None:
    import torch

    for t in buffers.values():
        if t.is_floating_point():
            t.fill_(float("nan"))
        else:
            t.view(torch.uint8).fill_(0x5A)


def cuda_time(fn, warmup: int = 3, repeats: int = 20, budget_s: float = 2.0) -> float:
    """Median seconds per call, timed with CUDA events."""
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    samples, spent = [], 0.0
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / 1e3)
        spent += samples[-1]
        if spent > budget_s and len(samples) >= 3:
            break
    return statistics.median(samples)


def ceilings() -> dict:
    """Copy bandwidth (bytes/s, read + write) and matmul rates (FLOP/s) of this GPU."""
    import torch

    n = 256 * 1024 * 1024 // 4  # 256 MiB of float32
    a, b = torch.empty(n, device="cuda"), torch.empty(n, device="cuda")
    t_copy = cuda_time(lambda: b.copy_(a))
    m = 8192
    x, y = torch.randn(m, m, device="cuda"), torch.randn(m, m, device="cuda")
    prev = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    t_fp32 = cuda_time(lambda: x @ y, repeats=10)
    torch.backends.cuda.matmul.allow_tf32 = True
    t_tf32 = cuda_time(lambda: x @ y, repeats=10)
    torch.backends.cuda.matmul.allow_tf32 = prev
    return {
        "copy_bytes_per_s": 2 * 4 * n / t_copy,
        "fp32_flops": 2 * m**3 / t_fp32,
        "tf32_flops": 2 * m**3 / t_tf32,
    }


def check_case(case, device: str, ceil: dict | None, quick: bool) -> list[dict]:
    """Rows (one per size) for one KernelCase on ``device`` ('cuda', or 'cpu' for references)."""
    import torch

    rows = []
    sizes = case.sizes[:1] if (quick or device == "cpu") else case.sizes
    for i, size in enumerate(sizes):
        row = {
            "kernel": case.name,
            "cu_file": case.cu_file,
            "size": size,
            "tolerance": case.tolerance,
        }
        # inputs are drawn with a CPU generator (same draws on every machine), then moved
        gen = torch.Generator().manual_seed(1000 + i)
        try:
            inputs = case.make_inputs(size, torch.device(device), gen)
            ref = case.reference(inputs)
            if device == "cpu":
                finite = all(torch.isfinite(v.double()).all() for v in ref.values())
                row.update(
                    verdict="skipped (no GPU)" if finite else "reference not finite",
                    error=None,
                    reference_ok=bool(finite),
                )
                rows.append(row)
                continue
            out = case.alloc_out(inputs)
            poison(out)
            case.run_kernel(inputs, out)
            torch.cuda.synchronize()
            missing = set(ref) - set(out)
            errors = {k: rel_error(out[k], ref[k]) for k in ref if k in out}
            err = max(errors.values()) if errors and not missing else math.inf
            row.update(
                error=err, errors=errors, verdict="correct" if err <= case.tolerance else "WRONG"
            )
            t_kernel = cuda_time(lambda i=inputs, o=out: case.run_kernel(i, o))
            row["kernel_s"] = t_kernel
            if case.alternative is not None:
                row["alternative"] = case.alternative_name or "torch"
                row["alternative_s"] = cuda_time(lambda i=inputs: case.alternative(i))
                row["speedup_vs_alternative"] = row["alternative_s"] / t_kernel
            if case.bytes_moved is not None and ceil:
                bw = case.bytes_moved(inputs) / t_kernel
                row["bytes_per_s"] = bw
                row["fraction_of_copy_bandwidth"] = bw / ceil["copy_bytes_per_s"]
            if case.flops is not None and ceil:
                rate = case.flops(inputs) / t_kernel
                row["flops_per_s"] = rate
                row["fraction_of_fp32_matmul"] = rate / ceil["fp32_flops"]
        except Exception as exc:
            row.update(
                verdict="ERROR",
                error=None,
                exception=f"{type(exc).__name__}: {exc}",
                trace=traceback.format_exc(limit=3),
            )
        rows.append(row)
    return rows


def gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu-only"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower() or "gpu"


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _provenance() -> tuple[str, bool | None]:
    """(commit, dirty) of the tree under test. A copy without .git (a lent GPU machine gets the
    working tree only) reads them from DNNREPRO_COMMIT / DNNREPRO_DIRTY, set by the caller."""
    env_commit = os.environ.get("DNNREPRO_COMMIT", "")
    if re.fullmatch(r"[0-9a-f]{40}", env_commit):
        return env_commit, os.environ.get("DNNREPRO_DIRTY", "") not in ("", "0", "false")
    commit = _git("rev-parse", "HEAD")
    if not re.fullmatch(r"[0-9a-f]{40}", commit):
        return "unknown", None
    return commit, bool(_git("status", "--porcelain", "--untracked-files=no"))


def _fmt(x, unit="") -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        if math.isinf(x):
            return "inf"
        if unit == "us":
            return f"{x * 1e6:.1f}"
        return f"{x:.3g}"
    return str(x)


def render_readme(out_dir: Path) -> str:
    lines = [
        "# GPU check",
        "",
        "Every CuPy kernel against its plain-torch reference, timed against the best torch "
        "alternative and this GPU's ceilings, by `python tools/gpu_check.py` (or "
        "`nox -s gpu`). Generated from the JSON records in this folder.",
        "",
    ]
    for path in sorted(out_dir.glob("*.json")):
        doc = json.loads(path.read_text())
        c = doc.get("ceilings") or {}
        lines += [
            f"## {doc['gpu']} ({path.name})",
            "",
            f"Commit `{doc['commit'][:12]}`{' (dirty)' if doc['dirty'] else ''}, "
            f"{doc['time_utc']}, torch {doc['versions'].get('torch')}, cupy "
            f"{doc['versions'].get('cupy')}, {doc['wall_seconds']:.0f} s. Ceilings: copy "
            f"{_fmt(c.get('copy_bytes_per_s', 0) / 1e9)} GB/s, fp32 matmul "
            f"{_fmt(c.get('fp32_flops', 0) / 1e12)} TFLOP/s, tf32 "
            f"{_fmt(c.get('tf32_flops', 0) / 1e12)} TFLOP/s.",
            "",
            "| kernel | size | rel. error | tol. | kernel µs | alternative | alt. µs | "
            "speedup | fraction of ceiling | verdict |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in doc["rows"]:
            frac = r.get("fraction_of_copy_bandwidth")
            frac_txt = f"{frac:.1%} of copy BW" if frac is not None else ""
            if r.get("fraction_of_fp32_matmul") is not None:
                frac_txt += (" / " if frac_txt else "") + (
                    f"{r['fraction_of_fp32_matmul']:.1%} of fp32 matmul"
                )
            size = ", ".join(f"{k}={v}" for k, v in r["size"].items())
            lines.append(
                f"| {r['kernel']} | {size} | {_fmt(r.get('error'))} | {r['tolerance']:g} | "
                f"{_fmt(r.get('kernel_s'), 'us')} | {r.get('alternative', '—')} | "
                f"{_fmt(r.get('alternative_s'), 'us')} | {_fmt(r.get('speedup_vs_alternative'))} | "
                f"{frac_txt or '—'} | {r['verdict']} |"
            )
        for u in doc.get("untested", []):
            lines.append(f"| {u} | — | — | — | — | — | — | — | — | UNTESTED |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "paper_results" / "gpu"))
    parser.add_argument("--quick", action="store_true", help="first size of each case only")
    parser.add_argument("--cpu-only", action="store_true", help="references only, no kernels")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    add_source_paths()
    import torch

    from dnnrepro.core.io import write_json, write_text
    from dnnrepro.core.kernels import cuda_available

    use_gpu = cuda_available() and not args.cpu_only
    device = "cuda" if use_gpu else "cpu"
    entries = discover()
    ceil = ceilings() if use_gpu else None
    rows, untested, failures = [], [], 0
    for entry in entries:
        print(f"{entry['module']}: {', '.join(entry['cu_files'])}", flush=True)
        if entry["error"]:
            print(f"  cannot load cases: {entry['error']}", flush=True)
            untested += [f"{entry['module']}/{f} ({entry['error']})" for f in entry["cu_files"]]
            continue
        covered = {c.cu_file for c in entry["cases"]}
        untested += [f"{entry['module']}/{f}" for f in entry["cu_files"] if f not in covered]
        for case in entry["cases"]:
            for row in check_case(case, device, ceil, args.quick):
                rows.append(row)
                print(
                    f"  {row['kernel']:40s} {json.dumps(row['size']):30s} "
                    f"err={_fmt(row.get('error'))} {row['verdict']}",
                    flush=True,
                )
                if row["verdict"] not in ("correct", "skipped (no GPU)"):
                    failures += 1
    failures += len(untested)
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    try:
        import cupy

        versions["cupy"] = cupy.__version__
    except Exception:
        versions["cupy"] = None
    commit, dirty = _provenance()
    doc = {
        "gpu": gpu_name(),
        "ceilings": ceil,
        "rows": rows,
        "untested": untested,
        "commit": commit,
        "dirty": dirty,
        "time_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "versions": versions,
        "wall_seconds": time.perf_counter() - started,
        "failures": failures,
    }
    out = Path(args.out)
    if use_gpu:
        write_json(out / f"{_slug(doc['gpu'])}.json", _jsonable(doc))
        write_text(out / "README.md", render_readme(out))
    else:
        # a CPU run proves discovery and references; it does not overwrite GPU records
        write_json(out / "_cpu-only" / "cpu-only.json", _jsonable(doc))
    print(
        f"{len(rows)} rows, {len(untested)} untested files, {failures} failures, "
        f"{doc['wall_seconds']:.0f} s on {doc['gpu']}"
    )
    return 1 if failures else 0


def _jsonable(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    return obj


if __name__ == "__main__":
    sys.exit(main())
