"""ForceRegularizer: the force as a gradient modifier, in your own loop or in the core's ``fit``.

In your own torch loop, attach it to the weights' gradients (``register_post_accumulate_grad_hook``:
the force is added as soon as backward has accumulated each weight's gradient, so the optimizer,
with its weight decay and momentum, sees ``grad + strength * force``), and remove it when done::

    handle = ForceRegularizer(model, strength=1e-3, kind="constant").attach()
    ...  # loss.backward(); optimizer.step() as usual
    handle.remove()

As a callback of the core loop (``dnnrepro.core.train.fit``): the loop adds weight decay to the
gradients and then runs its callbacks' ``after_backward`` before the optimizer (and its momentum) sees them: the order of the
authors' Caffe solver (Regularize, then ForceRegularize, then ComputeUpdateValue). So::

    reg = ForceRegularizer(model, strength=1e-3, kind="constant", per_layer={"conv1": 1, "conv2": 1})
    fit(model, data, config, callbacks=[reg])

Effective coefficient of a layer = ``strength`` (Caffe ``force_decay``) x its multiplier (Caffe
``force_mult``). A negative strength gives repulsive forces (the paper's "discrimination
regularization").
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from dnnrepro.core.errors import ConfigError
from dnnrepro.core.train import Callback

from .force import KINDS, force

LAYER_TYPES = (nn.Conv2d, nn.Linear)


def conv_layer_names(model: nn.Module) -> list[str]:
    """Names (as in ``model.named_modules()``) of every nn.Conv2d in ``model``."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


class _Handle:
    """What :meth:`ForceRegularizer.attach` returns: ``.remove()`` detaches every hook;
    ``.step`` counts the backward passes seen (the schedule of ``until_step``)."""

    def __init__(self):
        self.hooks: list = []
        self.step = 0

    def remove(self) -> None:
        for h in self.hooks:
            h.remove()
        self.hooks.clear()


class ForceRegularizer(Callback):
    """Adds ``strength * multiplier * force(W, kind)`` to each opted-in layer's weight gradient.

    ``per_layer``: None opts in every nn.Conv2d with multiplier 1; a mapping {layer name:
    multiplier} opts in exactly those layers (Caffe's force_mult defaults to 0: layers not named
    feel no force). Named layers must be nn.Conv2d or nn.Linear (a Linear layer's rows are its
    "filters"). ``until_step``: the force is off from this optimizer step on (Caffe force_iter;
    None = never off). A fit callback (stateless: its schedule is the step); ``reg(model, step)``
    applies it by hand. The model argument is ignored (the layers were
    resolved at construction), which keeps the hook valid under DDP wrapping.
    """

    def __init__(
        self,
        model: nn.Module,
        strength: float,
        kind: str = "degradation",
        per_layer: Mapping[str, float] | None = None,
        until_step: int | None = None,
    ):
        if not isinstance(strength, int | float) or not math.isfinite(strength):
            raise ConfigError(f"force strength must be a finite number, not {strength!r}")
        if kind not in KINDS:
            raise ConfigError(f"force kind must be one of {', '.join(KINDS)}, not {kind!r}")
        if until_step is not None and until_step < 0:
            raise ConfigError("until_step must be >= 0 or None")
        modules = dict(model.named_modules())
        if per_layer is None:
            per_layer = {name: 1.0 for name in conv_layer_names(model)}
            if not per_layer:
                raise ConfigError("the model has no nn.Conv2d layer; name layers in per_layer")
        self.layers: list[tuple[str, nn.Module, float]] = []
        for name, mult in per_layer.items():
            if name not in modules:
                raise ConfigError(
                    f"per_layer names {name!r}, which is not a layer of the model; "
                    f"conv layers are: {', '.join(conv_layer_names(model)) or 'none'}"
                )
            module = modules[name]
            if not isinstance(module, LAYER_TYPES):
                raise ConfigError(
                    f"per_layer names {name!r}, a {type(module).__name__}; force regularization "
                    "applies to nn.Conv2d and nn.Linear layers only"
                )
            if not math.isfinite(float(mult)):
                raise ConfigError(f"per_layer multiplier of {name!r} must be finite")
            if mult != 0:
                self.layers.append((name, module, float(mult)))
        self.strength = float(strength)
        self.kind = kind
        self.until_step = until_step

    @property
    def layer_names(self) -> list[str]:
        return [name for name, _, _ in self.layers]

    def active(self, step: int) -> bool:
        return self.strength != 0 and (self.until_step is None or step < self.until_step)

    @torch.no_grad()
    def __call__(self, model: nn.Module | None = None, step: int = 0) -> None:
        if not self.active(step):
            return
        for _, module, mult in self.layers:
            weight = module.weight
            if weight.grad is None:  # frozen or unused this step
                continue
            weight.grad.add_(force(weight, self.kind), alpha=self.strength * mult)

    def after_backward(self, model: nn.Module, step: int) -> None:
        self(model, step)

    def attach(self) -> _Handle:
        """Add the force to each opted-in weight's gradient at every backward pass, through
        ``Tensor.register_post_accumulate_grad_hook``; returns a handle whose ``.remove()``
        detaches it.

        ``until_step`` counts backward passes since ``attach`` (one per optimizer step in a plain
        loop; with gradient accumulation, set ``handle.step`` yourself). Do not also pass the
        regularizer to ``fit`` (the force would be added twice).
        """
        handle = _Handle()

        def hook(param: torch.Tensor, mult: float, counts: bool) -> None:
            if self.active(handle.step):
                with torch.no_grad():
                    param.grad.add_(force(param, self.kind), alpha=self.strength * mult)
            if counts:
                handle.step += 1

        # the first opted-in layer (in module order) counts the passes: backward reaches it last
        # in a feed-forward net, so every layer of one pass sees the same step
        for i, (_, module, mult) in enumerate(self.layers):
            handle.hooks.append(
                module.weight.register_post_accumulate_grad_hook(
                    lambda p, m=mult, c=(i == 0): hook(p, m, c)
                )
            )
        return handle

    def __repr__(self) -> str:
        layers = ", ".join(f"{n}x{m:g}" for n, _, m in self.layers)
        return (
            f"ForceRegularizer(strength={self.strength:g}, kind={self.kind!r}, layers=[{layers}])"
        )
