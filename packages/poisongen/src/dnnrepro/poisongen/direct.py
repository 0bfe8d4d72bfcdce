"""The direct gradient method: optimise each poison against the normal loss after re-training.

Objective (authors' code): raise L(x_p) = sum_i CE(f(x_i; w1(x_p)), y_i) over the normal samples,
where w1(x_p) = w0 - lr * grad_w CE(f(x_p; w0), y_p) is the victim's one SGD step on the poison.

- ``mode="faithful"`` (the authors' protocol): each round estimates the sign of dL/dx_p coordinate by
  coordinate: x_p[k] += delta, one re-training step from w0, dir[k] = sign(L_k - L_prev), where
  L_prev is the normal loss after the previous round's step; then x_p <- clip(x_p + step * dir).
  One round costs D re-training steps and D normal-loss evaluations (D = C*H*W). Engines (same
  numbers, different speed): ``"loop"`` one coordinate at a time, as the authors did;
  ``"vectorized"`` the D copies in chunks with ``torch.func.vmap`` (any model);
  ``"linear-chain"`` rank-one updates for fully connected targets (see linear_chain.py);
  ``"auto"`` (default) picks linear-chain when the target allows it, else vectorized.
- ``mode="exact"`` (ours, the one-step case of back-gradient poisoning): the exact hypergradient
  dL/dx_p by autograd through the unrolled step (second derivatives, one double backward per round),
  then the same sign step and clip.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from dnnrepro.core.errors import ConfigError

from .base import PoisoningAttack
from .linear_chain import chain_of, losses_after_steps
from .retrain import Retraining, sgd_step, summed_loss

MODES = ("faithful", "exact")
ENGINES = ("auto", "linear-chain", "vectorized", "loop")


class DirectGradientAttack(PoisoningAttack):
    """Direct gradient poisoning (authors' MNIST defaults: delta 0.01, step 0.2, 5 rounds).

    ``poison(x, y)`` optimises each seed image independently, starting from the seed, with the
    label (y + 1) mod C. ``stats`` counts the work done by the last call: ``retrain_steps`` (one per
    finite-difference evaluation or pseudo-update) and ``rounds``.
    """

    def __init__(
        self,
        model,
        clean_data,
        mode: str = "faithful",
        delta: float = 0.01,
        step: float = 0.2,
        rounds: int = 5,
        num_normal: int = 10,
        retraining: Retraining | None = None,
        clip: tuple[float, float] = (0.0, 1.0),
        engine: str = "auto",
        chunk: int = 256,
        seed: int = 0,
    ):
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, not {mode!r}")
        if engine not in ENGINES:
            raise ConfigError(f"engine must be one of {ENGINES}, not {engine!r}")
        if not (delta > 0 and step > 0):
            raise ConfigError(f"delta and step must be > 0 (got {delta}, {step})")
        if not (isinstance(rounds, int) and rounds >= 1):
            raise ConfigError(f"rounds must be an integer >= 1, not {rounds!r}")
        if not (isinstance(chunk, int) and chunk >= 1):
            raise ConfigError(f"chunk must be an integer >= 1, not {chunk!r}")
        super().__init__(model, clean_data, num_normal, retraining, clip, seed)
        self.chain = chain_of(self.model)
        if engine == "linear-chain" and self.chain is None:
            raise ConfigError(
                "engine='linear-chain' needs a target made of Linear layers and elementwise "
                "activations (the core MLP or an nn.Sequential); use engine='vectorized'"
            )
        if engine == "auto":
            engine = "linear-chain" if self.chain is not None else "vectorized"
        self.mode, self.engine = mode, engine
        self.delta, self.step, self.rounds, self.chunk = float(delta), float(step), rounds, chunk
        self.stats = {"retrain_steps": 0, "rounds": 0}

    # ------------------------------------------------------------------ objective pieces

    def loss_after_step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Normal loss after the victim's step on one poison (x (C,H,W), y scalar tensor)."""
        self.stats["retrain_steps"] += 1
        w1 = sgd_step(self.model, self.params, x[None], y[None], self.retraining)
        with torch.no_grad():
            return float(summed_loss(self.model, w1, *self.normal))

    def hypergradient(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Exact dL/dx for one poison x (C,H,W): autograd through the unrolled step."""
        self.stats["retrain_steps"] += 1
        xp = x.detach().clone().requires_grad_(True)
        w1 = sgd_step(
            self.model, self.params, xp[None], y[None], self.retraining, create_graph=True
        )
        (g,) = torch.autograd.grad(summed_loss(self.model, w1, *self.normal), xp)
        return g

    def _batched_losses(self, xs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Normal loss after a step on each of xs (K, C, H, W), as a (K,) tensor, K steps at once."""
        model, params, rule = self.model, self.params, self.retraining
        xn, yn = self.normal
        rates = {k: rule.rate(k) for k in params}

        def one(x1):
            def poison_loss(p):
                return F.cross_entropy(functional_call(model, p, (x1[None],)), y[None])

            g = grad(poison_loss)(params)
            w1 = {k: params[k] - rates[k] * g[k] for k in params}
            return F.cross_entropy(functional_call(model, w1, (xn,)), yn, reduction="sum")

        out = []
        for i in range(0, len(xs), self.chunk):
            if self.engine == "linear-chain":
                out.append(
                    losses_after_steps(
                        self.chain, params, rule.rate, xs[i : i + self.chunk], y, xn, yn
                    )
                )
            else:
                out.append(vmap(one)(xs[i : i + self.chunk]))
        self.stats["retrain_steps"] += len(xs)
        return torch.cat(out)

    def fd_direction(self, x: torch.Tensor, y: torch.Tensor, previous: float) -> torch.Tensor:
        """sign(L(x + delta e_k) - previous) for every coordinate k: the authors' estimate."""
        d = x.numel()
        if self.engine == "loop":
            direction = torch.empty(d, device=x.device)
            flat = x.flatten()
            for k in range(d):
                probe = flat.clone()
                probe[k] += self.delta
                direction[k] = (
                    torch.tensor(self.loss_after_step(probe.view_as(x), y) - previous)
                ).sign()
            return direction.view_as(x)
        probes = x.flatten().repeat(d, 1)
        probes.diagonal().add_(self.delta)
        with torch.no_grad():
            losses = self._batched_losses(probes.view(d, *x.shape), y)
        return (losses - previous).sign().view_as(x)

    # ------------------------------------------------------------------ the attack

    def poison_one(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Optimise one seed (x (C,H,W), poison label y): ``rounds`` sign steps, clipped."""
        lo, hi = self.clip
        # with evasion on (set_evasion), the seed and every round's result are projected under
        # the detector's threshold, so the attack optimises among undetected poisons
        xp = self.project(x.detach().clone()[None], y[None])[0]
        previous = self.loss_after_step(xp, y) if self.mode == "faithful" else 0.0
        for _ in range(self.rounds):
            if self.mode == "faithful":
                direction = self.fd_direction(xp, y, previous)
            else:
                direction = self.hypergradient(xp, y).sign()
            xp = (xp + self.step * direction).clamp_(lo, hi)
            xp = self.project(xp[None], y[None])[0]
            if self.mode == "faithful":
                previous = self.loss_after_step(xp, y)
            self.stats["rounds"] += 1
        return xp

    def poison(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Poisons from seeds x (N, C, H, W) with labels y (N,): (x_poison, (y + 1) mod C)."""
        self._check_seeds(x, y)
        self.stats = {"retrain_steps": 0, "rounds": 0}
        y_p = self.poison_labels(y)
        x_p = torch.stack([self.poison_one(x[i], y_p[i]) for i in range(len(x))])
        return x_p, y_p
