"""Bit-exact encodings of trits and of small non-negative integers (the wire formats' payloads).

- ``pack_trits(t, "2bit")``: t+1 in 2 bits, 4 trits a byte (16x smaller than fp32).
- ``pack_trits(t, "base3")``: 5 trits a byte as sum (t_j + 1) * 3^j <= 242 (1.6 bits a trit, 20x;
  99% of the log2(3) = 1.585-bit entropy bound).
- ``pack_fields(v, bits)``: integers 0 <= v < 2^bits, floor(63 / bits) to an int64 word, the sign
  bit never used. Words of different workers can be SUM-allreduced directly: when every field's
  sum stays below 2^bits no carry crosses a field and no word overflows (see ``field_bits``).

All functions take and return flat tensors on any device; padding is zeros (trit -1 after the
offset, which unpacking cuts off by ``numel``).
"""

from __future__ import annotations

import functools
import math

import torch

from dnnrepro.core.errors import ConfigError

CODECS = ("2bit", "base3")
TRITS_PER_BYTE = {"2bit": 4, "base3": 5}
WORD_BITS = 63  # usable bits of an int64 word for summable fields (sign bit kept clear)


def _check_codec(codec: str) -> None:
    if codec not in CODECS:
        raise ConfigError(f"unknown trit codec {codec!r}; choose one of {', '.join(CODECS)}")


def packed_trit_bytes(numel: int, codec: str) -> int:
    """Bytes that :func:`pack_trits` produces for ``numel`` trits."""
    _check_codec(codec)
    return -(-numel // TRITS_PER_BYTE[codec])


def pack_trits(trits: torch.Tensor, codec: str = "2bit") -> torch.Tensor:
    """Pack int8 trits in {-1, 0, 1} (any shape, read flat) into a uint8 tensor.

    Output length: ceil(numel / 4) for "2bit", ceil(numel / 5) for "base3".
    """
    return pack_trit_rows(trits.reshape(1, -1), codec).reshape(-1)


def pack_trit_rows(rows: torch.Tensor, codec: str = "2bit") -> torch.Tensor:
    """:func:`pack_trits` of every row of ``rows`` (R, m) int8 in one vectorized pass.

    Returns (R, ceil(m / per)) uint8; row r equals ``pack_trits(rows[r], codec)`` (each row padded
    on its own), so the concatenated rows are the per-shard packing of a sharded wire.
    """
    _check_codec(codec)
    per = TRITS_PER_BYTE[codec]
    count, m = rows.shape
    nbytes = -(-m // per)
    v = torch.zeros(count, nbytes * per, dtype=torch.uint8, device=rows.device)
    v[:, :m] = (rows + 1).to(torch.uint8)  # offset to {0, 1, 2}
    v = v.view(count, nbytes, per)
    if codec == "2bit":
        out = v[..., 0] | (v[..., 1] << 2) | (v[..., 2] << 4) | (v[..., 3] << 6)
    else:  # base3, Horner from the highest digit; max 242 fits a byte
        out = v[..., 4]
        for j in (3, 2, 1, 0):
            out = out * 3 + v[..., j]
    return out.contiguous()


@functools.cache
def _base3_table(device: str) -> torch.Tensor:
    """(243, 5) int8: the five trits (already minus 1) of every base-3 byte value."""
    codes = torch.arange(243)
    digits = torch.stack([(codes // 3**j) % 3 for j in range(5)], dim=1)
    return (digits - 1).to(torch.int8).to(device)


def unpack_trits(packed: torch.Tensor, numel: int, codec: str = "2bit") -> torch.Tensor:
    """Inverse of :func:`pack_trits`: the first ``numel`` trits as a flat int8 tensor."""
    _check_codec(codec)
    if packed.dtype != torch.uint8:
        raise ConfigError(f"unpack_trits: packed must be uint8, not {packed.dtype}")
    need = packed_trit_bytes(numel, codec)
    if packed.numel() < need:
        raise ConfigError(
            f"unpack_trits: {numel} trits need {need} bytes of {codec}, got {packed.numel()}"
        )
    return unpack_trit_rows(packed.reshape(1, -1)[:, :need], numel, codec).reshape(-1)


def unpack_trit_rows(packed: torch.Tensor, numel: int, codec: str = "2bit") -> torch.Tensor:
    """Inverse of :func:`pack_trit_rows`: (R, bytes) uint8 -> the first ``numel`` trits of each
    row, (R, numel) int8, in one vectorized pass."""
    _check_codec(codec)
    if packed.dtype != torch.uint8 or packed.dim() != 2:
        raise ConfigError(f"unpack_trit_rows: packed must be 2-D uint8, not {packed.dtype}")
    need = packed_trit_bytes(numel, codec)
    if packed.shape[1] < need:
        raise ConfigError(
            f"unpack_trits: {numel} trits need {need} bytes of {codec}, got {packed.shape[1]}"
        )
    p = packed[:, :need]
    count = p.shape[0]
    if codec == "2bit":
        shifts = torch.tensor([0, 2, 4, 6], dtype=torch.uint8, device=p.device)
        v = (p.unsqueeze(2) >> shifts) & 3
        return (v.reshape(count, -1)[:, :numel].to(torch.int8) - 1).contiguous()
    if bool((p > 242).any()):
        raise ConfigError(
            "unpack_trits: a base3 byte above 242 is not a valid code (corrupted data)"
        )
    return _base3_table(str(p.device))[p.long()].reshape(count, -1)[:, :numel].contiguous()


def unpack_sum_rows(packed: torch.Tensor, numel: int, codec: str = "2bit") -> torch.Tensor:
    """Exact sum over the rows of :func:`unpack_trit_rows` (the N ranks' packed trits of one shard
    or bucket): (numel,) int16, |sum| <= R. On CPU with numba one pass over the packed bytes (a
    byte -> trits table, no unpacked (R, numel) temporary); otherwise the torch rows path."""
    _check_codec(codec)
    if packed.dtype != torch.uint8 or packed.dim() != 2:
        raise ConfigError(f"unpack_sum_rows: packed must be 2-D uint8, not {packed.dtype}")
    need = packed_trit_bytes(numel, codec)
    if packed.shape[1] < need:
        raise ConfigError(
            f"unpack_trits: {numel} trits need {need} bytes of {codec}, got {packed.shape[1]}"
        )
    kernel = _unpack_kernel() if packed.device.type == "cpu" else None
    if kernel is None:
        return unpack_trit_rows(packed, numel, codec).sum(dim=0, dtype=torch.int16)
    p = packed[:, :need].contiguous()
    if codec == "base3" and bool((p > 242).any()):
        raise ConfigError(
            "unpack_trits: a base3 byte above 242 is not a valid code (corrupted data)"
        )
    sigma = torch.empty(numel, dtype=torch.int16)
    kernel(p.numpy(), numel, _byte_table(codec).numpy(), 1, sigma.numpy())
    return sigma


def unpack_mean_rows(
    packed: torch.Tensor, numel: int, scale: float, codec: str = "2bit"
) -> torch.Tensor:
    """float32 ``sum over rows of the trits * scale`` (scale = s / N: the decoded mean) in one
    pass over the packed bytes with numba on CPU (the CPU twin of the CUDA
    ``unpack_accumulate``); otherwise :func:`unpack_sum_rows` then the product. Same values."""
    kernel = _unpack_kernel() if packed.device.type == "cpu" else None
    if kernel is None or packed.dim() != 2 or packed.dtype != torch.uint8:
        return unpack_sum_rows(packed, numel, codec).to(torch.float32) * torch.tensor(
            scale, dtype=torch.float32
        )
    _check_codec(codec)
    need = packed_trit_bytes(numel, codec)
    if packed.shape[1] < need:
        raise ConfigError(
            f"unpack_trits: {numel} trits need {need} bytes of {codec}, got {packed.shape[1]}"
        )
    p = packed[:, :need].contiguous()
    if codec == "base3" and bool((p > 242).any()):
        raise ConfigError(
            "unpack_trits: a base3 byte above 242 is not a valid code (corrupted data)"
        )
    out = torch.empty(numel, dtype=torch.float32)
    kernel(p.numpy(), numel, _byte_table(codec).numpy(), _np_float32(scale), out.numpy())
    return out


def _np_float32(value: float):
    """``value`` as a numpy float32 scalar (the kernel then computes in float32)."""
    import numpy as np

    return np.float32(value)


@functools.cache
def _byte_table(codec: str) -> torch.Tensor:
    """(256, per) int8: the trits of every byte value of ``codec`` (invalid base3 codes: 0)."""
    per = TRITS_PER_BYTE[codec]
    codes = torch.arange(256)
    if codec == "2bit":
        digits = torch.stack([(codes >> (2 * j)) & 3 for j in range(per)], dim=1)
    else:
        digits = torch.stack([(codes // 3**j) % 3 for j in range(per)], dim=1)
        digits[243:] = 1
    return (digits - 1).to(torch.int8).contiguous()


_UNPACK = False  # not yet tried


def _unpack_kernel():
    """The numba loop of :func:`unpack_sum_rows` (compiled once), or None without numba."""
    global _UNPACK
    if _UNPACK is not False:
        return _UNPACK
    try:
        import numba
        import numpy as np
    except ImportError:
        _UNPACK = None
        return None

    @numba.njit(cache=True, nogil=True)
    def kernel(packed, numel, table, scale, out):  # pragma: no cover - compiled
        # byte-major: the R rows' byte b summed in registers, each output element written once;
        # out int16: the sums; out float32: float32(sum) * scale (the decoded mean)
        per = table.shape[1]
        acc = np.zeros(per, dtype=np.int32)
        for b in range(packed.shape[1]):
            acc[:] = 0
            for r in range(packed.shape[0]):
                digits = table[packed[r, b]]
                for j in range(per):
                    acc[j] += digits[j]
            for j in range(min(per, numel - b * per)):
                out[b * per + j] = acc[j] * scale

    _UNPACK = kernel
    return kernel


def field_bits(workers: int) -> int:
    """Bits of one field that holds a sum of ``workers`` offset trits (0..2N): ceil(log2(2N+1))."""
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, not {workers}")
    return max(1, math.ceil(math.log2(2 * workers + 1)))


def fields_per_word(bits: int) -> int:
    """Fields of ``bits`` bits in one int64 word with the sign bit kept clear."""
    if not 1 <= bits <= WORD_BITS:
        raise ConfigError(f"field width must be 1..{WORD_BITS} bits, not {bits}")
    return WORD_BITS // bits


def packed_field_words(numel: int, bits: int) -> int:
    """int64 words that :func:`pack_fields` produces for ``numel`` fields of ``bits`` bits."""
    return -(-numel // fields_per_word(bits))


def pack_fields(values: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack non-negative integers < 2^bits (flat) into int64 words, ``fields_per_word(bits)`` each."""
    per = fields_per_word(bits)
    flat = values.reshape(-1).to(torch.int64)
    n = flat.numel()
    rows = -(-n // per)
    v = torch.zeros(rows * per, dtype=torch.int64, device=flat.device)
    v[:n] = flat
    shifts = torch.arange(per, dtype=torch.int64, device=flat.device) * bits
    return (v.view(rows, per) << shifts).sum(dim=1)  # disjoint bit ranges: sum == bitwise or


def unpack_fields(words: torch.Tensor, numel: int, bits: int) -> torch.Tensor:
    """Inverse of :func:`pack_fields`: the first ``numel`` fields as a flat int64 tensor."""
    need = packed_field_words(numel, bits)
    if words.numel() < need:
        raise ConfigError(f"unpack_fields: {numel} fields need {need} words, got {words.numel()}")
    return unpack_field_rows(words.reshape(1, -1)[:, :need], numel, bits).reshape(-1)


def unpack_field_rows(words: torch.Tensor, numel: int, bits: int) -> torch.Tensor:
    """:func:`unpack_fields` of every row of ``words`` (R, W) int64 at once: (R, numel) int64."""
    per = fields_per_word(bits)
    need = packed_field_words(numel, bits)
    if words.shape[1] < need:
        raise ConfigError(f"unpack_fields: {numel} fields need {need} words, got {words.shape[1]}")
    shifts = torch.arange(per, dtype=torch.int64, device=words.device) * bits
    v = (words[:, :need].unsqueeze(2) >> shifts) & ((1 << bits) - 1)
    return v.reshape(words.shape[0], -1)[:, :numel].contiguous()
