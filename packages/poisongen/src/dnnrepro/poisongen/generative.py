"""The generative method: an auto-encoder that maps a clean image to a poison in one forward pass.

Generator (authors' ``aemodel_2.json`` for MNIST): D -> 200 -> ReLU -> 200 -> ReLU -> D -> sigmoid,
pretrained as an auto-encoder on clean images, so it starts out reproducing its input. It is then
updated against the target, which plays the discriminator (GAN-like alternation), by one of:

- ``reward="faithful"`` (authors' code, per round): x_p = G(x_seed); pseudo-update of the target
  (one SGD step on (x_p, y_p) from the pretrained weights); normal loss L on the clean normal
  samples and g = sum_i dL/dx_i, the gradient with respect to the *normal inputs* (no second
  derivative); feed -sign(g) * sign(L - L_prev) as the gradient of G's output and take one SGD step
  on G (lr 0.005, bias lr 2x). L_prev starts at the pretrained model's normal loss.
- ``reward="unrolled"`` (ours): backpropagate the unrolled normal loss L(w1(G(x_seed))) into G and
  ascend it (exact, needs second derivatives during fit only).

After ``fit``, ``poison(x, y)`` costs one generator forward pass per poison.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from dnnrepro.core.errors import ConfigError
from dnnrepro.core.train import TrainConfig, fit

from .base import PoisoningAttack
from .retrain import Retraining, sgd_step, summed_loss

REWARDS = ("faithful", "unrolled")


class Generator(nn.Module):
    """Fully connected auto-encoder on images of ``shape`` (C, H, W); output in [0, 1] (sigmoid).

    ``hidden`` are the widths between input and output: (200, 200) for MNIST as in the authors'
    code, (3000, 2000, 1000, 1000, 2000) for CIFAR-10.
    """

    def __init__(self, shape: Sequence[int] = (1, 28, 28), hidden: Sequence[int] = (200, 200)):
        super().__init__()
        if len(shape) != 3 or not hidden:
            raise ConfigError("Generator needs shape (C, H, W) and at least one hidden width")
        self.shape = tuple(int(s) for s in shape)
        d = self.shape[0] * self.shape[1] * self.shape[2]
        widths = [d, *hidden, d]
        layers: list[tuple[str, nn.Module]] = []
        for i in range(len(widths) - 1):
            layers.append((f"fc{i + 1}", nn.Linear(widths[i], widths[i + 1])))
            layers.append((f"act{i + 1}", nn.ReLU() if i < len(widths) - 2 else nn.Sigmoid()))
        self.layers = nn.Sequential(OrderedDict(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, H, W) in [0, 1]."""
        return self.layers(x.flatten(1)).view(len(x), *self.shape)


def _reconstruction_loss(
    model: nn.Module, x: torch.Tensor, _y: torch.Tensor, _step: int
) -> torch.Tensor:
    return F.mse_loss(model(x), x)


def pretrain_autoencoder(
    generator: Generator,
    images: torch.Tensor,
    config: TrainConfig | None = None,
    checkpoint_dir=None,
) -> dict:
    """Train ``generator`` to reconstruct ``images`` (mean squared error), with the core loop.

    Returns {'seconds', 'mse'}; resumable through ``checkpoint_dir``.
    """
    config = config or TrainConfig(epochs=10, batch_size=64, lr=1e-3, optimizer="adam")
    dummy = torch.zeros(len(images), dtype=torch.int64)
    result = fit(
        generator,
        (images, dummy),
        config,
        loss_fn=_reconstruction_loss,
        checkpoint_dir=checkpoint_dir,
    )
    with torch.no_grad():
        mse = float(F.mse_loss(generator(images[:1000]), images[:1000]))
    return {"seconds": result.seconds, "mse": mse}


class GenerativeAttack(PoisoningAttack):
    """Generative poisoning: ``fit()`` trains the generator against the target, ``poison`` maps.

    Args beyond :class:`PoisoningAttack`: ``generator`` (a pretrained :class:`Generator`, or None
    to build one and pretrain it as an auto-encoder on ``clean_data`` inside ``fit``), ``rounds``
    (generator updates; authors: 10), ``generator_lr`` (0.005; bias lr 2x), ``seeds_per_round``
    (seed images per update; authors: 1), ``reward`` ('faithful' or 'unrolled').
    """

    def __init__(
        self,
        model,
        clean_data,
        generator: Generator | None = None,
        rounds: int = 10,
        generator_lr: float = 0.005,
        seeds_per_round: int = 1,
        reward: str = "faithful",
        num_normal: int = 10,
        retraining: Retraining | None = None,
        clip: tuple[float, float] = (0.0, 1.0),
        pretrain: TrainConfig | None = None,
        seed: int = 0,
    ):
        if reward not in REWARDS:
            raise ConfigError(f"reward must be one of {REWARDS}, not {reward!r}")
        if not (isinstance(rounds, int) and rounds >= 0):
            raise ConfigError(f"rounds must be an integer >= 0, not {rounds!r}")
        if not generator_lr > 0:
            raise ConfigError(f"generator_lr must be > 0, not {generator_lr!r}")
        if not (isinstance(seeds_per_round, int) and seeds_per_round >= 1):
            raise ConfigError(f"seeds_per_round must be an integer >= 1, not {seeds_per_round!r}")
        super().__init__(model, clean_data, num_normal, retraining, clip, seed)
        if clip != (0.0, 1.0):
            raise ConfigError(
                "GenerativeAttack: the sigmoid generator produces [0, 1]; use clip=(0, 1)"
            )
        self.clean_data = clean_data
        if generator is None:
            torch.manual_seed(seed)
            generator = Generator(self.input_shape).to(clean_data[0].device)
            self.needs_pretraining = True
        else:
            if not isinstance(generator, nn.Module):
                raise ConfigError("generator must be a torch.nn.Module mapping images to images")
            self.needs_pretraining = False
        self.generator = generator
        self.rounds, self.generator_lr = rounds, float(generator_lr)
        self.seeds_per_round, self.reward = seeds_per_round, reward
        self.pretrain_config = pretrain
        self.history: list[dict[str, float]] = []
        self.pretrain_seconds = (
            0.0  # auto-encoder pretraining (training-loop time, survives resume)
        )
        self.reward_seconds = 0.0  # the reward-driven generator updates

    @property
    def fit_seconds(self) -> float:
        """Generator training time: auto-encoder pretraining plus reward updates (seconds)."""
        return self.pretrain_seconds + self.reward_seconds

    def _g_rate(self, name: str) -> float:
        return self.generator_lr * (2.0 if name.endswith("bias") else 1.0)

    def fit(self, checkpoint_dir=None) -> GenerativeAttack:
        """Pretrain the auto-encoder if needed, then ``rounds`` generator updates; returns self.

        ``history`` gets one row per round (normal loss after the pseudo-update);
        ``pretrain_seconds`` and ``reward_seconds`` time the two parts (``fit_seconds``: both).
        """
        x, y = self.clean_data
        if self.needs_pretraining:
            self.pretrain_seconds = pretrain_autoencoder(
                self.generator, x, self.pretrain_config, checkpoint_dir=checkpoint_dir
            )["seconds"]
            self.needs_pretraining = False
        start = time.perf_counter()
        gen = torch.Generator().manual_seed(self.seed + 1)
        order = torch.randperm(len(x), generator=gen)
        previous = self.normal_loss()
        self.generator.train()
        for r in range(self.rounds):
            idx = order[(torch.arange(self.seeds_per_round) + r * self.seeds_per_round) % len(x)]
            seeds, y_p = x[idx], self.poison_labels(y[idx])
            if self.reward == "faithful":
                loss = self._faithful_update(seeds, y_p, previous)
            else:
                loss = self._unrolled_update(seeds, y_p)
            self.history.append({"round": r + 1, "normal_loss": loss})
            previous = loss
        self.generator.eval()
        self.reward_seconds = time.perf_counter() - start
        return self

    def _g_step(self) -> None:
        with torch.no_grad():
            for name, p in self.generator.named_parameters():
                if p.grad is not None:
                    p -= self._g_rate(name) * p.grad
                    p.grad = None

    def _faithful_update(self, seeds: torch.Tensor, y_p: torch.Tensor, previous: float) -> float:
        x_p = self.generator(seeds)
        w1 = sgd_step(self.model, self.params, x_p.detach(), y_p, self.retraining)
        xn = self.normal[0].clone().requires_grad_(True)
        loss = F.cross_entropy(
            functional_call(self.model, w1, (xn,)), self.normal[1], reduction="sum"
        )
        (g,) = torch.autograd.grad(loss, xn)
        reward = torch.sign(loss.detach() - previous)
        out_grad = -g.sum(0, keepdim=True).sign() * reward  # (1, C, H, W), broadcast over seeds
        x_p.backward(out_grad.expand_as(x_p))
        self._g_step()
        return float(loss.detach())

    def _unrolled_update(self, seeds: torch.Tensor, y_p: torch.Tensor) -> float:
        x_p = self.generator(seeds)
        w1 = sgd_step(self.model, self.params, x_p, y_p, self.retraining, create_graph=True)
        loss = summed_loss(self.model, w1, *self.normal)
        (-loss).backward()  # ascend the normal loss
        for p in self.model.parameters():
            p.grad = None
        self._g_step()
        return float(loss.detach())

    @torch.no_grad()
    def generate(self, x: torch.Tensor) -> torch.Tensor:
        """G(x) for images x (N, C, H, W), without checks (the timed path)."""
        return self.generator(x)

    def poison(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Poisons from seeds: (G(x), (y + 1) mod C). Call ``fit()`` first."""
        if self.needs_pretraining:
            raise ConfigError(
                "GenerativeAttack: call fit() before poison() (the generator is untrained)"
            )
        self._check_seeds(x, y)
        self.generator.eval()
        y_p = self.poison_labels(y)
        # with evasion on (set_evasion), G's outputs are projected under the detector's
        # threshold: a few gradient steps per poison on top of the forward pass
        return self.project(self.generate(x).clamp(*self.clip), y_p), y_p
