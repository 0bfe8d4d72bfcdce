"""N virtual workers in one process, with the DDP hook's exact semantics (the paper's ``--num_nodes``).

:func:`emulate` takes every worker's per-layer gradients and returns the mean TernGrad gradient the
hook would deliver: same scalers, same MAX sharing, same random streams (seeded by seed, rank, step
and parameter name), same integer sums and the same float decode. The transport is skipped because
every exact wire delivers the same integer sums (the tests check that against real gloo runs).

:class:`VirtualWorkers` trains with it inside ``dnnrepro.core.train.fit``: its ``grad_fn`` splits
the total batch into N equal worker batches, computes all N gradients in one vectorized pass
(torch.func) and installs the emulated TernGrad mean as the parameters' gradients.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dnnrepro.core.errors import ConfigError, DataError
from dnnrepro.core.train import Callback

from .hook import decode_allgather
from .ternarize import layer_scaler, stream_seed, ternarize, ternary_sum
from .wire import DEFAULT_CODEC, DEFAULT_WIRE, WIRE_CHOICES, check_wire, decode_sum, reternarize_sum

MAX_WORKERS = 64


@dataclass
class EmulatorConfig:
    """The hook options that change the numbers (see :class:`~dnnrepro.terngrad.hook.TernGradState`).

    ``enabled=False`` is plain fp32 data-parallel SGD (the mean of the worker gradients).
    """

    clip_c: float | None = 2.5
    scaler_sharing: bool = True
    wire: str = DEFAULT_WIRE
    codec: str = DEFAULT_CODEC
    min_numel: int = 0
    exclude: tuple[str, ...] = ()
    seed: int = 0
    enabled: bool = True

    def __post_init__(self):
        if self.wire not in WIRE_CHOICES:
            raise ConfigError(
                f"unknown wire {self.wire!r}: set wire= to one of {', '.join(WIRE_CHOICES)}"
            )
        self.exclude = tuple(self.exclude)


def emulate(
    worker_grads: Sequence[Mapping[str, torch.Tensor]],
    config: EmulatorConfig,
    step: int,
    stats: dict | None = None,
) -> dict[str, torch.Tensor]:
    """Mean TernGrad gradient of N = len(worker_grads) virtual workers, per parameter name.

    Each element of ``worker_grads`` maps parameter names to that worker's gradient (same names and
    shapes on every worker). ``stats`` (optional dict) accumulates, per ternarized parameter, the
    zero trits sent (``stats["zeros"][name]``) and the trits sent (``stats["elements"][name]``)
    over all workers. Raises DataError on NaN/Inf (the emulator's "raise" policy).
    """
    workers = len(worker_grads)
    if not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"emulate: 1..{MAX_WORKERS} workers, not {workers}")
    wire = check_wire(config.wire, config.codec, workers, config.scaler_sharing)  # "auto" resolved
    names = list(worker_grads[0])
    out: dict[str, torch.Tensor] = {}
    for name in names:
        grads = [w[name].detach() for w in worker_grads]
        numel = grads[0].numel()
        if not config.enabled or numel < config.min_numel or name in config.exclude:
            if not all(bool(torch.isfinite(g).all()) for g in grads):
                raise DataError(f"emulate: NaN/Inf in the gradient of {name} at step {step}")
            acc = grads[0].to(torch.float32).clone()
            for g in grads[1:]:
                acc += g
            out[name] = acc / workers
            continue
        local = [layer_scaler(g, config.clip_c) for g in grads]
        if not bool(torch.isfinite(torch.stack(local)).all()):  # max and std propagate NaN/Inf
            raise DataError(f"emulate: NaN/Inf in the gradient of {name} at step {step}")
        shared = torch.stack(local).max()
        trits, sigma, nonzero = [], None, 0
        if wire != "allgather" and config.scaler_sharing:  # one fused pass over N workers
            seeds = [stream_seed(config.seed, r, step, name) for r in range(workers)]
            flat = torch.stack([g.reshape(-1) for g in grads])
            sigma, nonzero = ternary_sum(flat, shared, seeds)
            grads_to_loop = []
        else:
            grads_to_loop = grads
        for rank, g in enumerate(grads_to_loop):
            seed = stream_seed(config.seed, rank, step, name)
            s = shared if config.scaler_sharing else local[rank]
            t = ternarize(g.reshape(-1), scaler=s, seed=seed, check_finite=False)[0]
            nonzero += int(torch.count_nonzero(t))
            if wire == "allgather":
                trits.append(t)
            elif sigma is None:
                sigma = t.to(torch.int16)  # |sigma| <= N <= 64: int16 is exact
            else:
                sigma += t
        if wire == "allgather":
            scalers = torch.stack(local) if not config.scaler_sharing else shared.expand(workers)
            mean = decode_allgather(trits, scalers, workers)
        elif wire == "a2a-reternarize":
            t = reternarize_sum(sigma, workers, config.seed, step, name)
            mean = t.to(torch.float32) * shared
        else:
            mean = decode_sum(sigma, shared, workers)
        if stats is not None:  # integer counts: sums over steps are exact and order-free
            zeros = stats.setdefault("zeros", {})
            elements = stats.setdefault("elements", {})
            zeros[name] = zeros.get(name, 0) + workers * numel - nonzero
            elements[name] = elements.get(name, 0) + workers * numel
        out[name] = mean.view_as(grads[0])
    return out


class VirtualWorkers(Callback):
    """Plug N emulated TernGrad workers into ``dnnrepro.core.train.fit``.

    Use ``fit(model, data, TrainConfig(batch_size=total_batch, weight_decay=0, ...),
    grad_fn=vw.grad_fn, callbacks=[vw])``. The total batch must be divisible by ``workers``.

    ``weight_decay`` is applied here, per worker and before ternarization, not through
    ``TrainConfig.weight_decay`` (which fit adds to the already decoded mean): the authors put the
    decay in the loss, so each worker's decay term is ternarized with its data gradient. With
    TernGrad disabled (fp32) both places give the same update.

    As a callback (``callbacks=[vw]``) it saves its zero-trit counts in fit's checkpoint, so
    :meth:`zero_fraction` covers every step of the run, also after a resume (a resume from a
    finished checkpoint runs no step at all).
    """

    def __init__(
        self, model: nn.Module, workers: int, config: EmulatorConfig, weight_decay: float = 0.0
    ):
        if not 1 <= workers <= MAX_WORKERS:
            raise ConfigError(f"workers must be in 1..{MAX_WORKERS}, not {workers}")
        if not weight_decay >= 0:
            raise ConfigError(f"weight_decay must be >= 0, not {weight_decay!r}")
        self.model, self.workers, self.config = model, workers, config
        self.weight_decay = float(weight_decay)
        self.stats: dict[str, dict[str, int]] = {"zeros": {}, "elements": {}}
        self._params = {n: p for n, p in model.named_parameters() if p.requires_grad}

    def zero_fraction(self) -> dict[str, float]:
        """Per ternarized parameter: zero trits / trits sent by all workers over all steps."""
        return {k: self.stats["zeros"][k] / n for k, n in self.stats["elements"].items() if n}

    def state_dict(self) -> dict:
        return {f"{kind}.{name}": int(v) for kind, d in self.stats.items() for name, v in d.items()}

    def load_state_dict(self, state: dict) -> None:
        self.stats = {"zeros": {}, "elements": {}}
        for key, value in state.items():
            kind, _, name = key.partition(".")
            if kind not in self.stats:
                raise ConfigError(f"VirtualWorkers: unknown state key {key!r} in the checkpoint")
            self.stats[kind][name] = int(value)

    def grad_fn(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        """fit's ``grad_fn``: every worker's gradient of its share of (x, y), emulated TernGrad
        mean installed in ``p.grad``; returns the mean worker loss (detached)."""
        from torch.func import functional_call, grad_and_value, vmap

        n = self.workers
        if len(x) % n:
            raise ConfigError(
                f"total batch {len(x)} is not divisible by {n} workers; choose a batch size that is"
            )
        params = {k: v.detach() for k, v in self._params.items()}

        def worker_loss(p, xw, yw):
            return F.cross_entropy(functional_call(self.model, p, (xw,)), yw)

        xs = x.reshape(n, len(x) // n, *x.shape[1:])
        ys = y.reshape(n, len(y) // n)
        grads, losses = vmap(grad_and_value(worker_loss), in_dims=(None, 0, 0))(params, xs, ys)
        if self.weight_decay:
            grads = {k: g + self.weight_decay * params[k] for k, g in grads.items()}
        per_worker = [{k: g[i] for k, g in grads.items()} for i in range(self.workers)]
        mean = emulate(per_worker, self.config, step, self.stats)
        for name, p in self._params.items():
            p.grad = mean[name].to(p.dtype)
        return losses.mean().detach()
