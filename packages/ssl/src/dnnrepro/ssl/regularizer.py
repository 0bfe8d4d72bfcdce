"""The SSL penalty, the authors' zero-out of tiny weights, and frozen-structure fine-tuning.

    E(W) = E_D(W) + lambda * R(W) + sum_l sum_kind lambda_kind(l) * sum_g ||W_g(l)||_2

R(W) (ordinary weight decay) is the training loop's ``weight_decay``; the group term is
:class:`SSLRegularizer`, a penalty for ``dnnrepro.core.train.fit(penalties=[...])``. The per-layer
coefficient is ``strength * sqrt(|g| / reference) * per_layer``: the sqrt(group size) weighting that
the authors applied by hand through Caffe's ``*_decay_mult`` fields (their CaffeNet column
multipliers are sqrt(column length / 128)).

Optimisation follows the authors' code by default: plain (momentum) SGD on the subgradient, which
is ``lambda * w / ||w_g||`` and 0 for a zero group, then after every update each weight with
|w| < 1e-4 is set to exactly 0 (:func:`zero_small`, Caffe's ``Blob::Zerout``).

``SSLRegularizer(..., proximal=True)`` replaces the subgradient by the proximal (shrinkage) step of
group lasso after each optimizer step, w_g <- w_g * max(0, 1 - lr * lambda_g / ||w_g||), which puts
a group at exactly 0 once its norm falls below lr * lambda_g. Behind a BatchNorm a conv's weight
is scale-free, so the subgradient shrinks it without ever reaching 0; ``block_groups`` (one group
over a residual branch's last conv *and* its BN scale, :func:`residual_block_groups`) with the
proximal step is what removes residual blocks. Attach it to any optimizer with
``reg.attach(optimizer)`` (a step post-hook; ``.remove()`` detaches it) or, in the core's fit, with
the :class:`ProximalStep` callback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import nn

from dnnrepro.core import sparsity
from dnnrepro.core.errors import ConfigError
from dnnrepro.core.sparsity import FixedMask
from dnnrepro.core.train import Callback

from .groups import _SafeNorm, group_matrix, group_norms, group_size, sqrt_multiplier

ZEROUT_THRESHOLD = 1e-4


def prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every Conv2d and Linear of ``model`` by qualified name (the model itself excluded)."""
    return {name: m for name, m in sparsity.prunable_layers(model).items() if name}


def output_layer(model: nn.Module) -> str:
    """Name of the last Conv2d/Linear: its rows are the network's outputs and are never removed."""
    layers = prunable_layers(model)
    if not layers:
        raise ConfigError("the model has no Conv2d or Linear layer to regularize")
    return list(layers)[-1]


def residual_blocks(model: nn.Module) -> list[str]:
    """Names of the residual blocks: modules with ``conv1``, ``conv2`` and ``bn2`` children and a
    ``shortcut`` (the core's BasicBlock) or ``downsample`` (torchvision's BasicBlock) attribute."""
    return [
        name
        for name, m in model.named_modules()
        if name
        and all(isinstance(getattr(m, a, None), nn.Module) for a in ("conv1", "conv2", "bn2"))
        and (hasattr(m, "shortcut") or hasattr(m, "downsample"))
    ]


def residual_convs(model: nn.Module) -> list[str]:
    """Names of the convolutions inside residual blocks (depth-wise SSL's targets).

    The network's first conv and projection shortcuts are excluded, as in the paper.
    """
    return [f"{b}.{c}" for b in residual_blocks(model) for c in ("conv1", "conv2")]


def residual_block_groups(model: nn.Module) -> dict[str, list[str]]:
    """{block: [its conv2 weight, its bn2 weight]}: one group per residual block that covers the
    branch's last conv and the BN scale after it (both at 0: the branch adds a constant)."""
    return {b: [f"{b}.conv2.weight", f"{b}.bn2.weight"] for b in residual_blocks(model)}


def _single_input(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) and module.in_channels // module.groups == 1


class SSLRegularizer(nn.Module):
    """sum over layers and group kinds of lambda_kind(l) * sum_g ||W_g||_2: a penalty module.

    ``reg()`` (or ``reg(model)``) returns the scalar penalty; add it to the loss, or pass the
    module to the core's ``fit(penalties=[reg])``. With ``proximal=True`` it returns the same value
    without gradient, and the shrinkage step does the work after each optimizer step
    (:meth:`attach`, :class:`ProximalStep`).

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
        block_groups: extra groups spanning several parameters, ``{group name: [parameter
            names]}`` (e.g. :func:`residual_block_groups`); each has multiplier
            sqrt(size / first such size) when ``sqrt_scaling``.
        proximal: use the proximal step instead of the subgradient (module doc).

    The output layer's rows (filter/row groups) are skipped unless named in ``per_layer``:
    removing an output would change what the network predicts. Channel groups of a conv with one
    input channel are skipped too: that group is the whole layer (depth, not channels).
    """

    def __init__(
        self,
        model: nn.Module,
        groups: Sequence[str] | Mapping[str, Sequence[str]] | None = ("filter", "channel"),
        strength: float = 1e-3,
        per_layer: Mapping[str, float | Mapping[str, float]] | None = None,
        layers: Iterable[str] | None = None,
        sqrt_scaling: bool = True,
        reference: Mapping[str, int] | None = None,
        block_groups: Mapping[str, Sequence[str]] | None = None,
        proximal: bool = False,
    ):
        super().__init__()
        if not (isinstance(strength, int | float) and strength > 0):
            raise ConfigError(f"SSL strength must be a number > 0, not {strength!r}")
        available = prunable_layers(model)
        self.proximal = bool(proximal)
        if groups is None:
            plan = {}
        elif isinstance(groups, Mapping):
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
        # plain attributes, not submodules: the regularizer must not own the model's layers
        object.__setattr__(self, "terms", [])
        self.terms: list[tuple[str, nn.Module, str, int, float]]
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
        params = dict(model.named_parameters())
        object.__setattr__(self, "blocks", [])
        self.blocks: list[tuple[str, list[torch.Tensor], float]]
        first = None
        for gname, pnames in (block_groups or {}).items():
            missing = [p for p in pnames if p not in params]
            if missing or not pnames:
                raise ConfigError(f"SSL block group {gname!r}: no parameters named {missing}")
            tensors = [params[p] for p in pnames]
            size = sum(t.numel() for t in tensors)
            first = first or size
            mult = sqrt_multiplier(size, first) if sqrt_scaling else 1.0
            self.blocks.append((gname, tensors, mult))
        if not self.terms and not self.blocks:
            raise ConfigError("SSL: no group is regularized (all multipliers are 0)")

    def coefficients(self) -> dict[str, float]:
        """lambda_kind(l) per ``layer/kind``: strength times the per-layer multiplier."""
        out = {f"{n}/{k}": self.strength * m for n, _, k, _, m in self.terms}
        out.update({f"{n}/block": self.strength * m for n, _, m in self.blocks})
        return out

    def forward(self, model: nn.Module | None = None) -> torch.Tensor:
        """The penalty, a scalar tensor (``model`` is accepted for fit's penalty call, unused)."""
        total = None
        for _, module, kind, cg, mult in self.terms:
            term = group_norms(module.weight, kind, cg).sum() * (self.strength * mult)
            total = term if total is None else total + term
        for _, tensors, mult in self.blocks:
            flat = torch.cat([t.reshape(-1) for t in tensors]).unsqueeze(0)
            term = _SafeNorm.apply(flat).sum() * (self.strength * mult)
            total = term if total is None else total + term
        return total.detach() if self.proximal else total

    @torch.no_grad()
    def prox_(self, lr: float) -> int:
        """One proximal step of the group lasso with step size ``lr``, in place.

        Each group becomes w_g * max(0, 1 - lr * lambda_g / ||w_g||): groups whose norm is at most
        lr * lambda_g are set to exactly 0. Returns the number of groups that are 0 afterwards.
        """
        zero = 0
        for _, module, kind, cg, mult in self.terms:
            w = module.weight
            flat = torch.arange(w.numel(), device=w.device).reshape(w.shape)
            idx = group_matrix(flat, kind, cg)  # (groups, size) flat positions of each group
            rows = w.reshape(-1)[idx]
            norms = rows.pow(2).sum(dim=1).sqrt()
            scale = (1 - lr * self.strength * mult / norms.clamp_min(1e-30)).clamp_min(0.0)
            w.view(-1)[idx.reshape(-1)] = (rows * scale[:, None]).reshape(-1)
            zero += int((scale == 0).sum())
        for _, tensors, mult in self.blocks:
            norm = torch.sqrt(sum(t.pow(2).sum() for t in tensors))
            scale = float((1 - lr * self.strength * mult / norm.clamp_min(1e-30)).clamp_min(0.0))
            for t in tensors:
                t.mul_(scale)
            zero += int(scale == 0)
        return zero

    def attach(self, optimizer: torch.optim.Optimizer):
        """Run :meth:`prox_` after every ``optimizer.step()`` with the first param group's lr.

        Returns the hook handle; ``handle.remove()`` detaches it. Requires ``proximal=True``.
        """
        if not self.proximal:
            raise ConfigError(
                "attach() is for proximal=True; a subgradient penalty goes in the loss"
            )
        return optimizer.register_step_post_hook(
            lambda opt, _args, _kwargs: self.prox_(opt.param_groups[0]["lr"])
        )

    def layer_kinds(self) -> dict[str, list[str]]:
        """Which kinds are regularized on which layer."""
        out: dict[str, list[str]] = {}
        for name, _, kind, _, _ in self.terms:
            out.setdefault(name, []).append(kind)
        return out


class ProximalStep(Callback):
    """A fit callback: the regularizer's proximal step after each optimizer step.

    ``lr(step) -> float`` gives the learning rate of that step (e.g. ``lambda s:
    config.lr_at(s, steps_per_epoch)``). Stateless: the weights carry everything.
    """

    def __init__(self, reg: SSLRegularizer, lr):
        if not reg.proximal:
            raise ConfigError("ProximalStep needs SSLRegularizer(proximal=True)")
        self.reg, self.lr = reg, lr

    def after_step(self, model: nn.Module, step: int) -> None:
        self.reg.prox_(float(self.lr(step)))


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


class _KeepMask(nn.Module):
    """A parametrization: weight * mask, the mask a buffer (saved in state_dict)."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask.to(torch.bool))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask


def mask_structure(model: nn.Module) -> list[str]:
    """Hold every zero row and column of each Conv2d/Linear at 0 with a torch parametrization.

    The torch-native form of :func:`freeze_structure` for your own training loop: each layer's
    ``weight`` becomes ``original * mask`` (``torch.nn.utils.parametrize``), so no optimizer or
    weight decay can revive a removed group. Returns the layer names; undo it (keeping the
    masked values) with :func:`unmask_structure` before :func:`~dnnrepro.ssl.shrink`.
    """
    from torch.nn.utils import parametrize

    masks = structure_masks(model)
    for name, mask in masks.items():
        parametrize.register_parametrization(model.get_submodule(name), "weight", _KeepMask(mask))
    return list(masks)


def unmask_structure(model: nn.Module) -> None:
    """Remove the parametrizations :func:`mask_structure` added, keeping the masked weights."""
    from torch.nn.utils import parametrize

    for m in model.modules():
        if parametrize.is_parametrized(m, "weight") and any(
            isinstance(p, _KeepMask) for p in m.parametrizations["weight"]
        ):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)


def freeze_structure(model: nn.Module) -> FixedMask:
    """The fit callback (a core FixedMask) that keeps every zero row and column of the model at 0.

    It zeroes the masked gradients and, after each step, the masked weights (momentum can carry
    old velocity into masked entries).
    """
    return FixedMask({f"{name}.weight": mask for name, mask in structure_masks(model).items()})
