"""Wire formats: how one bucket's trits travel between N ranks, and what each costs in bytes.

Every exact format ends with the same number on every rank: sigma_k = sum over ranks of trit_k, an
integer in [-N, N], which :func:`decode_sum` turns into the mean gradient sigma_k * s / N (s the
shared per-layer scaler). The formats differ only in transport:

==================  ==========================================================  ===================
wire                collectives (payload per rank, n ternary elements, m = ceil(n/N))  exact?
==================  ==========================================================  ===================
auto (default)      the exact wire below with the fewest bytes per element for N    yes
                    (:func:`resolve_wire`, formula in :func:`wire_bytes_per_element`)
int8                SUM allreduce of n int8 trits (N <= 127: int sums wrap)          yes
fields              SUM allreduce of (t+1) in b-bit fields, b = ceil(log2(2N+1))   yes (no carries)
a2a                 all_to_all of packed trits (N shards), local exact sums,       yes
                    all_gather of the m sums in b-bit fields (a sharded server)
allgather           all_gather of all n packed trits (+ scalers without sharing)   yes
a2a-reternarize     as a2a, the shard's mean re-ternarized before the all_gather   no: unbiased,
                    (extension: the original README's open question 3)            more variance
==================  ==========================================================  ===================

:func:`collective_bytes` is the one formula for the bytes a rank hands to each collective; the hook
counts the tensors it really hands over and the tests check both agree. :func:`network_bytes` turns
those into bytes a rank sends under the usual algorithms (ring allreduce 2(N-1)/N x size, all_to_all
(N-1)/N x size, ring all_gather (N-1) x size).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import torch
import torch.distributed as dist

from dnnrepro.core.errors import ConfigError

from .packing import (
    CODECS,
    TRITS_PER_BYTE,
    field_bits,
    fields_per_word,
    pack_fields,
    pack_trit_rows,
    pack_trits,
    packed_field_words,
    packed_trit_bytes,
    unpack_field_rows,
    unpack_fields,
    unpack_sum_rows,
    unpack_trit_rows,
)
from .ternarize import stream_seed, ternarize

WIRES = ("int8", "fields", "a2a", "allgather", "a2a-reternarize")
EXACT_WIRES = ("int8", "fields", "a2a", "allgather")
AUTO = "auto"
WIRE_CHOICES = (AUTO, *WIRES)  # what users may pass; "auto" resolves to one of EXACT_WIRES
# The one place the defaults live: TernGradState, EmulatorConfig, register(), the CLI, the claims'
# wording and the README (a test checks the README against these) all read them from here.
DEFAULT_WIRE = AUTO
DEFAULT_CODEC = "base3"  # fewest bytes (1.6 bits a trit); "2bit" packs faster, 2 bits a trit
INT8_MAX_WORKERS = 127
RETERNARIZE_RANK = -1  # the re-ternarization stream is shared by all ranks (rank-independent)

# kind of collective behind each counter, for network_bytes
COLLECTIVE_KIND = {
    "scaler_max_allreduce": "allreduce",
    "float_allreduce": "allreduce",
    "int8_allreduce": "allreduce",
    "fields_allreduce": "allreduce",
    "trits_all_to_all": "all_to_all",
    "sums_all_gather": "all_gather",
    "trits_all_gather": "all_gather",
    "scaler_all_gather": "all_gather",
}


def wire_bytes_per_element(wire: str, codec: str, workers: int) -> float:
    """Bytes one rank sends per ternary element of a large bucket (scalers left out).

    With N workers, b = ceil(log2(2N+1)) bits a summed field, F = floor(63 / b) fields an int64
    word and T trits a byte of the codec (4 for "2bit", 5 for "base3"), under ring allreduce
    (2(N-1)/N x size), all_to_all ((N-1)/N x size) and ring all_gather ((N-1) x size):

    - int8:            2(N-1)/N * 1
    - fields:          2(N-1)/N * 8/F
    - a2a:             (N-1)/N * (1/T + 8/F)     (trits out, the owned shard's sums back)
    - allgather:       (N-1) * 1/T
    - a2a-reternarize: (N-1)/N * 2/T

    This is the limit of ``network_bytes(collective_bytes(...)) / n`` for large n (a test checks
    it exactly at n a multiple of N*T*F); zero for N = 1.
    """
    check_wire(wire, codec, workers, True)
    wire = resolve_wire(wire, codec, workers)
    n = workers
    per_byte = TRITS_PER_BYTE[codec]
    per_word = fields_per_word(field_bits(n))
    return {
        "int8": 2 * (n - 1) / n,
        "fields": 2 * (n - 1) / n * 8 / per_word,
        "a2a": (n - 1) / n * (1 / per_byte + 8 / per_word),
        "allgather": (n - 1) / per_byte,
        "a2a-reternarize": (n - 1) / n * 2 / per_byte,
    }[wire]


def resolve_wire(wire: str, codec: str, workers: int, scaler_sharing: bool = True) -> str:
    """The wire to use: ``wire`` itself, or for "auto" the exact wire with the fewest bytes per
    element (:func:`wire_bytes_per_element`) for N = ``workers``; ties go to the earlier of
    EXACT_WIRES. Without scaler sharing only "allgather" is exact. Every rank resolves the same
    N alike, so all ranks pick the same wire. Examples: N = 2 -> allgather, N >= 3 -> a2a."""
    if wire != AUTO:
        return wire
    if not scaler_sharing:
        return "allgather"
    usable = [w for w in EXACT_WIRES if not (w == "int8" and workers > INT8_MAX_WORKERS)]
    return min(usable, key=lambda w: wire_bytes_per_element(w, codec, max(workers, 2)))


def check_wire(wire: str, codec: str, workers: int, scaler_sharing: bool) -> str:
    """Raise ConfigError when (wire, codec, N, sharing) cannot be exact or is unknown; returns the
    resolved wire (see :func:`resolve_wire`)."""
    if wire not in WIRE_CHOICES:
        raise ConfigError(f"unknown wire {wire!r}: set wire= to one of {', '.join(WIRE_CHOICES)}")
    if codec not in CODECS:
        raise ConfigError(f"unknown codec {codec!r}: set codec= to one of {', '.join(CODECS)}")
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"the process group must have >= 1 worker, not {workers!r}")
    wire = resolve_wire(wire, codec, workers, scaler_sharing)
    if wire == "int8" and workers > INT8_MAX_WORKERS:
        raise ConfigError(
            f"wire='int8' cannot carry {workers} workers: it sums trits in int8, which wraps "
            f"silently beyond {INT8_MAX_WORKERS} workers; set wire='auto', 'fields' or 'a2a'"
        )
    if not scaler_sharing and wire != "allgather":
        raise ConfigError(
            f"wire={wire!r} adds trits of different ranks and needs one shared scaler per layer; "
            "set scaler_sharing=True, or wire='allgather' (per-rank scalers travel with it)"
        )
    return wire


def shard_size(numel: int, workers: int) -> int:
    """Elements each rank owns in the sharded formats: ceil(n / N)."""
    return -(-numel // workers)


def collective_bytes(
    wire: str,
    codec: str,
    numel: int,
    workers: int,
    layers: int,
    float_numel: int = 0,
    scaler_sharing: bool = True,
) -> dict[str, int]:
    """Bytes one rank hands to each collective for one bucket.

    ``numel`` ternary elements in ``layers`` ternarized tensors, ``float_numel`` elements that
    travel as float32. Zero entries are left out. With N = 1 nothing is communicated. "auto" is
    resolved for ``workers`` first.
    """
    wire = check_wire(wire, codec, workers, scaler_sharing)
    if workers == 1:
        return {}
    out: dict[str, int] = {}
    if float_numel:
        out["float_allreduce"] = 4 * float_numel
    # per-layer scalers plus one non-finite flag in one MAX allreduce (only the flag without sharing)
    out["scaler_max_allreduce"] = 4 * ((layers if scaler_sharing else 0) + 1)
    if numel == 0:
        return out
    b = field_bits(workers)
    m = shard_size(numel, workers)
    if wire == "int8":
        out["int8_allreduce"] = numel
    elif wire == "fields":
        out["fields_allreduce"] = 8 * packed_field_words(numel, b)
    elif wire == "allgather":
        out["trits_all_gather"] = packed_trit_bytes(numel, codec)
        if not scaler_sharing:
            out["scaler_all_gather"] = 4 * layers
    else:
        out["trits_all_to_all"] = workers * packed_trit_bytes(m, codec)
        if wire == "a2a":
            out["sums_all_gather"] = 8 * packed_field_words(m, b)
        else:
            out["trits_all_gather"] = packed_trit_bytes(m, codec)
    return out


def network_bytes(handed: dict[str, int], workers: int) -> float:
    """Bytes one rank sends for the given handed-over sizes (ring allreduce / all_gather)."""
    n = workers
    factor = {"allreduce": 2 * (n - 1) / n, "all_to_all": (n - 1) / n, "all_gather": n - 1}
    return sum(size * factor[COLLECTIVE_KIND[name]] for name, size in handed.items())


def fp32_ring_bytes_per_element(workers: int) -> float:
    """Bytes per gradient element one rank sends in an fp32 ring allreduce: 2(N-1)/N x 4."""
    return 2 * (workers - 1) / workers * 4


# --------------------------------------------------------------------------- decoding


def decode_sum(sigma: torch.Tensor, scaler: torch.Tensor, workers: int) -> torch.Tensor:
    """Mean gradient of one layer from the exact trit sum: sigma * (s / N), float32."""
    return sigma.to(torch.float32) * (scaler.to(torch.float32) / workers)


def reternarize_sum(
    sigma_layer: torch.Tensor, workers: int, seed: int, step: int, layer: int | str
) -> torch.Tensor:
    """Re-ternarize a layer's trit sums: t' = sign(sigma) w.p. |sigma|/N; decoded t' * s is unbiased.

    ``sigma_layer`` holds the whole layer (zeros outside the caller's shard are fine: the stream is
    positional, so each element gets the same draw whichever rank owns it).
    """
    trits, _ = ternarize(
        sigma_layer.to(torch.float32),
        scaler=torch.tensor(float(workers)),
        seed=stream_seed(seed, RETERNARIZE_RANK, step, layer, 1),
    )
    return trits


# --------------------------------------------------------------------------- transport
#
# The exchange is written once, as a generator that issues each collective with async_op=True and
# yields its Work; a driver resumes it when the Work is done. run_sync() waits at once (the
# synchronous hook); the hook's asynchronous driver resumes it from the Work's future callback.
# Both run the very same tensor operations in the same order, so they give the same bits.

Program = Generator[Any, None, Any]


def run_sync(program: Program) -> Any:
    """Drive a collective program to its end, waiting for each collective; returns its value."""
    try:
        work = next(program)
        while True:
            work.wait()
            work = program.send(None)
    except StopIteration as stop:
        return stop.value


def _all_gather(out: torch.Tensor, inp: torch.Tensor, group):
    """Async all_gather of equal-sized flat tensors into ``out`` (the non-deprecated name)."""
    gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    return gather(out, inp, group=group, async_op=True)


class Counter:
    """Adds up the bytes handed to each collective (the hook's wire_stats feed)."""

    def __init__(self):
        self.bytes: dict[str, int] = {}

    def add(self, name: str, tensor: torch.Tensor) -> None:
        self.bytes[name] = self.bytes.get(name, 0) + tensor.numel() * tensor.element_size()


def exchange_steps(
    trits: torch.Tensor,
    wire: str,
    codec: str,
    group,
    workers: int,
    rank: int,
    counter: Counter,
    reternarize: Callable[[torch.Tensor, int, int], torch.Tensor] | None = None,
) -> Program:
    """Move one bucket's flat int8 trits (n,) over ``group`` (a generator: see run_sync).

    Its value: exact shared-scaler wires give sigma (n,) int64 (the sum over ranks). "allgather"
    gives the list of every rank's trits (rank order). "a2a-reternarize" gives the re-ternarized
    trits (n,) int8; ``reternarize(sigma_shard, start, stop)`` must map the owned shard's sums to
    trits. ``wire`` must be resolved (not "auto").
    """
    n = trits.numel()
    if wire == "int8":
        buf = trits.clone()
        counter.add("int8_allreduce", buf)
        yield dist.all_reduce(buf, op=dist.ReduceOp.SUM, group=group, async_op=True)
        return buf.to(torch.int64)
    b = field_bits(workers)
    if wire == "fields":
        words = pack_fields(trits.to(torch.int64) + 1, b)
        counter.add("fields_allreduce", words)
        yield dist.all_reduce(words, op=dist.ReduceOp.SUM, group=group, async_op=True)
        return unpack_fields(words, n, b) - workers
    if wire == "allgather":
        packed = pack_trits(trits, codec)
        gathered = torch.empty(workers * packed.numel(), dtype=torch.uint8, device=trits.device)
        counter.add("trits_all_gather", packed)
        yield _all_gather(gathered, packed, group)
        return list(unpack_trit_rows(gathered.view(workers, -1), n, codec))
    if wire not in ("a2a", "a2a-reternarize"):
        raise ConfigError(f"exchange: unknown or unresolved wire {wire!r}")
    # sharded server: rank r owns elements [r*m, (r+1)*m)
    m = shard_size(n, workers)
    padded = torch.zeros(workers * m, dtype=torch.int8, device=trits.device)  # pad with trit 0
    padded[:n] = trits
    # every shard packed on its own, all in one vectorized pass (no loop over the N shards)
    send = pack_trit_rows(padded.view(workers, m), codec).reshape(-1)
    recv = torch.empty_like(send)
    counter.add("trits_all_to_all", send)
    yield dist.all_to_all_single(recv, send, group=group, async_op=True)
    # the N ranks' trits of the owned shard, unpacked at once and summed exactly
    sigma = unpack_sum_rows(recv.view(workers, -1), m, codec).to(torch.int64)
    if wire == "a2a":
        words = pack_fields(sigma + workers, b)
        gathered = torch.empty(workers * words.numel(), dtype=torch.int64, device=trits.device)
        counter.add("sums_all_gather", words)
        yield _all_gather(gathered, words, group)
        full = unpack_field_rows(gathered.view(workers, -1), m, b).reshape(-1) - workers
        return full[:n]
    start, stop = rank * m, min((rank + 1) * m, n)
    mine = torch.zeros(m, dtype=torch.int8, device=trits.device)
    if stop > start:
        mine[: stop - start] = reternarize(sigma[: stop - start], start, stop)
    packed = pack_trits(mine, codec)
    gathered = torch.empty(workers * packed.numel(), dtype=torch.uint8, device=trits.device)
    counter.add("trits_all_gather", packed)
    yield _all_gather(gathered, packed, group)
    return unpack_trit_rows(gathered.view(workers, -1), m, codec).reshape(-1)[:n]


def exchange_trits(
    trits: torch.Tensor,
    wire: str,
    codec: str,
    group,
    workers: int,
    rank: int,
    counter: Counter,
    reternarize=None,
) -> torch.Tensor | list[torch.Tensor]:
    """:func:`exchange_steps`, waiting for each collective; returns what the wire delivers."""
    return run_sync(exchange_steps(trits, wire, codec, group, workers, rank, counter, reternarize))
