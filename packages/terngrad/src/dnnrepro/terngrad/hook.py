"""TernGrad as a DistributedDataParallel communication hook.

    state = TernGradState(process_group=None, clip_c=2.5)
    ddp_model.register_comm_hook(state, terngrad_hook)

Per bucket and step, on every rank:

1. per-layer scaler s_i (max|g|, or clip_c * std(g)) for every ternarized tensor, plus a flag for
   NaN/Inf anywhere in the bucket (sanitized: a non-finite scaler never goes on the wire);
2. one fused MAX allreduce of [scalers..., flag]: the shared scalers s = max_i s_i and the flag;
3. a flagged step is skipped on every rank (zero gradients, ``state.skipped_steps``) or raises,
   per ``nonfinite``; both decisions are taken from the same allreduced flag, so no rank hangs;
4. stochastic ternarization with the shared scalers, the random stream seeded by
   (seed, rank, step, parameter name) so the single-process emulator gives the same trits;
5. the wire format moves the trits (see :mod:`dnnrepro.terngrad.wire`), excluded tensors (fewer
   than ``min_numel`` elements or named in ``exclude``) go through a float SUM allreduce;
6. decode sigma * s / N per layer into a new bucket-shaped tensor (DDP expects the mean).

``state.wire_stats`` holds the bytes this rank handed to each collective: ``total``, the last
``history`` steps, and ``buckets``: per bucket of the last step its (ternary elements, ternary
tensors, float elements) and handed bytes, from which the formula can be checked exactly. The hook runs its collectives synchronously (simple, and gloo callbacks cannot
issue further collectives); it therefore does not overlap communication with backward.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from dnnrepro.core.errors import ConfigError, DataError

from .packing import CODECS
from .ternarize import layer_scaler, stream_seed, ternarize
from .wire import (
    WIRES,
    Counter,
    _all_gather,
    check_wire,
    decode_sum,
    exchange_trits,
    reternarize_sum,
)

NONFINITE = ("raise", "skip")


@dataclass
class TernGradState:
    """Options and running state of :func:`terngrad_hook` (one per DDP model and rank).

    - ``clip_c``: scaler = clip_c * std(g) (elements beyond saturate); None: max|g|, no clipping.
    - ``scaler_sharing``: MAX-allreduce the scalers (required by every wire but "allgather").
    - ``wire``: one of WIRES; ``codec``: "2bit" or "base3" for packed trits.
    - ``min_numel``: tensors with fewer elements travel as float; ``exclude``: parameter names
      (need ``model``) that travel as float, e.g. the logits layer ("fc2.weight", "fc2.bias").
    - ``seed``: base of the per-(rank, step, layer) random streams.
    - ``nonfinite``: "raise" (DataError on every rank) or "skip" (zero gradient on every rank).
    - ``model``: the unwrapped module, for parameter names (RNG streams, ``exclude``).
    - ``history``: steps kept in ``wire_stats['steps']``.
    """

    process_group: Any = None
    clip_c: float | None = 2.5
    scaler_sharing: bool = True
    wire: str = "a2a"
    codec: str = "2bit"
    min_numel: int = 0
    exclude: tuple[str, ...] = ()
    seed: int = 0
    nonfinite: str = "raise"
    model: nn.Module | None = None
    history: int = 1000
    step: int = 0
    skipped_steps: int = 0
    names: dict[int, str] = field(default_factory=dict, repr=False)
    _step_counter: Counter = field(default_factory=Counter, repr=False)
    _step_buckets: list = field(default_factory=list, repr=False)
    _skip_this_step: bool = False

    def __post_init__(self):
        if self.wire not in WIRES:
            raise ConfigError(f"unknown wire {self.wire!r}; choose one of {', '.join(WIRES)}")
        if self.codec not in CODECS:
            raise ConfigError(f"unknown codec {self.codec!r}; choose one of {', '.join(CODECS)}")
        if self.clip_c is not None and not self.clip_c > 0:
            raise ConfigError(f"clip_c must be > 0 or None, not {self.clip_c!r}")
        if self.nonfinite not in NONFINITE:
            raise ConfigError(f"nonfinite must be one of {NONFINITE}, not {self.nonfinite!r}")
        if not isinstance(self.min_numel, int) or self.min_numel < 0:
            raise ConfigError("min_numel must be an integer >= 0")
        self.exclude = tuple(self.exclude)
        if self.model is not None:
            self.bind(self.model)
        self.wire_stats: dict[str, Any] = {
            "total": {},
            "buckets": [],
            "steps": collections.deque(maxlen=self.history),
        }

    def bind(self, model: nn.Module) -> TernGradState:
        """Learn parameter names from ``model`` (unwrapped or DDP); returns self."""
        module = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        self.names = {id(p): name for name, p in module.named_parameters()}
        unknown = set(self.exclude) - set(self.names.values())
        if unknown:
            raise ConfigError(
                f"exclude names {sorted(unknown)} are not parameters of the model; "
                f"known names: {', '.join(sorted(self.names.values()))}"
            )
        return self

    def is_ternarized(self, name: str, numel: int) -> bool:
        """Whether a tensor travels as trits (True) or as float (False)."""
        return numel >= self.min_numel and name not in self.exclude

    def step_ok(self) -> bool:
        """False when the last finished step was skipped for NaN/Inf (then skip optimizer.step())."""
        return not self._skip_last

    _skip_last: bool = False


def _bucket_layout(state: TernGradState, bucket) -> list[tuple[str, int, int]]:
    """(name, offset, numel) of each parameter of the bucket, in buffer order."""
    if state.exclude and not state.names:
        raise ConfigError(
            "TernGradState(exclude=...) needs parameter names: pass model=... or call state.bind(model)"
        )
    layout, offset = [], 0
    for j, (p, g) in enumerate(zip(bucket.parameters(), bucket.gradients(), strict=True)):
        name = state.names.get(id(p), f"bucket{bucket.index()}.{j}")
        layout.append((name, offset, g.numel()))
        offset += g.numel()
    return layout


def terngrad_hook(state: TernGradState, bucket):  # no return annotation: DDP inspects it
    """DDP comm hook: returns a Future of the bucket's mean TernGrad gradient (bucket-shaped)."""
    group = state.process_group
    workers = dist.get_world_size(group)
    rank = dist.get_rank(group)
    check_wire(state.wire, state.codec, workers, state.scaler_sharing)
    buffer = bucket.buffer()
    flat = buffer.detach().reshape(-1)
    layout = _bucket_layout(state, bucket)
    tern = [(name, off, k) for name, off, k in layout if state.is_ternarized(name, k)]
    floats = [(name, off, k) for name, off, k in layout if not state.is_ternarized(name, k)]
    counter = Counter()
    shape = (sum(k for _, _, k in tern), len(tern), sum(k for _, _, k in floats))

    finite = bool(torch.isfinite(flat).all())
    local = [layer_scaler(flat[off : off + k], state.clip_c) for _, off, k in tern]
    local_vec = torch.stack(local) if local else flat.new_zeros(0, dtype=torch.float32)
    local_vec = torch.nan_to_num(local_vec, nan=0.0, posinf=0.0, neginf=0.0)
    flag = torch.tensor([0.0 if finite else 1.0], device=flat.device)
    shared = torch.cat([local_vec, flag]) if state.scaler_sharing else flag
    counter.add("scaler_max_allreduce", shared)
    if workers > 1:
        dist.all_reduce(shared, op=dist.ReduceOp.MAX, group=group)
    out = torch.empty_like(flat)
    if float(shared[-1]) > 0:
        if state.nonfinite == "raise":
            raise DataError(
                f"TernGrad: NaN/Inf in a gradient at step {state.step} on at least one rank; "
                "nothing was sent. Lower the learning rate, or use TernGradState(nonfinite='skip')"
            )
        state._skip_this_step = True
        out.zero_()
        return _finish(state, bucket, out, counter, shape)
    scalers = shared[:-1] if state.scaler_sharing else local_vec

    if floats:
        fbuf = torch.cat([flat[off : off + k] for _, off, k in floats]).to(torch.float32)
        counter.add("float_allreduce", fbuf)
        if workers > 1:
            dist.all_reduce(fbuf, op=dist.ReduceOp.SUM, group=group)
        pos = 0
        for _, off, k in floats:
            out[off : off + k] = fbuf[pos : pos + k] / workers
            pos += k
    if not tern:
        return _finish(state, bucket, out, counter, shape)

    trits = torch.cat(
        [
            ternarize(
                flat[off : off + k],
                scaler=scalers[i],
                seed=stream_seed(state.seed, rank, state.step, name),
                check_finite=False,  # the whole bucket was checked above
            )[0]
            for i, (name, off, k) in enumerate(tern)
        ]
    )
    segments, pos = [], 0
    for name, off, k in tern:
        segments.append((name, off, k, pos))
        pos += k

    def reternarize(sigma_shard: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        res = torch.zeros(stop - start, dtype=torch.int8, device=flat.device)
        for name, _, k, p in segments:
            lo, hi = max(start, p), min(stop, p + k)
            if lo >= hi:
                continue
            layer = torch.zeros(k, dtype=torch.int64, device=flat.device)
            layer[lo - p : hi - p] = sigma_shard[lo - start : hi - start]
            t = reternarize_sum(layer, workers, state.seed, state.step, name)
            res[lo - start : hi - start] = t[lo - p : hi - p]
        return res

    if workers == 1:
        delivered: Any = trits.to(torch.int64) if state.wire != "allgather" else [trits]
        if state.wire == "a2a-reternarize":
            delivered = reternarize(trits.to(torch.int64), 0, trits.numel())
    else:
        delivered = exchange_trits(
            trits, state.wire, state.codec, group, workers, rank, counter, reternarize
        )
    if state.wire == "allgather" and not state.scaler_sharing and workers > 1:
        all_scalers = torch.empty(workers * scalers.numel(), device=flat.device)
        counter.add("scaler_all_gather", scalers.contiguous())
        _all_gather(all_scalers, scalers.contiguous(), group)
        per_rank_scalers = all_scalers.view(workers, -1)
    else:
        per_rank_scalers = scalers.view(1, -1).expand(workers, -1)
    for i, (_, off, k, p) in enumerate(segments):
        if state.wire == "allgather":
            out[off : off + k] = decode_allgather(
                [t[p : p + k] for t in delivered], per_rank_scalers[:, i], workers
            )
        elif state.wire == "a2a-reternarize":
            out[off : off + k] = delivered[p : p + k].to(torch.float32) * scalers[i]
        else:
            out[off : off + k] = decode_sum(delivered[p : p + k], scalers[i], workers)
    return _finish(state, bucket, out, counter, shape)


def decode_allgather(
    trits_per_rank: list[torch.Tensor], scalers: torch.Tensor, workers: int
) -> torch.Tensor:
    """Mean of every rank's t_i * s_i, summed in rank order (the emulator uses the same order)."""
    acc = torch.zeros(trits_per_rank[0].numel(), dtype=torch.float32, device=scalers.device)
    for t, s in zip(trits_per_rank, scalers, strict=True):
        acc += t.to(torch.float32) * s
    return acc / workers


def _finish(state: TernGradState, bucket, out: torch.Tensor, counter: Counter, shape=(0, 0, 0)):
    state._step_buckets.append({"shape": list(shape), "handed": dict(counter.bytes)})
    for name, size in counter.bytes.items():
        state._step_counter.bytes[name] = state._step_counter.bytes.get(name, 0) + size
        state.wire_stats["total"][name] = state.wire_stats["total"].get(name, 0) + size
    if bucket.is_last():
        state.wire_stats["steps"].append(dict(state._step_counter.bytes))
        state.wire_stats["buckets"] = state._step_buckets
        state._step_buckets = []
        state._step_counter = Counter()
        state._skip_last = state._skip_this_step
        if state._skip_this_step:
            state.skipped_steps += 1
        state._skip_this_step = False
        state.step += 1
    fut: torch.futures.Future = torch.futures.Future()
    fut.set_result(out.view_as(bucket.buffer()))
    return fut
