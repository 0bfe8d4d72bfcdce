"""Target networks of the authors' code and how we pretrain them.

- MNIST (``mymodel.json``): MLP 784 -> 64 -> ReLU -> 10 (the core's MLP). On the 8x8 digits we
  scale it to 64 -> 32 -> 10.
- CIFAR-10 (``cifar10_model-symbol.json``): :class:`TanhLeNet`, conv5x5x20 + tanh + maxpool2,
  conv5x5x50 + tanh + maxpool2, fc500 + tanh, fc10, on 3x28x28 crops of the 32x32 images. The
  authors fed raw 0-255 pixels; we keep every image in [0, 1] (the generator's sigmoid range), so
  the scale mismatch of their CIFAR generator (sigmoid output into a 0-255 model) does not arise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dnnrepro.core.errors import ConfigError
from dnnrepro.core.models import MLP
from dnnrepro.core.train import TrainConfig, fit, seed_everything


class TanhLeNet(nn.Module):
    """The authors' CIFAR-10 target: two conv5x5 + tanh + maxpool2 stages, fc500 + tanh, fc10.

    Images (N, C, S, S) -> logits (N, num_classes). Convolutions are padded by 2 when S < 16 so the
    two pools still fit (used on the 8x8 digits in tests).
    """

    def __init__(self, in_channels: int = 3, image_size: int = 28, num_classes: int = 10):
        super().__init__()
        pad = 2 if image_size < 16 else 0
        self.conv1 = nn.Conv2d(in_channels, 20, 5, padding=pad)
        self.conv2 = nn.Conv2d(20, 50, 5, padding=pad)
        size = ((image_size + 2 * pad - 4) // 2 + 2 * pad - 4) // 2
        if size < 1:
            raise ConfigError(f"TanhLeNet: image_size {image_size} is too small")
        self.fc1 = nn.Linear(50 * size * size, 500)
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.max_pool2d(torch.tanh(self.conv1(x)), 2)
        x = torch.max_pool2d(torch.tanh(self.conv2(x)), 2)
        return self.fc2(torch.tanh(self.fc1(x.flatten(1))))


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """The central size x size window of images (N, C, H, W)."""
    top, left = (x.shape[2] - size) // 2, (x.shape[3] - size) // 2
    return x[:, :, top : top + size, left : left + size].contiguous()


def random_crop_flip(x: torch.Tensor, size: int, seed: int) -> torch.Tensor:
    """One random size x size crop per image plus a random horizontal mirror (seeded)."""
    gen = torch.Generator().manual_seed(seed)
    n, _, h, w = x.shape
    tops = torch.randint(0, h - size + 1, (n,), generator=gen)
    lefts = torch.randint(0, w - size + 1, (n,), generator=gen)
    flips = torch.rand(n, generator=gen) < 0.5
    out = torch.stack(
        [x[i, :, tops[i] : tops[i] + size, lefts[i] : lefts[i] + size] for i in range(n)]
    )
    out[flips] = out[flips].flip(-1)
    return out


@dataclass(frozen=True)
class TargetSpec:
    """A target network for one dataset: architecture, input size and pretraining recipe."""

    arch: str  # "mlp" or "tanh-lenet"
    hidden: tuple[int, ...]
    config: TrainConfig
    crop: int | None = None  # CIFAR: train on random crops, attack/test on center crops

    def build(self, shape: tuple[int, int, int], num_classes: int = 10) -> nn.Module:
        c, h, w = shape
        if self.arch == "mlp":
            return MLP(c * h * w, self.hidden, num_classes, "relu")
        if self.arch == "tanh-lenet":
            return TanhLeNet(c, h, num_classes)
        raise ConfigError(f"unknown target architecture {self.arch!r}; use 'mlp' or 'tanh-lenet'")


TARGETS: dict[str, TargetSpec] = {
    "mnist5k": TargetSpec("mlp", (64,), TrainConfig(epochs=20, batch_size=64, lr=0.05)),
    "digits": TargetSpec("mlp", (32,), TrainConfig(epochs=40, batch_size=32, lr=0.05)),
    "mnist": TargetSpec("mlp", (64,), TrainConfig(epochs=10, batch_size=64, lr=0.05)),
    "cifar10": TargetSpec(
        "tanh-lenet", (), TrainConfig(epochs=30, batch_size=64, lr=0.01), crop=28
    ),
}


def train_target(
    dataset: str,
    train: tuple[torch.Tensor, torch.Tensor],
    seed: int = 0,
    checkpoint_dir=None,
    max_steps: int | None = None,
    epochs: int | None = None,
    device: torch.device | str | None = None,
) -> tuple[nn.Module, dict]:
    """Pretrain the target for ``dataset`` on ``train`` (images already cropped if CIFAR).

    Returns (model in eval mode, {'seconds', 'train_loss'}). Resumable through ``checkpoint_dir``.
    ``device``: where the model lives (the data may stay on the CPU; fit moves each batch).
    """
    if dataset not in TARGETS:
        raise ConfigError(f"no target network for {dataset!r}; choose one of {', '.join(TARGETS)}")
    spec = TARGETS[dataset]
    x, y = train
    shape = (x.shape[1], spec.crop or x.shape[2], spec.crop or x.shape[3])
    seed_everything(seed)
    model = spec.build(shape).to(device or "cpu")
    config = TrainConfig(**{**spec.config.__dict__, "seed": seed, "max_steps": max_steps})
    if epochs is not None:
        config.epochs = epochs
    loss_fn = None
    if spec.crop:
        # a fresh random crop per batch, seeded by fit's step (persisted in its checkpoint): a
        # resumed run draws the same crops as an uninterrupted one
        def loss_fn(net, xb, yb, step):
            crops = random_crop_flip(xb.cpu(), spec.crop, seed * 1_000_003 + step).to(xb.device)
            return F.cross_entropy(net(crops), yb)

    result = fit(model, (x, y), config, loss_fn=loss_fn, checkpoint_dir=checkpoint_dir)
    model.eval()
    # the last epoch's mean loss comes from fit's history, which its checkpoint keeps: the same
    # after a resume that ran no step
    last = result.history[-1]["train_loss"] if result.history else float("nan")
    return model, {"seconds": result.seconds, "train_loss": last}
