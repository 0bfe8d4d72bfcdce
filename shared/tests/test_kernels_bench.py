import json
import shutil

import pytest
import torch

from dnnrepro.core import bench, kernels
from dnnrepro.core.errors import ConfigError, DnnreproError


def test_cuda_available_never_raises_and_load_refuses_cleanly():
    assert kernels.cuda_available() in (True, False)
    if not kernels.cuda_available():
        with pytest.raises(DnnreproError, match="CUDA"):
            kernels.load_module("dnnrepro.core", "none.cu")


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")
def test_compile_ptx_reports_syntax_errors(tmp_path):
    good = tmp_path / "good.cu"
    good.write_text('extern "C" __global__ void k(float* x) { x[threadIdx.x] *= 2.0f; }\n')
    bad = tmp_path / "bad.cu"
    bad.write_text('extern "C" __global__ void k(float* x) { x[threadIdx.x] *= ; }\n')
    assert kernels.compile_ptx(good) == (True, kernels.compile_ptx(good)[1])
    ok, messages = kernels.compile_ptx(bad)
    assert not ok and "error" in messages


@pytest.mark.gpu
def test_dlpack_round_trip_on_gpu():
    import cupy

    t = torch.arange(6, device="cuda", dtype=torch.float32)
    c = kernels.to_cupy(t)
    c *= 2
    assert torch.equal(kernels.to_torch(c), t) and float(t[5]) == 10.0
    assert isinstance(c, cupy.ndarray)


def test_time_callable_and_compare():
    calls = []
    t = bench.time_callable(lambda: calls.append(1), warmup=2, repeats=5)
    assert len(calls) == 7 and t.repeats == 5 and t.min <= t.median <= t.max
    r = bench.compare(lambda: sum(range(10)), lambda: sum(range(10_000)), repeats=5)
    assert r["speedup"] > 1
    with pytest.raises(ConfigError):
        bench.time_callable(lambda: None, repeats=0)


def test_threads_context_pins_and_restores():
    before = torch.get_num_threads()
    with bench.threads(1) as n:
        assert n == 1 == torch.get_num_threads()
    assert torch.get_num_threads() == before


def test_write_bench(tmp_path):
    path = bench.write_bench(tmp_path, "demo", [{"name": "x", "speedup": 1.5}])
    doc = json.loads(path.read_text())
    assert doc["entries"][0]["speedup"] == 1.5 and "threads" in doc["provenance"]
    assert doc["untimed"] == ["x"] and doc["machine_busy"] is False
    assert "cpu" in doc["provenance"] and "cpu_flags" in doc["provenance"]
