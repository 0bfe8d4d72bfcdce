"""The Conv-M module: three parallel feature extractors, concatenated along channels.

Known from the paper's abstract [verified]: Conv-M "provides more diverse feature extractors
without significantly increasing parameters". Known from a third-party summary [secondary]: the
branches are a regular convolution, a dilated convolution (3x3 kernel seeing a 5x5 window,
dilation 2) and a deconvolution that "reconstructs shapes of the input". RECONSTRUCTED here
[unverified]: the 1x1 reduction in front of each branch (Inception style), the strided 3x3
convolution that feeds the deconvolution, the 3x3 kernel sizes of that pair, and ReLU after every
convolution. ``batch_norm=True`` puts a BatchNorm2d between every convolution and its ReLU (the
digit-size networks use it so they train from scratch in a few hundred CPU steps; the paper-size
network does not, as in GoogLeNet v1).

Shapes, for an input (N, C_in, H, W) at stride 1:

- regular:  1x1 C_in->r0, ReLU, 3x3 pad 1 r0->o0, ReLU                     -> (N, o0, H, W)
- dilated:  1x1 C_in->r1, ReLU, 3x3 dilation 2 pad 2 r1->o1, ReLU          -> (N, o1, H, W)
- deconv:   1x1 C_in->r2, ReLU, 3x3 stride 2 pad 1 r2->r2, ReLU            -> (N, r2, ceil(H/2), ceil(W/2))
            then 3x3 transposed conv stride 2 pad 1 r2->o2, ReLU           -> (N, o2, H, W)
- output:   concatenation                                                 -> (N, o0+o1+o2, H, W)

The transposed convolution alone would give 2*ceil(H/2) - 1 rows; the missing row for even H is
the ``output_padding``, which is chosen per call from the input size (``output_size=``), so one
module handles even and odd sizes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dnnrepro.core.errors import ConfigError


def _triple(value: int | Sequence[int], what: str) -> tuple[int, int, int]:
    if isinstance(value, int):
        value = (value, value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 3 or any(v < 1 for v in value):
        raise ConfigError(
            f"ConvM: {what} must be one positive int or three (regular, dilated, deconv)"
        )
    return value  # type: ignore[return-value]


class ConvM(nn.Module):
    """Regular + dilated + (strided conv -> deconv) branches, each behind a 1x1 reduction.

    Args:
        in_channels: C_in of the input.
        reduce: 1x1 reduction widths (r0, r1, r2) for the (regular, dilated, deconv) branches, or
            one int for all three.
        out: output widths (o0, o1, o2) of the branches, or one int for all three.
        dilation: dilation of the dilated 3x3 branch (2: a 5x5 window, as the paper says).
        batch_norm: BatchNorm2d after every convolution (before its ReLU).

    ``forward``: (N, C_in, H, W) -> (N, sum(out), H, W), any H, W >= 1.
    """

    def __init__(
        self,
        in_channels: int,
        reduce: int | Sequence[int],
        out: int | Sequence[int],
        dilation: int = 2,
        batch_norm: bool = False,
    ):
        super().__init__()
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ConfigError(f"ConvM: in_channels must be a positive int, not {in_channels!r}")
        if not isinstance(dilation, int) or dilation < 1:
            raise ConfigError(f"ConvM: dilation must be a positive int, not {dilation!r}")
        r = _triple(reduce, "reduce")
        o = _triple(out, "out")
        self.in_channels = in_channels
        self.out_channels = sum(o)
        self.reduce_regular = nn.Conv2d(in_channels, r[0], 1)
        self.regular = nn.Conv2d(r[0], o[0], 3, padding=1)
        self.reduce_dilated = nn.Conv2d(in_channels, r[1], 1)
        self.dilated = nn.Conv2d(r[1], o[1], 3, padding=dilation, dilation=dilation)
        self.reduce_deconv = nn.Conv2d(in_channels, r[2], 1)
        self.strided = nn.Conv2d(r[2], r[2], 3, stride=2, padding=1)
        self.deconv = nn.ConvTranspose2d(r[2], o[2], 3, stride=2, padding=1)
        widths = {
            "reduce_regular": r[0],
            "regular": o[0],
            "reduce_dilated": r[1],
            "dilated": o[1],
            "reduce_deconv": r[2],
            "strided": r[2],
            "deconv": o[2],
        }
        self.norms = nn.ModuleDict(
            {k: nn.BatchNorm2d(c) if batch_norm else nn.Identity() for k, c in widths.items()}
        )

    def _act(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norms[name](x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(
                f"ConvM expects input (N, {self.in_channels}, H, W), got {tuple(x.shape)}; "
                "check in_channels of the module against the previous layer"
            )
        a = self._act("regular", self.regular(self._act("reduce_regular", self.reduce_regular(x))))
        b = self._act("dilated", self.dilated(self._act("reduce_dilated", self.reduce_dilated(x))))
        c = self._act("strided", self.strided(self._act("reduce_deconv", self.reduce_deconv(x))))
        c = self._act("deconv", self.deconv(c, output_size=list(x.shape[-2:])))
        return torch.cat([a, b, c], dim=1)
