"""Pruning masks kept through training: which layers to prune, magnitude pruning, a fixed mask.

- :func:`prunable_layers`: the named Conv2d / Linear modules of a model;
- :func:`magnitude_prune`: the keep mask that drops the smallest-magnitude share of a tensor;
- :class:`FixedMask`: a fit :class:`~dnnrepro.core.train.Callback` holding 0/1 masks on named
  parameters. It zeroes the masked gradients after backward (so momentum never moves a pruned
  weight) and the masked weights after every optimizer step (so weight decay or an adaptive
  optimizer cannot revive one); its masks are in fit's checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .errors import ConfigError
from .train import Callback


def prunable_layers(
    model: nn.Module, types: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)
) -> dict[str, nn.Module]:
    """{qualified module name: module} for every module of ``model`` that is one of ``types``,
    in ``named_modules`` order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, types)}


@torch.no_grad()
def magnitude_prune(tensor: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Keep mask (bool, shape of ``tensor``) that drops ``int(sparsity * numel)`` entries of
    smallest magnitude.

    Ties at the threshold are broken by position (a stable sort), so exactly that many entries
    are dropped. ``sparsity`` in [0, 1]; anything else raises ConfigError.
    """
    if (
        isinstance(sparsity, bool)
        or not isinstance(sparsity, int | float)
        or not 0 <= sparsity <= 1
    ):
        raise ConfigError(f"sparsity must be a number in [0, 1], not {sparsity!r}")
    keep = torch.ones(tensor.shape, dtype=torch.bool, device=tensor.device)
    drop = int(sparsity * tensor.numel())
    if drop > 0:
        order = torch.argsort(tensor.detach().abs().flatten(), stable=True)
        keep.view(-1)[order[:drop]] = False
    return keep


class FixedMask(Callback):
    """Fixed masks on named parameters for :func:`~dnnrepro.core.train.fit`.

    ``masks``: {parameter name as in ``model.named_parameters()``: mask of the parameter's shape};
    nonzero / True entries are kept, the rest held at zero. The names are checked against the
    model when training starts (ConfigError on an unknown name or a shape mismatch).
    """

    def __init__(self, masks: Mapping[str, torch.Tensor]):
        if not masks:
            raise ConfigError("FixedMask needs at least one mask")
        self.masks = {name: torch.as_tensor(m).detach().bool() for name, m in masks.items()}
        self._params: dict[str, nn.Parameter] = {}

    def _bind(self, model: nn.Module) -> None:
        params = dict(model.named_parameters())
        for name, mask in self.masks.items():
            if name not in params:
                raise ConfigError(f"FixedMask: the model has no parameter {name!r}")
            if params[name].shape != mask.shape:
                raise ConfigError(
                    f"FixedMask: mask {name!r} has shape {tuple(mask.shape)}, the parameter "
                    f"{tuple(params[name].shape)}"
                )
            self.masks[name] = mask.to(params[name].device)
        self._params = {name: params[name] for name in self.masks}

    @torch.no_grad()
    def apply(self, model: nn.Module) -> None:
        """Zero the masked weights of ``model`` now."""
        self._bind(model)
        for name, p in self._params.items():
            p.mul_(self.masks[name])

    def on_train_start(self, model: nn.Module) -> None:
        self.apply(model)

    @torch.no_grad()
    def after_backward(self, model: nn.Module, step: int) -> None:
        for name, p in self._params.items():
            if p.grad is not None:
                p.grad.mul_(self.masks[name])

    @torch.no_grad()
    def after_step(self, model: nn.Module, step: int) -> None:
        for name, p in self._params.items():
            p.mul_(self.masks[name])

    def nonzeros(self) -> dict[str, int]:
        """{parameter name: number of weights kept}."""
        return {name: int(m.sum()) for name, m in self.masks.items()}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"mask.{name}": m for name, m in self.masks.items()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        masks = {k[len("mask.") :]: v.bool() for k, v in state.items() if k.startswith("mask.")}
        if set(masks) != set(self.masks):
            raise ConfigError(
                "FixedMask: the checkpoint masks other parameters "
                f"({sorted(masks)} vs {sorted(self.masks)}); rerun with the same masks"
            )
        self.masks = masks
        self._params = {}
