"""What every poisoning attack here shares: the target, the clean "normal" samples, the victim's
re-training rule and the ART-style interface ``poison(x, y) -> (x_poison, y_poison)``."""

from __future__ import annotations

import abc

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

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

    Adaptive attacker (issue 22 item 3): :meth:`set_evasion` makes every poison keep its loss
    under the pretrained model (the loss detector's score) below a known threshold, by a
    projection: signed gradient steps on the poison's cross-entropy until it lies below
    ``margin * threshold``, inside ``clip``.
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
        self.evade_threshold: float | None = None
        self.evasion_stats = {"projected": 0, "still_above": 0}

    def set_evasion(
        self, detector=None, margin: float = 0.9, steps: int = 100, step_size: float = 0.01
    ):
        """Keep each poison's loss below ``margin`` x the detector's threshold; returns self.

        ``detector``: a :class:`~dnnrepro.poisongen.LossDetector` (its ``threshold`` is used), a
        threshold in nats, or None to switch evasion off. ``steps`` signed gradient steps of
        ``step_size`` at most per projection; poisons still above afterwards are counted in
        ``evasion_stats['still_above']``.
        """
        if detector is None:
            self.evade_threshold = None
            return self
        tau = float(getattr(detector, "threshold", detector))
        if not tau > 0:
            raise ConfigError(f"the evasion threshold must be a loss > 0, got {tau!r}")
        if not (0 < margin <= 1 and isinstance(steps, int) and steps >= 1 and step_size > 0):
            raise ConfigError(
                "set_evasion needs 0 < margin <= 1, an integer steps >= 1 and step_size > 0"
            )
        self.evade_threshold = tau
        self.evade_margin, self.evade_steps, self.evade_step_size = margin, steps, step_size
        self.evasion_stats = {"projected": 0, "still_above": 0}
        return self

    def poison_losses(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-poison cross-entropy (N,) under the pretrained model: the detector's score."""
        with torch.no_grad():
            logits = functional_call(self.model, self.params, (x,))
            return F.cross_entropy(logits, y, reduction="none")

    def project(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Poisons x (N, C, H, W) with labels y moved until their loss is under the evasion
        target (no-op when evasion is off). Only poisons above the target move."""
        if self.evade_threshold is None:
            return x
        target = self.evade_margin * self.evade_threshold
        lo, hi = self.clip
        x = x.detach().clone()
        above = self.poison_losses(x, y) > target
        self.evasion_stats["projected"] += int(above.sum())
        for _ in range(self.evade_steps):
            if not bool(above.any()):
                break
            xg = x.clone().requires_grad_(True)
            losses = F.cross_entropy(
                functional_call(self.model, self.params, (xg,)), y, reduction="none"
            )
            (g,) = torch.autograd.grad(losses.sum(), xg)
            mask = above.view(-1, *([1] * (x.ndim - 1)))
            x = (x - self.evade_step_size * g.sign() * mask).clamp_(lo, hi)
            above = self.poison_losses(x, y) > target
        self.evasion_stats["still_above"] += int(above.sum())
        return x

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
