"""Unsupervised validators: score a network on UNLABELLED target images, to pick a checkpoint.

Domain adaptation has no target labels, so "the best checkpoint" must be chosen from the
network's own predictions on target images. Both scores below are higher-is-better and read only
the softmax predictions p_i = softmax(f(x_i)), i = 1..N, K classes (natural logarithms, nats):

- **IM, information maximization** (Gomes et al. 2010; used as a validator by pytorch-adapt's
  ``IMValidator`` and as SHOT's objective)::

      IM = H(mean_i p_i) - mean_i H(p_i),          H(p) = -sum_k p_k log p_k

  "diversity" (predictions spread over the classes) minus "entropy" (each prediction confident).
  By the concavity of H it lies in [0, log K]: 0 when every image gets the same prediction, log K
  when the predictions are one-hot and the classes equally frequent.

- **SND, soft neighborhood density** (Saito et al., ICCV 2021, "Tune it the right way")::

      f_i  = p_i / ||p_i||                                (N, K) unit rows
      s_ij = f_i . f_j / T            for j != i          cosine similarity / temperature T
      P_ij = exp(s_ij) / sum_{l != i} exp(s_il)           (N, N-1) soft neighbour distribution
      SND  = mean_i H(P_i)                                in [0, log(N - 1)]

  High when each image has many close neighbours in prediction space (dense, clustered target
  predictions); T = 0.05 as in the paper. Computed in row blocks, so memory is O(block * N).

:func:`validator_score` runs a network on target images (eval mode, restored afterwards) and
returns one of them; ``adapt(..., select="im" | "snd")`` uses it to keep the best-scoring
checkpoint instead of the last iterate (see :mod:`dnnrepro.conv_m_da.adapt`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dnnrepro.core.errors import ConfigError, DataError

VALIDATORS = ("im", "snd")
SND_TEMPERATURE = 0.05  # Saito et al. 2021


def _check_logits(logits: torch.Tensor, what: str, min_rows: int = 1) -> None:
    if not torch.is_tensor(logits) or logits.dim() != 2 or logits.shape[1] < 2:
        shape = tuple(logits.shape) if torch.is_tensor(logits) else type(logits).__name__
        raise ConfigError(f"{what} expects logits (N, K) with K >= 2, got {shape}")
    if len(logits) < min_rows:
        raise DataError(f"{what} needs at least {min_rows} images, got {len(logits)}")
    if not torch.isfinite(logits).all():
        raise DataError(f"{what}: the logits hold NaN or inf (a diverged network)")


def _entropy(p: torch.Tensor) -> torch.Tensor:
    """Row entropies (nats) of probability rows (..., K); 0 log 0 = 0."""
    return -(p * torch.log(p.clamp_min(1e-30))).sum(-1)


def information_maximization(logits: torch.Tensor) -> float:
    """IM = H(mean_i p_i) - mean_i H(p_i) of softmax(logits); logits (N, K) -> float in [0, log K]."""
    _check_logits(logits, "information_maximization")
    p = F.softmax(logits.double(), dim=1)
    return float(_entropy(p.mean(0)) - _entropy(p).mean())


def soft_neighborhood_density(
    logits: torch.Tensor, temperature: float = SND_TEMPERATURE, block: int = 1024
) -> float:
    """SND of softmax(logits) (module doc); logits (N, K), N >= 3 -> float in [0, log(N - 1)].

    ``temperature`` T > 0 divides the cosine similarities; ``block`` rows are processed at a time
    (the result does not depend on it).
    """
    _check_logits(logits, "soft_neighborhood_density", min_rows=3)
    if not (math.isfinite(temperature) and temperature > 0):
        raise ConfigError(f"soft_neighborhood_density: temperature must be > 0, not {temperature}")
    if block < 1:
        raise ConfigError("soft_neighborhood_density: block must be >= 1")
    f = F.normalize(F.softmax(logits.double(), dim=1), dim=1)
    n = len(f)
    total = torch.zeros((), dtype=torch.float64)
    for start in range(0, n, block):
        rows = torch.arange(start, min(start + block, n))
        s = f[rows] @ f.T / temperature  # (b, N)
        s[torch.arange(len(rows)), rows] = -math.inf  # j != i: no self-similarity
        total += _entropy(F.softmax(s, dim=1)).sum()
    return float(total / n)


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """(N, C, H, W) images -> (N, K) logits on the CPU, in eval mode (each module's train/eval mode
    is restored afterwards, so BatchNorm statistics are neither used from nor written to the
    batch)."""
    if not torch.is_tensor(images) or images.dim() != 4 or len(images) == 0:
        raise DataError("validator: target images must be a non-empty (N, C, H, W) tensor")
    modes = {m: m.training for m in model.modules()}
    model.eval()
    device = next(model.parameters()).device
    try:
        out = [
            model(images[i : i + batch_size].to(device)).float().cpu()
            for i in range(0, len(images), batch_size)
        ]
    finally:
        for m, mode in modes.items():
            m.train(mode)
    return torch.cat(out)


def score_logits(
    logits: torch.Tensor, validator: str, temperature: float = SND_TEMPERATURE
) -> float:
    """``validator`` ("im" | "snd") of (N, K) logits; higher is better."""
    if validator == "im":
        return information_maximization(logits)
    if validator == "snd":
        return soft_neighborhood_density(logits, temperature)
    raise ConfigError(f"unknown validator {validator!r}; choose one of {', '.join(VALIDATORS)}")


def validator_score(
    model: nn.Module,
    images: torch.Tensor,
    validator: str,
    *,
    temperature: float = SND_TEMPERATURE,
    batch_size: int = 256,
) -> float:
    """Score ``model`` on unlabelled target ``images`` (N, C, H, W) with ``validator``."""
    if validator not in VALIDATORS:
        raise ConfigError(f"unknown validator {validator!r}; choose one of {', '.join(VALIDATORS)}")
    return score_logits(predict_logits(model, images, batch_size), validator, temperature)


def strided_subset(images: torch.Tensor, n: int) -> torch.Tensor:
    """At most ``n`` evenly strided images (the whole set when it is smaller): the fixed set a
    validator scores at every checkpoint."""
    if n < 3:
        raise ConfigError("select_images must be >= 3")
    if len(images) <= n:
        return images
    return images[torch.linspace(0, len(images) - 1, n).round().long()]
