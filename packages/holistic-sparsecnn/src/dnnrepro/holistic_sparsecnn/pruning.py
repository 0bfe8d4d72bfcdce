"""Element-wise sparsity learning (ESL) and Guided Sparsity Learning (GSL, GESL, GDNS).

Pruning plugs into the core training loop as a callback (:class:`Pruner`):

- L1 ("lasso") on the weights of the layers being pruned: ``g += strength_l * sign(w)`` (Caffe's
  L1 weight decay), L2 ``g += l2 * w`` on the others;
- a hard threshold after every step: ``|w| < th`` becomes 0, with ``th`` fixed (1e-4, SkimCaffe's
  ``prune_threshold``) or gradient-adaptive ``th_i = 1/(|dL/dw_i|/th0 + 1/(factor*th0))`` (small
  gradients are thresholded harder, never above ``factor*th0``);
- ``mode="dns"`` (dynamic network surgery): the optimizer updates an unthresholded shadow copy,
  the live weights are its thresholded image, so a pruned weight can come back.

:func:`guided_prune` is GSL: it projects each layer's best speedup with the roofline model
(:mod:`.roofline`) and prunes only layers that can gain; it re-checks after every period, stops
pruning a layer once it reaches its upper bound (further sparsity gains nothing), and restores a
layer's original dense weights if its sparsity stalls where the model says sparse is slower than
dense. Then it retrains with the masks fixed. ``guided=False`` is plain ESL (uniform strength on
every layer, no model) for comparison.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from dnnrepro.core import checkpoint
from dnnrepro.core.errors import ConfigError
from dnnrepro.core.io import write_json
from dnnrepro.core.train import Callback, TrainConfig, evaluate, fit

from . import roofline
from .sparse_module import conv_input_sizes, density

MODES = ("l1", "dns")
# Layer states: pruning / done (mask fixed, reached the upper bound or end of pruning) /
# dense (never pruned: no projected gain) / restored (stalled above the lower bound).
PRUNING, DONE, DENSE, RESTORED = "pruning", "done", "dense", "restored"


@dataclass
class PruneConfig:
    """Settings of one sparsity-learning run (strengths are per optimizer step, like Caffe's
    weight decay; ``conv_factor``/``fc_factor`` scale ``strength`` per layer type when guided).
    """

    strength: float = 1e-3
    conv_factor: float = 1.0
    fc_factor: float = 0.1
    l2: float = 5e-4
    threshold: float = 1e-4
    adaptive_factor: float = 0.0  # >= 2 enables the gradient-adaptive threshold
    mode: str = "l1"
    guided: bool = True
    prune_fc: bool = True
    min_speedup: float = 1.0  # a layer "can gain" when its projected best speedup exceeds this
    stall_tol: float = 0.01  # density change per period below which a layer has stabilised
    batch: int = 1  # batch size the performance model assumes for inference

    def validate(self) -> PruneConfig:
        if self.mode not in MODES:
            raise ConfigError(f"prune mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        for name in ("strength", "l2", "threshold", "conv_factor", "fc_factor", "stall_tol"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"PruneConfig.{name} must be a finite number >= 0")
        if self.adaptive_factor and self.adaptive_factor < 2:
            raise ConfigError("adaptive_factor must be 0 (off) or >= 2 (th_max = factor * th0)")
        if self.batch < 1:
            raise ConfigError("PruneConfig.batch must be >= 1")
        return self


def adaptive_threshold(grad: torch.Tensor, th0: float, factor: float) -> torch.Tensor:
    """Per-weight threshold 1/(a*|g| + b) with a = 1/th0, b = 1/(factor*th0): equals
    factor*th0 at zero gradient and falls as |g| grows."""
    return 1.0 / (grad.abs() / th0 + 1.0 / (factor * th0))


@dataclass
class LayerPlan:
    """What GSL decided for one prunable layer, and why."""

    name: str
    kind: str  # conv | fc
    numel: int
    status: str
    strength: float
    x_upper: float | None = None
    x_lower: float | None = None
    max_speedup: float | None = None
    density: float = 1.0
    history: list[float] = field(default_factory=list)
    reason: str = ""


class Pruner(Callback):
    """The fit callback of one run; holds masks, shadows and the original dense weights.

    Its state in fit's checkpoint is the masks and the DNS shadows, so a kill mid-period resumes
    weights and shadows from the same step.
    """

    def __init__(self, model: nn.Module, plans: dict[str, LayerPlan], config: PruneConfig):
        self.model, self.plans, self.config = model, plans, config
        self.modules = {name: model.get_submodule(name) for name in plans}
        self.original = {n: m.weight.detach().clone() for n, m in self.modules.items()}
        self.masks: dict[str, torch.Tensor] = {}
        self.shadow: dict[str, torch.Tensor] = {}
        if config.mode == "dns":
            for name, plan in plans.items():
                if plan.status == PRUNING:
                    self.shadow[name] = self.modules[name].weight.detach().clone()

    def after_backward(self, _model: nn.Module, _step: int) -> None:
        with torch.no_grad():
            for name, plan in self.plans.items():
                w = self.modules[name].weight
                if w.grad is None:
                    continue
                if plan.status == PRUNING:
                    if name in self.shadow:
                        # DNS: the gradient was taken at the thresholded weights; apply it to the
                        # shadow by letting the optimizer step start from the shadow.
                        w.data.copy_(self.shadow[name])
                    w.grad.add_(torch.sign(w.data), alpha=plan.strength)
                else:
                    w.grad.add_(w.data, alpha=self.config.l2)
                    if plan.status == DONE:
                        w.grad.mul_(self.masks[name])

    def after_step(self, _model: nn.Module, _step: int) -> None:
        cfg = self.config
        with torch.no_grad():
            for name, plan in self.plans.items():
                w = self.modules[name].weight
                if plan.status == PRUNING:
                    if cfg.adaptive_factor and w.grad is not None:
                        th = adaptive_threshold(w.grad, cfg.threshold, cfg.adaptive_factor)
                    else:
                        th = cfg.threshold
                    if name in self.shadow:
                        self.shadow[name].copy_(w.data)
                    w.data.mul_(w.data.abs() >= th)
                elif plan.status == DONE:
                    w.data.mul_(self.masks[name])

    def freeze(self, name: str) -> None:
        """Stop pruning ``name``: its current zeros stay zero from now on."""
        self.masks[name] = (self.modules[name].weight.detach() != 0).float()
        self.shadow.pop(name, None)
        self.plans[name].status = DONE

    def restore(self, name: str) -> None:
        """Put back the layer's original dense weights and stop pruning it."""
        with torch.no_grad():
            self.modules[name].weight.copy_(self.original[name])
        self.shadow.pop(name, None)
        self.plans[name].status = RESTORED

    def state_dict(self) -> dict[str, torch.Tensor]:
        out = {f"mask.{k}": v for k, v in self.masks.items()}
        out.update({f"shadow.{k}": v for k, v in self.shadow.items()})
        return out

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.masks = {k[5:]: v.clone() for k, v in state.items() if k.startswith("mask.")}
        self.shadow = {k[7:]: v.clone() for k, v in state.items() if k.startswith("shadow.")}

    def state_tensors(self) -> dict[str, torch.Tensor]:
        out = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        out.update({f"mask.{k}": v for k, v in self.masks.items()})
        out.update({f"shadow.{k}": v for k, v in self.shadow.items()})
        out.update({f"original.{k}": v for k, v in self.original.items()})
        return out

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        self.masks = {k[5:]: v for k, v in tensors.items() if k.startswith("mask.")}
        self.shadow = {k[7:]: v for k, v in tensors.items() if k.startswith("shadow.")}
        self.original = {k[9:]: v for k, v in tensors.items() if k.startswith("original.")}


def plan_layers(
    model: nn.Module, input_shape, machine: roofline.Machine, config: PruneConfig
) -> dict[str, LayerPlan]:
    """Step 1 of GSL: which layers to prune, with what strength, and their model bounds."""
    if not any(isinstance(m, nn.Conv2d | nn.Linear) for m in model.modules()):
        raise ConfigError("guided_prune: the model has no Conv2d or Linear layers to prune")
    sizes = conv_input_sizes(model, input_shape)
    plans: dict[str, LayerPlan] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            plan = LayerPlan(name, "conv", module.weight.numel(), PRUNING, config.strength)
            if module.groups == 1 and name in sizes:
                cost = roofline.LayerCost.of(module, sizes[name], config.batch)
                plan.x_upper = roofline.upper_bound(cost, machine)
                plan.x_lower = max(
                    (x for x in _grid() if roofline.predict_speedup(cost, machine, x) > 1.0),
                    default=0.0,
                )
                plan.max_speedup = roofline.max_speedup(cost, machine)
            if config.guided:
                plan.strength = config.strength * config.conv_factor
                if plan.max_speedup is None or plan.max_speedup <= config.min_speedup:
                    plan.status, plan.strength = DENSE, 0.0
                    best = "n/a" if plan.max_speedup is None else f"{plan.max_speedup:.2f}"
                    plan.reason = f"projected best speedup {best} <= {config.min_speedup}"
                else:
                    plan.reason = f"projected best speedup {plan.max_speedup:.2f}"
            plans[name] = plan
        elif isinstance(module, nn.Linear):
            plan = LayerPlan(name, "fc", module.weight.numel(), PRUNING, config.strength)
            if config.guided:
                plan.strength = config.strength * config.fc_factor
                plan.reason = "fc: pruned for size with fc_factor"
                if not config.prune_fc:
                    plan.status, plan.strength, plan.reason = DENSE, 0.0, "fc pruning off"
            plans[name] = plan
    return plans


def _grid() -> list[float]:
    """Non-zero fractions 0.001 .. 1 used to locate the lower bound of a layer numerically."""
    return [i / 1000 for i in range(1, 1001)]


@dataclass
class GuidedResult:
    """What :func:`guided_prune` returns: the pruned model, per-layer plans, the final metrics."""

    model: nn.Module
    layers: list[LayerPlan]
    final: dict[str, float]
    machine: dict

    def summary(self) -> dict:
        return {
            "layers": [asdict(p) for p in self.layers],
            "final": self.final,
            "machine": self.machine,
        }


def guided_prune(
    model: nn.Module,
    data,
    *,
    test=None,
    input_shape=(1, 28, 28),
    machine: roofline.Machine | None = None,
    config: PruneConfig | None = None,
    train: TrainConfig | None = None,
    periods: int = 4,
    retrain: TrainConfig | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    log=None,
) -> GuidedResult:
    """GSL on ``model`` (changed in place and returned): ``periods`` pruning periods of
    ``train.epochs`` epochs each, a check after each, then ``retrain`` with the masks fixed.

    ``data``/``test`` are (images, labels). With ``checkpoint_dir`` a killed run resumes at the
    last finished period (each period's fit also resumes mid-way).
    """
    config = (config or PruneConfig()).validate()
    train = train or TrainConfig(epochs=1, lr=0.01, optimizer="momentum")
    if periods < 1:
        raise ConfigError("periods must be >= 1")
    machine = machine or roofline.this_machine(torch.get_num_threads())
    log = log or (lambda _msg: None)
    plans = plan_layers(model, input_shape, machine, config)
    pruner = Pruner(model, plans, config)
    root = Path(checkpoint_dir) if checkpoint_dir is not None else None
    start = 0
    if root is not None and checkpoint.exists(root / "gsl"):
        tensors, meta = checkpoint.load(root / "gsl")
        pruner.load_tensors(tensors)
        for name, saved in meta["plans"].items():
            plans[name] = LayerPlan(**saved)
        pruner.plans = plans
        start = meta["period"]
        log(f"resuming guided pruning after period {start}")
    for period in range(start, periods):
        if not any(p.status == PRUNING for p in plans.values()):
            break
        fit(
            model,
            data,
            dataclasses.replace(train, seed=train.seed + period),  # a new batch order per period
            callbacks=[pruner],
            checkpoint_dir=None if root is None else root / f"period{period}",
        )
        _check(pruner, config, last=period == periods - 1)
        log(
            f"period {period + 1}/{periods}: "
            + ", ".join(f"{n} {p.density:.3f} {p.status}" for n, p in plans.items())
        )
        if root is not None:
            meta = {"period": period + 1, "plans": {n: asdict(p) for n, p in plans.items()}}
            checkpoint.save(root / "gsl", pruner.state_tensors(), meta, tag=str(period + 1))
    for name, plan in plans.items():  # every pruned layer keeps its zeros while retraining
        if plan.status == PRUNING:
            pruner.freeze(name)
    if retrain is not None:
        fit(
            model,
            data,
            retrain,
            callbacks=[pruner],
            checkpoint_dir=None if root is None else root / "retrain",
        )
    for name, plan in plans.items():
        plan.density = density(pruner.modules[name].weight)
    final = evaluate(model, test) if test is not None else {}
    result = GuidedResult(model, list(plans.values()), final, machine.as_dict())
    if root is not None:
        write_json(root / "summary.json", result.summary())
    return result


def _check(pruner: Pruner, config: PruneConfig, last: bool) -> None:
    """GSL step 3 after a period: record densities; stop at the upper bound; restore stalled
    layers that the model says are slower than dense."""
    for name, plan in pruner.plans.items():
        x = density(pruner.modules[name].weight)
        previous = plan.history[-1] if plan.history else 1.0
        stalled = abs(previous - x) < config.stall_tol  # judged from the second check on
        plan.history.append(x)
        plan.density = x
        if plan.status != PRUNING or not config.guided or plan.x_upper is None:
            continue
        if x <= plan.x_upper:
            pruner.freeze(name)
            plan.reason += f"; stopped at the upper bound ({x:.3f} <= {plan.x_upper:.3f})"
        elif (last or (stalled and len(plan.history) >= 2)) and x > plan.x_lower:
            pruner.restore(name)
            plan.density = 1.0
            plan.reason += (
                f"; restored: stabilised at {x:.3f} above the lower bound {plan.x_lower:.3f}"
            )
