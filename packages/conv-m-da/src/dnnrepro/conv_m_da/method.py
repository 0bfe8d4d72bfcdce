"""The adaptation method as torch pieces any training loop can use: a head, an objective, AdaBN.

- :class:`AdaptationNet` wraps ANY backbone ``features: (N, C, H, W) -> (N, D)`` with a
  bottleneck, a classifier, an optional residual source classifier (RTN) and an optional domain
  discriminator (DANN, or CDAN's conditional one).
- :class:`AdaptationObjective` is an ``nn.Module`` that returns the combined loss of one step from
  a source batch (x_s, y_s) and a target batch x_t (no target labels):

      z_s, z_t = bottleneck(features(x_s)), bottleneck(features(x_t))        (B, bottleneck)
      f_t(x)   = classifier(z)                        the prediction used at test time (K logits)
      f_s(x)   = f_t(x) + residual(f_t(x))            source classifier (only with a residual
                                                      block, else f_s = f_t)
      loss     = CE(f_s(x_s), y_s)
               + lambda_domain  * BCE(discriminator(GRL(h)), domain)  h = z (DANN) or
                                                                      z (x) softmax(f) (CDAN)
               + lambda_mmd     * MK-MMD(z_s, z_t)                     (DAN: divergence)
               + lambda_entropy * H(softmax(f_t(x_t)))                 (label adaptation)

  With every weight 0 the target batch is never forwarded: source-only training, whose BatchNorm
  statistics are the source domain's alone.
- :func:`adabn` re-estimates every BatchNorm's running statistics on target images (Li et al.
  2016); nothing else changes.

One step in your own loop (DataLoaders of source pairs and of target images)::

    objective = AdaptationObjective(lambda_domain=1, lambda_mmd=1, lambda_entropy=0.1,
                                    total_steps=len(loader))
    for step, ((xs, ys), xt) in enumerate(zip(source_loader, target_loader)):
        loss = objective(model, xs, ys, xt, step)
        opt.zero_grad(); loss.backward(); opt.step()
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from dnnrepro.core.errors import ConfigError, DataError

from .losses import (
    DEFAULT_KERNEL_SCALES,
    ESTIMATORS,
    DomainDiscriminator,
    conditional_map,
    domain_adversarial_loss,
    entropy_loss,
    mk_mmd,
    reverse_gradient,
    warm_start_coeff,
)

ADVERSARIES = ("dann", "cdan")


class AdaptationNet(nn.Module):
    """backbone -> bottleneck -> classifier (+ residual source classifier, + domain discriminator).

    ``features``: any module mapping (N, C, H, W) images to (N, ``feature_dim``) features.
    ``forward(x)``: (N, C, H, W) -> (N, K) logits of the target classifier f_t.
    ``embed(x)``: (N, C, H, W) -> (N, bottleneck) adapted features.
    ``discriminator_hidden``: None for no discriminator; ``conditional``: the discriminator reads
    CDAN's (bottleneck * K)-wide multilinear map instead of the bottleneck features.
    ``in_channels``: when given, inputs are checked to be (N, in_channels, H, W).
    """

    def __init__(
        self,
        features: nn.Module,
        feature_dim: int,
        num_classes: int,
        in_channels: int | None = None,
        bottleneck: int = 128,
        dropout: float = 0.0,
        residual: bool = False,
        discriminator_hidden: int | None = None,
        conditional: bool = False,
    ):
        super().__init__()
        if feature_dim < 1 or num_classes < 2 or bottleneck < 1:
            raise ConfigError(
                "AdaptationNet needs feature_dim >= 1, num_classes >= 2, bottleneck >= 1"
            )
        self.features = features
        self.in_channels = in_channels
        self.bottleneck = nn.Sequential(
            nn.Linear(feature_dim, bottleneck), nn.ReLU(inplace=True), nn.Dropout(dropout)
        )
        self.classifier = nn.Linear(bottleneck, num_classes)
        self.residual = None
        if residual:
            self.residual = nn.Sequential(
                nn.Linear(num_classes, num_classes),
                nn.ReLU(inplace=True),
                nn.Linear(num_classes, num_classes),
            )
            # start as the identity map f_s = f_t; the residual is learned only where needed
            nn.init.zeros_(self.residual[2].weight)
            nn.init.zeros_(self.residual[2].bias)
        self.conditional = bool(conditional)
        width = bottleneck * num_classes if conditional else bottleneck
        self.discriminator = (
            DomainDiscriminator(width, discriminator_hidden) if discriminator_hidden else None
        )

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_channels is not None and (x.dim() != 4 or x.shape[1] != self.in_channels):
            raise ConfigError(
                f"expected images (N, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )
        return self.bottleneck(self.features(x))

    def source_logits(self, target_logits: torch.Tensor) -> torch.Tensor:
        if self.residual is None:
            return target_logits
        return target_logits + self.residual(target_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


class AdaptationObjective(nn.Module):
    """The combined loss of one step (module doc); ``forward(model, xs, ys, xt, step)`` -> scalar.

    ``model``: an :class:`AdaptationNet` (or a DDP wrapper of one). ``step`` (0-based) drives the
    gradient-reversal coefficient ``warm_start_coeff(step, 0, 1, grl_alpha, total_steps)``
    (DANN's schedule over training progress with grl_alpha=10) and, with ``ramp_weights``, the same
    ramp on the MMD and entropy weights (so alignment cannot collapse still-random features).
    After each call ``terms`` holds the step's loss terms as floats (nats / MMD^2 units;
    ``domain_acc`` a fraction). The linear MMD estimator falls back to the biased one on a batch
    pair of unequal or odd size (the last batch of an epoch).
    """

    def __init__(
        self,
        *,
        lambda_domain: float = 0.0,
        lambda_mmd: float = 0.0,
        lambda_entropy: float = 0.0,
        adversary: str = "dann",
        mmd_estimator: str = "linear",
        kernels: Iterable[float] = DEFAULT_KERNEL_SCALES,
        grl_alpha: float = 10.0,
        total_steps: int = 1000,
        ramp_weights: bool = True,
    ):
        super().__init__()
        weights = (float(lambda_domain), float(lambda_mmd), float(lambda_entropy))
        if not all(math.isfinite(w) and w >= 0 for w in weights):
            raise ConfigError(
                "lambda_domain, lambda_mmd and lambda_entropy must be finite and >= 0"
            )
        if adversary not in ADVERSARIES:
            raise ConfigError(f"adversary must be one of {', '.join(ADVERSARIES)}")
        if mmd_estimator not in ESTIMATORS:
            raise ConfigError(f"mmd_estimator must be one of {', '.join(ESTIMATORS)}")
        kernels = tuple(float(k) for k in kernels)
        if not kernels or any(k <= 0 for k in kernels):
            raise ConfigError("kernels must be a non-empty list of positive bandwidth scales")
        if not (isinstance(total_steps, int) and total_steps >= 1):
            raise ConfigError("total_steps must be an integer >= 1")
        self.lambda_domain, self.lambda_mmd, self.lambda_entropy = weights
        self.adversary = adversary
        self.mmd_estimator = mmd_estimator
        self.kernels = kernels
        self.grl_alpha = float(grl_alpha)
        self.total_steps = total_steps
        self.ramp_weights = bool(ramp_weights)
        self.terms: dict[str, float] = {}

    @property
    def uses_target(self) -> bool:
        return bool(self.lambda_domain or self.lambda_mmd or self.lambda_entropy)

    def grl_coeff(self, step: int) -> float:
        return warm_start_coeff(step, 0.0, 1.0, self.grl_alpha, self.total_steps)

    def forward(
        self,
        model: nn.Module,
        xs: torch.Tensor,
        ys: torch.Tensor,
        xt: torch.Tensor | None,
        step: int,
    ) -> torch.Tensor:
        net: AdaptationNet = getattr(model, "module", model)
        if not self.uses_target:
            ce = F.cross_entropy(net.source_logits(model(xs)), ys)
            self.terms = {"ce": float(ce.detach())}
            return ce
        if xt is None or len(xt) == 0:
            raise DataError("the adaptation objective needs a non-empty target batch")
        z = net.embed(torch.cat([xs, xt]))
        zs, zt = z[: len(xs)], z[len(xs) :]
        logits = net.classifier(z)
        lt = logits[len(xs) :]
        terms: dict[str, torch.Tensor] = {
            "ce": F.cross_entropy(net.source_logits(logits[: len(xs)]), ys)
        }
        loss = terms["ce"]
        coeff = self.grl_coeff(step)
        ramp = coeff if self.ramp_weights else 1.0
        if self.lambda_mmd and len(xs) >= 2 and len(xt) >= 2:
            estimator = self.mmd_estimator
            if estimator == "linear" and (len(xs) != len(xt) or len(xs) % 2):
                estimator = "biased"
            terms["mmd"] = mk_mmd(zs, zt, self.kernels, estimator)
            loss = loss + ramp * self.lambda_mmd * terms["mmd"]
        if self.lambda_domain:
            if net.discriminator is None:
                raise ConfigError("lambda_domain > 0 needs a model built with discriminator_hidden")
            h = conditional_map(z, logits.detach()) if net.conditional else z
            # CDAN conditions on the predictions but does not train the classifier through the map
            # (TLlib detaches the softmax as well)
            d = net.discriminator(reverse_gradient(h, coeff))
            terms["domain"], acc = domain_adversarial_loss(d[: len(xs)], d[len(xs) :])
            terms["domain_acc"] = torch.tensor(acc)
            loss = loss + self.lambda_domain * terms["domain"]
        if self.lambda_entropy:
            terms["entropy"] = entropy_loss(lt)
            loss = loss + ramp * self.lambda_entropy * terms["entropy"]
        self.terms = {k: float(v.detach()) for k, v in terms.items()}
        return loss

    def extra_repr(self) -> str:
        return (
            f"lambda_domain={self.lambda_domain:g}, lambda_mmd={self.lambda_mmd:g}, "
            f"lambda_entropy={self.lambda_entropy:g}, adversary={self.adversary}, "
            f"mmd_estimator={self.mmd_estimator}, total_steps={self.total_steps}"
        )


_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@torch.no_grad()
def adabn(model: nn.Module, target_x: torch.Tensor, batch_size: int = 256) -> nn.Module:
    """AdaBN in place: every BatchNorm's running mean/variance become the target images' statistics.

    ``target_x``: (N, C, H, W) unlabelled target images. The statistics are exact averages over
    all ``batch_size`` batches (momentum None while re-estimating); parameters and every other
    buffer stay as they were, and the model's train/eval mode is restored. Returns ``model``.
    """
    if not torch.is_tensor(target_x) or len(target_x) < 2:
        raise DataError("adabn needs a tensor of at least 2 target images")
    if batch_size < 2:
        raise ConfigError("adabn: batch_size must be >= 2 (BatchNorm needs a batch)")
    layers = [m for m in model.modules() if isinstance(m, _BN) and m.track_running_stats]
    if isinstance(model, AdaptationNet) and model.discriminator is not None:
        # the discriminator never sees test images: its statistics are not the target's
        skip = {id(m) for m in model.discriminator.modules()}
        layers = [m for m in layers if id(m) not in skip]
    was_training = {m: m.training for m in model.modules()}
    momenta = {m: m.momentum for m in layers}
    model.eval()
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
        m.train()
    device = next(model.parameters()).device
    net = model.embed if isinstance(model, AdaptationNet) else model
    for start in range(0, len(target_x), batch_size):
        batch = target_x[start : start + batch_size]
        if len(batch) >= 2:
            net(batch.to(device))
    for m in layers:
        m.momentum = momenta[m]
    for m, mode in was_training.items():
        m.train(mode)
    return model
