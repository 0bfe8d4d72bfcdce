"""The victim's re-training rule and the quantities every attack and evaluation share.

The authors' threat model (their MXNet scripts): the victim holds a pretrained network and
re-trains it on newly collected data. Re-training is plain SGD, batch 1, with the bias learning
rate twice the weight learning rate, always starting from the pretrained weights. The attacker's
objective is the *normal loss*: the summed cross-entropy on ``num_normal`` clean samples after the
victim took that step on a poisoned point.

Everything here is functional (``torch.func.functional_call`` on a dict of tensors), so the
pretrained weights are never modified in place: "reset to the pretrained weights before every
pseudo-update" holds by construction.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from dnnrepro.core.errors import ConfigError, DataError
from dnnrepro.core.train import check_pair  # noqa: F401  (re-exported: base, evaluate, detect)

Params = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Retraining:
    """One SGD step of the victim: ``w -= lr * g`` for weights, ``b -= bias_lr_mult * lr * g``."""

    lr: float = 0.05
    bias_lr_mult: float = 2.0

    def __post_init__(self):
        if not (self.lr > 0 and self.bias_lr_mult > 0):
            raise ConfigError(
                f"re-training lr and bias_lr_mult must be > 0 (got {self.lr}, {self.bias_lr_mult})"
            )

    def rate(self, name: str) -> float:
        """Learning rate of the parameter called ``name`` (biases get ``bias_lr_mult`` times)."""
        return self.lr * (self.bias_lr_mult if name.endswith("bias") else 1.0)


def frozen_copy(model: nn.Module) -> tuple[nn.Module, Params]:
    """A private eval-mode copy of ``model`` and its parameters as detached tensors.

    Attacks and evaluations work on this copy, so the caller's model is never touched.
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model must be a torch.nn.Module, not {type(model).__name__}")
    clone = copy.deepcopy(model).eval()
    for p in clone.parameters():
        p.requires_grad_(False)
    params = {k: v.detach().clone() for k, v in clone.named_parameters()}
    return clone, params


def sgd_step(
    model: nn.Module,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    rule: Retraining,
    create_graph: bool = False,
) -> Params:
    """Parameters after one SGD step on the batch (x (B,C,H,W), y (B,)), mean cross-entropy.

    With ``create_graph`` the result stays differentiable with respect to ``x`` (and to any
    parameter that requires grad): this is the one-step unroll the exact attack differentiates.
    """
    work = {k: v if v.requires_grad else v.detach().requires_grad_(True) for k, v in params.items()}
    loss = F.cross_entropy(functional_call(model, work, (x,)), y)
    grads = torch.autograd.grad(loss, list(work.values()), create_graph=create_graph)
    return {
        k: (work[k] if create_graph else work[k].detach()) - rule.rate(k) * g
        for (k, g) in zip(work, grads, strict=True)
    }


def summed_loss(
    model: nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """Summed cross-entropy of ``model`` with ``params`` on (x, y): the authors' "normal loss"."""
    return F.cross_entropy(functional_call(model, dict(params), (x,)), y, reduction="sum")


@torch.no_grad()
def accuracy_and_loss(
    model: nn.Module,
    params: Mapping[str, torch.Tensor],
    data: tuple[torch.Tensor, torch.Tensor],
    batch_size: int = 1000,
) -> tuple[float, float]:
    """(accuracy in [0, 1], mean cross-entropy) of ``model`` with ``params`` on ``data``."""
    x, y = data
    correct, total = 0, 0.0
    for i in range(0, len(x), batch_size):
        logits = functional_call(model, dict(params), (x[i : i + batch_size],))
        correct += int((logits.argmax(1) == y[i : i + batch_size]).sum())
        total += float(F.cross_entropy(logits, y[i : i + batch_size], reduction="sum"))
    return correct / len(x), total / len(x)


def flip_labels(y: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """The poison label: (y + 1) mod num_classes.

    The authors' code writes y + 1 without wrapping, so a 9 became the nonexistent class 10; we
    wrap, which keeps every label a valid class.
    """
    check_labels(y, num_classes, "labels")
    return (y + 1) % num_classes


def check_labels(y: torch.Tensor, num_classes: int, what: str) -> None:
    """Raise DataError unless ``y`` is a 1-D integer tensor of classes 0..num_classes-1."""
    if not torch.is_tensor(y) or y.ndim != 1 or y.dtype not in (torch.int64, torch.int32):
        raise DataError(f"{what}: expected a 1-D int64 tensor of class indices")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise DataError(
            f"{what}: class indices must lie in 0..{num_classes - 1}, got {int(y.min())}..{int(y.max())}"
        )


def check_images(
    x: torch.Tensor,
    shape: tuple[int, ...],
    what: str,
    value_range: tuple[float, float] | None = None,
) -> None:
    """Raise DataError unless ``x`` is a float tensor (N, *shape) inside ``value_range``."""
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise DataError(
            f"{what}: expected a floating-point image tensor (N, {', '.join(map(str, shape))})"
        )
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != tuple(shape):
        raise DataError(
            f"{what}: expected images of shape (N, {', '.join(map(str, shape))}), got "
            f"{tuple(x.shape)}; reshape them to the target model's input shape"
        )
    if value_range is not None and len(x):
        lo, hi = value_range
        if float(x.min()) < lo - 1e-6 or float(x.max()) > hi + 1e-6:
            raise DataError(
                f"{what}: pixel values must lie in [{lo:g}, {hi:g}], got "
                f"[{float(x.min()):.3g}, {float(x.max()):.3g}]; rescale the images first"
            )


def num_classes_of(model: nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor) -> int:
    """Number of logits the model produces for one example."""
    with torch.no_grad():
        return int(functional_call(model, dict(params), (x[:1],)).shape[1])
