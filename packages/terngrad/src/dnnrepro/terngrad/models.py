"""The networks of the reproduction, by name: the paper's LeNet, an MLP, CifarNet (Table 1)."""

from __future__ import annotations

from torch import nn

from dnnrepro.core.errors import ConfigError
from dnnrepro.core.models import MLP, CifarNet, LeNet

MODELS = ("lenet", "mlp", "cifarnet")


def build_model(name: str, image_shape) -> nn.Module:
    """A fresh model for images of shape (C, H, W); seed torch before calling for a fixed init.

    "lenet": conv5x5x20, pool, conv5x5x50, pool, fc500, fc10 (the authors' LeNet);
    "mlp": 784-300-100-10 ReLU (fully connected, the layer type TernGrad helps most);
    "cifarnet": the TF CIFAR-10 net of the paper's Table 1.
    """
    c, h, w = (int(v) for v in image_shape)
    if name == "lenet":
        return LeNet(c, h, 10)
    if name == "mlp":
        return MLP(c * h * w, (300, 100), 10)
    if name == "cifarnet":
        return CifarNet(c, h, 10)
    raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
