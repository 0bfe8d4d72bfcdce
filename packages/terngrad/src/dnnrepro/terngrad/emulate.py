"""N virtual workers in one process, with the DDP hook's exact semantics (the paper's ``--num_nodes``).

:func:`emulate` (the reference) takes every worker's per-layer gradients and returns the mean
TernGrad gradient the hook would deliver: same scalers, same MAX sharing, same random streams (the
counter stream of :mod:`.ternarize`, keyed by seed, rank, step, parameter name and element), same
integer sums and the same float decode, one worker at a time. The transport is skipped because
every exact wire delivers the same integer sums (the tests check that against real gloo runs).

:func:`emulate_stacked` (the vectorized emulator) gives the same numbers bit for bit from gradients
stacked over the workers: per parameter one scaler reduction and one fused pass over all N x n
elements (numba: counter stream inline, exact int16 sums out).

:class:`VirtualWorkers` trains with either inside ``dnnrepro.core.train.fit``: its ``grad_fn``
splits the total batch into N equal worker shards, computes all N gradients in one vectorized pass
(``torch.func``: ``vmap(grad(...))`` over the shards) and installs the emulated TernGrad mean as
the parameters' gradients.

:func:`emulated_check_run` is the in-process twin of ``workers.check_worker`` (the gloo runs of the
tests and of ``ddp_check``): the same model, batches and steps through the emulator.
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
from .ternarize import (
    layer_scaler,
    stream_seed,
    stream_seeds,
    ternarize,
    ternary_scaled_sum,
    ternary_sum,
)
from .wire import DEFAULT_CODEC, DEFAULT_WIRE, WIRE_CHOICES, check_wire, decode_sum, reternarize_sum

MAX_WORKERS = 64
EMULATORS = ("vectorized", "reference")  # VirtualWorkers(emulator=...)


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
        for rank, g in enumerate(grads):  # one worker at a time (the reference)
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


def emulate_stacked(
    grads: Mapping[str, torch.Tensor],
    config: EmulatorConfig,
    step: int,
    stats: dict | None = None,
) -> dict[str, torch.Tensor]:
    """:func:`emulate` for gradients stacked over the workers: the vectorized emulator.

    ``grads`` maps each parameter name to a (N, *shape) tensor, worker r's gradient in row r (what
    ``vmap(grad(...))`` over worker shards returns). Returns the same means as :func:`emulate`
    given the rows as a list, bit for bit (tests check it for every wire), and accumulates the
    same ``stats``. Per parameter: one scaler reduction over the rows, one fused pass over the
    N x n gradient elements that draws the counter stream inline and adds the trits into the
    exact int16 sums (or, for "allgather", the scaled trits into a float32 mean in rank order),
    then the hook's decode. Raises DataError on NaN/Inf.
    """
    if not grads:
        return {}
    workers = next(iter(grads.values())).shape[0]
    if not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"emulate: 1..{MAX_WORKERS} workers, not {workers}")
    wire = check_wire(config.wire, config.codec, workers, config.scaler_sharing)
    out: dict[str, torch.Tensor] = {}
    for name, stacked in grads.items():
        if stacked.shape[0] != workers:
            raise ConfigError(
                f"emulate_stacked: {name} has {stacked.shape[0]} rows, the others {workers}"
            )
        g = stacked.detach().reshape(workers, -1)
        numel = g.shape[1]
        shape = stacked.shape[1:]
        if not config.enabled or numel < config.min_numel or name in config.exclude:
            if not bool(torch.isfinite(g).all()):
                raise DataError(f"emulate: NaN/Inf in the gradient of {name} at step {step}")
            acc = g[0].to(torch.float32).clone()  # the reference's order: worker 0, 1, ...
            for r in range(1, workers):
                acc += g[r]
            out[name] = (acc / workers).view(shape)
            continue
        local = _row_scalers(g, config.clip_c)
        if not bool(torch.isfinite(local).all()):  # max and std propagate NaN/Inf
            raise DataError(f"emulate: NaN/Inf in the gradient of {name} at step {step}")
        shared = local.max()
        scalers = shared.expand(workers) if config.scaler_sharing else local
        seeds = stream_seeds(config.seed, workers, step, name)
        g32 = g if g.dtype == torch.float32 else g.float()
        if wire == "allgather":
            mean, nonzero = ternary_scaled_sum(g32, scalers, seeds)
            mean = mean / workers
        else:
            sigma, nonzero = ternary_sum(g32, shared, seeds)
            if wire == "a2a-reternarize":
                t = reternarize_sum(sigma, workers, config.seed, step, name)
                mean = t.to(torch.float32) * shared
            else:
                mean = decode_sum(sigma, shared, workers)
        if stats is not None:
            zeros = stats.setdefault("zeros", {})
            elements = stats.setdefault("elements", {})
            zeros[name] = zeros.get(name, 0) + workers * numel - nonzero
            elements[name] = elements.get(name, 0) + workers * numel
        out[name] = mean.view(shape)
    return out


def _row_scalers(g: torch.Tensor, clip_c: float | None) -> torch.Tensor:
    """:func:`layer_scaler` of every row of ``g`` (N, n), bit-identical to calling it per row."""
    if g.shape[1] == 0:
        return torch.zeros(g.shape[0], dtype=torch.float32, device=g.device)
    if clip_c is None:  # a max is exact in any order
        return g.abs().amax(dim=1).to(torch.float32)
    # std: a 1-D reduction per row, as the hook computes it (the summation order of a batched
    # reduction may differ with several threads)
    return torch.stack([layer_scaler(row, clip_c) for row in g])


class VirtualWorkers(Callback):
    """Plug N emulated TernGrad workers into ``dnnrepro.core.train.fit``.

    Use ``fit(model, data, TrainConfig(batch_size=total_batch, weight_decay=0, ...),
    grad_fn=vw.grad_fn, callbacks=[vw])``. The total batch must be divisible by ``workers``.

    ``weight_decay`` is applied here, per worker and before ternarization, not through
    ``TrainConfig.weight_decay`` (which fit adds to the already decoded mean): the authors put the
    decay in the loss, so each worker's decay term is ternarized with its data gradient. With
    TernGrad disabled (fp32) both places give the same update.

    ``emulator``: "vectorized" (:func:`emulate_stacked`, the default) or "reference"
    (:func:`emulate` over the rows); both give the same gradients bit for bit.

    As a callback (``callbacks=[vw]``) it saves its zero-trit counts in fit's checkpoint, so
    :meth:`zero_fraction` covers every step of the run, also after a resume (a resume from a
    finished checkpoint runs no step at all).
    """

    def __init__(
        self,
        model: nn.Module,
        workers: int,
        config: EmulatorConfig,
        weight_decay: float = 0.0,
        emulator: str = "vectorized",
    ):
        if emulator not in EMULATORS:
            raise ConfigError(f"emulator must be one of {', '.join(EMULATORS)}, not {emulator!r}")
        if not 1 <= workers <= MAX_WORKERS:
            raise ConfigError(f"workers must be in 1..{MAX_WORKERS}, not {workers}")
        if not weight_decay >= 0:
            raise ConfigError(f"weight_decay must be >= 0, not {weight_decay!r}")
        self.model, self.workers, self.config = model, workers, config
        self.emulator = emulator
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
        if self.weight_decay:  # in place: g + (wd * w), the same bits as g + wd * w
            for k, g in grads.items():
                g.add_(self.weight_decay * params[k])
        if self.emulator == "vectorized":
            mean = emulate_stacked(grads, self.config, step, self.stats)
        else:
            per_worker = [{k: g[i] for k, g in grads.items()} for i in range(n)]
            mean = emulate(per_worker, self.config, step, self.stats)
        for name, p in self._params.items():
            p.grad = mean[name].to(p.dtype)
        return losses.mean().detach()


def emulated_check_run(
    world: int, options: dict, steps: int, *, vectorized: bool = False
) -> tuple[list[dict[str, torch.Tensor]], str]:
    """``workers.check_worker``'s run of one option set, in one process with the emulator.

    The same tiny model, per-rank batches, SGD steps, model dtype (``options['dtype']``) and
    ``no_sync`` accumulation (``options['accumulate']``); hook options in ``options`` go to
    :class:`EmulatorConfig`, the rest is ignored. Returns (per step {name: flat float32 gradient
    as installed in the model}, parameter digest), to compare with the hook's results.
    ``vectorized``: stack the worker gradients and use :func:`emulate_stacked` instead of
    :func:`emulate`.
    """
    from .workers import check_batch, check_model, param_digest

    keys = ("clip_c", "scaler_sharing", "wire", "codec", "min_numel", "exclude", "seed")
    config = EmulatorConfig(**{k: v for k, v in options.items() if k in keys})
    dtype = getattr(torch, options.get("dtype", "float32"))
    accumulate = options.get("accumulate", 1)
    model = check_model(0).to(dtype)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    out = []
    for step in range(steps):
        per_worker = []
        for rank in range(world):
            model.zero_grad(set_to_none=True)
            for micro in range(accumulate):  # autograd accumulates in p.grad, as under no_sync()
                x, y = check_batch(0, rank, step * accumulate + micro)
                F.cross_entropy(model(x.to(dtype)), y).backward()
            per_worker.append({n: p.grad.clone() for n, p in model.named_parameters()})
        if vectorized:
            stacked = {n: torch.stack([w[n] for w in per_worker]) for n in per_worker[0]}
            mean = emulate_stacked(stacked, config, step)
        else:
            mean = emulate(per_worker, config, step)
        for n, p in model.named_parameters():
            p.grad = mean[n].to(dtype)  # the hook decodes in float32 into the bucket's dtype
        out.append({n: p.grad.float().reshape(-1) for n, p in model.named_parameters()})
        opt.step()
    return out, param_digest(model)
