"""The compact Conv-M network and its two comparison networks, at paper size and digit size.

Every network here is a :class:`ConvNet`: ``features`` maps images (N, C, H, W) to a pooled
feature vector (N, feature_dim) (global average pooling at the end), ``fc`` maps it to logits
(N, num_classes). Domain adaptation (``adapt``) reuses ``features`` and puts its own bottleneck and
classifiers on top.

Paper size (ImageNet input 3x224x224, 1000 classes):

- ``inception_like("paper")``: the GoogLeNet v1 layout (Szegedy et al. 2015, Table 1) without the
  auxiliary classifiers and without LRN: stem, 9 Inception modules, GAP, dropout 0.4, fc.
- ``compact_net("paper")``: the same skeleton with each Inception module replaced by a Conv-M
  module. The paper's layer table is not available; the widths below are RECONSTRUCTED so that the
  stage output widths equal GoogLeNet's and the total lands near the paper's 4.1M parameters.
- ``squeeze_net_like("paper")``: the SqueezeNet v1.0 layout (Iandola et al. 2016), with the final
  1x1 conv10 + GAP written as GAP + fc (same parameter count, no ReLU on the logits).

Digit size (1x16x16, 1x28x28 or any square >= 4 pixels, 10 classes): a 3x3 stem (24 channels) and
2x2 max pool, two modules with a 2x2 max pool between them, GAP; BatchNorm after every
convolution (so they train from scratch in a few hundred CPU steps; the paper-size nets have none). Widths are chosen so that the squeeze-like net
is the smallest and the Conv-M net has fewer parameters than the inception-like one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dnnrepro.core.errors import ConfigError
from dnnrepro.core.models import layer_flops

from .convm import ConvM

SIZES = ("paper", "small")
# Reference parameter counts the paper compares against (its abstract: 4.1M = 6.7% of AlexNet,
# 59% of GoogLeNet).
PAPER_PARAMS = 4.1e6
ALEXNET_PARAMS = 61.0e6
GOOGLENET_PARAMS = 7.0e6


class Fire(nn.Module):
    """SqueezeNet's fire module: 1x1 squeeze (s), then 1x1 (e1) and 3x3 (e3) expands, concatenated.

    (N, C_in, H, W) -> (N, e1 + e3, H, W).
    """

    def __init__(
        self, in_channels: int, squeeze: int, expand1: int, expand3: int, batch_norm: bool = False
    ):
        super().__init__()
        self.squeeze = _conv(in_channels, squeeze, 1, batch_norm=batch_norm)
        self.expand1 = _conv(squeeze, expand1, 1, batch_norm=batch_norm)
        self.expand3 = _conv(squeeze, expand3, 3, padding=1, batch_norm=batch_norm)
        self.out_channels = expand1 + expand3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.squeeze(x)
        return torch.cat([self.expand1(s), self.expand3(s)], dim=1)


class Inception(nn.Module):
    """GoogLeNet's Inception module: 1x1 | 1x1->3x3 | 1x1->5x5 | 3x3 maxpool->1x1, concatenated.

    Widths (b1, r3, b3, r5, b5, pool_proj); (N, C_in, H, W) -> (N, b1 + b3 + b5 + pool_proj, H, W).
    """

    def __init__(
        self,
        in_channels: int,
        b1: int,
        r3: int,
        b3: int,
        r5: int,
        b5: int,
        pp: int,
        batch_norm: bool = False,
    ):
        super().__init__()
        bn = batch_norm
        self.branch1 = _conv(in_channels, b1, 1, batch_norm=bn)
        self.reduce3 = _conv(in_channels, r3, 1, batch_norm=bn)
        self.branch3 = _conv(r3, b3, 3, padding=1, batch_norm=bn)
        self.reduce5 = _conv(in_channels, r5, 1, batch_norm=bn)
        self.branch5 = _conv(r5, b5, 5, padding=2, batch_norm=bn)
        self.pool_proj = _conv(in_channels, pp, 1, batch_norm=bn)
        self.out_channels = b1 + b3 + b5 + pp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1(x)
        b = self.branch3(self.reduce3(x))
        c = self.branch5(self.reduce5(x))
        d = self.pool_proj(F.max_pool2d(x, 3, 1, 1))
        return torch.cat([a, b, c, d], dim=1)


def _conv(
    cin: int, cout: int, k: int, stride: int = 1, padding: int = 0, batch_norm: bool = False
) -> nn.Sequential:
    """conv (+ BatchNorm2d) + ReLU."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, padding)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ConvNet(nn.Module):
    """``features`` (ends in GAP + flatten) -> dropout -> ``fc``.

    Attributes: ``in_channels``, ``feature_dim``, ``num_classes``, ``kind`` (compact | squeeze |
    inception), ``size`` (paper | small). ``forward``: (N, in_channels, H, W) -> (N, num_classes).
    """

    def __init__(
        self,
        layers: list[tuple[str, nn.Module]],
        in_channels: int,
        feature_dim: int,
        num_classes: int,
        dropout: float,
        kind: str,
        size: str,
    ):
        super().__init__()
        layers = [*layers, ("gap", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten())]
        self.features = nn.Sequential(OrderedDict(layers))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(feature_dim, num_classes)
        self.in_channels, self.feature_dim, self.num_classes = in_channels, feature_dim, num_classes
        self.kind, self.size = kind, size
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(
                f"{self.kind}_{self.size} network expects images (N, {self.in_channels}, H, W), "
                f"got {tuple(x.shape)}; build it with in_channels={x.shape[1] if x.dim() == 4 else '?'}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.fc(self.dropout(self.features(x)))


def _check(num_classes: int, size: str, in_channels: int) -> None:
    if size not in SIZES:
        raise ConfigError(f"unknown network size {size!r}; choose one of {', '.join(SIZES)}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError(f"num_classes must be an int >= 2, not {num_classes!r}")
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ConfigError(f"in_channels must be a positive int, not {in_channels!r}")


def _imagenet_stem(in_channels: int) -> list[tuple[str, nn.Module]]:
    """GoogLeNet's stem: 224 -> 28 pixels, 192 channels (LRN omitted)."""
    return [
        ("conv1", _conv(in_channels, 64, 7, 2, 3)),
        ("pool1", nn.MaxPool2d(3, 2, ceil_mode=True)),
        ("conv2_reduce", _conv(64, 64, 1)),
        ("conv2", _conv(64, 192, 3, 1, 1)),
        ("pool2", nn.MaxPool2d(3, 2, ceil_mode=True)),
    ]


def _digit_stem(in_channels: int) -> list[tuple[str, nn.Module]]:
    return [("conv1", _conv(in_channels, 24, 3, 1, 1, True)), ("pool1", nn.MaxPool2d(2, 2))]


# GoogLeNet v1 Inception widths (b1, r3, b3, r5, b5, pool_proj), Table 1 of Szegedy et al. 2015.
GOOGLENET_WIDTHS = OrderedDict(
    [
        ("3a", (64, 96, 128, 16, 32, 32)),
        ("3b", (128, 128, 192, 32, 96, 64)),
        ("4a", (192, 96, 208, 16, 48, 64)),
        ("4b", (160, 112, 224, 24, 64, 64)),
        ("4c", (128, 128, 256, 24, 64, 64)),
        ("4d", (112, 144, 288, 32, 64, 64)),
        ("4e", (256, 160, 320, 32, 128, 128)),
        ("5a", (256, 160, 320, 32, 128, 128)),
        ("5b", (384, 192, 384, 48, 128, 128)),
    ]
)
# RECONSTRUCTED Conv-M widths: (1x1 reduce r, outputs (regular, dilated, deconv)). Every stage's
# output width equals GoogLeNet's (256, 480, 512, 512, 512, 528, 832, 832, 1024); the reductions
# were then narrowed until the whole network (1000 classes) came to about the paper's 4.1M.
CONVM_WIDTHS = OrderedDict(
    [
        ("3a", (24, (96, 80, 80))),
        ("3b", (40, (160, 160, 160))),
        ("4a", (32, (192, 160, 160))),
        ("4b", (32, (192, 160, 160))),
        ("4c", (32, (192, 160, 160))),
        ("4d", (32, (176, 176, 176))),
        ("4e", (56, (288, 272, 272))),
        ("5a", (56, (288, 272, 272))),
        ("5b", (56, (352, 336, 336))),
    ]
)
# SqueezeNet v1.0 fire widths (squeeze, expand1x1, expand3x3).
SQUEEZENET_WIDTHS = OrderedDict(
    [
        ("fire2", (16, 64, 64)),
        ("fire3", (16, 64, 64)),
        ("fire4", (32, 128, 128)),
        ("fire5", (32, 128, 128)),
        ("fire6", (48, 192, 192)),
        ("fire7", (48, 192, 192)),
        ("fire8", (64, 256, 256)),
        ("fire9", (64, 256, 256)),
    ]
)
_POOL_AFTER = {"3b", "4e"}  # GoogLeNet's 3x3/2 max pools between stages


def _googlenet_body(make, stage_widths: dict) -> tuple[list[tuple[str, nn.Module]], int]:
    layers: list[tuple[str, nn.Module]] = []
    channels = 192
    for name, widths in stage_widths.items():
        module = make(channels, widths)
        layers.append((f"m{name}", module))
        channels = module.out_channels
        if name in _POOL_AFTER:
            layers.append((f"pool{name}", nn.MaxPool2d(3, 2, ceil_mode=True)))
    return layers, channels


def compact_net(
    num_classes: int = 1000, size: str = "paper", in_channels: int = 3, dropout: float | None = None
) -> ConvNet:
    """The compact network built from Conv-M modules.

    ``size="paper"``: GoogLeNet skeleton with 9 Conv-M modules (widths reconstructed, see module
    doc), for 3x224x224 ImageNet/Office images. ``size="small"``: stem + ConvM(24 -> 48) + pool +
    ConvM(48 -> 96) + GAP, for 28x28 digits. ``dropout`` before fc defaults to 0.4 (paper) / 0.
    """
    _check(num_classes, size, in_channels)
    if size == "paper":
        body, dim = _googlenet_body(lambda c, w: ConvM(c, w[0], w[1]), CONVM_WIDTHS)
        layers = _imagenet_stem(in_channels) + body
        drop = 0.4 if dropout is None else dropout
    else:
        layers = _digit_stem(in_channels) + [
            ("m1", ConvM(24, 12, (16, 16, 16), batch_norm=True)),
            ("pool2", nn.MaxPool2d(2, 2)),
            ("m2", ConvM(48, 16, (32, 32, 32), batch_norm=True)),
        ]
        dim, drop = 96, (0.0 if dropout is None else dropout)
    return ConvNet(layers, in_channels, dim, num_classes, drop, "compact", size)


def inception_like(
    num_classes: int = 1000, size: str = "paper", in_channels: int = 3, dropout: float | None = None
) -> ConvNet:
    """GoogLeNet-style comparison network (Inception modules; see the module doc)."""
    _check(num_classes, size, in_channels)
    if size == "paper":
        body, dim = _googlenet_body(lambda c, w: Inception(c, *w), GOOGLENET_WIDTHS)
        layers = _imagenet_stem(in_channels) + body
        drop = 0.4 if dropout is None else dropout
    else:
        layers = _digit_stem(in_channels) + [
            ("m1", Inception(24, 12, 16, 16, 8, 12, 8, True)),
            ("pool2", nn.MaxPool2d(2, 2)),
            ("m2", Inception(48, 16, 48, 48, 16, 16, 16, True)),
        ]
        dim, drop = 96, (0.0 if dropout is None else dropout)
    return ConvNet(layers, in_channels, dim, num_classes, drop, "inception", size)


def squeeze_net_like(
    num_classes: int = 1000, size: str = "paper", in_channels: int = 3, dropout: float | None = None
) -> ConvNet:
    """SqueezeNet-style compressed comparison network (fire modules; see the module doc)."""
    _check(num_classes, size, in_channels)
    if size == "paper":
        layers: list[tuple[str, nn.Module]] = [
            ("conv1", _conv(in_channels, 96, 7, 2)),
            ("pool1", nn.MaxPool2d(3, 2, ceil_mode=True)),
        ]
        channels = 96
        for name, widths in SQUEEZENET_WIDTHS.items():
            fire = Fire(channels, *widths)
            layers.append((name, fire))
            channels = fire.out_channels
            if name in ("fire4", "fire8"):
                layers.append((f"pool_{name}", nn.MaxPool2d(3, 2, ceil_mode=True)))
        dim, drop = channels, (0.5 if dropout is None else dropout)
    else:
        layers = _digit_stem(in_channels) + [
            ("m1", Fire(24, 8, 24, 24, True)),
            ("pool2", nn.MaxPool2d(2, 2)),
            ("m2", Fire(48, 12, 48, 48, True)),
        ]
        dim, drop = 96, (0.0 if dropout is None else dropout)
    return ConvNet(layers, in_channels, dim, num_classes, drop, "squeeze", size)


NETWORKS = {"compact": compact_net, "squeeze": squeeze_net_like, "inception": inception_like}


def build_network(
    kind: str, num_classes: int, size: str = "small", in_channels: int = 1, **kw
) -> ConvNet:
    """``NETWORKS[kind](num_classes, size, in_channels)`` with a clear error for unknown kinds."""
    if kind not in NETWORKS:
        raise ConfigError(f"unknown network {kind!r}; choose one of {', '.join(NETWORKS)}")
    return NETWORKS[kind](num_classes, size, in_channels, **kw)


def macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one forward pass for one input of shape (C, H, W).

    Counts Conv2d, ConvTranspose2d (input elements x C_out/groups x kh x kw: every input pixel
    scatters one kernel) and Linear layers; pooling and ReLU are not counted. The per-layer
    counting is the core's ``layer_flops``.
    """
    return sum(layer_flops(model, input_shape).values())
