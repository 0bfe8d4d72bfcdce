"""KernelCase list for tools/gpu_check.py: the fused TernGrad kernels against their torch references."""

from __future__ import annotations

import torch

from dnnrepro.core.kernels import KernelCase

from . import gpu
from .packing import pack_trits, packed_trit_bytes, unpack_trits
from .ternarize import ternarize

SIZES_TP = [
    {"n": 1_000_003, "codec": "2bit"},
    {"n": 1_000_003, "codec": "base3"},
    {"n": 100_000_000, "codec": "2bit"},
    {"n": 100_000_000, "codec": "base3"},
]
SIZES_UA = [
    {"n": 1_000_003, "workers": 4, "codec": "2bit"},
    {"n": 1_000_003, "workers": 3, "codec": "base3"},
    {"n": 100_000_000, "workers": 4, "codec": "2bit"},
    {"n": 100_000_000, "workers": 4, "codec": "base3"},
]


def _tp_inputs(size, device, generator):
    g = torch.randn(size["n"], generator=generator).to(device)
    scaler = float(2.5 * g.double().std(correction=0))  # clip form: some elements saturate
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return {"grad": g, "scaler": scaler, "seed": seed, "codec": size["codec"]}


def _tp_torch_alternative(inp):
    gen = torch.Generator(device=inp["grad"].device).manual_seed(inp["seed"])
    trits, _ = ternarize(inp["grad"], scaler=inp["scaler"], generator=gen, check_finite=False)
    return pack_trits(trits, inp["codec"])


TERNARIZE_PACK = KernelCase(
    name="ternarize_pack",
    cu_file="terngrad.cu",
    sizes=SIZES_TP,
    make_inputs=_tp_inputs,
    alloc_out=lambda inp: {
        "packed": torch.empty(
            packed_trit_bytes(inp["grad"].numel(), inp["codec"]),
            dtype=torch.uint8,
            device=inp["grad"].device,
        )
    },
    run_kernel=lambda inp, out: gpu.ternarize_pack_cuda(
        inp["grad"], inp["scaler"], inp["seed"], inp["codec"], out=out["packed"]
    ),
    reference=lambda inp: {
        "packed": gpu.ternarize_pack_reference(
            inp["grad"], inp["scaler"], inp["seed"], inp["codec"]
        )
    },
    alternative=_tp_torch_alternative,
    alternative_name="torch ternarize (Philox) + pack_trits",
    bytes_moved=lambda inp: (
        4 * inp["grad"].numel() + packed_trit_bytes(inp["grad"].numel(), inp["codec"])
    ),
    tolerance=1e-6,  # bit-exact: one differing byte gives >= 1/242
    notes="target: >= 60% of the device-to-device copy bandwidth at 100M elements",
)


def _ua_inputs(size, device, generator):
    n, w, codec = size["n"], size["workers"], size["codec"]
    rows = [
        pack_trits(torch.randint(-1, 2, (n,), generator=generator).to(torch.int8), codec)
        for _ in range(w)
    ]
    return {
        "packed": torch.stack(rows).to(device),
        "n": n,
        "workers": w,
        "scale": 0.37 / w,
        "codec": codec,
    }


def _ua_torch_alternative(inp):
    rows = inp["packed"]
    sigma = sum(unpack_trits(r, inp["n"], inp["codec"]).to(torch.int32) for r in rows)
    return sigma.to(torch.float32) * inp["scale"]


UNPACK_ACCUMULATE = KernelCase(
    name="unpack_accumulate",
    cu_file="terngrad.cu",
    sizes=SIZES_UA,
    make_inputs=_ua_inputs,
    alloc_out=lambda inp: {
        "mean": torch.empty(inp["n"], dtype=torch.float32, device=inp["packed"].device)
    },
    run_kernel=lambda inp, out: gpu.unpack_accumulate_cuda(
        inp["packed"], inp["n"], inp["workers"], inp["scale"], inp["codec"], out=out["mean"]
    ),
    reference=lambda inp: {
        "mean": gpu.unpack_accumulate_reference(
            inp["packed"], inp["n"], inp["workers"], inp["scale"], inp["codec"]
        )
    },
    alternative=_ua_torch_alternative,
    alternative_name="torch unpack_trits + sum",
    bytes_moved=lambda inp: inp["packed"].numel() + 4 * inp["n"],
    tolerance=1e-6,
    notes="target: >= 60% of the device-to-device copy bandwidth at 100M elements",
)

SIZES_SEG = [{"n": 1_000_003, "layers": 7}, {"n": 100_000_000, "layers": 16}]


def _seg_inputs(size, device, generator):
    """A bucket of ``layers`` layers of uneven sizes, every second gap one float layer."""
    n, layers = size["n"], size["layers"]
    cuts = torch.randint(1, n, (2 * layers - 1,), generator=generator).sort().values.tolist()
    bounds = [0, *cuts, n]
    segments = [(bounds[2 * j], bounds[2 * j + 1] - bounds[2 * j]) for j in range(layers)]
    flat = torch.randn(n, generator=generator)
    scalers = torch.stack([2.5 * flat[o : o + k].std(correction=0) for o, k in segments])
    seeds = torch.randint(0, 2**62, (layers,), generator=generator).tolist()
    return {
        "flat": flat.to(device),
        "segments": segments,
        "seeds": seeds,
        "scalers": scalers.to(device),
    }


def _seg_loop(inp):
    return torch.cat(
        [
            ternarize(inp["flat"][o : o + k], scaler=s, seed=sd, check_finite=False)[0]
            for (o, k), sd, s in zip(inp["segments"], inp["seeds"], inp["scalers"], strict=True)
        ]
    )


TERNARIZE_SEGMENTS = KernelCase(
    name="ternarize_segments",
    cu_file="terngrad.cu",
    sizes=SIZES_SEG,
    make_inputs=_seg_inputs,
    alloc_out=lambda inp: {
        "trits": torch.empty(
            sum(k for _, k in inp["segments"]), dtype=torch.int8, device=inp["flat"].device
        )
    },
    run_kernel=lambda inp, out: gpu.ternarize_segments_cuda(
        inp["flat"], inp["segments"], inp["seeds"], inp["scalers"], out=out["trits"]
    ),
    reference=lambda inp: {
        "trits": gpu.ternarize_segments_reference(
            inp["flat"], inp["segments"], inp["seeds"], inp["scalers"]
        )
    },
    alternative=_seg_loop,
    alternative_name="the hook's torch path: ternarize(seed=...) per layer",
    bytes_moved=lambda inp: 5 * sum(k for _, k in inp["segments"]),
    tolerance=1e-6,  # bit-exact: trits are integers
    notes="the DDP hook's GPU path: one launch per bucket",
)

CASES = [TERNARIZE_PACK, UNPACK_ACCUMULATE, TERNARIZE_SEGMENTS]
