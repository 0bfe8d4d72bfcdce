"""Stochastic ternarization of one gradient tensor (TernGrad, Wen et al. 2017, Sec. 3).

For a layer gradient g and a scaler s >= max|g_k| (or any s > 0, then larger elements saturate):

    trit_k = sign(g_k) * b_k,   b_k ~ Bernoulli(min(|g_k| / s, 1)),   g~ = s * trit

so E[g~] = g when s >= max|g| (unbiased), E[g~_k^2] = s * |g_k| and E||g~||^2 = ||g||_inf ||g||_1
for s = ||g||_inf. The draw is "non-zero when u * s < |g_k|" with u ~ U[0, 1): an element at the
scaler is always sent, a zero element never, and the sign is kept (the comparison a Caffe port had
backwards; wenwei202/terngrad#10).

Random numbers come from a torch.Generator seeded by :func:`stream_seed` (seed, rank, step, layer),
drawn in fixed chunks of ``CHUNK`` elements, so the same (seed, rank, step, layer) gives the same
trits in a DDP hook, in the single-process emulator and after a restart, whatever the bucket layout.
"""

from __future__ import annotations

import zlib

import torch

from dnnrepro.core.errors import ConfigError, DataError

CHUNK = 1 << 16  # elements per draw: keeps the temporaries in cache (one pass over the gradient)
_MASK63 = (1 << 63) - 1


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


def ternarize(
    grad: torch.Tensor,
    *,
    scaler: torch.Tensor | float | None = None,
    clip_c: float | None = None,
    generator: torch.Generator | None = None,
    check_finite: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stochastically ternarize ``grad``; returns (trits int8 in {-1, 0, 1} of grad's shape, scaler).

    ``trits * scaler`` is the ternary gradient. Without ``scaler`` it is computed by
    :func:`layer_scaler` (max|g|, or clip_c * std(g)); a given ``scaler`` (e.g. the max over workers)
    overrides both. ``generator`` must live on grad's device; None uses torch's global generator.
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
