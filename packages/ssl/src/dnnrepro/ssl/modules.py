"""The small modules a shrunk network is made of, besides plain Conv2d, Linear and BatchNorm.

- :class:`LoweredConv2d`: a convolution that keeps only the surviving columns (shape fibres) of
  its lowered N x (C*R*S) weight matrix: build only the surviving rows of the im2col patch matrix
  (one gather), one GEMM (N x K') @ (K' x L). The same computation as the authors' ``LOWERED_CCNMM`` mode.
- :class:`InputGather`: picks the input channels (or features) a layer still reads, then runs a
  smaller Conv2d/Linear; used where the producer of those inputs cannot be shrunk (the network's
  input, a residual sum).
- :class:`ResidualShortcut`: a residual block whose residual branch is constant (its last conv is
  all zero): relu(shortcut(x) + c), c the per-channel constant the branch adds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LoweredConv2d(nn.Module):
    """Conv2d restricted to ``columns`` of its lowered weight (groups=1, zero padding).

    Args: in_channels, out_channels, kernel_size (R, S), stride, padding, dilation: as Conv2d;
    columns: number K' of surviving columns; bias: whether a bias is added.
    Buffers/params: ``weight`` (N, K'), ``index`` (K',) int64 into the C*R*S patch rows,
    ``bias`` (N,) or None. Input (B, C, H, W) -> output (B, N, H_out, W_out).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int],
        stride: tuple[int, int],
        padding: tuple[int, int],
        dilation: tuple[int, int],
        columns: int,
        bias: bool = True,
    ):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = tuple(kernel_size), tuple(stride)
        self.padding, self.dilation = tuple(padding), tuple(dilation)
        self.weight = nn.Parameter(torch.zeros(out_channels, columns))
        self.register_buffer("index", torch.zeros(columns, dtype=torch.long))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, h, w = x.shape
        kh, kw = self.kernel_size
        (sh, sw), (ph, pw), (dh, dw) = self.stride, self.padding, self.dilation
        h_out = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        w_out = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        if ph or pw:
            x = F.pad(x, (pw, pw, ph, ph))
        # Only the K' surviving rows of the im2col matrix are built, with one gather:
        # row k = (c, r, s) is the strided window x[:, c, r*dh + sh*i, s*dw + sw*j].
        c = self.index // (kh * kw)
        r = (self.index // kw) % kh
        s = self.index % kw
        rows = (r * dh)[:, None, None] + (sh * torch.arange(h_out, device=x.device))[None, :, None]
        cols = (s * dw)[:, None, None] + (sw * torch.arange(w_out, device=x.device))[None, None, :]
        patches = x[:, c[:, None, None], rows, cols]  # (B, K', H_out, W_out)
        # the (N x K') @ (K' x B*L) GEMM, run as a 1x1 convolution over the gathered rows
        weight = self.weight.view(self.out_channels, -1, 1, 1)
        return F.conv2d(patches, weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"columns={self.weight.shape[1]}/{self.in_channels * self.kernel_size[0] * self.kernel_size[1]}"
        )


class InputGather(nn.Module):
    """Select ``index`` along dim 1 of the input, then apply ``inner`` (a Conv2d or Linear).

    Conv2d: (B, C, H, W) -> inner(x[:, index]); Linear: (..., F) -> inner(x[..., index]).
    """

    def __init__(self, inner: nn.Module, kept: int):
        super().__init__()
        self.inner = inner
        self.register_buffer("index", torch.zeros(kept, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Linear reads the last dimension, Conv2d the channel dimension
        dim = -1 if isinstance(self.inner, nn.Linear) else 1
        return self.inner(x.index_select(dim, self.index))


class ResidualShortcut(nn.Module):
    """What a residual block computes once its residual branch is a constant: relu(shortcut(x) + c).

    ``offset`` (C,) is the branch's constant output per channel (its last BN applied to a zero
    convolution output).
    """

    def __init__(self, shortcut: nn.Module, channels: int):
        super().__init__()
        self.shortcut = shortcut
        self.register_buffer("offset", torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.shortcut(x) + self.offset.view(1, -1, 1, 1))
