"""Convolution weights as CSR whose column indices are offsets into the padded input.

Layout (the paper's Fig. 2, with explicit zero padding instead of SkimCaffe's shared pad column):

- the dense weight W has shape (N, C, R, S) = (out channels, in channels, kernel rows, kernel cols);
  it is viewed as an N x (C*R*S) matrix, one row per output channel;
- ``rowptr`` (int32, N+1): the non-zeros of output channel n are ``rowptr[n]:rowptr[n+1]``;
- ``values`` (float32, nnz): the non-zero weights, row by row, in (c, r, s) order;
- ``kidx`` (int32, nnz): the flat dense column c*R*S + r*S + s of each non-zero (for converting
  back to dense and re-deriving offsets for another input size);
- ``colidx`` (int32, nnz): the input offset of each non-zero,
  ``(c*Hp + r*dil_h)*Wp + s*dil_w`` with ``Hp = H + 2*pad_h``, ``Wp = W + 2*pad_w``: the position
  of the input element that multiplies W[n, c, r, s] for output pixel (0, 0) in one image of the
  padded input, flattened in CHW order. Output pixel (y, x) adds ``y*stride_h*Wp + x*stride_w``.

So one output channel is ``out[n, y, x] = sum_j values[j] * xpad[colidx[j] + y*sh*Wp + x*sw]``:
the convolution reads the input directly, with no im2col lowering.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dnnrepro.core.errors import ConfigError


def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, int | np.integer):
        pair = (int(value), int(value))
    elif isinstance(value, tuple | list) and len(value) == 2:
        pair = (int(value[0]), int(value[1]))
    else:
        raise ConfigError(f"{name} must be an int or a pair of ints, not {value!r}")
    return pair


@dataclass
class CSRWeight:
    """A sparse conv weight in CSR with input offsets, bound to one padded input geometry.

    Shapes: rowptr (N+1,), colidx/kidx/values (nnz,). ``input_shape`` is (C, H, W) of the
    unpadded input the offsets were computed for; ``padding`` and ``dilation`` are (h, w) pairs.
    """

    rowptr: np.ndarray
    colidx: np.ndarray
    kidx: np.ndarray
    values: np.ndarray
    weight_shape: tuple[int, int, int, int]
    input_shape: tuple[int, int, int]
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)

    @property
    def nnz(self) -> int:
        return int(self.values.shape[0])

    @property
    def density(self) -> float:
        """Non-zero fraction x = nnz / (N*C*R*S)."""
        return self.nnz / max(1, int(np.prod(self.weight_shape)))

    @property
    def padded_hw(self) -> tuple[int, int]:
        _, h, w = self.input_shape
        return h + 2 * self.padding[0], w + 2 * self.padding[1]

    def nbytes(self, index_bytes: int = 4) -> int:
        """Storage of the CSR: 4-byte values and indices (colidx) plus the row pointers."""
        return self.nnz * (4 + index_bytes) + (self.weight_shape[0] + 1) * index_bytes

    def to_dense(self) -> torch.Tensor:
        """The dense (N, C, R, S) float32 weight (exact round trip of :func:`to_csr`)."""
        n_out = self.weight_shape[0]
        dense = np.zeros((n_out, int(np.prod(self.weight_shape[1:]))), np.float32)
        rows = np.repeat(np.arange(n_out), np.diff(self.rowptr))
        dense[rows, self.kidx] = self.values
        return torch.from_numpy(dense.reshape(self.weight_shape))

    def rebind(self, input_shape, padding=None, dilation=None) -> CSRWeight:
        """The same non-zeros with offsets for another input size, padding or dilation."""
        padding = self.padding if padding is None else _pair(padding, "padding")
        dilation = self.dilation if dilation is None else _pair(dilation, "dilation")
        input_shape = _input_shape(input_shape, self.weight_shape)
        if (input_shape, padding, dilation) == (self.input_shape, self.padding, self.dilation):
            return self
        colidx = _offsets(self.kidx, self.weight_shape, input_shape, padding, dilation)
        return CSRWeight(
            self.rowptr,
            colidx,
            self.kidx,
            self.values,
            self.weight_shape,
            input_shape,
            padding,
            dilation,
        )


def _input_shape(input_shape, weight_shape) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 2:
        shape = (weight_shape[1], *shape)
    if len(shape) == 4:  # (B, C, H, W): drop the batch
        shape = shape[1:]
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(f"input_shape must be (C, H, W) or (H, W) of positive sizes, not {shape}")
    if shape[0] != weight_shape[1]:
        raise ConfigError(
            f"input has {shape[0]} channels but the weight expects {weight_shape[1]} "
            f"(weight shape {tuple(weight_shape)}); groups > 1 is not supported"
        )
    return shape


def _offsets(kidx, weight_shape, input_shape, padding, dilation) -> np.ndarray:
    """Input offsets (c*Hp + r*dh)*Wp + s*dw for flat kernel indices kidx = c*R*S + r*S + s."""
    _, _, kr, ks = weight_shape
    _, h, w = input_shape
    hp, wp = h + 2 * padding[0], w + 2 * padding[1]
    kidx = kidx.astype(np.int64)
    c, rem = np.divmod(kidx, kr * ks)
    r, s = np.divmod(rem, ks)
    off = (c * hp + r * dilation[0]) * wp + s * dilation[1]
    if off.size and off.max() >= np.iinfo(np.int32).max:
        raise ConfigError("input too large for 32-bit CSR offsets")
    return off.astype(np.int32)


def to_csr(
    weight: torch.Tensor,
    input_shape,
    padding=0,
    dilation=1,
    threshold: float = 0.0,
) -> CSRWeight:
    """CSR of a dense conv weight (N, C, R, S) for inputs of ``input_shape`` (C, H, W) or (H, W).

    Entries with ``|w| <= threshold`` are dropped (threshold 0 drops exact zeros only).
    """
    if not torch.is_tensor(weight) or weight.dim() != 4:
        raise ConfigError("to_csr: weight must be a 4-D tensor (out, in, kh, kw)")
    if weight.dtype != torch.float32:
        raise ConfigError(f"to_csr: weight must be float32, not {weight.dtype}; call .float()")
    if threshold < 0:
        raise ConfigError("to_csr: threshold must be >= 0")
    padding, dilation = _pair(padding, "padding"), _pair(dilation, "dilation")
    if min(padding) < 0 or min(dilation) < 1:
        raise ConfigError("padding must be >= 0 and dilation >= 1")
    weight_shape = tuple(int(s) for s in weight.shape)
    input_shape = _input_shape(input_shape, weight_shape)
    dense = weight.detach().cpu().reshape(weight_shape[0], -1).numpy()
    keep = np.abs(dense) > threshold
    rows, cols = np.nonzero(keep)  # row-major: sorted by row, then by column (c, r, s)
    rowptr = np.zeros(weight_shape[0] + 1, np.int32)
    np.cumsum(keep.sum(axis=1), out=rowptr[1:])
    kidx = cols.astype(np.int32)
    values = np.ascontiguousarray(dense[rows, cols], dtype=np.float32)
    colidx = _offsets(kidx, weight_shape, input_shape, padding, dilation)
    return CSRWeight(rowptr, colidx, kidx, values, weight_shape, input_shape, padding, dilation)
