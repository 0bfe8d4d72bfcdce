"""Esser-style training of a TeaNet with the core loop, optionally with a variance penalty.

The only additions to ``dnnrepro.core.train.fit`` are a callback that projects p back onto
[0, 1] and the leak onto [-255, 255] after every optimizer step, and the penalty. With
``penalty_kind=None`` (or strength 0) this is the Esser et al. 2015 baseline. ``init_from``
starts from saved weights instead of a fresh draw: the fine-tuning protocol (a converged
baseline, then the penalty).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from dnnrepro.core import checkpoint
from dnnrepro.core.errors import ConfigError
from dnnrepro.core.train import Callback, TrainConfig, TrainResult, fit, seed_everything

from .penalty import VariancePenalty
from .tea import TeaNet, build


@dataclass
class TeaTrainSpec:
    """What to train: architecture, optimiser settings and the penalty (None: baseline)."""

    arch: str = "digits-2core"
    epochs: int = 10
    batch_size: int = 100
    lr: float = 0.02
    seed: int = 0
    penalty_kind: str | None = None
    penalty_strength: float = 0.0
    max_steps: int | None = None
    init_from: str | None = None  # weights stem (checkpoint.save_weights) to start from
    extra: dict = field(default_factory=dict)

    def penalty(self) -> VariancePenalty | None:
        if self.penalty_kind is None or self.penalty_strength == 0:
            return None
        return VariancePenalty(self.penalty_kind, self.penalty_strength)

    def config(self, threads: int | None = None) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            optimizer="adam",
            schedule="cosine",
            seed=self.seed,
            threads=threads,
            max_steps=self.max_steps,
        )


class ClipToChip(Callback):
    """Keep the trained parameters inside the chip's ranges after every step (stateless)."""

    def after_step(self, model: TeaNet, step: int) -> None:
        model.clip_()


def train_tea(
    spec: TeaTrainSpec,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor] | None = None,
    checkpoint_dir: str | Path | None = None,
    threads: int | None = None,
) -> tuple[TeaNet, TrainResult]:
    """Build ``spec.arch`` with seed ``spec.seed``, train it; returns (model, TrainResult)."""
    if spec.penalty_kind is not None:
        VariancePenalty(spec.penalty_kind, spec.penalty_strength)  # validates
    if spec.penalty_kind is None and spec.penalty_strength:
        raise ConfigError("a penalty strength needs a penalty kind")
    seed_everything(spec.seed)
    model = build(spec.arch)
    model.reset_parameters(spec.seed)
    if spec.init_from is not None:
        checkpoint.load_weights(spec.init_from, model)
    x, _ = train
    if tuple(x.shape[1:]) != model.input_shape:
        raise ConfigError(
            f"{spec.arch} reads images of shape {model.input_shape}, the data has "
            f"{tuple(x.shape[1:])}; pick the architecture that matches the data set"
        )
    penalty = spec.penalty()
    handle = penalty.attach(model) if penalty is not None else None
    try:
        result = fit(
            model,
            train,
            spec.config(threads),
            test=test,
            penalties=[penalty] if penalty is not None else [],
            callbacks=[ClipToChip()],
            checkpoint_dir=checkpoint_dir,
        )
    finally:
        if handle is not None:
            handle.remove()
    return model, result


def binary_fraction(model: TeaNet, tol: float = 0.01) -> float:
    """Fraction of connection probabilities within ``tol`` of 0 or 1."""
    ps = torch.cat([la.p.detach().flatten() for la in model.tea_layers()])
    return float(((ps <= tol) | (ps >= 1 - tol)).to(torch.float64).mean())


def mean_synapse_variance(model: TeaNet) -> float:
    """Mean s^2 p (1 - p) over every synapse: the per-copy randomness the penalty constrains."""
    tot, cnt = 0.0, 0
    for la in model.tea_layers():
        p = la.p.detach()
        tot += float((la.synapse_weights().to(p.dtype) ** 2 * p * (1 - p)).sum())
        cnt += p.numel()
    return tot / cnt
