"""SSL side by side with two filter pruners at SSL's own architecture (issue 16, item 6).

Given the per-layer widths SSL reached (filters of every Conv2d, neurons of every Linear, read off
the shrunk net with :func:`layer_widths`), two other methods are pruned to exactly those widths
from the same dense baseline and fine-tuned with the same fine-tuning budget:

- ``groupnorm``: Torch-Pruning's ``GroupNormPruner`` (DepGraph, Fang et al. CVPR 2023). Sparse
  training for as many steps as SSL's own sparse phase, with the pruner's regularizer added to the
  gradients after each backward pass (``regularize``: grad += reg * gamma * w over each dependency
  group, gamma = alpha^((max - imp) / (max - min)), i.e. weaker channels are decayed harder);
  then the lowest group-L2 channels of each layer are removed through Torch-Pruning's dependency
  graph (the coupled input channels of the next layer go with them).
- ``magnitude``: L1-norm filter pruning (Li et al., ICLR 2017) of the dense baseline: the filters
  with the smallest sum |w| are zeroed (weights and bias) and removed with :func:`~.shrink.shrink`.
- ``ssl_selection`` (a diagnostic, not a competitor): the very filters SSL kept
  (``shrink(..., kept=...)``), cut from the *dense* baseline's weights and fine-tuned the same way.
  Against SSL it separates the choice of filters (the method) from the weights SSL's sparse phase
  left them with (our schedule and lambda).

Torch-Pruning is an optional dependency (``pip install 'dnnrepro-ssl[compare]'``); only the
``groupnorm`` method needs it. Fine-tuning uses no mask: the pruned networks are physically small.

    widths = layer_widths(ssl_shrunk)          # {"conv1": 5, "conv2": 19, "fc1": 500, "fc2": 10}
    model, metrics = prune_and_finetune("magnitude", dense, train, test, widths,
                                        example=x[:16], finetune=TrainConfig(steps=4000, ...))
"""

from __future__ import annotations

import copy
import os
from dataclasses import replace

import torch
from torch import nn

from dnnrepro.core import device
from dnnrepro.core.errors import ConfigError
from dnnrepro.core.train import Callback, TrainConfig, evaluate, fit

from .modules import InputGather, LoweredConv2d
from .shrink import shrink

METHODS = ("groupnorm", "magnitude", "ssl_selection")
INSTALL_HINT = "pip install 'dnnrepro-ssl[compare]' (Torch-Pruning, dev only)"
GROUPNORM_REG = 5e-4  # Torch-Pruning's benchmarks/scripts/prune/cifar/group_pruner.sh (--reg 5e-4)


def torch_pruning_available() -> bool:
    """Whether the optional ``torch_pruning`` package can be imported."""
    try:
        import torch_pruning  # noqa: F401
    except ImportError:
        return False
    return True


def _tp():
    try:
        import torch_pruning as tp
    except ImportError as exc:
        raise ConfigError(f"the groupnorm comparison needs Torch-Pruning: {INSTALL_HINT}") from exc
    return tp


def _named_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Each Conv2d/Linear/LoweredConv2d by name; an InputGather stands for its inner layer."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, InputGather):
            out[name] = m
        elif isinstance(m, nn.Conv2d | nn.Linear | LoweredConv2d) and not name.endswith(".inner"):
            out[name] = m
    return out


def _outputs(m: nn.Module) -> int:
    inner = m.inner if isinstance(m, InputGather) else m
    return inner.out_features if isinstance(inner, nn.Linear) else inner.out_channels


def _inputs(m: nn.Module) -> int:
    if isinstance(m, InputGather):
        return int(m.index.numel())
    if isinstance(m, LoweredConv2d):
        per = m.kernel_size[0] * m.kernel_size[1]
        return int(torch.unique(m.index // per).numel())
    return m.in_features if isinstance(m, nn.Linear) else m.in_channels


def layer_widths(model: nn.Module) -> dict[str, int]:
    """{layer name: number of filters (Conv2d) or output neurons (Linear)} of ``model``.

    Works on dense and on shrunk networks (an InputGather or LoweredConv2d keeps the name of the
    layer it replaced). The widths of the readers' inputs follow from their producers'.
    """
    return {name: _outputs(m) for name, m in _named_layers(model).items()}


def input_widths(model: nn.Module) -> dict[str, int]:
    """{layer name: input channels (Conv2d) or input features (Linear) it actually reads}."""
    return {name: _inputs(m) for name, m in _named_layers(model).items()}


def _check_targets(model: nn.Module, widths: dict[str, int]) -> dict[str, nn.Module]:
    layers = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)}
    unknown = sorted(set(widths) - set(layers))
    if unknown:
        raise ConfigError(f"pruning targets name no Conv2d/Linear of the model: {unknown}")
    for name, keep in widths.items():
        total = layers[name].weight.shape[0]
        if not 1 <= keep <= total:
            raise ConfigError(f"pruning target {name}: {keep} of {total} filters is not possible")
    return layers


def _verify(model: nn.Module, widths: dict[str, int], method: str) -> None:
    got = layer_widths(model)
    wrong = {n: (got.get(n), k) for n, k in widths.items() if got.get(n) != k}
    if wrong:
        raise ConfigError(
            f"{method} pruning did not reach the target widths (got, wanted): {wrong}; a layer "
            "whose filters feed a residual sum or the output cannot be pruned on its own"
        )


@torch.no_grad()
def magnitude_prune_filters(
    model: nn.Module, widths: dict[str, int], example: torch.Tensor
) -> nn.Module:
    """A physically smaller copy of ``model`` keeping, per layer, the ``widths[name]`` filters
    (rows of a Linear) with the largest L1 norm; layers not named keep every filter.

    The pruned filters' weights and biases are zeroed, then :func:`shrink` removes them and the
    next layers' matching inputs. ``example``: a batch shaped like the network input (on CPU).
    """
    model = copy.deepcopy(model).cpu().eval()
    layers = _check_targets(model, widths)
    for name, keep in widths.items():
        w = layers[name].weight
        if keep >= w.shape[0]:
            continue
        l1 = w.abs().reshape(w.shape[0], -1).sum(dim=1)
        drop = torch.argsort(l1)[: w.shape[0] - keep]
        w[drop] = 0.0
        if layers[name].bias is not None:
            layers[name].bias[drop] = 0.0
    small = shrink(model, example)
    _verify(small, widths, "magnitude")
    return small


@torch.no_grad()
def select_filters(
    model: nn.Module, keep: dict[str, list[int]], example: torch.Tensor
) -> nn.Module:
    """A physically smaller copy of ``model`` keeping exactly the filters ``keep[name]`` (indices
    into the original rows, e.g. from ``shrink(sparse, x, kept=keep)``) of each named layer."""
    model = copy.deepcopy(model).cpu().eval()
    layers = _check_targets(model, {n: len(set(k)) for n, k in keep.items()})
    widths = {}
    for name, idx in keep.items():
        w = layers[name].weight
        drop = torch.ones(w.shape[0], dtype=torch.bool)
        drop[torch.as_tensor(sorted(set(idx)), dtype=torch.long)] = False
        w[drop] = 0.0
        if layers[name].bias is not None:
            layers[name].bias[drop] = 0.0
        widths[name] = len(set(idx))
    small = shrink(model, example)
    _verify(small, widths, "ssl_selection")
    return small


def groupnorm_prune(
    model: nn.Module, widths: dict[str, int], example: torch.Tensor, importance=None
) -> nn.Module:
    """A physically smaller copy of ``model`` pruned with Torch-Pruning's dependency graph.

    Per layer named in ``widths``, the channels with the lowest group importance (default
    ``GroupMagnitudeImportance(p=2)``, the importance ``GroupNormPruner`` regularizes with: the L2
    norm over the filter, its BatchNorm entries and the next layers' input columns) are removed
    with everything coupled to them, until exactly ``widths[name]`` remain. (Not under
    ``torch.no_grad``: the dependency graph is traced through autograd.)
    """
    tp = _tp()
    model = copy.deepcopy(model).cpu().eval()
    layers = _check_targets(model, widths)
    imp = importance or tp.importance.GroupMagnitudeImportance(p=2)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    for name, keep in widths.items():
        layer = layers[name]
        total = layer.weight.shape[0]
        if keep >= total:
            continue
        fn = tp.prune_linear_out_channels if isinstance(layer, nn.Linear) else None
        fn = fn or tp.prune_conv_out_channels
        scores = imp(graph.get_pruning_group(layer, fn, idxs=list(range(total))))
        drop = torch.argsort(scores)[: total - keep].tolist()
        group = graph.get_pruning_group(layer, fn, idxs=drop)
        if not graph.check_pruning_group(group):
            raise ConfigError(f"Torch-Pruning refuses to remove {total - keep} filters of {name}")
        group.prune()
    _verify(model, widths, "groupnorm")
    return model


class GroupNormRegularization(Callback):
    """A fit callback: Torch-Pruning's ``GroupNormPruner.regularize`` after each backward pass.

    ``widths`` names the layers to be pruned (the others are ``ignored_layers`` and are not
    regularized as roots); ``reg``: the pruner's coefficient. Stateless: the weights carry it all.
    """

    def __init__(self, model: nn.Module, example: torch.Tensor, widths: dict[str, int], reg: float):
        tp = _tp()
        layers = _check_targets(model, widths)
        ignored = [
            m for n, m in layers.items() if widths.get(n, m.weight.shape[0]) >= m.weight.shape[0]
        ]
        self.pruner = tp.pruner.GroupNormPruner(
            model,
            example_inputs=example,
            importance=tp.importance.GroupMagnitudeImportance(p=2),
            reg=reg,
            ignored_layers=ignored,
        )

    def after_backward(self, model: nn.Module, step: int) -> None:
        self.pruner.regularize(model)


def prune_and_finetune(
    method: str,
    dense: nn.Module,
    train: tuple,
    test: tuple,
    widths: dict[str, int],
    *,
    example: torch.Tensor,
    finetune: TrainConfig,
    sparse: TrainConfig | None = None,
    seed: int = 0,
    reg: float = GROUPNORM_REG,
    keep: dict[str, list[int]] | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
) -> tuple[nn.Module, dict]:
    """Prune a copy of ``dense`` to ``widths`` with ``method`` and fine-tune it.

    ``groupnorm`` first trains with the GroupNormPruner regularizer for ``sparse`` (SSL's sparse
    phase: same length and schedule; required); ``magnitude`` prunes the dense net directly;
    ``ssl_selection`` keeps the filters ``keep`` names (required; they must give ``widths``).
    Fine-tuning: ``finetune`` with seed ``seed + 1000``, the data order of SSL's own fine-tune.
    Returns (pruned model on CPU, metrics): accuracy after sparse training (groupnorm), after
    pruning, after fine-tuning, the widths reached and the training seconds.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown pruning method {method!r}; use one of {', '.join(METHODS)}")
    sub = (lambda p: os.path.join(checkpoint_dir, p)) if checkpoint_dir else (lambda p: None)
    model = copy.deepcopy(dense).to(device())
    example = example.cpu()
    metrics: dict = {"method": method}
    seconds = 0.0
    if method == "groupnorm":
        if sparse is None:
            raise ConfigError("the groupnorm method needs the sparse-training TrainConfig")
        hook = GroupNormRegularization(model, example.to(device()), widths, reg)
        result = fit(
            model,
            train,
            replace(sparse, seed=seed),
            test=test,
            callbacks=[hook],
            checkpoint_dir=sub("sparse"),
        )
        metrics["sparse_accuracy"] = result.final["test_accuracy"]
        metrics["reg"] = reg
        seconds += result.seconds
        small = groupnorm_prune(model.cpu(), widths, example)
    elif method == "magnitude":
        small = magnitude_prune_filters(model.cpu(), widths, example)
    else:
        if keep is None:
            raise ConfigError("the ssl_selection method needs keep={layer: filter indices}")
        small = select_filters(model.cpu(), keep, example)
        _verify(small, widths, "ssl_selection")
    metrics["pruned_accuracy"] = evaluate(small, test)["accuracy"]
    small = small.to(device())
    result = fit(
        small,
        train,
        replace(finetune, seed=seed + 1000),
        test=test,
        checkpoint_dir=sub("finetune"),
    )
    small = small.cpu()
    metrics.update(
        accuracy=evaluate(small, test)["accuracy"],
        widths=layer_widths(small),
        inputs=input_widths(small),
        seconds=seconds + result.seconds,
    )
    return small, metrics
