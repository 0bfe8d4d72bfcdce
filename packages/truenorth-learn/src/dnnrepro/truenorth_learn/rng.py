"""Counter-based random numbers shared bit-for-bit by the torch simulator and the CUDA kernel.

Every Bernoulli draw of the deployment simulator is ``u < p`` with ``u`` a function of a 32-bit
stream key and a 32-bit counter only, so the result does not depend on batching, thread layout or
device. The mixer is a 32-bit xorshift-multiply hash (two multiplications, the constants of
Wellons' "lowbias32"); ``u = (hash >> 8) * 2**-24`` is an exact float32 in [0, 1).

Streams: synapses of layer ``l`` of copy ``k`` use ``synapse_stream(l, k)``; input spikes of tick
``t`` use ``input_stream(t)`` (shared by every copy), or, with independent spike sources per copy, the key
``input_copy_key(seed, t, k)``. Counters are the flat index of the element inside its stream.
"""

from __future__ import annotations

import torch

from dnnrepro.core.errors import ConfigError

MASK32 = 0xFFFFFFFF
_M1, _M2 = 0x7FEB352D, 0x846CA68B
_SEED_SALT = 0x9E3779B9
_COPY_SALT = 0x85EBCA6B
INV_2_24 = 1.0 / (1 << 24)
MAX_COUNTER = 1 << 32


def mix32_int(x: int) -> int:
    """The mixer on a Python int (host side: stream keys)."""
    x &= MASK32
    x ^= x >> 16
    x = (x * _M1) & MASK32
    x ^= x >> 15
    x = (x * _M2) & MASK32
    x ^= x >> 16
    return x


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x * c) mod 2**32 for int64 ``x`` in [0, 2**32), without int64 overflow.

    Split ``c`` into 16-bit halves: x*c = x*lo + x*hi*2**16, and only the low 16 bits of x*hi
    survive the shift modulo 2**32. Every intermediate stays below 2**49.
    """
    lo, hi = c & 0xFFFF, c >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & MASK32


def mix32(x: torch.Tensor) -> torch.Tensor:
    """The mixer on an int64 tensor holding values in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = _mul32(x, _M1)
    x = x ^ (x >> 15)
    x = _mul32(x, _M2)
    return x ^ (x >> 16)


def stream_key(seed: int, stream: int) -> int:
    """The 32-bit key of one stream of one seed."""
    if not (isinstance(seed, int) and 0 <= seed <= MASK32):
        raise ConfigError(f"seed must be an integer in [0, 2**32), not {seed!r}")
    return mix32_int(mix32_int(seed ^ _SEED_SALT) ^ (stream & MASK32))


def synapse_stream(layer: int, copy: int) -> int:
    """Stream of the connections of deployed layer ``layer`` in network copy ``copy``."""
    if not (0 <= layer < 255 and 0 <= copy < (1 << 24)):
        raise ConfigError("at most 254 layers and 2**24 copies")
    return ((layer + 1) << 24) | copy


def input_stream(tick: int) -> int:
    """Stream of the input spikes of tick ``tick`` (shared by every copy)."""
    if not 0 <= tick < (1 << 24):
        raise ConfigError("at most 2**24 ticks")
    return tick


def input_copy_key(seed: int, tick: int, copy: int) -> int:
    """Key of the input spikes of tick ``tick`` seen by copy ``copy`` when every copy has its own
    spike source (``inputs="independent"``): the shared tick key re-mixed with the copy number."""
    if not 0 <= copy < (1 << 24):
        raise ConfigError("at most 2**24 copies")
    return mix32_int(stream_key(seed, input_stream(tick)) ^ mix32_int(copy ^ _COPY_SALT))


def uniform(key: int, counters: torch.Tensor) -> torch.Tensor:
    """float32 uniforms in [0, 1) for int64 ``counters`` (values in [0, 2**32)) of stream ``key``."""
    h = mix32(counters ^ key)
    return (h >> 8).to(torch.float32) * INV_2_24
