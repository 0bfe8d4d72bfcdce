"""The paper's performance model: when does a sparse convolution beat the dense one?

For one conv layer (ICLR 2017, sections 2.2 and 3.2):

- ``C``: dense FLOPs (2 per multiply-add), ``S_A``: bytes of input plus output activations,
  ``S_W``: bytes of the dense weights, ``x``: non-zero fraction of the weights;
- the machine: ``F`` dense FLOP/s, ``B`` streaming bytes/s, ``alpha`` the sparse kernel's compute
  overhead (sparse FLOPs run ``alpha`` times slower than dense ones), ``beta`` bytes of CSR per
  dense weight byte (2: a 4-byte value plus a 4-byte index);
- ``t_dense = C/F``; ``t_sparse = max(alpha*x*C/F, (S_A + beta*x*S_W)/B)``;
  ``speedup(x) = t_dense / t_sparse``.

Bounds: sparse is slower than dense when ``x > 1/alpha`` (the *lower bound* on sparsity,
``1 - 1/alpha``); below ``x_upper``, where the two terms of the max meet, the layer is bandwidth
bound and more sparsity gains nothing (the *upper bound*).

:func:`measure_machine` measures F (float32 GEMM through torch), B (a streaming copy) and alpha
(this package's kernel on a calibration layer) on the machine it runs on.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dnnrepro.core.bench import threads as _threads
from dnnrepro.core.bench import time_callable
from dnnrepro.core.errors import ConfigError


@dataclass(frozen=True)
class Machine:
    """Roofline parameters: flops (F, FLOP/s), bandwidth (B, bytes/s), alpha, beta."""

    flops: float
    bandwidth: float
    alpha: float
    beta: float = 2.0
    name: str = ""

    def __post_init__(self):
        for field, value in (("flops", self.flops), ("bandwidth", self.bandwidth)):
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"Machine.{field} must be a positive number, not {value!r}")
        if not (math.isfinite(self.alpha) and self.alpha > 0):
            raise ConfigError(f"Machine.alpha must be > 0, not {self.alpha!r}")
        if self.beta < 0:
            raise ConfigError("Machine.beta must be >= 0")

    def as_dict(self) -> dict:
        return asdict(self)


# Table 1 of the paper (SGEMM GF/s, STREAM GB/s) and the alphas of section 3.
XEON_E5_2697_V4 = Machine(2150e9, 122e9, 3.0, name="Xeon E5-2697 v4 (paper Table 1)")
ATOM_C2750 = Machine(62e9, 15e9, 1.2, name="Atom C2750 (paper Table 1)")


@dataclass(frozen=True)
class LayerCost:
    """Sizes of one conv layer for a batch: flops C, act_bytes S_A, weight_bytes S_W (float32)."""

    flops: float
    act_bytes: float
    weight_bytes: float

    @classmethod
    def conv(
        cls,
        in_channels: int,
        out_channels: int,
        kernel,
        input_hw,
        stride=1,
        padding=0,
        dilation=1,
        batch: int = 1,
    ) -> LayerCost:
        """Costs of a groups=1 convolution on ``batch`` inputs of size ``input_hw``."""
        from .csr import _pair
        from .direct_conv import output_size

        kr, ks = _pair(kernel, "kernel")
        (h, w), (sh, sw) = _pair(input_hw, "input_hw"), _pair(stride, "stride")
        (ph, pw), (dh, dw) = _pair(padding, "padding"), _pair(dilation, "dilation")
        ho, wo = output_size(h, kr, sh, ph, dh), output_size(w, ks, sw, pw, dw)
        if ho < 1 or wo < 1:
            raise ConfigError("LayerCost.conv: the kernel does not fit the input")
        macs = out_channels * in_channels * kr * ks * ho * wo * batch
        acts = (in_channels * h * w + out_channels * ho * wo) * batch * 4
        return cls(2.0 * macs, float(acts), float(out_channels * in_channels * kr * ks * 4))

    @classmethod
    def of(cls, conv: nn.Conv2d, input_hw, batch: int = 1) -> LayerCost:
        """Costs of an ``nn.Conv2d`` on inputs of size ``input_hw``. A grouped conv is its
        ``groups`` independent convolutions: FLOPs and weights of C/groups input channels per
        output channel, activations of all channels."""
        g = conv.groups
        one = cls.conv(
            conv.in_channels // g,
            conv.out_channels,
            conv.kernel_size,
            input_hw,
            conv.stride,
            conv.padding,
            conv.dilation,
            batch,
        )
        h, w = (input_hw, input_hw) if isinstance(input_hw, int) else input_hw
        extra_input = (conv.in_channels - conv.in_channels // g) * h * w * batch * 4
        return cls(one.flops, one.act_bytes + extra_input, one.weight_bytes)


def _check_x(x: float) -> float:
    if not (0 <= x <= 1):
        raise ConfigError(f"the non-zero fraction x must be in [0, 1], not {x!r}")
    return float(x)


def sparse_time(layer: LayerCost, machine: Machine, x: float) -> float:
    """Predicted seconds of the sparse layer: max(compute, bandwidth)."""
    x = _check_x(x)
    compute = machine.alpha * x * layer.flops / machine.flops
    memory = (layer.act_bytes + machine.beta * x * layer.weight_bytes) / machine.bandwidth
    return max(compute, memory)


def dense_time(layer: LayerCost, machine: Machine) -> float:
    """Predicted seconds of the dense layer (assumed compute bound): C / F."""
    return layer.flops / machine.flops


def predict_speedup(layer: LayerCost, machine: Machine, x: float) -> float:
    """t_dense / t_sparse at non-zero fraction ``x``."""
    return dense_time(layer, machine) / sparse_time(layer, machine, x)


def lower_bound(machine: Machine) -> float:
    """The non-zero fraction above which sparse is slower than dense: 1/alpha (capped at 1)."""
    return min(1.0, 1.0 / machine.alpha)


def upper_bound(layer: LayerCost, machine: Machine) -> float:
    """The non-zero fraction where compute time equals bandwidth time.

    Solves alpha*x*C/F = (S_A + beta*x*S_W)/B. Below it the layer is bandwidth bound and more
    sparsity buys nothing. Returns 1.0 when the layer is bandwidth bound at every density.
    """
    denom = machine.alpha * layer.flops / machine.flops - (
        machine.beta * layer.weight_bytes / machine.bandwidth
    )
    if denom <= 0:
        return 1.0
    return min(1.0, (layer.act_bytes / machine.bandwidth) / denom)


def max_speedup(layer: LayerCost, machine: Machine) -> float:
    """The best speedup the model allows for this layer (at its upper bound)."""
    return predict_speedup(layer, machine, upper_bound(layer, machine))


def profitable(layer: LayerCost, machine: Machine) -> bool:
    """Whether any sparsity makes this layer faster than dense under the model."""
    return max_speedup(layer, machine) > 1.0


# --------------------------------------------------------------------------- measurement


def measure_flops(n: int = 1024, threads: int | None = None, seconds: float = 1.0) -> float:
    """Dense float32 GEMM rate (FLOP/s) of torch.mm on n x n matrices."""
    a, b = torch.rand(n, n), torch.rand(n, n)
    with _threads(threads):
        t = time_callable(lambda: torch.mm(a, b), warmup=2, repeats=20, max_seconds=seconds)
    return 2.0 * n**3 / t.min


def measure_bandwidth(
    megabytes: int = 64, threads: int | None = None, seconds: float = 1.0
) -> float:
    """Streaming rate (bytes/s): a copy reads and writes ``megabytes`` each call."""
    n = megabytes * (1 << 20) // 4
    src, dst = torch.rand(n), torch.empty(n)
    with _threads(threads):
        t = time_callable(lambda: dst.copy_(src), warmup=2, repeats=20, max_seconds=seconds)
    return 2.0 * n * 4 / t.min


# A calibration layer in the compute-bound regime: CaffeNet conv3 geometry, batch 4.
CALIBRATION = dict(in_channels=256, out_channels=384, kernel=3, hw=13, padding=1, batch=4)


def measure_alpha(
    flops: float, x: float = 0.5, threads: int | None = None, seconds: float = 1.0, seed: int = 0
) -> float:
    """Sparse overhead alpha = t_sparse * F / (x * C) of this package's kernel on the
    calibration layer at non-zero fraction ``x`` (compute bound), given the dense rate F."""
    from .csr import to_csr
    from .direct_conv import direct_sparse_conv2d

    cal = CALIBRATION
    g = torch.Generator().manual_seed(seed)
    inp = torch.rand(cal["batch"], cal["in_channels"], cal["hw"], cal["hw"], generator=g)
    w = random_sparse_weight(
        (cal["out_channels"], cal["in_channels"], cal["kernel"], cal["kernel"]), x, g
    )
    csr = to_csr(w, inp.shape, cal["padding"])
    layer = LayerCost.conv(
        cal["in_channels"],
        cal["out_channels"],
        cal["kernel"],
        cal["hw"],
        padding=cal["padding"],
        batch=cal["batch"],
    )
    with _threads(threads):
        t = time_callable(
            lambda: direct_sparse_conv2d(inp, csr, padding=cal["padding"]),
            warmup=2,
            repeats=20,
            max_seconds=seconds,
        )
    return t.min * flops / (csr.density * layer.flops)


def alpha_ratio(
    x: float = 0.5,
    repeats: int = 9,
    max_seconds: float | None = None,
    seed: int = 0,
):
    """alpha measured by the core's timing protocol: the interleaved ratio of the direct sparse
    conv on the calibration layer at non-zero fraction ``x`` to a ``torch.mm`` doing the same
    ``x * C`` FLOPs (the layer's lowered GEMM, N x CRS by CRS x (x * B*Ho*Wo)).

    alpha = t_sparse * F / (x * C) = t_sparse / t_gemm(x * C): the ratio is alpha directly, and
    its bootstrap interval comes with it. Returns a ``bench.RatioMeasurement`` (threads: those
    in effect).
    """
    from dnnrepro.core.bench import interleaved_ratio

    from .csr import to_csr
    from .direct_conv import direct_sparse_conv2d

    cal = CALIBRATION
    g = torch.Generator().manual_seed(seed)
    inp = torch.rand(cal["batch"], cal["in_channels"], cal["hw"], cal["hw"], generator=g)
    k = cal["kernel"]
    w = random_sparse_weight((cal["out_channels"], cal["in_channels"], k, k), x, g)
    csr = to_csr(w, inp.shape, cal["padding"])
    cols = max(1, round(csr.density * cal["batch"] * cal["hw"] * cal["hw"]))
    a = torch.rand(cal["out_channels"], cal["in_channels"] * k * k, generator=g)
    b = torch.rand(cal["in_channels"] * k * k, cols, generator=g)
    # candidate: the GEMM (x*C FLOPs); baseline: the sparse conv -> ratio = t_sparse / t_gemm
    return interleaved_ratio(
        lambda: torch.mm(a, b),
        lambda: direct_sparse_conv2d(inp, csr, padding=cal["padding"]),
        repeats=repeats,
        max_seconds=max_seconds,
        seed=seed,
    )


def random_sparse_weight(shape, x: float, generator: torch.Generator) -> torch.Tensor:
    """A Gaussian weight with exactly round(x * numel) non-zeros at random positions."""
    x = _check_x(x)
    w = torch.randn(shape, generator=generator)
    numel = w.numel()
    keep = round(x * numel)
    mask = torch.zeros(numel, dtype=torch.bool)
    mask[torch.randperm(numel, generator=generator)[:keep]] = True
    return w * mask.reshape(shape)


def measure_machine(threads: int | None = None, seconds: float = 1.0) -> Machine:
    """Measure F, B and alpha on this machine with ``threads`` threads (a few seconds)."""
    f = measure_flops(threads=threads, seconds=seconds)
    b = measure_bandwidth(threads=threads, seconds=seconds)
    a = measure_alpha(f, threads=threads, seconds=seconds)
    return Machine(f, b, a, name=f"this machine ({threads or torch.get_num_threads()} threads)")


@functools.cache
def this_machine(threads: int | None = None) -> Machine:
    """:func:`measure_machine`, measured once per process and thread count."""
    return measure_machine(threads)


def dense_conv_time(
    layer_args: dict, batch: int, threads: int | None = None, seconds: float = 1.0
) -> float:
    """Seconds of torch's dense conv2d for a layer described like :data:`CALIBRATION`."""
    inp = torch.rand(batch, layer_args["in_channels"], layer_args["hw"], layer_args["hw"])
    k = layer_args["kernel"]
    w = torch.randn(layer_args["out_channels"], layer_args["in_channels"], k, k)
    with _threads(threads):
        t = time_callable(
            lambda: F.conv2d(inp, w, None, 1, layer_args["padding"]),
            warmup=2,
            repeats=20,
            max_seconds=seconds,
        )
    return t.min
