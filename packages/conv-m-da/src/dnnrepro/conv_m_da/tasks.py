"""The offline digit adaptation tasks: two embedded datasets brought to one image shape.

Every task brings both domains to 1 x size x size (``size`` = :data:`IMAGE_SIZE` = 16 unless
given): 28x28 MNIST and syndigits images are shrunk (antialiased bilinear), the 8x8 scikit-learn
digits are UP-sampled bilinearly (the digit then fills the frame, while MNIST digits sit in a
20x20 box: part of the domain shift, as with MNIST <-> USPS). Values stay in [0, 1].

Tasks (source -> target), mirroring the paper's digit-scale counterparts:

- small profile, embedded data: ``syndigits->mnist5k`` (font-rendered digits to real handwriting,
  like SynNumbers -> SVHN), ``mnist5k->digits`` and ``digits->mnist5k`` (like MNIST <-> USPS);
- paper profile, full MNIST (60,000 / 10,000 images, files the user supplies): ``mnist->digits``,
  ``digits->mnist``, ``syndigits->mnist`` and ``mnist->syndigits`` (:data:`FULL_MNIST_TASKS`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dnnrepro.core import data as core_data
from dnnrepro.core.errors import ConfigError

TASKS = {
    "syndigits->mnist5k": ("syndigits", "mnist5k"),
    "mnist5k->digits": ("mnist5k", "digits"),
    "digits->mnist5k": ("digits", "mnist5k"),
    "mnist->digits": ("mnist", "digits"),
    "digits->mnist": ("digits", "mnist"),
    "syndigits->mnist": ("syndigits", "mnist"),
    "mnist->syndigits": ("mnist", "syndigits"),
}
SMALL_TASKS = ("syndigits->mnist5k", "mnist5k->digits", "digits->mnist5k")
FULL_MNIST_TASKS = ("mnist->digits", "digits->mnist", "syndigits->mnist", "mnist->syndigits")
IMAGE_SIZE = 16

Loader = Callable[[str, str], tuple[torch.Tensor, torch.Tensor]]


def resize(x: torch.Tensor, size: int = IMAGE_SIZE) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, size, size), bilinear (antialiased when shrinking), clamped to [0, 1]."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    shrink = x.shape[-1] > size
    out = F.interpolate(
        x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink
    )
    return out.clamp_(0.0, 1.0)


@dataclass
class Task:
    """One adaptation task's tensors. ``target_train`` keeps its labels for reference only: the
    trainer never receives them (``adapt`` drops them)."""

    name: str
    source_train: tuple[torch.Tensor, torch.Tensor]
    source_test: tuple[torch.Tensor, torch.Tensor]
    target_train: tuple[torch.Tensor, torch.Tensor]
    target_test: tuple[torch.Tensor, torch.Tensor]


def load_task(
    name: str, loader: Loader | None = None, limit: int | None = None, size: int = IMAGE_SIZE
) -> Task:
    """Load task ``name`` (see TASKS) through ``loader(dataset, split)`` (default: the core's).

    ``limit`` keeps ``limit`` evenly spaced images of each split (smoke runs).
    """
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    loader = loader or core_data.load
    src, tgt = TASKS[name]

    def get(dataset: str, split: str):
        x, y = loader(dataset, split)
        if limit is not None and len(x) > limit:
            # an evenly strided subset keeps every class (the files are not shuffled)
            idx = torch.linspace(0, len(x) - 1, limit).round().long()
            x, y = x[idx], y[idx]
        return resize(x, size), y

    return Task(name, get(src, "train"), get(src, "test"), get(tgt, "train"), get(tgt, "test"))
