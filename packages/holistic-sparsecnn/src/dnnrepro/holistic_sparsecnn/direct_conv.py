"""``direct_sparse_conv2d``: convolution computed directly from CSR weights with input offsets.

Equal to ``torch.nn.functional.conv2d`` on the dense weights (float32 rounding aside) for any
batch, channels, kernel size, stride, padding and dilation with groups=1. The CPU path runs the
numba kernel of :mod:`.cpu_kernel`; CUDA tensors run the CuPy kernel of :mod:`.gpu`.
:func:`reference_sparse_conv2d` is the same algorithm in plain torch (gather + segment sum), used
by the tests and as the GPU kernel's reference.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dnnrepro.core.errors import ConfigError

from . import cpu_kernel
from .csr import CSRWeight, _pair, to_csr


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Output length of a convolution along one axis."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _prepare(input, weight_csr, bias, stride, padding, dilation):
    """Validate the arguments; returns (csr bound to this input, stride, hout, wout, bias)."""
    if not torch.is_tensor(input) or input.dim() != 4:
        raise ConfigError("direct_sparse_conv2d: input must be a 4-D tensor (batch, C, H, W)")
    if input.dtype != torch.float32:
        raise ConfigError(f"direct_sparse_conv2d: input must be float32, not {input.dtype}")
    stride, padding, dilation = (
        _pair(stride, "stride"),
        _pair(padding, "padding"),
        _pair(dilation, "dilation"),
    )
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise ConfigError("stride and dilation must be >= 1 and padding >= 0")
    if torch.is_tensor(weight_csr):
        weight_csr = to_csr(weight_csr, input.shape, padding, dilation)
    if not isinstance(weight_csr, CSRWeight):
        raise ConfigError("weight_csr must be a CSRWeight (see to_csr) or a dense 4-D tensor")
    n_out, c_in, kr, ks = weight_csr.weight_shape
    if input.shape[1] != c_in:
        raise ConfigError(
            f"input has {input.shape[1]} channels, the weight expects {c_in} "
            f"(weight {weight_csr.weight_shape}); groups > 1 is not supported"
        )
    csr = weight_csr.rebind(input.shape[1:], padding, dilation)
    h, w = input.shape[2:]
    hout = output_size(h, kr, stride[0], padding[0], dilation[0])
    wout = output_size(w, ks, stride[1], padding[1], dilation[1])
    if hout < 1 or wout < 1:
        raise ConfigError(
            f"kernel {kr}x{ks} (dilation {dilation}) does not fit the padded input "
            f"{h + 2 * padding[0]}x{w + 2 * padding[1]}"
        )
    if bias is not None:
        if not torch.is_tensor(bias) or bias.shape != (n_out,):
            raise ConfigError(f"bias must be a tensor of shape ({n_out},)")
        if bias.dtype != torch.float32:
            raise ConfigError(f"bias must be float32, not {bias.dtype}")
    return csr, stride, hout, wout, bias


def _pad_flat(input: torch.Tensor, padding) -> torch.Tensor:
    """(B, C, H, W) -> (B, C*Hp*Wp) zero-padded, contiguous."""
    if padding[0] or padding[1]:
        input = F.pad(input, (padding[1], padding[1], padding[0], padding[0]))
    return input.contiguous().reshape(input.shape[0], -1)


def direct_sparse_conv2d(
    input: torch.Tensor,
    weight_csr: CSRWeight | torch.Tensor,
    bias: torch.Tensor | None = None,
    stride=1,
    padding=0,
    dilation=1,
    relu: bool = False,
) -> torch.Tensor:
    """Sparse convolution of ``input`` (B, C, H, W) with a CSR weight; returns (B, N, Hout, Wout).

    ``weight_csr`` may be bound to another input size: its offsets are re-derived from the kernel
    indices. ``relu=True`` fuses max(0, .) into the output write. No autograd: this is an
    inference kernel (the output does not require grad).
    """
    csr, stride, hout, wout, bias = _prepare(input, weight_csr, bias, stride, padding, dilation)
    if input.is_cuda:
        from . import gpu

        return gpu.sparse_conv2d_cuda(input, csr, bias, stride, hout, wout, relu)
    n_out = csr.weight_shape[0]
    batch = input.shape[0]
    with torch.no_grad():
        x = input.detach().contiguous().numpy()
        out = torch.empty((batch, n_out, hout, wout), dtype=torch.float32)
        b = bias.detach().contiguous().numpy() if bias is not None else np.zeros(n_out, np.float32)
        torch_threads = torch.get_num_threads()
        cpu_kernel.set_threads(torch_threads)
        cpu_kernel.run(x, csr, b, out.numpy(), hout, wout, stride, relu)
        # numba's OpenMP pool, when it starts, resets the process's OpenMP thread count to its
        # own pool size, which is also torch's: put torch's back (else a dense baseline timed
        # after the first sparse call silently runs on more threads than asked for)
        if torch.get_num_threads() != torch_threads:
            torch.set_num_threads(torch_threads)
    return out


def reference_sparse_conv2d(
    input: torch.Tensor,
    weight_csr: CSRWeight | torch.Tensor,
    bias: torch.Tensor | None = None,
    stride=1,
    padding=0,
    dilation=1,
    relu: bool = False,
) -> torch.Tensor:
    """The direct sparse algorithm in plain torch, on any device (memory O(B*nnz*Hout*Wout)).

    Gathers ``xpad[colidx[j] + y*sh*Wp + x*sw]`` for every non-zero and output pixel, scales by
    the value and sums each CSR row with ``index_add_``.
    """
    csr, stride, hout, wout, bias = _prepare(input, weight_csr, bias, stride, padding, dilation)
    dev = input.device
    n_out = csr.weight_shape[0]
    wp = csr.padded_hw[1]
    xpad = _pad_flat(input.detach(), csr.padding)
    ys = torch.arange(hout, device=dev) * stride[0] * wp
    xs = torch.arange(wout, device=dev) * stride[1]
    pix = (ys[:, None] + xs[None, :]).reshape(-1)
    col = torch.as_tensor(csr.colidx, dtype=torch.int64, device=dev)
    vals = torch.as_tensor(csr.values, device=dev)
    rows = torch.repeat_interleave(
        torch.arange(n_out, device=dev), torch.as_tensor(np.diff(csr.rowptr), device=dev)
    )
    gathered = xpad[:, col[:, None] + pix[None, :]] * vals[None, :, None]  # (B, nnz, P)
    out = torch.zeros(input.shape[0], n_out, hout * wout, device=dev, dtype=torch.float32)
    out.index_add_(1, rows, gathered)
    if bias is not None:
        out += bias.detach()[None, :, None]
    if relu:
        out.clamp_(min=0)
    return out.reshape(input.shape[0], n_out, hout, wout)
