"""KernelCase list for tools/gpu_check.py: the CuPy sparse conv against conv2d and cuDNN."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dnnrepro.core.kernels import KernelCase

from . import gpu
from .csr import to_csr
from .roofline import random_sparse_weight

# AlexNet conv3-5 shapes (13x13, pad 1) at batch 32 across densities, plus a strided case.
SIZES = [
    dict(c=256, n=384, k=3, hw=13, pad=1, stride=1, batch=32, x=x) for x in (0.01, 0.05, 0.1, 0.3)
] + [
    dict(c=192, n=128, k=3, hw=13, pad=1, stride=1, batch=32, x=0.1),
    dict(c=48, n=128, k=5, hw=27, pad=2, stride=1, batch=32, x=0.144),
    dict(c=3, n=96, k=11, hw=227, pad=0, stride=4, batch=8, x=0.5),
]


def _make_inputs(size, device, generator):
    shape = (size["n"], size["c"], size["k"], size["k"])
    w = random_sparse_weight(shape, size["x"], generator)
    x = torch.rand(size["batch"], size["c"], size["hw"], size["hw"], generator=generator)
    bias = torch.randn(size["n"], generator=generator)
    csr = to_csr(w, x.shape, size["pad"])
    hout = (size["hw"] + 2 * size["pad"] - size["k"]) // size["stride"] + 1
    xd = x.to(device)
    pad = size["pad"]
    xpad = F.pad(xd, (pad, pad, pad, pad)).contiguous().reshape(size["batch"], -1)
    rowptr, colidx, values = gpu.csr_to_device(csr, device)
    return dict(
        size=size,
        csr=csr,
        w=w.to(device),
        x=xd,
        bias=bias.to(device),
        xpad=xpad,
        rowptr=rowptr,
        colidx=colidx,
        values=values,
        hout=hout,
    )


def _alloc_out(inp):
    s = inp["size"]
    return {
        "out": torch.empty(s["batch"], s["n"], inp["hout"], inp["hout"], device=inp["x"].device)
    }


def _run(inp, out):
    s = inp["size"]
    gpu.launch(
        inp["xpad"],
        inp["rowptr"],
        inp["colidx"],
        inp["values"],
        inp["bias"],
        out["out"],
        inp["hout"],
        inp["hout"],
        s["hw"] + 2 * s["pad"],
        (s["stride"], s["stride"]),
        False,
    )


def _reference(inp):
    s = inp["size"]
    ref = F.conv2d(
        inp["x"].double(), inp["w"].double(), inp["bias"].double(), s["stride"], s["pad"]
    )
    return {"out": ref.float()}


def _alternative(inp):
    s = inp["size"]
    return F.conv2d(inp["x"], inp["w"], inp["bias"], s["stride"], s["pad"])


def _bytes(inp):
    s = inp["size"]
    acts = (inp["x"].numel() + s["batch"] * s["n"] * inp["hout"] ** 2) * 4
    return acts + inp["csr"].nbytes()


def _flops(inp):
    s = inp["size"]
    return 2 * inp["csr"].nnz * inp["hout"] ** 2 * s["batch"]


CASES = [
    KernelCase(
        name="sconv_csr",
        cu_file="sconv.cu",
        sizes=SIZES,
        make_inputs=_make_inputs,
        alloc_out=_alloc_out,
        run_kernel=_run,
        reference=_reference,
        alternative=_alternative,
        alternative_name="torch conv2d (cuDNN, dense weights)",
        bytes_moved=_bytes,
        flops=_flops,
        tolerance=1e-4,
        notes="flops counts only non-zero multiply-adds; the crossover density vs cuDNN is "
        "where the kernel time equals the alternative's",
    )
]
