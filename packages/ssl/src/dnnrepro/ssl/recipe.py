"""The SSL recipe: dense baseline -> SSL from the baseline -> zero weak groups -> frozen fine-tune.

Following the authors' README: SSL starts from the trained dense network at 0.1x its learning rate,
with the group penalty and the 1e-4 zero-out after every step; groups whose RMS weight fell below a
threshold are then zeroed, the structure is frozen (zero rows and columns stay zero,
DISCONNECTED_GRPWISE) and the network is fine-tuned without the group penalty.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from torch import nn

from dnnrepro.core.train import TrainConfig, TrainResult, evaluate, fit

from .regularizer import (
    ProximalStep,
    SSLRegularizer,
    freeze_structure,
    residual_block_groups,
    residual_convs,
    zero_small_hook,
    zero_weak_groups,
)


@dataclass(frozen=True)
class SSLConfig:
    """One SSL run: which groups, how strong, and the two training phases.

    ``groups``: kinds for every layer, or {layer: kinds}; ``depth=True`` regularizes whole
    residual-block convolutions (kind ``layer``) instead. ``ssl``/``finetune``: TrainConfig of the
    two phases (weight decay included). ``rms_threshold``: the group zeroing threshold.
    ``proximal``: the proximal group-lasso step instead of the subgradient. ``depth_groups``:
    ``"layer"`` (the authors': one group per residual conv) or ``"block"`` (one group per block
    over its last conv and BN scale, :func:`residual_block_groups`).
    """

    groups: Sequence[str] | Mapping[str, Sequence[str]] = ("filter", "channel")
    strength: float = 1e-3
    per_layer: Mapping[str, float | Mapping[str, float]] = field(default_factory=dict)
    depth: bool = False
    ssl: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=6, lr=0.005))
    finetune: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=3, lr=0.005))
    rms_threshold: float = 1e-3
    proximal: bool = False
    depth_groups: str = "layer"


def regularizer_for(model: nn.Module, cfg: SSLConfig) -> SSLRegularizer:
    """The SSLRegularizer that ``cfg`` describes for ``model``."""
    if cfg.depth and cfg.depth_groups == "block":
        return SSLRegularizer(
            model,
            groups=None,
            strength=cfg.strength,
            block_groups=residual_block_groups(model),
            proximal=cfg.proximal,
        )
    if cfg.depth:
        return SSLRegularizer(
            model,
            groups=("layer",),
            strength=cfg.strength,
            layers=residual_convs(model),
            proximal=cfg.proximal,
        )
    return SSLRegularizer(
        model,
        groups=cfg.groups,
        strength=cfg.strength,
        per_layer=cfg.per_layer or None,
        proximal=cfg.proximal,
    )


def learn_structure(
    dense: nn.Module,
    train: tuple,
    test: tuple,
    cfg: SSLConfig,
    seed: int = 0,
    checkpoint_dir: str | os.PathLike | None = None,
    transform=None,
) -> tuple[nn.Module, dict]:
    """Run SSL then the frozen fine-tune on a copy of ``dense``; returns (sparse model, metrics).

    metrics: test accuracy after SSL, after zeroing, after fine-tuning; groups zeroed per layer.
    """
    model = copy.deepcopy(dense)
    reg = regularizer_for(model, cfg)
    sub = (lambda p: os.path.join(checkpoint_dir, p)) if checkpoint_dir else (lambda p: None)
    ssl_cfg = replace(cfg.ssl, seed=seed)
    callbacks = [zero_small_hook()]
    if cfg.proximal:
        per_epoch = max(1, math.ceil(len(train[0]) / ssl_cfg.batch_size))
        callbacks.insert(0, ProximalStep(reg, lambda s: ssl_cfg.lr_at(s, per_epoch)))
    ssl_result: TrainResult = fit(
        model,
        train,
        ssl_cfg,
        test=test,
        penalties=[] if cfg.proximal else [reg],
        callbacks=callbacks,
        checkpoint_dir=sub("ssl"),
        transform=transform,
    )
    zeroed = zero_weak_groups(model, reg.layer_kinds(), cfg.rms_threshold)
    after_zero = evaluate(model, test, transform=transform)["accuracy"]
    frozen = freeze_structure(model)
    ft = fit(
        model,
        train,
        replace(cfg.finetune, seed=seed + 1000),
        test=test,
        callbacks=[frozen],
        checkpoint_dir=sub("finetune"),
        transform=transform,
    )
    metrics = {
        "ssl_accuracy": ssl_result.final["test_accuracy"],
        "zeroed_accuracy": after_zero,
        "accuracy": ft.final["test_accuracy"],
        "groups_zeroed": zeroed,
        "penalty_after_ssl": float(reg(model).detach()),
        "seconds": ssl_result.seconds + ft.seconds,
    }
    return model, metrics
