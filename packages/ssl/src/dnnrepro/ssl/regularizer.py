"""The SSL penalty, the authors' zero-out of tiny weights, and frozen-structure fine-tuning.

    E(W) = E_D(W) + lambda * R(W) + sum_l sum_kind lambda_kind(l) * sum_g ||W_g(l)||_2

R(W) (ordinary weight decay) is the training loop's ``weight_decay``; the group term is
:class:`SSLRegularizer`, a penalty for ``dnnrepro.core.train.fit(penalties=[...])``. The per-layer
coefficient is ``strength * sqrt(|g| / reference) * per_layer``: the sqrt(group size) weighting that
the authors applied by hand through Caffe's ``*_decay_mult`` fields (their CaffeNet column
multipliers are sqrt(column length / 128)).

Optimisation follows the authors' code: plain (momentum) SGD on the subgradient, which is
``lambda * w / ||w_g||`` and 0 for a zero group (no proximal step), then after every update each
weight with |w| < 1e-4 is set to exactly 0 (:func:`zero_small`, Caffe's ``Blob::Zerout``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import nn

from dnnrepro.core.errors import ConfigError
from dnnrepro.core.sparsity import FixedMask
from dnnrepro.core.train import Callback

from .groups import group_matrix, group_norms, group_size, sqrt_multiplier

ZEROUT_THRESHOLD = 1e-4


def prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every Conv2d and Linear of ``model`` by qualified name, in definition order."""
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d | nn.Linear) and name
    }


def output_layer(model: nn.Module) -> str:
    """Name of the last Conv2d/Linear: its rows are the network's outputs and are never removed."""
    layers = prunable_layers(model)
    if not layers:
        raise ConfigError("the model has no Conv2d or Linear layer to regularize")
    return list(layers)[-1]


def residual_convs(model: nn.Module) -> list[str]:
    """Names of the convolutions inside residual blocks (depth-wise SSL's targets).

    A residual block is a module with ``conv1``, ``conv2`` and ``shortcut`` children (the core's
    BasicBlock); the network's first conv and projection shortcuts are excluded, as in the paper.
    """
    names = []
    for name, m in model.named_modules():
        if all(hasattr(m, a) for a in ("conv1", "conv2", "shortcut")):
            names += [f"{name}.conv1", f"{name}.conv2"]
    return names


def _single_input(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) and module.in_channels // module.groups == 1


class SSLRegularizer:
    """sum over layers and group kinds of lambda_kind(l) * sum_g ||W_g||_2; call it as a penalty.

    Args:
        model: the network (its Conv2d and Linear weights are looked up by name once).
        groups: the kinds to regularize (``filter``, ``channel``, ``shape``, ``layer``, ``row``,
            ``column``), applied to every layer in ``layers``; or a mapping layer name -> kinds.
        strength: lambda, the base coefficient (> 0).
        per_layer: extra multipliers, ``{layer: m}`` or ``{layer: {kind: m}}``; 0 switches a group
            kind off for that layer.
        layers: the layers to regularize (default: every Conv2d and Linear).
        sqrt_scaling: multiply by sqrt(|g| / reference) per layer and kind.
        reference: the group size whose multiplier is 1 (default: the group size of the first
            regularized layer of that kind).

    The output layer's rows (filter/row groups) are skipped unless named in ``per_layer``:
    removing an output would change what the network predicts. Channel groups of a conv with one
    input channel are skipped too: that group is the whole layer (depth, not channels).
    """

    def __init__(
        self,
        model: nn.Module,
        groups: Sequence[str] | Mapping[str, Sequence[str]] = ("filter", "channel"),
        strength: float = 1e-3,
        per_layer: Mapping[str, float | Mapping[str, float]] | None = None,
        layers: Iterable[str] | None = None,
        sqrt_scaling: bool = True,
        reference: Mapping[str, int] | None = None,
    ):
        if not (isinstance(strength, int | float) and strength > 0):
            raise ConfigError(f"SSL strength must be a number > 0, not {strength!r}")
        available = prunable_layers(model)
        if isinstance(groups, Mapping):
            plan = {name: tuple(kinds) for name, kinds in groups.items()}
        else:
            names = list(layers) if layers is not None else list(available)
            plan = {name: tuple(groups) for name in names}
        unknown = sorted(set(plan) - set(available))
        if unknown:
            raise ConfigError(
                f"SSL: no Conv2d/Linear named {unknown}; the model has {list(available)}"
            )
        per_layer = dict(per_layer or {})
        bad = sorted(set(per_layer) - set(available))
        if bad:
            raise ConfigError(f"SSL per_layer names unknown layers {bad}")
        last = output_layer(model)
        refs = dict(reference or {})
        self.strength = float(strength)
        self.terms: list[tuple[str, nn.Module, str, int, float]] = []
        for name, kinds in plan.items():
            module = available[name]
            cg = getattr(module, "groups", 1)
            for kind in kinds:
                size = group_size(module.weight, kind, cg)
                extra = per_layer.get(name, 1.0)
                mult = extra.get(kind, 1.0) if isinstance(extra, Mapping) else float(extra)
                if name == last and kind in ("filter", "row") and name not in per_layer:
                    mult = 0.0
                if mult < 0:
                    raise ConfigError(f"SSL multiplier for {name}/{kind} must be >= 0")
                if mult == 0 or (kind in ("channel", "column") and _single_input(module)):
                    continue  # one input channel: its "channel group" is the whole layer
                if sqrt_scaling:
                    mult *= sqrt_multiplier(size, refs.setdefault(kind, size))
                self.terms.append((name, module, kind, cg, mult))
        if not self.terms:
            raise ConfigError("SSL: no group is regularized (all multipliers are 0)")

    def coefficients(self) -> dict[str, float]:
        """lambda_kind(l) per ``layer/kind``: strength times the per-layer multiplier."""
        return {f"{n}/{k}": self.strength * m for n, _, k, _, m in self.terms}

    def __call__(self, model: nn.Module | None = None) -> torch.Tensor:
        total = None
        for _, module, kind, cg, mult in self.terms:
            term = group_norms(module.weight, kind, cg).sum() * (self.strength * mult)
            total = term if total is None else total + term
        return total

    def layer_kinds(self) -> dict[str, list[str]]:
        """Which kinds are regularized on which layer."""
        out: dict[str, list[str]] = {}
        for name, _, kind, _, _ in self.terms:
            out.setdefault(name, []).append(kind)
        return out


@torch.no_grad()
def zero_small(model: nn.Module, threshold: float = ZEROUT_THRESHOLD) -> int:
    """Set every Conv2d/Linear weight with |w| < threshold to exactly 0; returns how many are 0.

    The authors' code does this after every update so groups driven near zero land on zero.
    """
    zeros = 0
    for m in prunable_layers(model).values():
        m.weight.masked_fill_(m.weight.abs() < threshold, 0.0)
        zeros += int((m.weight == 0).sum())
    return zeros


class ZeroSmall(Callback):
    """A fit callback: :func:`zero_small` after each optimizer step (stateless)."""

    def __init__(self, threshold: float = ZEROUT_THRESHOLD):
        self.threshold = threshold

    def after_step(self, model: nn.Module, step: int) -> None:
        zero_small(model, self.threshold)


def zero_small_hook(threshold: float = ZEROUT_THRESHOLD) -> ZeroSmall:
    """The fit callback that runs :func:`zero_small` after each optimizer step."""
    return ZeroSmall(threshold)


@torch.no_grad()
def zero_weak_groups(
    model: nn.Module, layer_kinds: Mapping[str, Sequence[str]], rms_threshold: float = 1e-3
) -> dict[str, int]:
    """Zero every group whose root-mean-square weight is below ``rms_threshold``.

    The step between SSL and fine-tuning: groups the penalty drove close to zero become exactly
    zero, so the structure can be frozen and removed. Returns the number zeroed per layer/kind.
    """
    layers = prunable_layers(model)
    counts = {}
    for name, kinds in layer_kinds.items():
        module = layers[name]
        cg = getattr(module, "groups", 1)
        for kind in kinds:
            view = group_matrix(module.weight, kind, cg)
            weak = view.pow(2).mean(dim=1).sqrt() < rms_threshold
            if weak.any():
                # group_matrix may return a permuted copy: find each group's flat positions
                flat = torch.arange(module.weight.numel()).reshape(module.weight.shape)
                members = group_matrix(flat, kind, cg)[weak].flatten()
                module.weight.view(-1)[members] = 0.0
            counts[f"{name}/{kind}"] = int(weak.sum())
    return counts


def structure_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """Keep-masks for frozen-structure fine-tuning (Caffe's DISCONNECTED_GRPWISE).

    An entry stays connected only if both its row (filter / output neuron) and its column (shape
    fibre / input feature) of the lowered matrix hold a non-zero weight; every other entry is held
    at 0 during fine-tuning.
    """
    masks = {}
    for name, m in prunable_layers(model).items():
        w = m.weight.detach()
        rows = w.reshape(w.shape[0], -1).ne(0).any(dim=1)
        cols = w.reshape(w.shape[0], -1).ne(0).any(dim=0)
        masks[name] = (rows[:, None] & cols[None, :]).reshape(w.shape)
    return masks


def freeze_structure(model: nn.Module) -> FixedMask:
    """The fit callback (a core FixedMask) that keeps every zero row and column of the model at 0.

    It zeroes the masked gradients and, after each step, the masked weights (momentum can carry
    old velocity into masked entries).
    """
    return FixedMask({f"{name}.weight": mask for name, mask in structure_masks(model).items()})
