"""Networks used by several papers: LeNet, MLP, CifarNet, CIFAR-style ResNets; plus FLOP counting.

Every model takes ``in_channels`` and ``image_size`` (square, pixels) so it runs on the 8x8, 28x28
and 32x32 datasets; every model maps images (N, C, H, W) to logits (N, num_classes). Layer names
follow the papers' Caffe prototxts where they exist (conv1, conv2, fc1, ...) so per-layer settings
in the packages can name them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError


def _conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class LeNet(nn.Module):
    """Caffe LeNet: conv5x5x20, maxpool2, conv5x5x50, maxpool2, fc500, ReLU, fc10.

    Caffe's LeNet has no ReLU after the convolutions; this one follows it. For images smaller than
    16 pixels (8x8 digits) the convolutions are padded by 2 so the two 2x2 pools still fit.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 28,
        num_classes: int = 10,
        widths: tuple[int, int, int] = (20, 50, 500),
        padding: int | None = None,
    ):
        super().__init__()
        pad = (2 if image_size < 16 else 0) if padding is None else padding
        c1, c2, hidden = widths
        self.conv1 = nn.Conv2d(in_channels, c1, 5, padding=pad)
        self.conv2 = nn.Conv2d(c1, c2, 5, padding=pad)
        size = _conv_out(_conv_out(image_size, 5, 1, pad) // 2, 5, 1, pad) // 2
        if size < 1:
            raise ConfigError(f"LeNet: image_size {image_size} is too small for padding {pad}")
        self.fc1 = nn.Linear(c2 * size * size, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(self.conv1(x), 2)
        x = F.max_pool2d(self.conv2(x), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


class MLP(nn.Module):
    """Fully connected net: flatten, then Linear layers fc1..fcK with ``activation`` between them."""

    ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
        "relu": nn.ReLU,
        "tanh": nn.Tanh,
        "sigmoid": nn.Sigmoid,
    }

    def __init__(
        self,
        in_features: int = 784,
        hidden: Sequence[int] = (300, 100),
        num_classes: int = 10,
        activation: str = "relu",
    ):
        super().__init__()
        if activation not in self.ACTIVATIONS:
            raise ConfigError(
                f"MLP: unknown activation {activation!r}; use {list(self.ACTIVATIONS)}"
            )
        widths = [in_features, *hidden, num_classes]
        layers: list[tuple[str, nn.Module]] = []
        for i in range(len(widths) - 1):
            layers.append((f"fc{i + 1}", nn.Linear(widths[i], widths[i + 1])))
            if i < len(widths) - 2:
                layers.append((f"act{i + 1}", self.ACTIVATIONS[activation]()))
        self.layers = nn.Sequential(OrderedDict(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.flatten(1))


class CifarNet(nn.Module):
    """The TensorFlow/TernGrad CIFAR-10 net: conv5x5x64, pool, LRN, conv5x5x64, LRN, pool,
    fc384, fc192, fc10 (ReLU after each conv and hidden fc; pools 3x3 stride 2, padded)."""

    def __init__(self, in_channels: int = 3, image_size: int = 32, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 5, padding=2)
        self.conv2 = nn.Conv2d(64, 64, 5, padding=2)
        # TF's lrn(depth_radius=4, bias=1, alpha=0.001/9, beta=0.75): window 2*4+1 = 9,
        # and torch divides alpha by the window size, so alpha_torch = 9 * alpha_tf.
        self.norm1 = nn.LocalResponseNorm(9, alpha=0.001, beta=0.75, k=1.0)
        self.norm2 = nn.LocalResponseNorm(9, alpha=0.001, beta=0.75, k=1.0)
        size = _conv_out(_conv_out(image_size, 3, 2, 1), 3, 2, 1)
        self.fc1 = nn.Linear(64 * size * size, 384)
        self.fc2 = nn.Linear(384, 192)
        self.fc3 = nn.Linear(192, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(F.max_pool2d(F.relu(self.conv1(x)), 3, 2, 1))
        x = F.max_pool2d(self.norm2(F.relu(self.conv2(x))), 3, 2, 1)
        x = F.relu(self.fc1(x.flatten(1)))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class PadShortcut(nn.Module):
    """Option-A shortcut (He et al. 2016): subsample by ``stride`` and zero-pad the new channels.

    Parameter-free, so a residual block's shortcut never needs training or pruning.
    """

    def __init__(self, in_planes: int, out_planes: int, stride: int):
        super().__init__()
        self.in_planes, self.out_planes, self.stride = in_planes, out_planes, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        extra = self.out_planes - self.in_planes
        if extra:
            x = F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))
        return x


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride != 1 or in_planes != planes:
            self.shortcut: nn.Module = PadShortcut(in_planes, planes, stride)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR-style ResNet of depth 6n+2: conv3x3x16, three stages of n BasicBlocks (16, 32, 64
    channels, strides 1, 2, 2), global average pooling, fc. Option-A shortcuts.

    ``stages`` holds three nn.Sequential of blocks, so depth can be changed by removing blocks.
    """

    def __init__(
        self,
        depth: int = 20,
        in_channels: int = 3,
        num_classes: int = 10,
        widths: tuple[int, int, int] = (16, 32, 64),
        image_size: int | None = None,
    ):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ConfigError(
                f"ResNet depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 56), not {depth}"
            )
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        stages, planes = [], widths[0]
        for i, width in enumerate(widths):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(planes, width, stride))
                planes = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.fc = nn.Linear(widths[-1], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        for stage in self.stages:
            x = stage(x)
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def resnet20(**kw) -> ResNet:
    return ResNet(20, **kw)


def resnet32(**kw) -> ResNet:
    return ResNet(32, **kw)


def resnet56(**kw) -> ResNet:
    return ResNet(56, **kw)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "lenet": LeNet,
    "mlp": MLP,
    "cifarnet": CifarNet,
    "resnet20": resnet20,
    "resnet32": resnet32,
    "resnet56": resnet56,
}


def build(name: str, **kwargs) -> nn.Module:
    """Build a model by name (``lenet``, ``mlp``, ``cifarnet``, ``resnet20/32/56``)."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name](**kwargs)


def count_params(model: nn.Module) -> int:
    """Number of parameters (elements)."""
    return sum(p.numel() for p in model.parameters())


def forward_probe(
    model: nn.Module,
    input_shape: Sequence[int],
    modules: dict[str, nn.Module],
    record: Callable[[str, nn.Module, tuple, torch.Tensor], None],
) -> None:
    """Run one all-zero input of shape (C, H, W) (or (F,)) through ``model`` in eval mode, without
    gradients, calling ``record(name, module, inputs, output)`` for every module of ``modules``
    ({name: module}) as it runs. The model's training mode is restored and the hooks removed.

    The one place for "what shapes does each layer see" questions (FLOPs, input sizes).
    """
    hooks = [
        m.register_forward_hook(lambda mod, inp, out, name=name: record(name, mod, inp, out))
        for name, m in modules.items()
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            param = next(model.parameters())
            model(torch.zeros(1, *input_shape, dtype=param.dtype, device=param.device))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()


def layer_flops(model: nn.Module, input_shape: Sequence[int]) -> dict[str, int]:
    """Multiply-accumulates per Conv2d/ConvTranspose2d/Linear layer for one input (C, H, W).

    Counted as out_elements * (in_channels / groups) * kh * kw for convs, in_elements *
    (out_channels / groups) * kh * kw for transposed convs (every input pixel scatters one
    kernel), and in * out for linear layers: the dense cost, so zeros inside the weights are not
    subtracted. A module run twice is counted twice.
    """
    flops: dict[str, int] = {}

    def record(name, m, inp, out):
        kh, kw = getattr(m, "kernel_size", (1, 1))
        if isinstance(m, nn.ConvTranspose2d):
            cost = inp[0][0].numel() * kh * kw * m.out_channels // m.groups
        elif isinstance(m, nn.Conv2d):
            cost = out[0].numel() * kh * kw * m.in_channels // m.groups
        else:
            cost = m.in_features * m.out_features
        flops[name] = flops.get(name, 0) + cost

    layers = {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear)
    }
    forward_probe(model, input_shape, layers, record)
    return flops
