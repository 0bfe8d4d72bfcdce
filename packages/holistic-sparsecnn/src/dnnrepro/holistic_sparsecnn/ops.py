"""The sparse kernels as torch custom operators (``torch.library``), with fake implementations
so a model that holds them runs under ``torch.compile`` and exports with ``torch.export``.

- ``dnnrepro_hsc::sparse_conv2d(x, values, kidx, rowptr, bias, weight_shape, stride, padding,
  dilation, groups, relu)``: the direct sparse convolution of :mod:`.direct_conv`, per group;
  ``weight_shape`` is the dense (N, C/groups, R, S); ``kidx`` the dense column c*R*S + r*S + s
  of each non-zero within its group (the input offsets are derived per input size).
- ``dnnrepro_hsc::sparse_linear(x, values, col, rowptr, bias, out_features)``: CSR x dense.

Both are inference operators: they do not define a backward.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from .csr import CSRWeight, _input_shape, _offsets
from .direct_conv import direct_sparse_conv2d, output_size


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


@torch.library.custom_op("dnnrepro_hsc::sparse_conv2d", mutates_args=())
def sparse_conv2d(
    x: torch.Tensor,
    values: torch.Tensor,
    kidx: torch.Tensor,
    rowptr: torch.Tensor,
    bias: torch.Tensor | None,
    weight_shape: list[int],
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    groups: int,
    relu: bool,
) -> torch.Tensor:
    n_out, c_group = weight_shape[0], weight_shape[1]
    per_group = n_out // groups
    rp, ki, vals = _np(rowptr), _np(kidx), _np(values)
    pad, dil = (padding[0], padding[1]), (dilation[0], dilation[1])
    outs = []
    for g in range(groups):
        lo, hi = rp[g * per_group], rp[(g + 1) * per_group]
        shape = (per_group, c_group, weight_shape[2], weight_shape[3])
        xg = x[:, g * c_group : (g + 1) * c_group] if groups > 1 else x
        in_shape = _input_shape(xg.shape[1:], shape)
        k = np.ascontiguousarray(ki[lo:hi])
        csr = CSRWeight(
            np.ascontiguousarray(rp[g * per_group : (g + 1) * per_group + 1] - lo),
            _offsets(k, shape, in_shape, pad, dil),
            k,
            np.ascontiguousarray(vals[lo:hi]),
            shape,
            in_shape,
            pad,
            dil,
        )
        b = None if bias is None else bias[g * per_group : (g + 1) * per_group].contiguous()
        outs.append(direct_sparse_conv2d(xg, csr, b, tuple(stride), pad, dil, relu=relu))
    return outs[0] if groups == 1 else torch.cat(outs, 1)


@sparse_conv2d.register_fake
def _(x, values, kidx, rowptr, bias, weight_shape, stride, padding, dilation, groups, relu):
    h = output_size(x.shape[2], weight_shape[2], stride[0], padding[0], dilation[0])
    w = output_size(x.shape[3], weight_shape[3], stride[1], padding[1], dilation[1])
    return x.new_empty((x.shape[0], weight_shape[0], h, w))


@torch.library.custom_op("dnnrepro_hsc::sparse_linear", mutates_args=())
def sparse_linear(
    x: torch.Tensor,
    values: torch.Tensor,
    col: torch.Tensor,
    rowptr: torch.Tensor,
    bias: torch.Tensor | None,
    out_features: int,
) -> torch.Tensor:
    flat = x.reshape(-1, x.shape[-1])
    with warnings.catch_warnings():  # torch's "sparse CSR is in beta" notice, once per process
        warnings.simplefilter("ignore", UserWarning)
        w = torch.sparse_csr_tensor(
            rowptr.to(torch.int64),
            col.to(torch.int64),
            values,
            size=(out_features, x.shape[-1]),
            check_invariants=False,  # built by SparseLinear.from_dense, valid by construction
        )
    out = (w @ flat.t()).t()  # (B, out)
    if bias is not None:
        out = out + bias
    return out.reshape(*x.shape[:-1], out_features).contiguous()


@sparse_linear.register_fake
def _(x, values, col, rowptr, bias, out_features):
    return x.new_empty((*x.shape[:-1], out_features))
