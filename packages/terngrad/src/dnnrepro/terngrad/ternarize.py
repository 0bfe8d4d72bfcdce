"""Stochastic ternarization of one gradient tensor (TernGrad, Wen et al. 2017, Sec. 3).

For a layer gradient g and a scaler s >= max|g_k| (or any s > 0, then larger elements saturate):

    trit_k = sign(g_k) * b_k,   b_k ~ Bernoulli(min(|g_k| / s, 1)),   g~ = s * trit

so E[g~] = g when s >= max|g| (unbiased), E[g~_k^2] = s * |g_k| and E||g~||^2 = ||g||_inf ||g||_1
for s = ||g||_inf. The draw is "non-zero when u * s < |g_k|" with u ~ U[0, 1): an element at the
scaler is always sent, a zero element never, and the sign is kept (the comparison a Caffe port had
backwards; wenwei202/terngrad#10).

Random numbers: ``ternarize(..., seed=stream_seed(seed, rank, step, layer))`` draws element i's
uniform from a counter-based stream, u_i = top 24 bits of splitmix64(seed + (i + 1) * gamma) / 2^24,
so it depends only on (seed, rank, step, parameter, element). The DDP hook, the emulator, the
single-process gradient hook and the CUDA kernels (kernels/terngrad.cu) all use this one stream and
give the same trits bit for bit, whatever the bucket layout, chunking or launch shape. On CPU a
fused numba loop computes it when numba is installed (one read of the gradient, int8 out); the
plain-torch path gives identical trits. ``generator=`` (a torch.Generator) remains for callers that
want torch's own stream.
"""

from __future__ import annotations

import zlib

import torch

from dnnrepro.core.errors import ConfigError, DataError

CHUNK = 1 << 16  # elements per draw: keeps the temporaries in cache (one pass over the gradient)
_MASK63 = (1 << 63) - 1
_U64 = 1 << 64
GAMMA = 0x9E3779B97F4A7C15  # splitmix64 increment (golden ratio), as in kernels/terngrad.cu
_C1, _C2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def _signed(v: int) -> int:
    """A uint64 constant as the int64 with the same bits."""
    v %= _U64
    return v - _U64 if v >= 1 << 63 else v


def _lsr(x: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 bit patterns (torch's >> is arithmetic)."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def counter_uniform(seed: int, n: int, device, start: int = 0) -> torch.Tensor:
    """Uniforms in [0, 1) of elements start..start+n-1 of stream ``seed`` (float32, multiples of
    2^-24): the numbers the CUDA kernels and the numba loop draw."""
    i = torch.arange(start + 1, start + n + 1, dtype=torch.int64, device=device)
    z = i * _signed(GAMMA) + _signed(seed)  # int64 arithmetic wraps like uint64
    z = (z ^ _lsr(z, 30)) * _signed(_C1)
    z = (z ^ _lsr(z, 27)) * _signed(_C2)
    z = z ^ _lsr(z, 31)
    return _lsr(z, 40).to(torch.float32) * 2.0**-24


def _numba_kernel():
    """The fused CPU loop (compiled once), or None without numba."""
    global _NUMBA
    if _NUMBA is not False:
        return _NUMBA
    try:
        import numba
        import numpy as np
    except ImportError:
        _NUMBA = None
        return None

    @numba.njit(cache=True, nogil=True)
    def kernel(g, s, seed, out):  # pragma: no cover - compiled
        gamma = np.uint64(GAMMA)
        c1, c2 = np.uint64(_C1), np.uint64(_C2)
        scale = np.float32(2.0**-24)
        nz = 0
        for i in range(g.shape[0]):
            z = np.uint64(seed) + np.uint64(i + 1) * gamma
            z = (z ^ (z >> np.uint64(30))) * c1
            z = (z ^ (z >> np.uint64(27))) * c2
            z = z ^ (z >> np.uint64(31))
            thr = np.float32(np.float32(z >> np.uint64(40)) * scale) * s
            x = g[i]
            if thr < x:
                out[i] = 1
                nz += 1
            elif -thr > x:
                out[i] = -1
                nz += 1
            else:
                out[i] = 0
        return nz

    @numba.njit(cache=True, nogil=True)
    def sum_kernel(g, s, seeds, sigma):  # pragma: no cover - compiled
        gamma = np.uint64(GAMMA)
        c1, c2 = np.uint64(_C1), np.uint64(_C2)
        scale = np.float32(2.0**-24)
        nz = 0
        for r in range(g.shape[0]):
            seed = seeds[r]
            for i in range(g.shape[1]):
                z = seed + np.uint64(i + 1) * gamma
                z = (z ^ (z >> np.uint64(30))) * c1
                z = (z ^ (z >> np.uint64(27))) * c2
                z = z ^ (z >> np.uint64(31))
                thr = np.float32(np.float32(z >> np.uint64(40)) * scale) * s
                x = g[r, i]
                if thr < x:
                    sigma[i] += 1
                    nz += 1
                elif -thr > x:
                    sigma[i] -= 1
                    nz += 1
        return nz

    kernel.sum_kernel = sum_kernel
    _NUMBA = kernel
    return kernel


_NUMBA = False  # not yet tried


def _ternarize_counter(g: torch.Tensor, s: torch.Tensor, seed: int, out: torch.Tensor) -> None:
    """trits of float32 ``g`` (1-D) with scaler ``s`` from stream ``seed``, written into ``out``."""
    kernel = _numba_kernel() if g.device.type == "cpu" else None
    if kernel is not None:
        import numpy as np

        kernel(g.contiguous().numpy(), np.float32(float(s)), np.uint64(seed % _U64), out.numpy())
        return
    for start in range(0, g.numel(), CHUNK):
        gc = g[start : start + CHUNK]
        thr = counter_uniform(seed, gc.numel(), g.device, start) * s
        o = out[start : start + gc.numel()]
        o.copy_(thr < gc)
        o.sub_((-thr > gc).view(torch.int8))


def stream_seed(seed: int, rank: int, step: int, layer: int | str, purpose: int = 0) -> int:
    """A 63-bit seed for the random stream of one (seed, rank, step, layer, purpose).

    ``layer`` is a parameter name (hashed with crc32, stable across processes) or an integer id.
    ``purpose`` separates independent streams of the same layer (0: ternarize, 1: re-ternarize).
    """
    lid = zlib.crc32(layer.encode()) if isinstance(layer, str) else int(layer)
    h = 0x9E3779B97F4A7C15
    for part in (seed, rank, step, lid, purpose):
        # splitmix64 finalizer over each part: nearby tuples give unrelated seeds
        h = (h ^ (int(part) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
        h = h * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 29
    return h & _MASK63


def layer_scaler(grad: torch.Tensor, clip_c: float | None = None) -> torch.Tensor:
    """The per-layer scaler as a 0-d float32 tensor.

    ``clip_c=None``: max|g| (the max-norm scaler). Otherwise ``clip_c * std(g)`` with the population
    std (mean subtracted, divided by n), the authors' code form; elements beyond it saturate.
    A non-finite gradient gives a non-finite scaler (callers check before anything is sent).
    """
    g = grad.detach()
    if g.numel() == 0:
        return torch.zeros((), dtype=torch.float32, device=g.device)
    if clip_c is None:
        return g.abs().max().to(torch.float32)
    if not (clip_c > 0):
        raise ConfigError(f"clip_c must be > 0 or None (no clipping), not {clip_c!r}")
    # float32 like the authors' TF code; population std (mean subtracted, divided by n)
    std = g.float().std(correction=0) if g.numel() > 1 else g.new_zeros((), dtype=torch.float32)
    return (clip_c * std).to(torch.float32)


def ternary_sum(
    grads: torch.Tensor, scaler: torch.Tensor, seeds: list[int]
) -> tuple[torch.Tensor, int]:
    """Exact sum over workers of their trits with one shared scaler: (sigma int16, non-zeros).

    ``grads``: (N, n) float, worker r's gradient in row r, drawn from stream ``seeds[r]``; equals
    summing ``ternarize(grads[r], scaler=scaler, seed=seeds[r])`` over r (one fused pass on CPU
    with numba). The caller checks that the gradients are finite.
    """
    g = grads.detach().to(torch.float32)
    s = torch.as_tensor(scaler, dtype=torch.float32).reshape(())
    sigma = torch.zeros(g.shape[1], dtype=torch.int16, device=g.device)  # |sigma| <= N <= 64
    if float(s) == 0.0:  # nothing is sent (the rule of ternarize)
        return sigma, 0
    kernel = _numba_kernel() if g.device.type == "cpu" else None
    if kernel is not None:
        import numpy as np

        seeds_np = np.array([sd % _U64 for sd in seeds], dtype=np.uint64)
        nz = kernel.sum_kernel(
            g.contiguous().numpy(), np.float32(float(s)), seeds_np, sigma.numpy()
        )
        return sigma, int(nz)
    nonzero = 0
    for row, sd in zip(g, seeds, strict=True):
        t, _ = ternarize(row, scaler=s, seed=sd, check_finite=False)
        nonzero += int(torch.count_nonzero(t))
        sigma += t
    return sigma, nonzero


def ternarize(
    grad: torch.Tensor,
    *,
    scaler: torch.Tensor | float | None = None,
    clip_c: float | None = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    check_finite: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stochastically ternarize ``grad``; returns (trits int8 in {-1, 0, 1} of grad's shape, scaler).

    ``trits * scaler`` is the ternary gradient. Without ``scaler`` it is computed by
    :func:`layer_scaler` (max|g|, or clip_c * std(g)); a given ``scaler`` (e.g. the max over workers)
    overrides both. ``seed`` (e.g. from :func:`stream_seed`) draws from the counter-based stream
    shared with the hook, the emulator and the kernels; else ``generator`` (on grad's device; None:
    torch's global generator).
    Raises DataError for NaN/Inf in the gradient or a non-finite or negative scaler
    (``check_finite=False`` skips the full scan of a gradient whose caller already checked it).
    """
    if not torch.is_tensor(grad) or not grad.is_floating_point():
        raise ConfigError("ternarize: grad must be a floating-point tensor")
    s = (
        layer_scaler(grad, clip_c)
        if scaler is None
        else torch.as_tensor(scaler, dtype=torch.float32)
    )
    s = s.to(device=grad.device, dtype=torch.float32).reshape(())
    if not torch.isfinite(s) or float(s) < 0:
        raise DataError(
            f"ternarize: scaler is {float(s)}; the gradient holds NaN/Inf or the given scaler is bad"
        )
    g = grad.detach().reshape(-1)
    if g.dtype != torch.float32:
        g = g.float()
    trits = torch.empty(g.numel(), dtype=torch.int8, device=g.device)
    if float(s) == 0.0:  # all-zero gradient: nothing to send
        return trits.zero_().view(grad.shape), s
    if check_finite and scaler is not None and not bool(torch.isfinite(g).all()):
        # a computed scaler (max or std) is already NaN/Inf for such a gradient
        raise DataError("ternarize: the gradient holds NaN or Inf; nothing was encoded")
    if seed is not None:
        if generator is not None:
            raise ConfigError("ternarize: give seed= or generator=, not both")
        _ternarize_counter(g, s, int(seed), trits)
        return trits.view(grad.shape), s
    chunk = min(CHUNK, g.numel())
    u = torch.empty(chunk, dtype=torch.float32, device=g.device)
    pos = torch.empty(chunk, dtype=torch.bool, device=g.device)
    neg = torch.empty(chunk, dtype=torch.bool, device=g.device)
    for start in range(0, g.numel(), chunk):
        gc = g[start : start + chunk]
        k = gc.numel()
        uc, pc, nc = u[:k], pos[:k], neg[:k]
        uc.uniform_(generator=generator).mul_(s)  # threshold u * s, u ~ U[0, 1)
        torch.lt(uc, gc, out=pc)  # g > u*s >= 0: +1 with probability g/s
        torch.gt(uc.neg_(), gc, out=nc)  # g < -u*s <= 0: -1 with probability |g|/s
        out = trits[start : start + k]
        out.copy_(pc)
        out.sub_(nc.view(torch.int8))
    return trits.view(grad.shape), s


def generator_for(device: torch.device | str, seed: int) -> torch.Generator:
    """A torch.Generator on ``device`` seeded with ``seed`` (from :func:`stream_seed`)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen
