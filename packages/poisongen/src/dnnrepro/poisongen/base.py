"""What every poisoning attack here shares: the target, the clean "normal" samples, the victim's
re-training rule and the ART-style interface ``poison(x, y) -> (x_poison, y_poison)``."""

from __future__ import annotations

import abc

import torch
from torch import nn

from dnnrepro.core.errors import ConfigError

from .retrain import (
    Retraining,
    check_images,
    check_labels,
    check_pair,
    flip_labels,
    frozen_copy,
    num_classes_of,
    summed_loss,
)


class PoisoningAttack(abc.ABC):
    """Base of the attacks: a white-box attacker against a victim that re-trains with SGD.

    Args:
        model: the pretrained target (copied; the caller's model is never modified).
        clean_data: (images (N, C, H, W) in ``clip``, labels (N,)) the attacker can see; the
            ``num_normal`` samples whose summed loss the attack raises are drawn from it.
        num_normal: number of clean samples in the attacker's objective (authors: 10).
        retraining: the victim's step (lr 0.05, bias lr 2x by default).
        clip: the valid pixel range of poisons.
        seed: picks the normal samples.
    """

    def __init__(
        self,
        model: nn.Module,
        clean_data,
        num_normal: int = 10,
        retraining: Retraining | None = None,
        clip: tuple[float, float] = (0.0, 1.0),
        seed: int = 0,
    ):
        x, y = check_pair(clean_data, "clean_data")
        if x.ndim != 4:
            raise ConfigError(f"clean_data images must be (N, C, H, W), got shape {tuple(x.shape)}")
        if not (isinstance(num_normal, int) and 1 <= num_normal <= len(x)):
            raise ConfigError(f"num_normal must be an integer in 1..{len(x)}, got {num_normal!r}")
        if not (len(clip) == 2 and clip[0] < clip[1]):
            raise ConfigError(f"clip must be (low, high) with low < high, got {clip!r}")
        self.clip = (float(clip[0]), float(clip[1]))
        self.input_shape = tuple(x.shape[1:])
        check_images(x, self.input_shape, "clean_data", self.clip)
        self.model, self.params = frozen_copy(model)
        self.num_classes = num_classes_of(self.model, self.params, x)
        check_labels(y, self.num_classes, "clean_data labels")
        self.retraining = retraining or Retraining()
        gen = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(x), generator=gen)[:num_normal]
        self.normal = (x[idx].clone(), y[idx].clone())
        self.seed = seed

    def normal_loss(self, params=None) -> float:
        """Summed cross-entropy on the normal samples with ``params`` (default: pretrained)."""
        with torch.no_grad():
            return float(summed_loss(self.model, params or self.params, *self.normal))

    def _check_seeds(self, x: torch.Tensor, y: torch.Tensor) -> None:
        check_pair((x, y), "poison seeds")
        check_images(x, self.input_shape, "poison seeds", self.clip)
        check_labels(y, self.num_classes, "poison seed labels")

    def poison_labels(self, y: torch.Tensor) -> torch.Tensor:
        """The label every poison gets: (y + 1) mod num_classes."""
        return flip_labels(y, self.num_classes)

    @abc.abstractmethod
    def poison(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Poisoned copies of the seeds (x (N, C, H, W), y (N,)): returns (x_poison, y_poison).

        Every attack (direct, generative) implements this; the base class only holds the
        shared checks and the victim's re-training setup."""
