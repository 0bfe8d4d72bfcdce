"""Fused CuPy kernels (kernels/terngrad.cu) and their plain-torch references.

- :func:`ternarize_pack_cuda`: ternarize a float32 gradient with a given scaler and pack the trits
  ("2bit" or "base3") in one pass, drawing counter-based random numbers (splitmix64 of
  seed + (i+1) * gamma), so no random tensor is ever stored.
- :func:`unpack_accumulate_cuda`: unpack every rank's packed trits, sum them exactly and decode
  the mean gradient sigma * (s / N) in one pass.

:func:`ternarize_pack_reference` / :func:`unpack_accumulate_reference` compute the same results
with torch integer ops on any device (the CPU test and tools/gpu_check.py compare against them).
The kernels are standalone fused operators; the DDP hook uses the torch path (torch.Generator,
Philox on CUDA), which draws different (equally distributed) random numbers.
"""

from __future__ import annotations

import numpy as np
import torch

from dnnrepro.core.errors import ConfigError

from .packing import TRITS_PER_BYTE, _check_codec, packed_trit_bytes, unpack_trits

PACKAGE, CU_FILE = "dnnrepro.terngrad", "terngrad.cu"
_GAMMA = 0x9E3779B97F4A7C15
_C1, _C2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_U64 = 1 << 64


def _signed(v: int) -> int:
    """A uint64 constant as the int64 with the same bits."""
    v %= _U64
    return v - _U64 if v >= 1 << 63 else v


def _lsr(x: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 bit patterns (torch's >> is arithmetic)."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def counter_uniform(seed: int, n: int, device) -> torch.Tensor:
    """The kernel's uniforms in [0, 1) for elements 0..n-1 (float32, multiples of 2^-24)."""
    i = torch.arange(1, n + 1, dtype=torch.int64, device=device)
    z = i * _signed(_GAMMA) + _signed(seed)  # int64 arithmetic wraps like uint64
    z = (z ^ _lsr(z, 30)) * _signed(_C1)
    z = (z ^ _lsr(z, 27)) * _signed(_C2)
    z = z ^ _lsr(z, 31)
    return _lsr(z, 40).to(torch.float32) * 2.0**-24


def ternarize_pack_reference(
    grad: torch.Tensor, scaler: float, seed: int, codec: str = "2bit"
) -> torch.Tensor:
    """Plain torch: the bytes :func:`ternarize_pack_cuda` writes."""
    from .packing import pack_trits

    _check_codec(codec)
    g = grad.reshape(-1).to(torch.float32)
    if scaler <= 0:
        return pack_trits(torch.zeros(g.numel(), dtype=torch.int8, device=g.device), codec)
    thr = counter_uniform(seed, g.numel(), g.device) * torch.tensor(scaler, dtype=torch.float32)
    trits = (thr < g).to(torch.int8) - (-thr > g).to(torch.int8)
    return pack_trits(trits, codec)


def unpack_accumulate_reference(
    packed: torch.Tensor, numel: int, workers: int, scale: float, codec: str = "2bit"
) -> torch.Tensor:
    """Plain torch: the float32 mean :func:`unpack_accumulate_cuda` writes."""
    rows = packed.reshape(workers, -1)
    sigma = sum(unpack_trits(r, numel, codec).to(torch.int32) for r in rows)
    return sigma.to(torch.float32) * torch.tensor(scale, dtype=torch.float32, device=packed.device)


def _launch(name: str, n_threads: int, args) -> None:
    from dnnrepro.core.kernels import get_kernel

    kernel = get_kernel(PACKAGE, CU_FILE, name)
    block = 256
    grid = max(1, min(-(-n_threads // block), 65535 * 8))
    kernel((grid,), (block,), args)


def ternarize_pack_cuda(
    grad: torch.Tensor,
    scaler: float,
    seed: int,
    codec: str = "2bit",
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fused ternarize + pack of a CUDA float32 gradient; returns ceil(n / per) uint8 on its device."""
    from dnnrepro.core.kernels import to_cupy

    _check_codec(codec)
    if not grad.is_cuda or grad.dtype != torch.float32:
        raise ConfigError("ternarize_pack_cuda needs a CUDA float32 tensor; use ternarize() on CPU")
    g = grad.reshape(-1).contiguous()
    n = g.numel()
    nbytes = packed_trit_bytes(n, codec)
    if out is None:
        out = torch.empty(nbytes, dtype=torch.uint8, device=g.device)
    args = (
        to_cupy(g),
        np.int64(n),
        np.float32(scaler),
        np.uint64(seed % _U64),
        np.int32(TRITS_PER_BYTE[codec]),
        to_cupy(out),
    )
    _launch("ternarize_pack", nbytes, args)
    return out


def unpack_accumulate_cuda(
    packed: torch.Tensor,
    numel: int,
    workers: int,
    scale: float,
    codec: str = "2bit",
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fused unpack + exact sum over ``workers`` packed rows + decode (x scale) on CUDA."""
    from dnnrepro.core.kernels import to_cupy

    _check_codec(codec)
    rows = packed.reshape(workers, -1).contiguous()
    if rows.shape[1] < packed_trit_bytes(numel, codec):
        raise ConfigError("unpack_accumulate_cuda: rows are shorter than numel trits need")
    if out is None:
        out = torch.empty(numel, dtype=torch.float32, device=packed.device)
    args = (
        to_cupy(rows),
        np.int64(rows.shape[1]),
        np.int32(workers),
        np.int64(numel),
        np.int32(TRITS_PER_BYTE[codec]),
        np.float32(scale),
        to_cupy(out),
    )
    _launch("unpack_accumulate", numel, args)
    return out
