"""Unsupervised domain adaptation on the core training loop: the unified method and its baselines.

``adapt(model, source, target, method)`` trains ``model.features`` plus a bottleneck and a
classifier on labelled source images and UNLABELLED target images. One step (through
``dnnrepro.core.train.fit``, which draws the source batch; the target batch of step s is a fixed
function of (seed, s), so a resumed run sees the same batches):

    z_s, z_t = bottleneck(features(x_s)), bottleneck(features(x_t))        (B, bottleneck)
    f_t(x)   = classifier(z)                        the prediction used at test time (K logits)
    f_s(x)   = f_t(x) + residual(f_t(x))            source classifier (RTN's residual block; only
                                                    with ``residual=True``, else f_s = f_t)
    loss     = CE(f_s(x_s), y_s)
             + lambda_domain  * BCE(discriminator(GRL(z)), domain)      (DANN: domain invariance)
             + lambda_mmd     * MK-MMD(z_s, z_t)                          (DAN: divergence)
             + lambda_entropy * H(softmax(f_t(x_t)))                      (label adaptation)

Methods (the weights a method sets; any can be overridden):

===============  ==============  ===========  ===============  ========
method           lambda_domain   lambda_mmd   lambda_entropy   residual
===============  ==============  ===========  ===============  ========
``source_only``  0               0            0                no
``dan``          0               1            0                no
``dann``         1               0            0                no
``ours``         1               1            0.1              yes
===============  ==============  ===========  ===============  ========

The combination in ``ours`` is the paper's three abstract clauses mapped onto known methods; the
weights (1, 1, 0.1) and the feature layer (the bottleneck) are RECONSTRUCTED, not the paper's.

Target labels never reach training: ``target`` may be images or (images, labels) and labels are
dropped on entry; ``target_test`` is only evaluated after training. Model selection: none, the
LAST iterate is reported (no early stopping on any target signal).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dnnrepro.core.errors import ConfigError, DataError
from dnnrepro.core.train import Callback, TrainConfig, evaluate, fit

from .losses import (
    DEFAULT_KERNEL_SCALES,
    ESTIMATORS,
    DomainDiscriminator,
    domain_adversarial_loss,
    entropy_loss,
    mk_mmd,
    reverse_gradient,
    warm_start_coeff,
)

METHODS = ("source_only", "dan", "dann", "ours")
# (lambda_domain, lambda_mmd, lambda_entropy, residual) per method.
METHOD_WEIGHTS = {
    "source_only": (0.0, 0.0, 0.0, False),
    "dan": (0.0, 1.0, 0.0, False),
    "dann": (1.0, 0.0, 0.0, False),
    "ours": (1.0, 1.0, 0.1, True),
}


@dataclass
class AdaptConfig:
    """Settings of one adaptation run. ``None`` weights take the method's defaults (table above).

    ``steps`` optimizer steps, each on ``batch_size`` source and ``batch_size`` target images.
    The gradient-reversal coefficient follows :func:`warm_start_coeff` with ``grl_alpha`` and
    ``grl_max_iters`` (None: the run's ``steps``, i.e. DANN's schedule over training progress).
    ``ramp_weights``: the MMD and entropy weights follow the same ramp (from 0 at step 0), so that
    on networks trained from scratch the alignment terms cannot collapse the still-random features
    before the classifier has learned anything; it applies to every method alike.
    """

    method: str = "ours"
    steps: int = 400
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "constant"
    seed: int = 0
    bottleneck: int = 128
    bottleneck_dropout: float = 0.0
    discriminator_hidden: int = 256
    lambda_domain: float | None = None
    lambda_mmd: float | None = None
    lambda_entropy: float | None = None
    residual: bool | None = None
    mmd_estimator: str = "biased"
    kernels: tuple[float, ...] = DEFAULT_KERNEL_SCALES
    grl_alpha: float = 10.0
    grl_max_iters: int | None = None
    ramp_weights: bool = True
    checkpoint_every: int = 0

    def resolved(self) -> AdaptConfig:
        """Validated copy with the method's default weights filled in."""
        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        d, m, e, r = METHOD_WEIGHTS[self.method]
        out = dataclasses.replace(
            self,
            lambda_domain=d if self.lambda_domain is None else float(self.lambda_domain),
            lambda_mmd=m if self.lambda_mmd is None else float(self.lambda_mmd),
            lambda_entropy=e if self.lambda_entropy is None else float(self.lambda_entropy),
            residual=r if self.residual is None else bool(self.residual),
            kernels=tuple(float(k) for k in self.kernels),
        )
        checks = [
            (isinstance(out.steps, int) and out.steps >= 1, "steps must be an integer >= 1"),
            (isinstance(out.batch_size, int) and out.batch_size >= 2, "batch_size must be >= 2"),
            (out.bottleneck >= 1, "bottleneck must be >= 1"),
            (0 <= out.bottleneck_dropout < 1, "bottleneck_dropout must be in [0, 1)"),
            (out.discriminator_hidden >= 1, "discriminator_hidden must be >= 1"),
            (
                all(
                    math.isfinite(v) and v >= 0
                    for v in (out.lambda_domain, out.lambda_mmd, out.lambda_entropy)
                ),
                "lambda_domain, lambda_mmd and lambda_entropy must be finite and >= 0",
            ),
            (
                out.mmd_estimator in ESTIMATORS,
                f"mmd_estimator must be one of {', '.join(ESTIMATORS)}",
            ),
            (bool(out.kernels) and all(k > 0 for k in out.kernels), "kernels must be positive"),
            (out.grl_max_iters is None or out.grl_max_iters >= 1, "grl_max_iters must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"invalid adaptation config: {message}")
        return out

    def train_config(self, source_size: int) -> TrainConfig:
        """The core loop's config: enough source epochs to cover ``steps``, cut at ``steps``."""
        per_epoch = max(1, math.ceil(source_size / self.batch_size))
        return TrainConfig(
            epochs=max(1, math.ceil(self.steps / per_epoch)),
            batch_size=self.batch_size,
            lr=self.lr,
            optimizer=self.optimizer,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            schedule=self.schedule,
            seed=self.seed,
            max_steps=self.steps,
            checkpoint_every=self.checkpoint_every,
        ).validate()


class AdaptationNet(nn.Module):
    """features -> bottleneck -> classifier (+ residual source classifier, + domain discriminator).

    ``forward(x)``: (N, C, H, W) -> (N, K) logits of the target classifier f_t.
    ``embed(x)``: (N, C, H, W) -> (N, bottleneck) adapted features.
    ``step_count`` is a buffer (saved in checkpoints) so the GRL schedule and the target batch
    order survive a resume.
    """

    def __init__(
        self,
        features: nn.Module,
        feature_dim: int,
        num_classes: int,
        in_channels: int,
        bottleneck: int = 128,
        dropout: float = 0.0,
        residual: bool = False,
        discriminator_hidden: int | None = None,
    ):
        super().__init__()
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
        self.discriminator = (
            DomainDiscriminator(bottleneck, discriminator_hidden) if discriminator_hidden else None
        )
        self.register_buffer("step_count", torch.zeros((), dtype=torch.long))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
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


class AdaptationLoss:
    """``loss_fn(model, x_s, y_s)`` for ``fit``: draws the target batch and adds the DA terms.

    Keeps running sums of each term for the report (``means()``).
    """

    def __init__(self, target_x: torch.Tensor, config: AdaptConfig):
        self.target_x = target_x
        self.config = config
        self.batch = min(config.batch_size, len(target_x))
        self.per_epoch = max(1, len(target_x) // self.batch)
        self.sums: dict[str, float] = {}
        self.count = 0

    def target_batch(self, step: int, size: int) -> torch.Tensor:
        """The target images of step ``step``: a fixed function of (seed, step)."""
        epoch, j = divmod(step, self.per_epoch)
        gen = torch.Generator().manual_seed(self.config.seed * 1_000_003 + 7919 * epoch + 17)
        order = torch.randperm(len(self.target_x), generator=gen)
        idx = order[j * self.batch : (j + 1) * self.batch][:size]
        return self.target_x[idx]

    def grl_coeff(self, step: int) -> float:
        c = self.config
        return warm_start_coeff(step, 0.0, 1.0, c.grl_alpha, c.grl_max_iters or c.steps)

    def __call__(
        self, net: nn.Module, xs: torch.Tensor, ys: torch.Tensor, _fit_step: int = 0
    ) -> torch.Tensor:
        model: AdaptationNet = getattr(net, "module", net)
        c = self.config
        # still the model's own counter, not fit's step: a continued network keeps counting
        step = int(model.step_count)
        if not (c.lambda_mmd or c.lambda_domain or c.lambda_entropy):
            # source only: target images are never forwarded, so BatchNorm statistics (and so
            # the test-time network) are those of the source domain alone, as in TLlib's ERM
            ce = F.cross_entropy(model.source_logits(model(xs)), ys)
            self.sums["ce"] = self.sums.get("ce", 0.0) + float(ce.detach())
            self.count += 1
            return ce
        xt = self.target_batch(step, len(xs)).to(xs.device)
        z = model.embed(torch.cat([xs, xt]))
        zs, zt = z[: len(xs)], z[len(xs) :]
        logits = model.classifier(z)
        ls, lt = logits[: len(xs)], logits[len(xs) :]
        terms: dict[str, torch.Tensor] = {"ce": F.cross_entropy(model.source_logits(ls), ys)}
        loss = terms["ce"]
        ramp = self.grl_coeff(step) if c.ramp_weights else 1.0
        if c.lambda_mmd and len(xs) >= 2 and len(xt) >= 2:
            estimator = c.mmd_estimator
            if estimator == "linear" and (len(xs) != len(xt) or len(xs) % 2):
                estimator = "biased"  # the last, odd-sized batch of an epoch
            terms["mmd"] = mk_mmd(zs, zt, c.kernels, estimator)
            loss = loss + ramp * c.lambda_mmd * terms["mmd"]
        if c.lambda_domain and model.discriminator is not None:
            d = model.discriminator(reverse_gradient(z, self.grl_coeff(step)))
            terms["domain"], acc = domain_adversarial_loss(d[: len(xs)], d[len(xs) :])
            terms["domain_acc"] = torch.tensor(acc)
            loss = loss + c.lambda_domain * terms["domain"]
        if c.lambda_entropy:
            terms["entropy"] = entropy_loss(lt)
            loss = loss + ramp * c.lambda_entropy * terms["entropy"]
        for k, v in terms.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v.detach())
        self.count += 1
        return loss

    def means(self) -> dict[str, float]:
        return {k: v / self.count for k, v in self.sums.items()} if self.count else {}


class _Advance(Callback):
    """Counts optimizer steps in the model's ``step_count`` buffer (stateless: the count is in
    the model's checkpoint)."""

    def after_step(self, model: nn.Module, step: int) -> None:
        model.step_count += 1


@dataclass
class AdaptResult:
    """What ``adapt`` returns: the trained :class:`AdaptationNet` and its numbers.

    ``metrics``: source_test_accuracy / target_test_accuracy (fractions) when those sets were
    given; ``terms``: mean of each loss term over the steps run in this call (nats / MMD^2 units).
    """

    model: AdaptationNet
    config: AdaptConfig
    metrics: dict[str, float] = field(default_factory=dict)
    terms: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def _as_images(data: Any, what: str) -> torch.Tensor:
    x = data[0] if isinstance(data, tuple | list) else data
    if not torch.is_tensor(x) or x.dim() != 4:
        raise DataError(f"{what} must be images (N, C, H, W) or (images, labels)")
    if len(x) == 0:
        raise DataError(f"{what} is empty; adaptation needs unlabelled target images")
    return x


def _check_pair(data: Any, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(data, tuple | list) and len(data) == 2):
        raise DataError(f"{what} must be (images, labels)")
    x, y = data
    _as_images(x, what)
    if not torch.is_tensor(y) or len(y) != len(x):
        raise DataError(f"{what}: labels must be a tensor with one label per image")
    return x, y


def _build_net(model: nn.Module, config: AdaptConfig, ys: torch.Tensor) -> AdaptationNet:
    """A fresh AdaptationNet around a COPY of ``model``'s layers (the argument is not modified).

    From a ConvNet: its ``features`` with new bottleneck and classifier. From an AdaptationNet (a
    previous result, e.g. source-only pre-training): its features, bottleneck and classifier;
    the residual block and the discriminator are (re)made as ``config`` asks.
    """
    if isinstance(model, AdaptationNet):
        features = copy.deepcopy(model.features)
        feature_dim = model.bottleneck[0].in_features
        num_classes, in_channels = model.classifier.out_features, model.in_channels
    else:
        for name in ("features", "feature_dim", "in_channels"):
            if not hasattr(model, name):
                raise ConfigError(
                    f"adapt needs a network with .{name} (build one with compact_net, "
                    "squeeze_net_like or inception_like) or a previous AdaptResult.model"
                )
        features = copy.deepcopy(model.features)
        feature_dim, in_channels = model.feature_dim, model.in_channels
        num_classes = int(getattr(model, "num_classes", int(ys.max()) + 1))
    if int(ys.min()) < 0 or int(ys.max()) >= num_classes:
        raise DataError(f"source labels must lie in 0..{num_classes - 1}")
    net = AdaptationNet(
        features,
        feature_dim,
        num_classes,
        in_channels,
        config.bottleneck,
        config.bottleneck_dropout,
        config.residual,
        config.discriminator_hidden if config.lambda_domain else None,
    )
    if isinstance(model, AdaptationNet):
        if model.classifier.in_features != config.bottleneck:
            raise ConfigError(
                f"the given network's bottleneck is {model.classifier.in_features} wide; "
                f"set bottleneck={model.classifier.in_features}"
            )
        net.bottleneck.load_state_dict(model.bottleneck.state_dict())
        net.classifier.load_state_dict(model.classifier.state_dict())
    return net.to(next(model.parameters()).device)


def adapt(
    model: nn.Module,
    source: tuple[torch.Tensor, torch.Tensor],
    target: Any,
    method: str = "ours",
    *,
    target_test: tuple[torch.Tensor, torch.Tensor] | None = None,
    source_test: tuple[torch.Tensor, torch.Tensor] | None = None,
    config: AdaptConfig | None = None,
    checkpoint_dir=None,
    log: Callable[[str], None] | None = None,
    **overrides,
) -> AdaptResult:
    """Adapt ``model`` from labelled ``source`` = (x, y) to unlabelled ``target`` images.

    ``model``: a network with ``features``, ``feature_dim`` and ``in_channels`` (e.g.
    :func:`compact_net`), or the ``model`` of a previous :class:`AdaptResult` to continue from it
    (e.g. adapt a source-trained network). It is copied, never modified. ``method`` in
    source_only | dan | dann | ours; ``config`` an :class:`AdaptConfig` (``overrides`` replace its
    fields). ``checkpoint_dir``: resumable state (the core loop's checkpoints).
    """
    config = dataclasses.replace(config or AdaptConfig(), method=method, **overrides).resolved()
    xs, ys = _check_pair(source, "source data")
    xt = _as_images(target, "target data")
    torch.manual_seed(config.seed)  # the new heads' initialization
    net = _build_net(model, config, ys)
    if xs.shape[1] != net.in_channels:
        raise ConfigError(
            f"the network takes {net.in_channels} input channels but the images have "
            f"{xs.shape[1]}; build it with in_channels={xs.shape[1]}"
        )
    if xs.shape[1:] != xt.shape[1:]:
        raise DataError(
            f"source images are {tuple(xs.shape[1:])} but target images are {tuple(xt.shape[1:])}; "
            "resize both domains to one shape (C, H, W) first (see dnnrepro.conv_m_da.tasks)"
        )
    loss = AdaptationLoss(xt, config)
    trained = fit(
        net,
        (xs, ys),
        config.train_config(len(xs)),
        loss_fn=loss,
        callbacks=[_Advance()],
        checkpoint_dir=checkpoint_dir,
    )
    metrics: dict[str, float] = {}
    if source_test is not None:
        metrics["source_test_accuracy"] = evaluate(net, _check_pair(source_test, "source_test"))[
            "accuracy"
        ]
    if target_test is not None:
        metrics["target_test_accuracy"] = evaluate(net, _check_pair(target_test, "target_test"))[
            "accuracy"
        ]
    if log:
        log(f"{config.method}: {trained.steps} steps, {trained.seconds:.1f} s, {metrics}")
    return AdaptResult(net, config, metrics, loss.means(), trained.history, trained.seconds)
