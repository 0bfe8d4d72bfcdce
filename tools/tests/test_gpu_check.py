"""CPU-side tests of tools/gpu_check.py: discovery, references, error metric, reporting."""

import importlib.util
import json
import math
from pathlib import Path

import torch

TOOLS = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("gpu_check", TOOLS / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)


def test_rel_error_rejects_nan_and_shape_mismatch():
    ref = torch.tensor([1.0, -2.0])
    assert gpu_check.rel_error(torch.tensor([1.0, -2.0]), ref) == 0
    assert gpu_check.rel_error(torch.tensor([1.0, -1.0]), ref) == 0.5
    assert gpu_check.rel_error(torch.tensor([float("nan"), -2.0]), ref) == math.inf
    assert gpu_check.rel_error(torch.tensor([1.0]), ref) == math.inf


def test_poison_fills_floats_with_nan_and_ints_with_pattern():
    bufs = {"f": torch.zeros(3), "i": torch.zeros(2, dtype=torch.int32)}
    gpu_check.poison(bufs)
    assert torch.isnan(bufs["f"]).all()
    assert (bufs["i"] == 0x5A5A5A5A).all()


def test_discovery_reports_cu_files_without_cases(tmp_path):
    kdir = tmp_path / "packages" / "demo" / "src" / "dnnrepro" / "demo_pkg" / "kernels"
    kdir.mkdir(parents=True)
    (kdir / "k.cu").write_text('extern "C" __global__ void k() {}\n')
    found = gpu_check.discover(tmp_path)
    assert [f["module"] for f in found] == ["dnnrepro.demo_pkg"]
    assert found[0]["cu_files"] == ["k.cu"] and found[0]["error"]


def test_cpu_only_run_discovers_every_package_and_runs_references(tmp_path):
    code = gpu_check.main(["--cpu-only", "--out", str(tmp_path)])
    doc = json.loads((tmp_path / "_cpu-only" / "cpu-only.json").read_text())
    on_disk = {
        p.parent.parent.name
        for p in (TOOLS.parent / "packages").glob("*/src/dnnrepro/*/kernels/*.cu")
    }
    assert {r["kernel"] for r in doc["rows"]} or not on_disk
    for row in doc["rows"]:
        assert row["verdict"] == "skipped (no GPU)", row
    assert code == (1 if doc["untested"] else 0)


def test_readme_renders_a_gpu_record(tmp_path):
    record = {
        "gpu": "Fake GPU",
        "commit": "abc",
        "dirty": False,
        "time_utc": "t",
        "versions": {"torch": "2", "cupy": "13"},
        "wall_seconds": 1.0,
        "ceilings": {"copy_bytes_per_s": 2e12, "fp32_flops": 5e13, "tf32_flops": 4e14},
        "rows": [
            {
                "kernel": "k",
                "size": {"n": 1},
                "error": 0.0,
                "tolerance": 1e-6,
                "kernel_s": 1e-5,
                "alternative": "torch",
                "alternative_s": 2e-5,
                "speedup_vs_alternative": 2.0,
                "fraction_of_copy_bandwidth": 0.5,
                "verdict": "correct",
            }
        ],
        "untested": ["dnnrepro.x/y.cu"],
    }
    (tmp_path / "fake-gpu.json").write_text(json.dumps(record))
    text = gpu_check.render_readme(tmp_path)
    assert "| k | n=1 | 0 | 1e-06 | 10.0 | torch | 20.0 | 2 | 50.0% of copy BW | correct |" in text
    assert "UNTESTED" in text and "2e+03 GB/s" in text
