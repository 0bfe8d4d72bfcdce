"""TernGrad in a plain single-process torch loop, the torch way: a removable gradient hook.

    handle = ternarize_gradients(model, clip_c=2.5, seed=0)
    loss.backward()   # every parameter's .grad is now scaler * trits
    opt.step()
    handle.remove()   # back to plain gradients

Each parameter gets a ``register_post_accumulate_grad_hook`` that replaces its accumulated
gradient by its stochastic ternarization (one worker, its own scaler): the gradient one TernGrad
worker would send. The random stream is the hook's and the emulator's, keyed by (seed, rank 0,
step, parameter name), so the result equals ``emulate([grads], EmulatorConfig(...), step)`` bit for
bit. For N workers use the DDP hook (:mod:`.hook`) or :class:`~.emulate.VirtualWorkers`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from dnnrepro.core.errors import ConfigError, DataError

from .ternarize import layer_scaler, stream_seed, ternarize


@dataclass
class TernaryGradients:
    """The handle :func:`ternarize_gradients` returns.

    ``step``: the next step's index per parameter name (each backward that reaches a parameter
    advances it; keep it in your checkpoint to resume the same random stream); ``zeros`` /
    ``elements``: zero trits and trits produced so far, per parameter name.
    """

    clip_c: float | None
    seed: int
    step: dict[str, int] = field(default_factory=dict)
    zeros: dict[str, int] = field(default_factory=dict)
    elements: dict[str, int] = field(default_factory=dict)
    _handles: list = field(default_factory=list, repr=False)

    def remove(self) -> None:
        """Detach every hook; later backward passes give plain gradients again."""
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _apply(self, name: str, p: torch.Tensor) -> None:
        g = p.grad
        step = self.step.get(name, 0)
        s = layer_scaler(g, self.clip_c)
        if not bool(torch.isfinite(s)):
            raise DataError(
                f"ternarize_gradients: NaN/Inf in the gradient of {name} at step {step}"
            )
        seed = stream_seed(self.seed, 0, step, name)
        trits, _ = ternarize(g.reshape(-1), scaler=s, seed=seed, check_finite=False)
        g.copy_((trits.to(torch.float32) * s).view_as(g))  # in place: the hook owns p.grad
        self.step[name] = step + 1
        self.zeros[name] = self.zeros.get(name, 0) + int(trits.numel() - trits.count_nonzero())
        self.elements[name] = self.elements.get(name, 0) + trits.numel()


def ternarize_gradients(
    model: nn.Module,
    *,
    clip_c: float | None = 2.5,
    seed: int = 0,
    exclude: tuple[str, ...] = (),
    min_numel: int = 0,
) -> TernaryGradients:
    """Ternarize every trainable parameter's gradient after it is accumulated; returns the handle
    (``.remove()`` detaches the hooks).

    ``clip_c``: scaler = clip_c * std(g) (elements beyond saturate); None: max|g|. Parameters named
    in ``exclude`` or with fewer than ``min_numel`` elements keep their float gradient.
    """
    if clip_c is not None and not clip_c > 0:
        raise ConfigError(f"clip_c must be > 0 or None (no clipping), not {clip_c!r}")
    names = {n for n, _ in model.named_parameters()}
    unknown = set(exclude) - names
    if unknown:
        raise ConfigError(f"exclude names {sorted(unknown)} are not parameters of the model")
    handle = TernaryGradients(clip_c=clip_c, seed=int(seed))
    for name, p in model.named_parameters():
        if not p.requires_grad or name in exclude or p.numel() < min_numel:
            continue
        handle._handles.append(
            p.register_post_accumulate_grad_hook(lambda q, name=name: handle._apply(name, q))
        )
    return handle
