"""The CuPy launch of kernels/sconv.cu (CUDA tensors in, CUDA tensor out)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dnnrepro.core import kernels

PACKAGE = "dnnrepro.holistic_sparsecnn"
THREADS = 128


def csr_to_device(csr, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """rowptr, colidx (int32) and values (float32) of a CSRWeight on ``device``."""
    return (
        torch.as_tensor(csr.rowptr, device=device),
        torch.as_tensor(csr.colidx, device=device),
        torch.as_tensor(csr.values, device=device),
    )


def launch(xpad, rowptr, colidx, values, bias, out, hout, wout, wp, stride, relu) -> None:
    """Run sconv_csr: xpad (B, L) float32, out (B, N, hout, wout) float32, all on one GPU."""
    import cupy

    kernel = kernels.get_kernel(PACKAGE, "sconv.cu", "sconv_csr")
    batch, length = xpad.shape
    n_out = rowptr.shape[0] - 1
    grid = ((hout * wout + THREADS - 1) // THREADS, n_out, batch)
    if bias is None:  # the kernel adds bias[n]; zeros keep one code path (no null pointers)
        bias = torch.zeros(n_out, device=xpad.device)
    bias_arg = kernels.to_cupy(bias)
    with cupy.cuda.ExternalStream(torch.cuda.current_stream(xpad.device).cuda_stream):
        kernel(
            grid,
            (THREADS,),
            (
                kernels.to_cupy(xpad),
                kernels.to_cupy(rowptr),
                kernels.to_cupy(colidx),
                kernels.to_cupy(values),
                bias_arg,
                kernels.to_cupy(out),
                cupy.int32(length),
                cupy.int32(n_out),
                cupy.int32(hout),
                cupy.int32(wout),
                cupy.int32(wp),
                cupy.int32(stride[0]),
                cupy.int32(stride[1]),
                cupy.int32(1 if relu else 0),
            ),
        )


def sparse_conv2d_cuda(input, csr, bias, stride, hout, wout, relu) -> torch.Tensor:
    """direct_sparse_conv2d for a CUDA input (arguments already validated)."""
    dev = input.device
    ph, pw = csr.padding
    xpad = input.detach()
    if ph or pw:
        xpad = F.pad(xpad, (pw, pw, ph, ph))
    xpad = xpad.contiguous().reshape(input.shape[0], -1)
    rowptr, colidx, values = csr_to_device(csr, dev)
    out = torch.empty(input.shape[0], csr.weight_shape[0], hout, wout, device=dev)
    b = None if bias is None else bias.detach().to(dev).contiguous()
    launch(xpad, rowptr, colidx, values, b, out, hout, wout, csr.padded_hw[1], stride, relu)
    return out
