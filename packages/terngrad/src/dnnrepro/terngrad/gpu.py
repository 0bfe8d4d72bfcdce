"""Fused CuPy kernels (kernels/terngrad.cu) and their plain-torch references.

- :func:`ternarize_pack_cuda`: ternarize a float32 gradient with a given scaler and pack the trits
  ("2bit" or "base3") in one pass, drawing counter-based random numbers (splitmix64 of
  seed + (i+1) * gamma), so no random tensor is ever stored.
- :func:`unpack_accumulate_cuda`: unpack every rank's packed trits, sum them exactly and decode
  the mean gradient sigma * (s / N) in one pass.
- :func:`ternarize_segments_cuda`: the DDP hook's GPU path: every ternarized layer of a bucket in
  one launch (per-layer offsets, seeds, and the scalers as a device tensor), int8 trits out.

:func:`ternarize_pack_reference` / :func:`unpack_accumulate_reference` compute the same results
with torch integer ops on any device (the CPU test and tools/gpu_check.py compare against them).
The stream is the one defined in :mod:`dnnrepro.terngrad.ternarize` (module docstring;
:func:`~dnnrepro.terngrad.ternarize.counter_uniform` is its torch form), the one the DDP hook, both
emulators and ``ternarize(..., seed=...)`` draw from: the kernels called with
``stream_seed(seed, rank, step, name)`` (the key) and the element's index within the parameter
(the counter) give the hook's trits bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch

from dnnrepro.core.errors import ConfigError

from .packing import TRITS_PER_BYTE, _check_codec, packed_trit_bytes, unpack_trits
from .ternarize import counter_uniform

PACKAGE, CU_FILE = "dnnrepro.terngrad", "terngrad.cu"
_U64 = 1 << 64


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


def ternarize_segments_reference(
    flat: torch.Tensor, segments: list[tuple[int, int]], seeds: list[int], scalers: torch.Tensor
) -> torch.Tensor:
    """Plain torch (any device): the int8 trits :func:`ternarize_segments_cuda` writes."""
    parts = []
    for (off, k), seed, s in zip(segments, seeds, scalers.to(torch.float32), strict=True):
        g = flat[off : off + k].to(torch.float32)
        if float(s) <= 0:
            parts.append(torch.zeros(k, dtype=torch.int8, device=flat.device))
            continue
        thr = counter_uniform(seed, k, flat.device) * s
        parts.append((thr < g).to(torch.int8) - (-thr > g).to(torch.int8))
    if not parts:
        return torch.zeros(0, dtype=torch.int8, device=flat.device)
    return torch.cat(parts)


def ternarize_segments_cuda(
    flat: torch.Tensor,
    segments: list[tuple[int, int]],
    seeds: list[int],
    scalers: torch.Tensor,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Trits of several layers of one CUDA float32 bucket in one launch, on the current stream.

    ``segments``: (offset in ``flat``, numel) per layer; ``seeds``: each layer's stream seed
    (``stream_seed(seed, rank, step, name)``); ``scalers``: (layers,) float32 on the GPU (no host
    sync). Returns the layers' trits concatenated (sum of numel,) int8, bit-identical to the CPU
    path of the hook (``ternarize(..., seed=...)`` per layer).
    """
    import cupy

    from dnnrepro.core.kernels import get_kernel, to_cupy

    if not flat.is_cuda or flat.dtype != torch.float32:
        raise ConfigError("ternarize_segments_cuda needs a CUDA float32 bucket; use ternarize()")
    if not (len(segments) == len(seeds) == scalers.numel()):
        raise ConfigError("ternarize_segments_cuda: one (offset, numel), seed and scaler a layer")
    lengths = [k for _, k in segments]
    starts = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)
    n = int(starts[-1])
    if out is None:
        out = torch.empty(n, dtype=torch.int8, device=flat.device)
    if n == 0:
        return out
    stream = torch.cuda.current_stream(flat.device)
    with cupy.cuda.Device(flat.device.index), cupy.cuda.ExternalStream(stream.cuda_stream):
        tables = (
            cupy.asarray(starts),
            cupy.asarray(np.array([off for off, _ in segments], dtype=np.int64)),
            cupy.asarray(np.array([sd % _U64 for sd in seeds], dtype=np.uint64)),
        )
        kernel = get_kernel(PACKAGE, CU_FILE, "ternarize_segments")
        block = 256
        grid = max(1, min(-(-n // block), 65535 * 8))
        kernel(
            (grid,),
            (block,),
            (
                to_cupy(flat.contiguous()),
                *tables,
                to_cupy(scalers.to(torch.float32).contiguous()),
                np.int32(len(segments)),
                to_cupy(out),
            ),
        )
    return out


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
