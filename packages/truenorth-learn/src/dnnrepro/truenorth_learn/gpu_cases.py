"""KernelCase list for tools/gpu_check.py: each kernel of kernels/deploy.cu against plain torch.

All three kernels are exact (integers and counter-based random numbers), so the tolerance is 0.
"""

from __future__ import annotations

import torch

from dnnrepro.core.kernels import KernelCase

from . import rng
from .cuda_sim import sample_crossbars_cuda, sample_inputs_cuda, spike_layer_cuda

CU = "deploy.cu"


# ---------------------------------------------------------------- tn_spike_layer


def _layer_inputs(size, device, gen):
    k, b, f, a, m = size["K"], size["B"], size["F"], size["a"], size["m"]
    h = (torch.rand(1 if size["shared"] else k, b, f, generator=gen) < 0.4).to(torch.uint8)
    src = torch.randperm(f, generator=gen)[:a].to(torch.int32)
    w = torch.randint(-2, 3, (k, a, m), generator=gen).to(torch.int8)
    leak = torch.randint(-6, 4, (m,), generator=gen).to(torch.int32)
    return {n: t.to(device) for n, t in dict(h=h, src=src, w=w, leak=leak).items()}


def _layer_alloc(inp):
    k, a, m = inp["w"].shape
    return {"out": torch.empty(k, inp["h"].shape[1], m, dtype=torch.uint8, device=inp["w"].device)}


def _layer_run(inp, out):
    spike_layer_cuda(inp["h"], inp["src"], inp["w"], inp["leak"], out["out"], 0)


def _layer_ref(inp):
    h = inp["h"][..., inp["src"].long()].double()
    v = torch.matmul(h, inp["w"].double()) + inp["leak"].double()
    return {"out": (v >= 1).to(torch.uint8)}


def _layer_alt(inp):
    h = inp["h"][..., inp["src"].long()].float()
    return (torch.matmul(h, inp["w"].float()) + inp["leak"].float()) >= 1


def _layer_bytes(inp):
    k, a, m = inp["w"].shape
    b = inp["h"].shape[1]
    return inp["h"].numel() + k * a * m + k * b * m


def _layer_flops(inp):
    k, a, m = inp["w"].shape
    return 2 * k * inp["h"].shape[1] * a * m


# ---------------------------------------------------------------- tn_sample_synapses


def _syn_inputs(size, device, gen):
    a, m = size["a"], size["m"]
    p = torch.rand(a, m, generator=gen)
    p[: a // 4] = (p[: a // 4] > 0.5).float()  # some deterministic synapses
    s = torch.tensor([-2, -1, 1, 2])[torch.arange(a) % 4][:, None].expand(a, m).to(torch.int8)
    return {"p": p.to(device), "s": s.contiguous().to(device), "K": size["K"], "seed": 7}


def _syn_alloc(inp):
    a, m = inp["p"].shape
    return {"w": torch.empty(inp["K"], a, m, dtype=torch.int8, device=inp["p"].device)}


def _syn_run(inp, out):
    out["w"].copy_(sample_crossbars_cuda(inp["p"], inp["s"], 0, inp["K"], inp["seed"]))


def _syn_ref(inp):
    a, m = inp["p"].shape
    counters = torch.arange(a * m, device=inp["p"].device, dtype=torch.int64)
    outs = []
    for k in range(inp["K"]):
        key = rng.stream_key(inp["seed"], rng.synapse_stream(0, k))
        u = rng.uniform(key, counters).view(a, m)
        outs.append(torch.where(u < inp["p"], inp["s"], torch.zeros_like(inp["s"])))
    return {"w": torch.stack(outs)}


# ---------------------------------------------------------------- tn_sample_inputs


def _in_inputs(size, device, gen):
    return {"x": torch.rand(size["N"], size["P"], generator=gen).to(device), "T": size["T"]}


def _in_alloc(inp):
    n, p = inp["x"].shape
    return {"s": torch.empty(inp["T"], n, p, dtype=torch.uint8, device=inp["x"].device)}


def _in_run(inp, out):
    out["s"].copy_(sample_inputs_cuda(inp["x"], inp["T"], 3, 0))


def _in_ref(inp):
    from .simulate import sample_inputs

    return {
        "s": torch.stack([sample_inputs(inp["x"], t, 3, 0) for t in range(inp["T"])]).to(
            torch.uint8
        )
    }


CASES: list[KernelCase] = [
    KernelCase(
        name="tn_spike_layer",
        cu_file=CU,
        sizes=[
            {"K": 3, "B": 77, "F": 300, "a": 256, "m": 70, "shared": True},
            {"K": 64, "B": 16000, "F": 784, "a": 256, "m": 64, "shared": True},
            {"K": 64, "B": 16000, "F": 256, "a": 256, "m": 250, "shared": False},
        ],
        make_inputs=_layer_inputs,
        alloc_out=_layer_alloc,
        run_kernel=_layer_run,
        reference=_layer_ref,
        alternative=_layer_alt,
        alternative_name="torch float32 batched matmul + threshold",
        bytes_moved=_layer_bytes,
        flops=_layer_flops,
        tolerance=0.0,
        notes="one launch integrates K copies x B (ticks x images) rows of one layer",
    ),
    KernelCase(
        name="tn_sample_synapses",
        cu_file=CU,
        sizes=[{"K": 5, "a": 256, "m": 64}, {"K": 64, "a": 256, "m": 250}],
        make_inputs=_syn_inputs,
        alloc_out=_syn_alloc,
        run_kernel=_syn_run,
        reference=_syn_ref,
        bytes_moved=lambda inp: inp["p"].numel() * 5 + inp["K"] * inp["p"].numel(),
        tolerance=0.0,
    ),
    KernelCase(
        name="tn_sample_inputs",
        cu_file=CU,
        sizes=[{"T": 3, "N": 50, "P": 784}, {"T": 16, "N": 1000, "P": 784}],
        make_inputs=_in_inputs,
        alloc_out=_in_alloc,
        run_kernel=_in_run,
        reference=_in_ref,
        bytes_moved=lambda inp: inp["x"].numel() * 4 + inp["T"] * inp["x"].numel(),
        tolerance=0.0,
    ),
]
