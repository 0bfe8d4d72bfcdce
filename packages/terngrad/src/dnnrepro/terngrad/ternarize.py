"""Stochastic ternarization of one gradient tensor (TernGrad, Wen et al. 2017, Sec. 3).

For a layer gradient g and a scaler s >= max|g_k| (or any s > 0, then larger elements saturate):

    trit_k = sign(g_k) * b_k,   b_k ~ Bernoulli(min(|g_k| / s, 1)),   g~ = s * trit

so E[g~] = g when s >= max|g| (unbiased), E[g~_k^2] = s * |g_k| and E||g~||^2 = ||g||_inf ||g||_1
for s = ||g||_inf. The draw is "non-zero when u * s < |g_k|" with u ~ U[0, 1): an element at the
scaler is always sent, a zero element never, and the sign is kept (the comparison a Caffe port had
backwards; wenwei202/terngrad#10).

The random stream (the one definition; the DDP hook, both emulators, the single-process gradient
hook, the reference code in gpu.py and the CUDA kernels in kernels/terngrad.cu all draw it, so they
give the same trits bit for bit, whatever the bucket layout, chunking or launch shape). Element i
(0-based, position in the flattened parameter) of parameter ``name`` on rank r at step t draws

    key  = stream_seed(seed, r, t, name)        (63 bits; see stream_seed: splitmix64-style
                                                 mixing of seed, r, t, crc32(name), purpose = 0)
    z    = splitmix64(key + (i + 1) * 0x9E3779B97F4A7C15 mod 2^64)
    u    = (z >> 40) * 2^-24                    (24 bits: exact in float32, in [0, 1))
    trit = +1 if fl(u * s) < g_i, -1 if -fl(u * s) > g_i, else 0     (float32 compare)

with splitmix64(z) = z ^= z >> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >> 27; z *= 0x94D049BB133111EB;
z ^= z >> 31 (all mod 2^64). :func:`counter_uniform` is the vectorized torch form of u; on CPU a
fused numba loop computes the trits when numba is installed (one read of the gradient, int8 or the
exact sums out), the plain-torch path gives identical trits. The re-ternarization of the
"a2a-reternarize" wire uses purpose = 1 and rank -1. ``generator=`` (a torch.Generator) remains
for callers that want torch's own stream.
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
    """The fused CPU loops (compiled once, cached on disk), or None without numba.

    Each is one pass over the gradient rows: the element's counter hash, the threshold compare and
    the output, branch-free (the compiler vectorizes it). Row r of ``g`` (rows, n) float32 is drawn
    from stream ``seeds[r]`` (uint64) with scaler ``s[r]`` (float32); element i of every row uses
    counter i (the per-parameter element index).
    """
    global _NUMBA
    if _NUMBA is not False:
        return _NUMBA
    try:
        import numba
        import numpy as np
    except ImportError:
        _NUMBA = None
        return None

    gamma, c1, c2 = np.uint64(GAMMA), np.uint64(_C1), np.uint64(_C2)
    scale = np.float32(2.0**-24)

    @numba.njit(inline="always")
    def threshold(seed, i, s):  # pragma: no cover - compiled; fl(fl(k * 2^-24) * s), k 24 bits
        z = seed + np.uint64(i + 1) * gamma
        z = (z ^ (z >> np.uint64(30))) * c1
        z = (z ^ (z >> np.uint64(27))) * c2
        z = z ^ (z >> np.uint64(31))
        return np.float32(np.float32(np.int32(z >> np.uint64(40))) * scale) * s

    @numba.njit(cache=True, nogil=True)
    def kernel(g, s, seed, out):  # pragma: no cover - compiled; one 1-D gradient, int8 trits
        nz = 0
        for i in range(g.shape[0]):
            thr = threshold(seed, i, s)
            t = np.int8(thr < g[i]) - np.int8(-thr > g[i])
            out[i] = t
            nz += t * t
        return nz

    @numba.njit(cache=True, nogil=True)
    def sum_kernel(g, s, seeds, sigma):  # pragma: no cover - compiled; sigma += trits of each row
        nz = 0
        for r in range(g.shape[0]):
            seed, sr, row = seeds[r], s[r], g[r]
            if not sr > 0:  # a zero scaler sends nothing
                continue
            for i in range(g.shape[1]):
                thr = threshold(seed, i, sr)
                t = np.int16(thr < row[i]) - np.int16(-thr > row[i])
                sigma[i] += t
                nz += t * t
        return nz

    @numba.njit(cache=True, nogil=True)
    def scaled_sum_kernel(g, s, seeds, acc):  # pragma: no cover - compiled; acc += trit * s[r]
        nz = 0
        for r in range(g.shape[0]):  # rank order: the float sum of decode_allgather
            seed, sr, row = seeds[r], s[r], g[r]
            if not sr > 0:  # a zero scaler sends nothing
                continue
            for i in range(g.shape[1]):
                thr = threshold(seed, i, sr)
                t = np.int8(thr < row[i]) - np.int8(-thr > row[i])
                acc[i] += np.float32(t) * sr
                nz += t * t
        return nz

    kernel.sum_kernel = sum_kernel
    kernel.scaled_sum_kernel = scaled_sum_kernel
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
    The hash, all mod 2^64: h = 0x9E3779B97F4A7C15; for each part p of (seed, rank, step,
    crc32(layer), purpose), each taken mod 2^64: h = (h ^ p) * 0xBF58476D1CE4E5B9; h ^= h >> 31;
    h *= 0x94D049BB133111EB; h ^= h >> 29. Result: h mod 2^63. :func:`stream_seeds` is the same
    over many ranks at once; the module docstring defines the stream drawn from this seed.
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


def stream_seeds(seed: int, workers: int, step: int, layer: int | str, purpose: int = 0):
    """``stream_seed(seed, r, step, layer, purpose)`` for r = 0..workers-1 as a uint64 numpy array
    (the same hash, vectorized over the rank)."""
    import numpy as np

    lid = zlib.crc32(layer.encode()) if isinstance(layer, str) else int(layer)
    m64 = 0xFFFFFFFFFFFFFFFF
    h = (0x9E3779B97F4A7C15 ^ (int(seed) & m64)) * 0xBF58476D1CE4E5B9 & m64
    h ^= h >> 31
    h = h * 0x94D049BB133111EB & m64
    h ^= h >> 29
    v = np.full(workers, h, dtype=np.uint64)
    c1, c2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
    parts = [np.arange(workers, dtype=np.uint64)]
    parts += [np.uint64(int(p) & m64) for p in (step, lid, purpose)]
    with np.errstate(over="ignore"):
        for part in parts:  # the loop of stream_seed, over every rank at once
            v = (v ^ part) * c1
            v ^= v >> np.uint64(31)
            v = v * c2
            v ^= v >> np.uint64(29)
    return v & np.uint64(_MASK63)


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


def ternary_sum(grads: torch.Tensor, scaler: torch.Tensor, seeds) -> tuple[torch.Tensor, int]:
    """Exact sum over workers of their trits with one shared scaler: (sigma int16, non-zeros).

    ``grads``: (N, n) float, worker r's gradient in row r, drawn from stream ``seeds[r]`` (ints or
    a uint64 array, e.g. :func:`stream_seeds`); equals summing ``ternarize(grads[r],
    scaler=scaler, seed=seeds[r])`` over r (one fused pass on CPU with numba). The caller checks
    that the gradients are finite.
    """
    g = grads.detach().to(torch.float32)
    s = torch.as_tensor(scaler, dtype=torch.float32).reshape(())
    sigma = torch.zeros(g.shape[1], dtype=torch.int16, device=g.device)  # |sigma| <= N <= 64
    if float(s) == 0.0:  # nothing is sent (the rule of ternarize)
        return sigma, 0
    kernel = _numba_kernel() if g.device.type == "cpu" else None
    if kernel is not None:
        import numpy as np

        rows = np.full(g.shape[0], float(s), dtype=np.float32)
        nz = kernel.sum_kernel(g.contiguous().numpy(), rows, _seed_array(seeds), sigma.numpy())
        return sigma, int(nz)
    nonzero = 0
    for row, sd in zip(g, seeds, strict=True):
        t, _ = ternarize(row, scaler=s, seed=int(sd), check_finite=False)
        nonzero += int(torch.count_nonzero(t))
        sigma += t
    return sigma, nonzero


def ternary_scaled_sum(
    grads: torch.Tensor, scalers: torch.Tensor, seeds
) -> tuple[torch.Tensor, int]:
    """Sum over workers of trits_r * scalers[r] in float32, in row order: (sum (n,), non-zeros).

    The "allgather" wire's decode before the division by N (``hook.decode_allgather`` adds in
    rank order, so does this). ``grads``: (N, n) float; ``scalers``: (N,) float32 (per worker,
    or the shared one repeated); a zero scaler contributes nothing. One fused pass with numba.
    """
    g = grads.detach().to(torch.float32)
    s = torch.as_tensor(scalers, dtype=torch.float32).reshape(-1)
    acc = torch.zeros(g.shape[1], dtype=torch.float32, device=g.device)
    kernel = _numba_kernel() if g.device.type == "cpu" else None
    if kernel is not None:
        nz = kernel.scaled_sum_kernel(
            g.contiguous().numpy(), s.contiguous().numpy(), _seed_array(seeds), acc.numpy()
        )
        return acc, int(nz)
    nonzero = 0
    for row, sd, sr in zip(g, seeds, s, strict=True):
        t, _ = ternarize(row, scaler=sr, seed=int(sd), check_finite=False)
        nonzero += int(torch.count_nonzero(t))
        acc += t.to(torch.float32) * sr
    return acc, nonzero


def _seed_array(seeds):
    """Stream seeds as a contiguous uint64 numpy array."""
    import numpy as np

    if isinstance(seeds, np.ndarray) and seeds.dtype == np.uint64:
        return np.ascontiguousarray(seeds)
    return np.array([int(sd) % _U64 for sd in seeds], dtype=np.uint64)


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
