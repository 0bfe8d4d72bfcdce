"""Benchmark helpers: time a callable, compare two in the same run, write bench.json.

Speed claims are ratios measured in one run against a baseline measured in that same run, with the
thread count pinned and reported. Timings are wall-clock (time.perf_counter); pass ``sync`` (e.g.
``torch.cuda.synchronize``) for asynchronous devices.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError
from .io import write_json


@dataclass
class Timing:
    """Seconds per call over ``repeats`` timed calls after ``warmup`` untimed ones."""

    median: float
    min: float
    max: float
    repeats: int
    warmup: int
    threads: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[int]:
    """Pin torch's intra-op thread count for the block; yields the count in effect."""
    before = torch.get_num_threads()
    if n is not None:
        if n < 1:
            raise ConfigError("threads must be >= 1")
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def time_callable(
    fn: Callable[[], Any],
    warmup: int = 2,
    repeats: int = 10,
    sync: Callable[[], None] | None = None,
    max_seconds: float | None = None,
) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then up to ``repeats`` timed calls (stopping early
    once ``max_seconds`` of timed calls have passed, after at least 3)."""
    if repeats < 1 or warmup < 0:
        raise ConfigError("repeats must be >= 1 and warmup >= 0")
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    samples: list[float] = []
    total = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        samples.append(time.perf_counter() - t0)
        total += samples[-1]
        if max_seconds is not None and total > max_seconds and len(samples) >= 3:
            break
    return Timing(
        statistics.median(samples),
        min(samples),
        max(samples),
        len(samples),
        warmup,
        torch.get_num_threads(),
    )


def compare(candidate: Callable[[], Any], baseline: Callable[[], Any], **kwargs) -> dict[str, Any]:
    """Time both, interleaving nothing else; ``speedup`` = baseline median / candidate median."""
    base = time_callable(baseline, **kwargs)
    cand = time_callable(candidate, **kwargs)
    return {
        "candidate": cand.as_dict(),
        "baseline": base.as_dict(),
        "speedup": base.median / cand.median if cand.median > 0 else float("inf"),
    }


def write_bench(
    out_dir: str | Path, package: str, entries: list[dict[str, Any]], profile: str = "small"
) -> Path:
    """Write ``<out_dir>/bench.json``: the entries plus provenance (commit, CPU, threads, versions)."""
    from .results import provenance

    prov = provenance(profile, [], {}, 0.0, {})
    path = Path(out_dir) / "bench.json"
    write_json(path, {"package": package, "entries": entries, "provenance": prov})
    return path
