"""The three adaptation terms: gradient reversal + domain classifier, multi-kernel MMD, entropy.

- :class:`GradientReversal`: identity forward, gradient times -coeff backward (Ganin & Lempitsky
  2015); :func:`warm_start_coeff` is the schedule 2(hi-lo)/(1+exp(-alpha*i/N)) - (hi-lo) + lo
  (TLlib's defaults lo=0, hi=1, alpha=1, N=1000 iterations), so the adversary is silent at step 0.
- :class:`DomainDiscriminator`: Linear-BN-ReLU-Linear-BN-ReLU-Linear, one logit per sample
  ("source" = 1); :func:`domain_adversarial_loss` is the mean of the two binary cross-entropies.
- :func:`mk_mmd`: the squared maximum mean discrepancy under the AVERAGE of Gaussian kernels
  whose bandwidths are sigma^2 = 2^k * (mean pairwise squared distance of the joint batch),
  k = -3..1 (DAN's equal kernel weights beta_u = 1/m, TLlib's defaults; until 0.1 we summed the
  kernels, which weighted the term 5x). Three estimators: ``biased`` (V-statistic, >= 0, exactly 0 for identical
  batches; the default here), ``unbiased`` (U-statistic, mean 0 when both batches come from one
  distribution, can be negative) and ``linear`` (Gretton et al. 2012's linear-time estimate over
  disjoint pairs, as DAN uses).
- :func:`entropy_loss`: mean Shannon entropy (nats) of softmax predictions, in [0, log K].
- :func:`conditional_map`: CDAN's multilinear map z (x) softmax(logits), the discriminator input
  of the conditional adversary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dnnrepro.core.errors import ConfigError

DEFAULT_KERNEL_SCALES = (0.125, 0.25, 0.5, 1.0, 2.0)  # 2^k, k = -3..1
ESTIMATORS = ("biased", "unbiased", "linear")


class _ReverseGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.coeff * grad, None


def reverse_gradient(x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    """x unchanged in the forward pass; d/dx multiplied by -coeff in the backward pass."""
    return _ReverseGrad.apply(x, float(coeff))


class GradientReversal(nn.Module):
    """Module form of :func:`reverse_gradient`; ``coeff`` may be changed between steps."""

    def __init__(self, coeff: float = 1.0):
        super().__init__()
        self.coeff = float(coeff)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return reverse_gradient(x, self.coeff)

    def extra_repr(self) -> str:
        return f"coeff={self.coeff:g}"


def warm_start_coeff(
    step: int, lo: float = 0.0, hi: float = 1.0, alpha: float = 1.0, max_iters: int = 1000
) -> float:
    """Gradient-reversal coefficient at ``step``: lo at 0, increasing monotonically towards hi."""
    if max_iters < 1:
        raise ConfigError("max_iters of the warm-start schedule must be >= 1")
    return 2.0 * (hi - lo) / (1.0 + math.exp(-alpha * step / max_iters)) - (hi - lo) + lo


class DomainDiscriminator(nn.Module):
    """(N, in_features) -> (N,) logits that a sample comes from the source domain."""

    def __init__(self, in_features: int, hidden: int = 1024):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).squeeze(1)


def domain_adversarial_loss(source_logits: torch.Tensor, target_logits: torch.Tensor):
    """Mean of BCE(source -> 1) and BCE(target -> 0); logits of shape (N,). Returns (loss, acc)."""
    ls = F.binary_cross_entropy_with_logits(source_logits, torch.ones_like(source_logits))
    lt = F.binary_cross_entropy_with_logits(target_logits, torch.zeros_like(target_logits))
    with torch.no_grad():
        acc = 0.5 * ((source_logits > 0).float().mean() + (target_logits <= 0).float().mean())
    return 0.5 * (ls + lt), float(acc)


def _check_features(source: torch.Tensor, target: torch.Tensor) -> None:
    if source.dim() != 2 or target.dim() != 2 or source.shape[1] != target.shape[1]:
        raise ConfigError(
            "mk_mmd: source and target features must be (N, D) and (M, D) with the same D, got "
            f"{tuple(source.shape)} and {tuple(target.shape)}"
        )
    if len(source) < 2 or len(target) < 2:
        raise ConfigError("mk_mmd: each batch needs at least 2 samples")


def gaussian_kernel_mean(
    d2: torch.Tensor, base: torch.Tensor, scales: Sequence[float]
) -> torch.Tensor:
    """Mean over scales s of exp(-d2 / (2 * s * base)); ``base`` is a scalar bandwidth^2."""
    return sum(torch.exp(-d2 / (2.0 * s * base)) for s in scales) / len(scales)


def mk_mmd(
    source_feat: torch.Tensor,
    target_feat: torch.Tensor,
    kernels: Sequence[float] = DEFAULT_KERNEL_SCALES,
    estimator: str = "biased",
) -> torch.Tensor:
    """Squared multi-kernel MMD between source (N, D) and target (M, D) features; a scalar.

    The kernel is the mean of the Gaussian kernels (so each estimate lies in [-2, 2]).
    ``kernels`` are the bandwidth multipliers 2^k: kernel k is exp(-||a-b||^2 / (2 k sigma^2)),
    sigma^2 = mean squared distance over all pairs of the joint batch, held constant for the
    gradient (detached) so the bandwidth cannot be inflated to shrink the loss.
    ``estimator``: ``biased`` | ``unbiased`` (N, M >= 2) | ``linear`` (needs N == M, even).
    """
    _check_features(source_feat, target_feat)
    if estimator not in ESTIMATORS:
        raise ConfigError(f"mk_mmd: estimator must be one of {', '.join(ESTIMATORS)}")
    scales = tuple(float(k) for k in kernels)
    if not scales or any(k <= 0 for k in scales):
        raise ConfigError("mk_mmd: kernels must be a non-empty list of positive bandwidth scales")
    joint = torch.cat([source_feat, target_feat], dim=0)
    d2 = torch.cdist(joint, joint).pow(2)
    n, m = len(source_feat), len(target_feat)
    base = (d2.detach().sum() / ((n + m) * (n + m - 1))).clamp_min(1e-12)
    if estimator == "linear":
        if n != m or n % 2:
            raise ConfigError("mk_mmd linear estimator needs equal, even batch sizes")
        s1, s2 = source_feat[0::2], source_feat[1::2]
        t1, t2 = target_feat[0::2], target_feat[1::2]

        def k(a, b):
            return gaussian_kernel_mean((a - b).pow(2).sum(1), base, scales)

        return (k(s1, s2) + k(t1, t2) - k(s1, t2) - k(s2, t1)).mean()
    kmat = gaussian_kernel_mean(d2, base, scales)
    kss, ktt, kst = kmat[:n, :n], kmat[n:, n:], kmat[:n, n:]
    if estimator == "biased":
        return kss.mean() + ktt.mean() - 2.0 * kst.mean()
    off = (kss.sum() - kss.diagonal().sum()) / (n * (n - 1))
    off_t = (ktt.sum() - ktt.diagonal().sum()) / (m * (m - 1))
    return off + off_t - 2.0 * kst.mean()


def entropy_loss(logits: torch.Tensor) -> torch.Tensor:
    """Mean entropy (nats) of softmax(logits) over the batch; logits (N, K) -> scalar in [0, log K]."""
    if logits.dim() != 2 or len(logits) == 0:
        raise ConfigError(
            f"entropy_loss expects logits (N, K) with N >= 1, got {tuple(logits.shape)}"
        )
    logp = F.log_softmax(logits, dim=1)
    return -(logp.exp() * logp).sum(1).mean()


def conditional_map(features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """CDAN's multilinear conditioning: (N, D) features and (N, K) logits -> (N, D*K), the flattened
    outer product of each feature vector with its softmax prediction (Long et al. 2018)."""
    if features.dim() != 2 or logits.dim() != 2 or len(features) != len(logits):
        raise ConfigError(
            "conditional_map expects features (N, D) and logits (N, K), got "
            f"{tuple(features.shape)} and {tuple(logits.shape)}"
        )
    probs = F.softmax(logits, dim=1)
    return torch.bmm(probs.unsqueeze(2), features.unsqueeze(1)).flatten(1)
