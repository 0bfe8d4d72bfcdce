"""``adapt()``: the convenience driver that trains an :class:`AdaptationNet` with a method.

``adapt(model, source, target, method)`` trains ``model.features`` plus a bottleneck and a
classifier on labelled source images and UNLABELLED target images, through the core training loop
(``dnnrepro.core.train.fit``, which draws the source batch; the target batch of step s is a fixed
function of (seed, s), so a resumed run sees the same batches). The loss of one step is
:class:`~dnnrepro.conv_m_da.method.AdaptationObjective` (see :mod:`dnnrepro.conv_m_da.method` to use
the head and the objective in your own loop).

Methods (the settings a method implies; any weight can be overridden):

===============  ======  =====  =======  ========  ==========  =============  ============
method           domain  mmd    entropy  residual  adversary   MMD estimator  lr schedule
===============  ======  =====  =======  ========  ==========  =============  ============
``source_only``  0       0      0        no        -           -              constant
``adabn``        no training: BatchNorm statistics re-estimated on the target images
``dan``          0       1      0        no        -           linear         constant
``dann``         1       0      0        no        DANN        -              DANN's decay
``cdan``         1       0      0        no        CDAN        -              DANN's decay
``ours``         1       1      0.1      yes       DANN        biased         constant
===============  ======  =====  =======  ========  ==========  =============  ============

DAN: averaged Gaussian kernels (bandwidths 2^k * mean pairwise squared distance, k = -3..1) and the
linear-time estimator, weight 1 (Long et al. 2015). DANN: gradient reversal coefficient
2/(1+exp(-10 p)) - 1 and learning rate lr/(1 + 10 p)^0.75 over training progress p (Ganin &
Lempitsky 2015). CDAN: the discriminator reads z (x) softmax(f) (Long et al. 2018; no entropy
conditioning). The combination in ``ours`` is the paper's three abstract clauses mapped onto known
methods; its weights (1, 1, 0.1) and feature layer (the bottleneck) are RECONSTRUCTED.

Target labels never reach training: ``target`` may be images or (images, labels) and labels are
dropped on entry; ``target_test`` is only evaluated after training. Model selection without
target labels: by default (``select="last"``) the LAST iterate is reported (no early stopping on
any target signal). ``select="im"`` or ``"snd"`` scores the network every ``select_every`` steps
(and at the last step) with an unsupervised validator (:mod:`dnnrepro.conv_m_da.validators`) on a
fixed subset of the unlabelled target TRAINING images and returns the best-scoring checkpoint;
scoring runs in eval mode and draws no random numbers, so the training trajectory is the same
as with ``"last"``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dnnrepro.core.errors import ConfigError, DataError
from dnnrepro.core.train import Callback, TrainConfig, check_pair, evaluate, fit

from .losses import DEFAULT_KERNEL_SCALES, ESTIMATORS
from .method import AdaptationNet, AdaptationObjective, adabn
from .validators import SND_TEMPERATURE, VALIDATORS, strided_subset, validator_score

METHODS = ("source_only", "adabn", "dan", "dann", "cdan", "ours")
SELECTIONS = ("last", *VALIDATORS)  # which checkpoint adapt returns
# method -> (lambda_domain, lambda_mmd, lambda_entropy, residual, adversary, mmd estimator, decay)
METHOD_SETTINGS = {
    "source_only": (0.0, 0.0, 0.0, False, "dann", "linear", False),
    "adabn": (0.0, 0.0, 0.0, False, "dann", "linear", False),
    "dan": (0.0, 1.0, 0.0, False, "dann", "linear", False),
    "dann": (1.0, 0.0, 0.0, False, "dann", "linear", True),
    "cdan": (1.0, 0.0, 0.0, False, "cdan", "linear", True),
    "ours": (1.0, 1.0, 0.1, True, "dann", "biased", False),
}


@dataclass(frozen=True, kw_only=True)
class AdaptConfig:
    """Settings of one adaptation run. ``None`` fields take the method's defaults (table above).

    ``steps`` optimizer steps, each on ``batch_size`` source and ``batch_size`` target images
    (ignored by ``adabn``). The gradient-reversal coefficient follows
    :func:`~dnnrepro.conv_m_da.losses.warm_start_coeff` with ``grl_alpha`` and ``grl_max_iters``
    (None: the run's ``steps``, i.e. DANN's schedule over training progress). ``ramp_weights``: the
    MMD and entropy weights follow the same ramp (from 0 at step 0), so that on networks trained
    from scratch the alignment terms cannot collapse the still-random features before the
    classifier has learned anything; it applies to every method alike. ``lr_decay``: DANN's
    lr / (1 + 10 p)^0.75 over progress p (replaces ``schedule``; the core's ``inv`` schedule).

    Checkpoint selection without target labels (module doc): ``select`` is ``"last"`` (the last
    iterate), ``"im"`` or ``"snd"`` (the best validator score, computed every ``select_every``
    steps and at the last step on ``select_images`` evenly strided unlabelled target training
    images; ``snd_temperature`` is SND's T).
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
    adversary: str | None = None
    mmd_estimator: str | None = None
    lr_decay: bool | None = None
    kernels: tuple[float, ...] = DEFAULT_KERNEL_SCALES
    grl_alpha: float = 10.0
    grl_max_iters: int | None = None
    ramp_weights: bool = True
    checkpoint_every: int = 0
    select: str = "last"
    select_every: int = 50
    select_images: int = 2000
    snd_temperature: float = SND_TEMPERATURE

    def resolved(self) -> AdaptConfig:
        """Validated copy with the method's defaults filled in."""
        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        d, m, e, r, adversary, estimator, decay = METHOD_SETTINGS[self.method]

        def pick(value, default, kind):
            return default if value is None else kind(value)

        out = dataclasses.replace(
            self,
            lambda_domain=pick(self.lambda_domain, d, float),
            lambda_mmd=pick(self.lambda_mmd, m, float),
            lambda_entropy=pick(self.lambda_entropy, e, float),
            residual=pick(self.residual, r, bool),
            adversary=pick(self.adversary, adversary, str),
            mmd_estimator=pick(self.mmd_estimator, estimator, str),
            lr_decay=pick(self.lr_decay, decay, bool),
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
            (out.adversary in ("dann", "cdan"), "adversary must be dann or cdan"),
            (
                not out.lr_decay or out.schedule == "constant",
                "lr_decay is DANN's schedule itself: leave schedule='constant' or set lr_decay=False",
            ),
            (bool(out.kernels) and all(k > 0 for k in out.kernels), "kernels must be positive"),
            (out.grl_max_iters is None or out.grl_max_iters >= 1, "grl_max_iters must be >= 1"),
            (out.select in SELECTIONS, f"select must be one of {', '.join(SELECTIONS)}"),
            (
                isinstance(out.select_every, int) and out.select_every >= 1,
                "select_every must be an integer >= 1",
            ),
            (
                isinstance(out.select_images, int) and out.select_images >= 3,
                "select_images must be an integer >= 3",
            ),
            (
                math.isfinite(out.snd_temperature) and out.snd_temperature > 0,
                "snd_temperature must be > 0",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"invalid adaptation config: {message}")
        return out

    def train_config(self) -> TrainConfig:
        """The core loop's config: ``steps`` optimizer steps over the source set (with DANN's lr
        decay, the core's ``inv`` schedule with power 0.75, when ``lr_decay``)."""
        decay = {"schedule": "inv", "power": 0.75, "inv_alpha": 10.0} if self.lr_decay else {}
        return TrainConfig(
            steps=self.steps,
            batch_size=self.batch_size,
            lr=self.lr,
            optimizer=self.optimizer,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            seed=self.seed,
            checkpoint_every=self.checkpoint_every,
            **({"schedule": self.schedule} | decay),
        ).validate()

    def objective(self) -> AdaptationObjective:
        c = self if self.adversary is not None else self.resolved()
        return AdaptationObjective(
            lambda_domain=c.lambda_domain,
            lambda_mmd=c.lambda_mmd,
            lambda_entropy=c.lambda_entropy,
            adversary=c.adversary,
            mmd_estimator=c.mmd_estimator,
            kernels=c.kernels,
            grl_alpha=c.grl_alpha,
            total_steps=c.grl_max_iters or c.steps,
            ramp_weights=c.ramp_weights,
        )


class TargetBatches:
    """The target images of step ``s``: a fixed function of (seed, s), so a resume sees the same."""

    def __init__(self, target_x: torch.Tensor, batch_size: int, seed: int):
        self.target_x = target_x
        self.batch = min(batch_size, len(target_x))
        self.per_epoch = max(1, len(target_x) // self.batch)
        self.seed = seed

    def __call__(self, step: int, size: int) -> torch.Tensor:
        epoch, j = divmod(step, self.per_epoch)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + 7919 * epoch + 17)
        order = torch.randperm(len(self.target_x), generator=gen)
        return self.target_x[order[j * self.batch : (j + 1) * self.batch][:size]]


class TermMeans(Callback):
    """Sums each loss term of the objective over the steps run; its state is in fit's checkpoint,
    so the means of a resumed run cover every step (not only those this process ran)."""

    def __init__(self, objective: AdaptationObjective):
        self.objective = objective
        self.sums: dict[str, float] = {}
        self.count = 0

    def after_step(self, model: nn.Module, step: int) -> None:
        for k, v in self.objective.terms.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1

    def means(self) -> dict[str, float]:
        return {k: v / self.count for k, v in self.sums.items()} if self.count else {}

    def state_dict(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sums = {k: float(v) for k, v in state["sums"].items()}
        self.count = int(state["count"])


class ValidatorSelection(Callback):
    """Keeps the checkpoint with the best unsupervised validator score (higher is better).

    Scores ``images`` (unlabelled target images, (N, C, H, W)) after every ``every``-th step and
    after step ``total``; ties keep the earlier checkpoint. Its state (the best weights as
    tensors, the score history) is in fit's checkpoint, so a resumed run selects among every
    step's scores, not only those this process computed.
    """

    def __init__(
        self, validator: str, images: torch.Tensor, every: int, total: int, temperature: float
    ):
        self.validator, self.images = validator, images
        self.every, self.total, self.temperature = every, total, temperature
        self.scores: list[list[float]] = []  # [step, score]
        self.best_step: int | None = None
        self.best_score: float | None = None
        self.best: dict[str, torch.Tensor] = {}

    def after_step(self, model: nn.Module, step: int) -> None:
        done = step + 1
        if done % self.every and done != self.total:
            return
        score = validator_score(model, self.images, self.validator, temperature=self.temperature)
        self.scores.append([done, score])
        if self.best_score is None or score > self.best_score:
            self.best_step, self.best_score = done, score
            self.best = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def summary(self) -> dict[str, Any]:
        """``{"validator", "step", "score", "scores": [[step, score], ...]}`` (JSON-able)."""
        return {
            "validator": self.validator,
            "step": self.best_step,
            "score": self.best_score,
            "scores": [list(s) for s in self.scores],
        }

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "scores": [list(s) for s in self.scores],
            "best_step": self.best_step,
            "best_score": self.best_score,
        }
        state.update({f"best.{k}": v for k, v in self.best.items()})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scores = [[int(a), float(b)] for a, b in state["scores"]]
        self.best_step = None if state["best_step"] is None else int(state["best_step"])
        self.best_score = None if state["best_score"] is None else float(state["best_score"])
        self.best = {k[5:]: v for k, v in state.items() if k.startswith("best.")}


@dataclass(kw_only=True)
@dataclass
class AdaptResult:
    """What ``adapt`` returns: the trained :class:`AdaptationNet` and its numbers.

    ``metrics``: source_test_accuracy / target_test_accuracy (fractions) when those sets were
    given; ``terms``: mean of each loss term over all steps of the run, resumed or not (nats /
    MMD^2 units); ``steps``: optimizer steps taken (0 for adabn); ``selection``: with
    ``select="im"|"snd"``, the validator, the chosen step, its score and every scored step
    (empty with ``select="last"``).
    """

    model: AdaptationNet
    config: AdaptConfig
    metrics: dict[str, float] = field(default_factory=dict)
    terms: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0
    selection: dict[str, Any] = field(default_factory=dict)


def _as_images(data: Any, what: str) -> torch.Tensor:
    x = data[0] if isinstance(data, tuple | list) else data
    if not torch.is_tensor(x) or x.dim() != 4:
        raise DataError(f"{what} must be images (N, C, H, W) or (images, labels)")
    if len(x) == 0:
        raise DataError(f"{what} is empty; adaptation needs unlabelled target images")
    return x


def _pair(data: Any, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = check_pair(data, what)
    if x.dim() != 4:
        raise DataError(f"{what}: images must be (N, C, H, W), got {tuple(x.shape)}")
    return x, y


def _build_net(model: nn.Module, config: AdaptConfig, ys: torch.Tensor) -> AdaptationNet:
    """A fresh AdaptationNet around a COPY of ``model``'s layers (the argument is not modified).

    From a network with ``features``, ``feature_dim`` and ``in_channels`` (compact_net and the
    other builders): its ``features`` with new bottleneck and classifier. From an AdaptationNet (a
    previous result, e.g. source-only pre-training): its features, bottleneck and classifier; the
    residual block and the discriminator are (re)made as ``config`` asks.
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
                    "squeeze_net_like or inception_like), a previous AdaptResult.model, or an "
                    "AdaptationNet around your own backbone"
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
        conditional=config.adversary == "cdan",
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
    :func:`compact_net`), or an :class:`AdaptationNet` (e.g. the ``model`` of a previous
    :class:`AdaptResult`, to continue from it). It is copied, never modified. ``method``: one of
    :data:`METHODS`; ``config`` an :class:`AdaptConfig` (``overrides`` replace its fields).
    ``checkpoint_dir``: resumable state (the core loop's checkpoints).
    """
    config = dataclasses.replace(config or AdaptConfig(), method=method, **overrides).resolved()
    xs, ys = _pair(source, "source data")
    xt = _as_images(target, "target data")
    torch.manual_seed(config.seed)  # the new heads' initialization
    net = _build_net(model, config, ys)
    if net.in_channels is not None and xs.shape[1] != net.in_channels:
        raise ConfigError(
            f"the network takes {net.in_channels} input channels but the images have "
            f"{xs.shape[1]}; build it with in_channels={xs.shape[1]}"
        )
    if xs.shape[1:] != xt.shape[1:]:
        raise DataError(
            f"source images are {tuple(xs.shape[1:])} but target images are {tuple(xt.shape[1:])}; "
            "resize both domains to one shape (C, H, W) first (see dnnrepro.conv_m_da.tasks)"
        )
    result = AdaptResult(net, config)
    if config.method == "adabn":
        adabn(net, xt, batch_size=max(2, config.batch_size))
    else:
        objective = config.objective()
        terms = TermMeans(objective)
        batches = TargetBatches(xt, config.batch_size, config.seed)

        def loss_fn(m: nn.Module, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
            x_t = batches(step, len(x)).to(x.device) if objective.uses_target else None
            return objective(m, x, y, x_t, step)

        callbacks: list[Callback] = [terms]
        selector = None
        if config.select != "last":
            # no callback with "last": checkpoints of runs without selection stay resumable
            selector = ValidatorSelection(
                config.select,
                strided_subset(xt, config.select_images),
                config.select_every,
                config.steps,
                config.snd_temperature,
            )
            callbacks.append(selector)
        trained = fit(
            net,
            (xs, ys),
            config.train_config(),
            loss_fn=loss_fn,
            callbacks=callbacks,
            checkpoint_dir=checkpoint_dir,
        )
        if selector is not None and selector.best:
            net.load_state_dict(selector.best)
            result.selection = selector.summary()
        result.terms, result.history = terms.means(), trained.history
        result.seconds, result.steps = trained.seconds, trained.steps
    if source_test is not None:
        result.metrics["source_test_accuracy"] = evaluate(net, _pair(source_test, "source_test"))[
            "accuracy"
        ]
    if target_test is not None:
        result.metrics["target_test_accuracy"] = evaluate(net, _pair(target_test, "target_test"))[
            "accuracy"
        ]
    if log:
        log(f"{config.method}: {result.steps} steps, {result.seconds:.1f} s, {result.metrics}")
    return result
