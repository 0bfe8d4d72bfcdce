"""ImageNet-pretrained torchvision ResNets as adaptation backbones, from a weights file you supply.

Nothing is downloaded at run time. Fetch a torchvision checkpoint once on a machine with internet
access (for example ``resnet50-11ad3fa6.pth``, torchvision's ``ResNet50_Weights.IMAGENET1K_V2``,
from https://download.pytorch.org/models/) and pass its path::

    from dnnrepro.conv_m_da import adapt
    from dnnrepro.conv_m_da.backbones import torchvision_resnet

    net = torchvision_resnet("resnet50", "weights/resnet50-11ad3fa6.pth", num_classes=31)
    result = adapt(net, (xs, ys), xt, "dann", bottleneck=256, bottleneck_dropout=0.5)

:func:`torchvision_resnet` returns a :class:`ResNetBackbone` with the attributes ``adapt`` expects
(``features``, ``feature_dim``, ``in_channels``, ``num_classes``): ``features`` is the ResNet up to
its global average pool, preceded by ImageNet's input normalization, so images go in as
(N, 3, H, W) floats in [0, 1] (what :func:`dnnrepro.conv_m_da.office.load_domain` returns);
``fc`` is a new (feature_dim -> num_classes) layer. The file's ``fc.*`` entries (ImageNet's 1000
classes) are not used.

Accepted files: a state dict saved with ``torch.save`` (torchvision's ``.pth`` files, loaded with
``weights_only=True``, so a file cannot run code), optionally under a ``"state_dict"`` or
``"model"`` key and with a ``"module."`` prefix (DataParallel checkpoints), or a ``.safetensors``
file. torchvision itself is an optional dependency (``pip install
"dnnrepro-conv-m-da[torchvision]"``, a release matching your torch).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from dnnrepro.core.errors import ConfigError, DataError

# torchvision architecture name -> width of the pooled features
RESNETS = {"resnet18": 512, "resnet34": 512, "resnet50": 2048, "resnet101": 2048, "resnet152": 2048}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _torchvision_models():
    """torchvision.models, or a ConfigError saying how to get it."""
    try:
        import torchvision.models as models
    except Exception as exc:  # ImportError, or a build that does not match the installed torch
        raise ConfigError(
            "the torchvision backbone needs torchvision, which "
            + ("is not installed" if isinstance(exc, ImportError) else f"failed to import ({exc})")
            + f" (torch {torch.__version__}): pip install the torchvision release built for "
            "this torch, e.g. pip install 'dnnrepro-conv-m-da[torchvision]'"
        ) from exc
    return models


class Normalize(nn.Module):
    """(N, 3, H, W) in [0, 1] -> (x - mean) / std per channel (ImageNet's statistics by default)."""

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ResNetBackbone(nn.Module):
    """A torchvision ResNet as ``features`` (N, 3, H, W) -> (N, feature_dim) plus a new ``fc``.

    Attributes: ``arch``, ``in_channels`` (3), ``feature_dim``, ``num_classes``, ``weights`` (the
    file loaded, or None). ``forward``: (N, 3, H, W) -> (N, num_classes) logits.
    """

    def __init__(self, resnet: nn.Module, arch: str, num_classes: int, normalize: bool = True):
        super().__init__()
        layers: list[tuple[str, nn.Module]] = [("normalize", Normalize())] if normalize else []
        # torchvision's ResNet.forward, minus its fc: the same module names as in the weights file
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            layers.append((name, getattr(resnet, name)))
        layers += [("avgpool", resnet.avgpool), ("flatten", nn.Flatten())]
        self.features = nn.Sequential(OrderedDict(layers))
        self.arch, self.in_channels = arch, 3
        self.feature_dim, self.num_classes = RESNETS[arch], num_classes
        self.fc = nn.Linear(self.feature_dim, num_classes)
        self.weights: str | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ConfigError(f"{self.arch} expects images (N, 3, H, W), got {tuple(x.shape)}")
        return self.fc(self.features(x))


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a torchvision-style weights file (module doc); DataError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"ImageNet weights file {path} not found: download a torchvision checkpoint (e.g. "
            "resnet50-11ad3fa6.pth from https://download.pytorch.org/models/) on a machine with "
            f"internet access and copy it to {path}; nothing is downloaded at run time"
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(
            f"{path} is not a readable weights file ({type(exc).__name__}: {exc}); expected a "
            "state dict saved with torch.save (torchvision's .pth) or a .safetensors file"
        ) from exc
    if isinstance(state, dict):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if (
        not isinstance(state, dict)
        or not state
        or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items())
    ):
        raise DataError(
            f"{path} does not hold a state dict (a mapping of parameter names to tensors); "
            "save one with torch.save(model.state_dict(), path)"
        )
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def torchvision_resnet(
    arch: str = "resnet50",
    weights: str | os.PathLike | None = None,
    *,
    num_classes: int,
    normalize: bool = True,
) -> ResNetBackbone:
    """torchvision's ``arch`` with the backbone weights of the file ``weights`` (never downloaded).

    ``arch``: one of :data:`RESNETS`. ``weights``: path of the user's torchvision checkpoint; None
    builds the network randomly initialized (no ImageNet initialization). ``num_classes``: the
    classes of the adaptation task (the new ``fc``). ``normalize``: prepend ImageNet's input
    normalization (inputs in [0, 1]). ConfigError without (a working) torchvision or for an
    unknown arch; DataError when the file is missing, unreadable, or not this arch's weights.
    """
    if arch not in RESNETS:
        raise ConfigError(f"unknown backbone {arch!r}; choose one of {', '.join(RESNETS)}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError(f"num_classes must be an int >= 2, not {num_classes!r}")
    models = _torchvision_models()
    resnet = getattr(models, arch)(weights=None)  # architecture only: weights=None never downloads
    if weights is not None:
        state = read_state_dict(weights)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        expected = {k: v for k, v in resnet.state_dict().items() if not k.startswith("fc.")}
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        wrong = sorted(
            k for k in expected.keys() & state.keys() if expected[k].shape != state[k].shape
        )
        if missing or unexpected or wrong:
            detail = "; ".join(
                f"{what} {len(keys)} (e.g. {', '.join(keys[:3])})"
                for what, keys in (
                    ("missing", missing),
                    ("unexpected", unexpected),
                    ("wrong shape", wrong),
                )
                if keys
            )
            raise DataError(f"{weights} does not hold torchvision {arch} weights: {detail}")
        resnet.load_state_dict(state, strict=False)  # strict on every key but fc (checked above)
    net = ResNetBackbone(resnet, arch, num_classes, normalize)
    net.weights = None if weights is None else str(weights)
    return net
