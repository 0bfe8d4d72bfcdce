"""TernGrad as a DistributedDataParallel communication hook.

    state = dnnrepro.terngrad.register(ddp_model)            # one line, returns the state
    # or by hand:
    state = TernGradState(process_group=None, clip_c=2.5, model=model)
    ddp_model.register_comm_hook(state, terngrad_hook)

Per bucket and step, on every rank:

1. per-layer scaler s_i (max|g|, or clip_c * std(g)) in float32 for every ternarized tensor, plus
   a flag for NaN/Inf anywhere in the bucket (sanitized: a non-finite scaler never goes on the
   wire);
2. one fused MAX allreduce of [scalers..., flag]: the shared scalers s = max_i s_i and the flag;
3. a flagged step is skipped on every rank (zero gradients, ``state.skipped_steps``) or raises,
   per ``nonfinite``; both decisions are taken from the same allreduced flag, so no rank hangs;
4. stochastic ternarization with the shared scalers, the random stream seeded by
   (seed, rank, step, parameter name) so the single-process emulator gives the same trits;
5. the wire format moves the trits (see :mod:`dnnrepro.terngrad.wire`; "auto" picks the wire with
   the fewest bytes for the group's size), excluded tensors (fewer than ``min_numel`` elements or
   named in ``exclude``) go through a float32 SUM allreduce;
6. decode sigma * s / N per layer (float32) into a new bucket-shaped tensor of the bucket's dtype
   (DDP expects the mean).

Asynchronous (``async_op=True``, the default): the hook body only computes the scalers and the flag
(no host synchronization: no ``.item()``, no ``bool(tensor)``), issues the MAX allreduce with
``async_op=True`` and returns a Future at once, so backward goes on while the bucket travels. Each
later step runs in the callback of the previous collective's future
(``work.get_future().then(...)``): the NaN/Inf check (and its error), the ternarization, the next
collective. The Future completes with the bucket's mean when the last collective is in.
Collectives must be issued in the same order on every rank; since callbacks run on the process
group's threads at times that differ between ranks, the buckets of one state are chained: a
bucket starts its collectives when the previous bucket's result is ready. So the order is bucket by
bucket on every rank, and communication still overlaps the rest of backward. The same chain also
orders the steps. Run the hook on a process group that nothing else uses during backward:
:func:`register` creates one; DDP's own unused-parameter allreduce (``find_unused_parameters=True``,
the first step of ``static_graph=True``) would otherwise interleave with the chain on the group DDP
uses.

``async_op=False`` runs the same steps waiting for each collective in the hook body (the reference;
bit-identical results: the tests compare both on every wire).

On CUDA buckets, when CuPy is importable, the ternarization of all the bucket's layers is one
fused kernel launch (``gpu.ternarize_segments_cuda``, the scalers stay on the device) drawing the
same counter-based stream as the CPU path, so CPU and GPU give the same trits; packing, the
collectives and decoding are torch ops on the device. Without CuPy the torch path runs on the
device. The torch path is the reference and the CPU path.

Failures end in bounded time: a dead or hung peer fails the pending collective after the group's
timeout, the bucket's Future carries the error (DDP raises it from ``backward()``), and every later
bucket of the state fails at once with the same error instead of waiting another timeout.

``state.wire_stats`` holds the bytes this rank handed to each collective: ``total``, the last
``history`` steps, and ``buckets``: per bucket of the last step its (ternary elements, ternary
tensors, float elements) and handed bytes, from which the formula can be checked exactly.
"""

from __future__ import annotations

import collections
import datetime
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from dnnrepro.core.errors import ConfigError, DataError

from .packing import CODECS
from .ternarize import layer_scaler, stream_seed, ternarize
from .wire import (
    DEFAULT_CODEC,
    DEFAULT_WIRE,
    WIRE_CHOICES,
    Counter,
    Program,
    _all_gather,
    check_wire,
    decode_sum,
    exchange_steps,
    reternarize_sum,
    run_sync,
)

NONFINITE = ("raise", "skip")
# bucket dtypes the hook (and the CUDA kernels) accept; scalers and decoding are float32 for all
DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _done_future() -> torch.futures.Future:
    fut: torch.futures.Future = torch.futures.Future()
    fut.set_result(None)
    return fut


@dataclass
class TernGradState:
    """Options and running state of :func:`terngrad_hook` (one per DDP model and rank).

    - ``clip_c``: scaler = clip_c * std(g) (elements beyond saturate); None: max|g|, no clipping.
    - ``scaler_sharing``: MAX-allreduce the scalers (required by every wire but "allgather").
    - ``wire``: "auto" (default: the exact wire with the fewest bytes for the group's size) or one
      of :data:`~dnnrepro.terngrad.wire.WIRES`; ``codec``: "base3" (default) or "2bit".
    - ``min_numel``: tensors with fewer elements travel as float; ``exclude``: parameter names
      (need ``model``) that travel as float, e.g. the logits layer ("fc2.weight", "fc2.bias").
    - ``seed``: base of the per-(rank, step, layer) random streams.
    - ``nonfinite``: "raise" (DataError on every rank) or "skip" (zero gradient on every rank).
    - ``model``: the unwrapped module, for parameter names (RNG streams, ``exclude``).
    - ``history``: steps kept in ``wire_stats['steps']``.
    - ``async_op``: chain the collectives through futures (overlaps backward) or wait in the hook.
    """

    process_group: Any = None
    clip_c: float | None = 2.5
    scaler_sharing: bool = True
    wire: str = DEFAULT_WIRE
    codec: str = DEFAULT_CODEC
    min_numel: int = 0
    exclude: tuple[str, ...] = ()
    seed: int = 0
    nonfinite: str = "raise"
    model: nn.Module | None = None
    history: int = 1000
    async_op: bool = True
    step: int = 0
    skipped_steps: int = 0
    names: dict[int, str] = field(default_factory=dict, repr=False)
    _step_counter: Counter = field(default_factory=Counter, repr=False)
    _step_buckets: list = field(default_factory=list, repr=False)
    _skip_this_step: bool = False
    _skip_last: bool = False
    # the chain that orders the buckets' collectives (see the module docstring)
    _tail: torch.futures.Future = field(default_factory=_done_future, repr=False)
    _failure: BaseException | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.wire not in WIRE_CHOICES:
            raise ConfigError(
                f"unknown wire {self.wire!r}: set wire= to one of {', '.join(WIRE_CHOICES)}"
            )
        if self.codec not in CODECS:
            raise ConfigError(
                f"unknown codec {self.codec!r}: set codec= to one of {', '.join(CODECS)}"
            )
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

    def resolved_wire(self, workers: int) -> str:
        """The wire this state uses with ``workers`` ranks ("auto" resolved; ConfigError if the
        wire/codec cannot carry that many workers)."""
        return check_wire(self.wire, self.codec, workers, self.scaler_sharing)

    def step_ok(self) -> bool:
        """False when the last finished step was skipped for NaN/Inf (then skip optimizer.step())."""
        return not self._skip_last


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


def check_device(device: torch.device, group, what: str = "the gradient bucket") -> None:
    """ConfigError when tensors on ``device`` cannot travel over ``group`` (e.g. CUDA tensors
    with a CPU-only process group)."""
    group = group if group is not None else dist.group.WORLD
    types = {d.type for d in getattr(group, "_device_types", ())}
    if types and device.type not in types:
        raise ConfigError(
            f"{what} is on {device.type} but the process group (backend "
            f"{dist.get_backend(group)!r}) carries only {', '.join(sorted(types))} tensors; "
            f"move the model to {' or '.join(sorted(types))}, or give process_group= a group "
            f"with a {device.type} backend (e.g. 'nccl' or 'cuda:nccl,cpu:gloo')"
        )


def check_dtype(dtype: torch.dtype, names: list[str]) -> None:
    """ConfigError naming the parameters when a gradient dtype is not one of DTYPES."""
    if dtype not in DTYPES:
        shown = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
        raise ConfigError(
            f"TernGrad cannot carry {dtype} gradients (parameters {shown}); supported: "
            f"{', '.join(str(d).removeprefix('torch.') for d in DTYPES)}. Convert the model "
            "(e.g. model.float()), or keep those parameters out of the DDP model"
        )


def terngrad_hook(state: TernGradState, bucket):  # no return annotation: DDP inspects it
    """DDP comm hook: returns a Future of the bucket's mean TernGrad gradient (bucket-shaped)."""
    group = state.process_group
    workers = dist.get_world_size(group)
    rank = dist.get_rank(group)
    wire = state.resolved_wire(workers)
    buffer = bucket.buffer()
    flat = buffer.detach().reshape(-1)
    layout = _bucket_layout(state, bucket)
    if flat.dtype not in DTYPES:
        check_dtype(flat.dtype, [name for name, _, _ in layout])
    if workers > 1:
        check_device(flat.device, group)
    tern = [(name, off, k) for name, off, k in layout if state.is_ternarized(name, k)]

    # hook body: tensors only, no host synchronization
    nonfinite = (~torch.isfinite(flat).all()).to(torch.float32).reshape(1)
    local = [layer_scaler(flat[off : off + k], state.clip_c) for _, off, k in tern]
    local_vec = torch.stack(local) if local else flat.new_zeros(0, dtype=torch.float32)
    local_vec = torch.nan_to_num(local_vec, nan=0.0, posinf=0.0, neginf=0.0)
    shared = torch.cat([local_vec, nonfinite]) if state.scaler_sharing else nonfinite
    info = (flat, layout, tern, local_vec, shared, workers, rank, wire, bucket.is_last())

    if not state.async_op:
        out = run_sync(_bucket_program(state, *info))
        fut: torch.futures.Future = torch.futures.Future()
        fut.set_result(out.view_as(buffer))
        return fut

    devices = [flat.device] if flat.device.type == "cuda" else []
    result: torch.futures.Future = torch.futures.Future(devices=devices)
    previous, state._tail = state._tail, result

    def start(_previous) -> None:  # when the previous bucket is done (inline when it already is)
        if state._failure is not None:  # the group already failed: do not wait another timeout
            result.set_exception(state._failure)
            return
        _drive(state, _bucket_program(state, *info), result, buffer.shape)

    previous.add_done_callback(start)
    # DDP reads the value of the Future it gets from C++: a Python exception stored with
    # set_exception() reaches the user as "Unable to cast ... to Tensor", while one raised inside a
    # then() callback keeps its type name and message
    return result.then(_value)


def _value(fut):
    return fut.value()


def _drive(state: TernGradState, program: Program, result, shape) -> None:
    """Run ``program`` (a generator of collective Works) from future callbacks into ``result``."""

    def advance() -> None:
        try:
            work = next(program)
        except StopIteration as stop:
            result.set_result(stop.value.view(shape))
            return
        except BaseException as exc:  # e.g. the NaN/Inf DataError: every rank raises alike
            result.set_exception(exc)
            return
        work.get_future().then(resume)

    def resume(fut) -> None:
        try:
            fut.wait()  # re-raises a failed collective (dead peer, timeout)
        except BaseException as exc:
            program.close()
            state._failure = exc
            result.set_exception(exc)
            return
        advance()

    advance()


def _bucket_program(
    state: TernGradState,
    flat: torch.Tensor,
    layout: list[tuple[str, int, int]],
    tern: list[tuple[str, int, int]],
    local_vec: torch.Tensor,
    shared: torch.Tensor,
    workers: int,
    rank: int,
    wire: str,
    is_last: bool,
) -> Program:
    """One bucket's exchange as a generator of collective Works; its value is the mean (flat)."""
    group = state.process_group
    floats = [(name, off, k) for name, off, k in layout if not state.is_ternarized(name, k)]
    counter = Counter()
    shape = (sum(k for _, _, k in tern), len(tern), sum(k for _, _, k in floats))
    counter.add("scaler_max_allreduce", shared)
    if workers > 1:
        yield dist.all_reduce(shared, op=dist.ReduceOp.MAX, group=group, async_op=True)
    out = torch.empty_like(flat)
    if float(shared[-1]) > 0:  # the one host sync, after the flag travelled
        if state.nonfinite == "raise":
            raise DataError(
                f"TernGrad: NaN/Inf in a gradient at step {state.step} on at least one rank; "
                "nothing was sent. Lower the learning rate, or use TernGradState(nonfinite='skip')"
            )
        state._skip_this_step = True
        out.zero_()
        return _finish(state, is_last, out, counter, shape)
    scalers = shared[:-1] if state.scaler_sharing else local_vec

    if floats:
        fbuf = torch.cat([flat[off : off + k] for _, off, k in floats]).to(torch.float32)
        counter.add("float_allreduce", fbuf)
        if workers > 1:
            yield dist.all_reduce(fbuf, op=dist.ReduceOp.SUM, group=group, async_op=True)
        pos = 0
        for _, off, k in floats:
            out[off : off + k] = fbuf[pos : pos + k] / workers
            pos += k
    if not tern:
        return _finish(state, is_last, out, counter, shape)

    step = state.step
    seeds = [stream_seed(state.seed, rank, step, name) for name, _, _ in tern]
    if flat.is_cuda and _gpu_kernels():  # one fused launch for the whole bucket, same bits
        from .gpu import ternarize_segments_cuda

        trits = ternarize_segments_cuda(
            flat if flat.dtype == torch.float32 else flat.float(),
            [(off, k) for _, off, k in tern],
            seeds,
            scalers,
        )
    else:
        trits = torch.cat(
            [
                ternarize(
                    flat[off : off + k],
                    scaler=scalers[i],
                    seed=seeds[i],
                    check_finite=False,  # the whole bucket was checked above
                )[0]
                for i, (_, off, k) in enumerate(tern)
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
            t = reternarize_sum(layer, workers, state.seed, step, name)
            res[lo - start : hi - start] = t[lo - p : hi - p]
        return res

    if workers == 1:
        delivered: Any = trits.to(torch.int64) if wire != "allgather" else [trits]
        if wire == "a2a-reternarize":
            delivered = reternarize(trits.to(torch.int64), 0, trits.numel())
    else:
        delivered = yield from exchange_steps(
            trits, wire, state.codec, group, workers, rank, counter, reternarize
        )
    if wire == "allgather" and not state.scaler_sharing and workers > 1:
        all_scalers = torch.empty(workers * scalers.numel(), device=flat.device)
        counter.add("scaler_all_gather", scalers.contiguous())
        yield _all_gather(all_scalers, scalers.contiguous(), group)
        per_rank_scalers = all_scalers.view(workers, -1)
    else:
        per_rank_scalers = scalers.view(1, -1).expand(workers, -1)
    for i, (_, off, k, p) in enumerate(segments):
        if wire == "allgather":
            out[off : off + k] = decode_allgather(
                [t[p : p + k] for t in delivered], per_rank_scalers[:, i], workers
            )
        elif wire == "a2a-reternarize":
            out[off : off + k] = delivered[p : p + k].to(torch.float32) * scalers[i]
        else:
            out[off : off + k] = decode_sum(delivered[p : p + k], scalers[i], workers)
    return _finish(state, is_last, out, counter, shape)


_GPU_KERNELS: bool | None = None


def _gpu_kernels() -> bool:
    """Whether the CuPy kernels can run here (CUDA and CuPy present), decided once."""
    global _GPU_KERNELS
    if _GPU_KERNELS is None:
        from dnnrepro.core.kernels import cuda_available

        _GPU_KERNELS = cuda_available()
    return _GPU_KERNELS


def decode_allgather(
    trits_per_rank: list[torch.Tensor], scalers: torch.Tensor, workers: int
) -> torch.Tensor:
    """Mean of every rank's t_i * s_i, summed in rank order (the emulator uses the same order)."""
    acc = torch.zeros(trits_per_rank[0].numel(), dtype=torch.float32, device=scalers.device)
    for t, s in zip(trits_per_rank, scalers, strict=True):
        acc += t.to(torch.float32) * s
    return acc / workers


def _finish(state: TernGradState, is_last: bool, out: torch.Tensor, counter: Counter, shape):
    """Book one finished bucket (bytes; at the step's last bucket: step, skip flags); returns out."""
    state._step_buckets.append({"shape": list(shape), "handed": dict(counter.bytes)})
    for name, size in counter.bytes.items():
        state._step_counter.bytes[name] = state._step_counter.bytes.get(name, 0) + size
        state.wire_stats["total"][name] = state.wire_stats["total"].get(name, 0) + size
    if is_last:
        state.wire_stats["steps"].append(dict(state._step_counter.bytes))
        state.wire_stats["buckets"] = state._step_buckets
        state._step_buckets = []
        state._step_counter = Counter()
        state._skip_last = state._skip_this_step
        if state._skip_this_step:
            state.skipped_steps += 1
        state._skip_this_step = False
        state.step += 1
    return out


def _group_timeout(group) -> datetime.timedelta | None:
    """The collective timeout of ``group`` (None when the backend does not say)."""
    for device in getattr(group, "_device_types", ()):
        try:
            return group._get_backend(device).options._timeout
        except (AttributeError, RuntimeError):
            continue
    return None


def register(
    ddp_model: nn.parallel.DistributedDataParallel,
    *,
    wire: str = DEFAULT_WIRE,
    codec: str = DEFAULT_CODEC,
    clip_c: float | None = 2.5,
    process_group: Any = None,
    dedicated_group: bool = True,
    **options: Any,
) -> TernGradState:
    """Register the TernGrad hook on ``ddp_model``; returns its :class:`TernGradState`.

    ``process_group``: the ranks to average over (default: the group of ``ddp_model``). With
    ``dedicated_group`` (and ``async_op``, the default) the hook talks over a new group of the same
    ranks, backend and timeout, so its chained collectives never interleave with DDP's own (call
    ``register`` on every rank, in the same order, like ``dist.new_group``). Other keyword
    ``options`` go to :class:`TernGradState` (``min_numel``, ``exclude``, ``seed``, ``nonfinite``,
    ``scaler_sharing``, ``async_op``, ``history``). Checks before the first step: the wire can carry
    the group's size, every gradient dtype is supported, and the group carries the model's device.
    """
    if not isinstance(ddp_model, nn.parallel.DistributedDataParallel):
        raise ConfigError(
            f"register: ddp_model must be a torch.nn.parallel.DistributedDataParallel, not "
            f"{type(ddp_model).__name__}; wrap the model first: DistributedDataParallel(model)"
        )
    group = process_group if process_group is not None else ddp_model.process_group
    module = ddp_model.module
    state = TernGradState(
        process_group=group, wire=wire, codec=codec, clip_c=clip_c, model=module, **options
    )
    state.resolved_wire(dist.get_world_size(group))
    params = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    for dtype in {p.dtype for _, p in params}:
        check_dtype(dtype, [n for n, p in params if p.dtype == dtype])
    for device in {p.device for _, p in params}:
        check_device(device, group, f"parameter(s) on {device}")
    if state.async_op and dedicated_group and dist.get_world_size(group) > 1:
        state.process_group = dist.new_group(
            ranks=dist.get_process_group_ranks(group),
            backend=dist.get_backend(group),
            timeout=_group_timeout(group),
        )
    ddp_model.register_comm_hook(state, terngrad_hook)
    return state
