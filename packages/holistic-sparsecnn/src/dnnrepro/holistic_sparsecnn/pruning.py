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
dense. Then it retrains with the masks fixed (the core's ``FixedMask``). ``guided=False`` is plain
ESL (uniform strength on every layer, no model) for comparison. All state lives in fit's
checkpoints (the Pruner is a stateful fit callback), so a killed run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from dnnrepro.core.errors import ConfigError
from dnnrepro.core.sparsity import FixedMask
from dnnrepro.core.train import Callback, TrainConfig, check_pair, evaluate, fit

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
    # Also restore a layer still above its lower bound after the last period (not stabilised).
    # Off by default: the paper restores only stabilised layers; the 0.1 small run had it on.
    restore_unfinished: bool = False
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
    """The fit callback of the pruning phase; holds the plans, masks, DNS shadows and the
    original dense weights, and runs GSL's period checks.

    ``period_steps``: optimizer steps per pruning period; after the last step of each period the
    layers are re-checked (:func:`check_layers`). 0 disables the checks (plain ESL runs with no
    model also set ``config.guided=False``).

    Its whole state (plans as JSON; masks, shadows and originals as tensors) is returned by
    :meth:`state_dict`, so fit's checkpoint alone resumes a killed run at the same step with the
    same decisions: there is no second resume layer.

    Weight decay: SkimCaffe sets the regularization type per layer (L1 on the layers being
    pruned, L2 on the others), which the core's one weight-decay path (``TrainConfig.weight_decay``,
    the same L2 for every parameter) cannot express. So this callback adds both terms itself in
    :meth:`after_backward`, and :func:`guided_prune` refuses a pruning ``TrainConfig`` with
    ``weight_decay > 0`` (it would add a second L2 on top).
    """

    def __init__(
        self,
        model: nn.Module,
        plans: dict[str, LayerPlan],
        config: PruneConfig,
        period_steps: int = 0,
        periods: int = 1,
    ):
        self.model, self.plans, self.config = model, plans, config
        self.period_steps, self.periods = period_steps, periods
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

    def after_step(self, _model: nn.Module, step: int) -> None:
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
        if self.period_steps and (step + 1) % self.period_steps == 0:
            period = (step + 1) // self.period_steps
            check_layers(self, cfg, last=period >= self.periods)

    def freeze(self, name: str) -> None:
        """Stop pruning ``name``: its current zeros stay zero from now on."""
        self.masks[name] = self.modules[name].weight.detach() != 0
        self.shadow.pop(name, None)
        self.plans[name].status = DONE

    def restore(self, name: str) -> None:
        """Put back the layer's original dense weights and stop pruning it."""
        with torch.no_grad():
            self.modules[name].weight.copy_(self.original[name])
        self.shadow.pop(name, None)
        self.plans[name].status = RESTORED

    def state_dict(self) -> dict:
        out: dict = {f"mask.{k}": v for k, v in self.masks.items()}
        out.update({f"shadow.{k}": v for k, v in self.shadow.items()})
        out.update({f"original.{k}": v for k, v in self.original.items()})
        out["plans"] = {n: asdict(p) for n, p in self.plans.items()}
        return out

    def load_state_dict(self, state: dict) -> None:
        def part(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix) :]: v.clone() for k, v in state.items() if k.startswith(prefix)}

        self.masks = {k: v.bool() for k, v in part("mask.").items()}
        self.shadow = part("shadow.")
        self.original.update(part("original."))
        for name, saved in state.get("plans", {}).items():
            # in place: guided_prune holds the same dict
            self.plans[name] = LayerPlan(**saved)


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
            if name in sizes:
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
    ``train``'s length each (``epochs`` or ``steps`` per period) in one fit, with a check after
    each, then ``retrain`` with the masks fixed (:class:`dnnrepro.core.sparsity.FixedMask`; its
    L2 is ``retrain.weight_decay``, the core's one weight-decay path).

    ``data``/``test`` are (images, labels). ``train.weight_decay`` must be 0 (the per-layer
    L1/L2 of the pruning phase is the Pruner's, see :class:`Pruner`). With ``checkpoint_dir`` a
    killed run resumes from fit's checkpoints (``prune/``, ``retrain/``) at the step it reached.
    """
    config = (config or PruneConfig()).validate()
    train = train or TrainConfig(epochs=1, lr=0.01, optimizer="momentum")
    if periods < 1:
        raise ConfigError("periods must be >= 1")
    if train.weight_decay:
        raise ConfigError(
            "guided_prune: the pruning TrainConfig must have weight_decay=0; set the L2 of the "
            "layers not being pruned with PruneConfig.l2 (L1 and L2 are chosen per layer)"
        )
    x_train, _ = check_pair(data, "guided_prune data")
    machine = machine or roofline.this_machine(torch.get_num_threads())
    log = log or (lambda _msg: None)
    plans = plan_layers(model, input_shape, machine, config)
    steps_per_epoch = max(1, math.ceil(len(x_train) / train.batch_size))
    period_steps = train.total_steps(steps_per_epoch)
    pruner = Pruner(model, plans, config, period_steps, periods)
    root = Path(checkpoint_dir) if checkpoint_dir is not None else None
    # One fit for all periods: the checks run inside it (Pruner.after_step), so fit's
    # checkpoint holds every decision taken so far.
    prune_cfg = dataclasses.replace(train, epochs=None, steps=periods * period_steps)
    fit(
        model,
        data,
        prune_cfg,
        callbacks=[pruner],
        checkpoint_dir=None if root is None else root / "prune",
    )
    log("after pruning: " + ", ".join(f"{n} {p.density:.3f} {p.status}" for n, p in plans.items()))
    for name, plan in plans.items():  # every pruned layer keeps its zeros while retraining
        if plan.status == PRUNING:
            pruner.freeze(name)
    if retrain is not None:
        masks = {
            f"{name}.weight": pruner.masks[name]
            for name, plan in plans.items()
            if plan.status == DONE
        }
        fit(
            model,
            data,
            retrain,
            callbacks=[FixedMask(masks)] if masks else [],
            checkpoint_dir=None if root is None else root / "retrain",
        )
    for name, plan in plans.items():
        plan.density = density(pruner.modules[name].weight)
    final = evaluate(model, test) if test is not None else {}
    return GuidedResult(model, list(plans.values()), final, machine.as_dict())


def check_layers(pruner: Pruner, config: PruneConfig, last: bool) -> None:
    """GSL step 3 after a period: record densities; stop a layer at its upper bound; restore a
    layer whose density has stabilised above its lower bound (sparse would be slower there).

    "Stabilised" is ours (the paper does not define it): a density change below
    ``config.stall_tol`` between two checks. With ``config.restore_unfinished`` a layer still
    above its lower bound after the last period is restored too, although it was still falling.
    """
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
        elif stalled and len(plan.history) >= 2 and x > plan.x_lower:
            pruner.restore(name)
            plan.density = 1.0
            plan.reason += (
                f"; restored: stabilised at {x:.3f} above the lower bound {plan.x_lower:.3f}"
            )
        elif last and config.restore_unfinished and x > plan.x_lower:
            pruner.restore(name)
            plan.density = 1.0
            plan.reason += (
                f"; restored after the last period (restore_unfinished): still at {x:.3f} "
                f"above the lower bound {plan.x_lower:.3f}, not stabilised"
            )
