"""``SparseConv2d`` and ``SparseLinear`` (drop-in inference replacements for pruned
``nn.Conv2d`` / ``nn.Linear`` whose CSR arrays are buffers), ``sparsify`` and ``densify``."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from dnnrepro.core.errors import ConfigError
from dnnrepro.core.models import forward_probe

from . import (
    ops,  # noqa: F401  (registers torch.ops.dnnrepro_hsc)
    roofline,
)
from .csr import CSRWeight, _pair, to_csr


class _CSRBuffers(nn.Module):
    """CSR arrays as buffers (``values`` float32, ``kidx`` int32 column indices, ``rowptr`` int32
    row pointers): they are in ``state_dict``, move with ``.to()``, survive ``copy.deepcopy`` and
    a safetensors save/load. ``load_state_dict`` accepts another number of non-zeros (the buffers
    take the incoming shapes)."""

    def _set_csr(self, values, kidx, rowptr) -> None:
        self.register_buffer("values", torch.as_tensor(values, dtype=torch.float32).clone())
        self.register_buffer("kidx", torch.as_tensor(kidx, dtype=torch.int32).clone())
        self.register_buffer("rowptr", torch.as_tensor(rowptr, dtype=torch.int32).clone())

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("values", "kidx", "rowptr"):
            incoming = state_dict.get(prefix + name)
            if incoming is not None and incoming.shape != getattr(self, name).shape:
                setattr(self, name, torch.empty_like(incoming, device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def nnz(self) -> int:
        return int(self.values.numel())

    def _dense_rows(self, n_rows: int, n_cols: int) -> torch.Tensor:
        dense = torch.zeros(n_rows, n_cols, dtype=torch.float32, device=self.values.device)
        rows = torch.repeat_interleave(
            torch.arange(n_rows, device=self.values.device), torch.diff(self.rowptr.long())
        )
        dense[rows, self.kidx.long()] = self.values
        return dense


def _csr_arrays(weight2d: torch.Tensor, threshold: float):
    """(values, column indices, row pointers) of a 2-D weight, entries with |w| > threshold."""
    w = weight2d.detach().cpu().float()
    keep = w.abs() > threshold
    rows, cols = keep.nonzero(as_tuple=True)  # row-major order
    rowptr = torch.zeros(w.shape[0] + 1, dtype=torch.int64)
    rowptr[1:] = torch.cumsum(keep.sum(1), 0)
    return w[rows, cols], cols.to(torch.int32), rowptr.to(torch.int32)


class SparseConv2d(_CSRBuffers):
    """A conv layer that stores its weight as CSR and runs the direct sparse convolution.

    Same constructor attributes as ``nn.Conv2d`` (in_channels, out_channels, kernel_size,
    stride, padding, dilation, groups, bias); build one from a pruned conv with
    :meth:`from_dense`. The CSR is per output channel over the dense (C/groups, R, S) columns of
    its group; the input offsets are derived per input size inside the operator
    (``torch.ops.dnnrepro_hsc.sparse_conv2d``). Inference only (no autograd). ``relu=True``
    fuses a ReLU into the output write (use it only where a ReLU follows).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        relu: bool = False,
    ):
        super().__init__()
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ConfigError(
                f"groups={groups} must divide in_channels={in_channels} and "
                f"out_channels={out_channels}"
            )
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        self.dilation = _pair(dilation, "dilation")
        self.padding_mode = "zeros"
        self.relu = relu
        empty = torch.zeros(0)
        self._set_csr(empty, empty, torch.zeros(out_channels + 1))
        self.register_buffer("bias", torch.zeros(out_channels) if bias else None)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.out_channels, self.in_channels // self.groups, *self.kernel_size)

    @classmethod
    def from_dense(
        cls, conv: nn.Conv2d, threshold: float = 0.0, relu: bool = False
    ) -> SparseConv2d:
        """Build from an ``nn.Conv2d``; weights with ``|w| <= threshold`` are dropped."""
        if not isinstance(conv, nn.Conv2d):
            raise ConfigError(f"from_dense needs an nn.Conv2d, not {type(conv).__name__}")
        if conv.padding_mode != "zeros":
            raise ConfigError(f"padding_mode={conv.padding_mode!r} is not supported (use 'zeros')")
        if isinstance(conv.padding, str):
            raise ConfigError("string padding ('same'/'valid') is not supported; give integers")
        if conv.weight.dtype != torch.float32:
            raise ConfigError(f"the conv weight must be float32, not {conv.weight.dtype}")
        if threshold < 0:
            raise ConfigError("threshold must be >= 0")
        out = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            conv.padding,
            conv.dilation,
            conv.groups,
            conv.bias is not None,
            relu,
        )
        values, cols, rowptr = _csr_arrays(conv.weight.reshape(conv.out_channels, -1), threshold)
        out._set_csr(values, cols, rowptr)
        if conv.bias is not None:
            out.bias = conv.bias.detach().clone().float()
        return out.to(conv.weight.device)

    @property
    def density(self) -> float:
        return self.nnz / max(1, math.prod(self.weight_shape))

    @property
    def csr(self) -> CSRWeight:
        """The CSR with input offsets for a 1x1-output placeholder input (groups=1 only); use
        ``.rebind(input_shape)`` for a real size."""
        if self.groups != 1:
            raise ConfigError("SparseConv2d.csr is defined for groups=1 only")
        kr, ks = self.kernel_size
        size = (self.dilation[0] * (kr - 1) + 1, self.dilation[1] * (ks - 1) + 1)
        return to_csr(self.to_dense().weight.detach().cpu(), size, self.padding, self.dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.dnnrepro_hsc.sparse_conv2d(
            x,
            self.values,
            self.kidx,
            self.rowptr,
            self.bias,
            list(self.weight_shape),
            list(self.stride),
            list(self.padding),
            list(self.dilation),
            self.groups,
            self.relu,
        )

    def to_dense(self) -> nn.Conv2d:
        """The equivalent ``nn.Conv2d``."""
        n, c, kr, ks = self.weight_shape
        conv = nn.Conv2d(
            self.in_channels,
            self.out_channels,
            (kr, ks),
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            bias=self.bias is not None,
        ).to(self.values.device)
        with torch.no_grad():
            conv.weight.copy_(self._dense_rows(n, c * kr * ks).reshape(n, c, kr, ks))
            if self.bias is not None:
                conv.bias.copy_(self.bias)
        return conv

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
            f"groups={self.groups}, nnz={self.nnz}, density={self.density:.3f}, relu={self.relu}"
        )


class SparseLinear(_CSRBuffers):
    """``nn.Linear`` with a CSR weight (``torch.ops.dnnrepro_hsc.sparse_linear``: CSR x dense).

    Input (..., in_features), output (..., out_features). Inference only.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        empty = torch.zeros(0)
        self._set_csr(empty, empty, torch.zeros(out_features + 1))
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)

    @classmethod
    def from_dense(cls, linear: nn.Linear, threshold: float = 0.0) -> SparseLinear:
        """Build from an ``nn.Linear``; weights with ``|w| <= threshold`` are dropped."""
        if not isinstance(linear, nn.Linear):
            raise ConfigError(f"from_dense needs an nn.Linear, not {type(linear).__name__}")
        if linear.weight.dtype != torch.float32:
            raise ConfigError(f"the weight must be float32, not {linear.weight.dtype}")
        out = cls(linear.in_features, linear.out_features, linear.bias is not None)
        out._set_csr(*_csr_arrays(linear.weight, threshold))
        if linear.bias is not None:
            out.bias = linear.bias.detach().clone().float()
        return out.to(linear.weight.device)

    @property
    def density(self) -> float:
        return self.nnz / max(1, self.in_features * self.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.dnnrepro_hsc.sparse_linear(
            x, self.values, self.kidx, self.rowptr, self.bias, self.out_features
        )

    def to_dense(self) -> nn.Linear:
        """The equivalent ``nn.Linear``."""
        lin = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None)
        lin = lin.to(self.values.device)
        with torch.no_grad():
            lin.weight.copy_(self._dense_rows(self.out_features, self.in_features))
            if self.bias is not None:
                lin.bias.copy_(self.bias)
        return lin

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"nnz={self.nnz}, density={self.density:.3f}"
        )


def densify(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every SparseConv2d / SparseLinear swapped back to nn.Conv2d /
    nn.Linear (the inverse of :func:`sparsify`)."""
    out = copy.deepcopy(model)
    for name, module in list(out.named_modules()):
        if isinstance(module, SparseConv2d | SparseLinear):
            _swap(out, name, module.to_dense())
    if hasattr(out, "sparsified"):
        del out.sparsified
    return out


def _swap(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def conv_input_sizes(model: nn.Module, input_shape) -> dict[str, tuple[int, int]]:
    """Spatial input size (H, W) of every Conv2d, found by one forward pass of zeros."""
    sizes: dict[str, tuple[int, int]] = {}
    convs = {name: m for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    forward_probe(
        model,
        input_shape,
        convs,
        lambda name, _m, inp, _out: sizes.update({name: tuple(inp[0].shape[2:])}),
    )
    return sizes


def density(weight: torch.Tensor) -> float:
    """Non-zero fraction of a tensor."""
    return float((weight != 0).sum()) / max(1, weight.numel())


def sparsify(
    model: nn.Module,
    input_shape=(1, 28, 28),
    machine: roofline.Machine | None = None,
    min_speedup: float = 1.0,
    batch: int = 1,
) -> nn.Module:
    """A copy of ``model`` with each Conv2d whose predicted speedup exceeds ``min_speedup``
    replaced by a :class:`SparseConv2d`.

    The prediction is the roofline model at the layer's current non-zero fraction, with
    ``machine`` (default: measured on this machine once per process). Returns the copy, in eval
    mode, with ``model.sparsified`` listing what was swapped and why.
    """
    if not isinstance(model, nn.Module):
        raise ConfigError("sparsify needs an nn.Module")
    machine = machine or roofline.this_machine(torch.get_num_threads())
    out = copy.deepcopy(model).eval()
    sizes = conv_input_sizes(out, input_shape)
    report = []
    for name, module in list(out.named_modules()):
        if not isinstance(module, nn.Conv2d) or name not in sizes:
            continue
        x = density(module.weight)
        cost = roofline.LayerCost.of(module, sizes[name], batch)
        gain = roofline.predict_speedup(cost, machine, x)
        swap = gain > min_speedup
        if swap:
            _swap(out, name, SparseConv2d.from_dense(module))
        report.append(
            {
                "layer": name,
                "density": x,
                "predicted_speedup": gain,
                "swapped": bool(swap),
                "why": "predicted gain"
                if swap
                else f"predicted speedup {gain:.2f} <= {min_speedup}",
            }
        )
    out.sparsified = report
    return out


def csr_bytes(model: nn.Module) -> dict[str, float]:
    """Weights of every Conv2d/Linear: non-zeros, dense float32 bytes, CSR bytes (4-byte value
    and index per non-zero, plus row pointers); biases counted dense in both."""
    nnz = total = dense_bytes = sparse_bytes = 0
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            w = module.weight.detach()
            k = int((w != 0).sum())
            rows = w.shape[0]
            nnz += k
            total += w.numel()
            dense_bytes += 4 * w.numel()
            sparse_bytes += 8 * k + 4 * (rows + 1)
            if module.bias is not None:
                dense_bytes += 4 * module.bias.numel()
                sparse_bytes += 4 * module.bias.numel()
    return {
        "nnz": float(nnz),
        "weights": float(total),
        "dense_bytes": float(dense_bytes),
        "csr_bytes": float(sparse_bytes),
        "nnz_reduction": total / max(1, nnz),
        "size_reduction": dense_bytes / max(1, sparse_bytes),
    }
