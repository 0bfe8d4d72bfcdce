"""``SparseConv2d`` (a drop-in inference replacement for a pruned Conv2d) and ``sparsify``."""

from __future__ import annotations

import copy

import torch
from torch import nn

from dnnrepro.core.errors import ConfigError
from dnnrepro.core.models import forward_probe

from . import roofline
from .csr import CSRWeight, to_csr
from .direct_conv import direct_sparse_conv2d


class SparseConv2d(nn.Module):
    """A conv layer that stores its weight as CSR and runs the direct sparse convolution.

    Inference only (no autograd). The CSR offsets are re-derived, and cached, per input size.
    ``relu=True`` fuses a ReLU into the output write (use it only where a ReLU follows).
    """

    def __init__(self, csr: CSRWeight, bias, stride, padding, dilation, relu: bool = False):
        super().__init__()
        self.csr = csr
        self.register_buffer("bias", None if bias is None else bias.detach().clone().float())
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.relu = relu
        self.in_channels, self.out_channels = csr.weight_shape[1], csr.weight_shape[0]
        self.kernel_size = csr.weight_shape[2:]
        self._bound: dict[tuple[int, int], CSRWeight] = {}

    @classmethod
    def from_dense(
        cls, conv: nn.Conv2d, threshold: float = 0.0, relu: bool = False
    ) -> SparseConv2d:
        """Build from an ``nn.Conv2d``; weights with ``|w| <= threshold`` are dropped."""
        if not isinstance(conv, nn.Conv2d):
            raise ConfigError(f"from_dense needs an nn.Conv2d, not {type(conv).__name__}")
        if conv.groups != 1:
            raise ConfigError(f"groups={conv.groups} is not supported (groups must be 1)")
        if conv.padding_mode != "zeros":
            raise ConfigError(f"padding_mode={conv.padding_mode!r} is not supported (use 'zeros')")
        if isinstance(conv.padding, str):
            raise ConfigError("string padding ('same'/'valid') is not supported; give integers")
        if conv.weight.dtype != torch.float32:
            raise ConfigError(f"the conv weight must be float32, not {conv.weight.dtype}")
        # Bound to a 1x1 placeholder size; forward re-binds to the real input size.
        k = conv.kernel_size
        size = (
            conv.dilation[0] * (k[0] - 1) + 1,
            conv.dilation[1] * (k[1] - 1) + 1,
        )
        csr = to_csr(
            conv.weight.detach().cpu(), size, conv.padding, conv.dilation, threshold=threshold
        )
        return cls(csr, conv.bias, conv.stride, conv.padding, conv.dilation, relu)

    @property
    def density(self) -> float:
        return self.csr.density

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = tuple(x.shape[2:])
        csr = self._bound.get(key)
        if csr is None:
            csr = self.csr.rebind(x.shape[1:], self.padding, self.dilation)
            self._bound[key] = csr
        return direct_sparse_conv2d(
            x, csr, self.bias, self.stride, self.padding, self.dilation, relu=self.relu
        )

    def to_dense(self) -> nn.Conv2d:
        """The equivalent ``nn.Conv2d``."""
        n, c, kr, ks = self.csr.weight_shape
        conv = nn.Conv2d(
            c, n, (kr, ks), self.stride, self.padding, self.dilation, bias=self.bias is not None
        )
        with torch.no_grad():
            conv.weight.copy_(self.csr.to_dense())
            if self.bias is not None:
                conv.bias.copy_(self.bias)
        return conv

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={tuple(self.kernel_size)}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
            f"nnz={self.csr.nnz}, density={self.density:.3f}, relu={self.relu}"
        )


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
        if module.groups != 1:
            report.append({"layer": name, "density": x, "swapped": False, "why": "groups > 1"})
            continue
        cost = roofline.LayerCost.of(module, sizes[name], batch)
        gain = roofline.predict_speedup(cost, machine, x)
        swap = gain > min_speedup
        if swap:
            parent_name, _, child = name.rpartition(".")
            parent = out.get_submodule(parent_name) if parent_name else out
            setattr(parent, child, SparseConv2d.from_dense(module))
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
