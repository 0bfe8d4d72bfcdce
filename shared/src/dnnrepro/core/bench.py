"""Benchmark helpers: time a callable, compare two in the same run, write bench.json.

Speed claims are ratios measured in one run against a baseline measured in that same run, with the
thread count pinned and reported. Timings are wall-clock (time.perf_counter); pass ``sync`` (e.g.
``torch.cuda.synchronize``) for asynchronous devices.

The timing protocol (:func:`interleaved_ratio`): baseline and candidate calls alternate (ABBA
order, so a slow drift of the machine hits both arms alike), at least :data:`MIN_REPEATS` timed
calls per arm, the ratio of the medians, and a seeded bootstrap 95% interval of that ratio. The
window also measures the share of the machine's CPU that *other* processes used (/proc/stat busy
time minus this process's own time). The load average cannot serve: it counts the run itself.
Above :data:`BUSY_SHARE` the measurement is flagged ``busy`` and its verdict is "inconclusive
(machine busy)".
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError
from .io import write_json

BUSY_SHARE = 0.25  # other processes above this share of the machine: timings are not decided
MIN_REPEATS = 7  # timed calls per arm; fewer make the median and its interval meaningless
BOOTSTRAP_SAMPLES = 2000
# the fields every bench.json entry carries (free extra fields may follow)
ENTRY_FIELDS = (
    "name",
    "ratio",
    "low",
    "high",
    "baseline",
    "candidate",
    "other_cpu_share",
    "threads",
)
ISA_FLAGS = ("avx512f", "avx512_vnni", "avx512_bf16", "avx2", "fma", "f16c", "amx_tile")


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
    """Time both, one after the other (not interleaved); ``speedup`` = baseline / candidate median.

    For a claim use :func:`interleaved_ratio`, which also gives the interval and the machine load.
    """
    base = time_callable(baseline, **kwargs)
    cand = time_callable(candidate, **kwargs)
    return {
        "candidate": cand.as_dict(),
        "baseline": base.as_dict(),
        "speedup": base.median / cand.median if cand.median > 0 else float("inf"),
    }


def geomean(values: Iterable[float]) -> float:
    """Geometric mean of positive finite numbers (the mean of ratios such as speedups)."""
    vals = [float(v) for v in values]
    if not vals:
        raise ConfigError("geomean of no values; pass at least one ratio")
    bad = [v for v in vals if not (math.isfinite(v) and v > 0)]
    if bad:
        raise ConfigError(f"geomean needs positive finite values, got {bad[:3]}")
    return math.exp(statistics.fmean(math.log(v) for v in vals))


# --------------------------------------------------------------------------- machine load


@dataclass(frozen=True)
class CpuReading:
    """One reading of the clocks: wall seconds, CPU-seconds the whole machine was busy (all
    CPUs, since boot) and CPU-seconds this process used (all its threads)."""

    wall: float
    machine_busy: float
    own: float


def _clock_ticks() -> float:
    try:
        return float(os.sysconf("SC_CLK_TCK"))
    except (AttributeError, ValueError, OSError):
        return 100.0


def machine_busy_seconds(stat_text: str | None = None) -> float:
    """CPU-seconds all CPUs spent busy since boot, from the ``cpu`` line of /proc/stat.

    Busy = user + nice + system + irq + softirq + steal (guest time is already inside user);
    idle and iowait are not busy. Raises OSError where /proc/stat does not exist.
    """
    if stat_text is None:
        stat_text = Path("/proc/stat").read_text()
    for line in stat_text.splitlines():
        if line.startswith("cpu "):
            f = [float(x) for x in line.split()[1:]]
            f += [0.0] * (8 - len(f))
            user, nice, system, _idle, _iowait, irq, softirq, steal = f[:8]
            return (user + nice + system + irq + softirq + steal) / _clock_ticks()
    raise OSError("/proc/stat has no aggregate 'cpu' line")


def own_cpu_seconds(stat_text: str | None = None) -> float:
    """CPU-seconds this process used (utime + stime of /proc/self/stat: every thread of it).

    Child processes are not included: they count as "other" load.
    """
    if stat_text is None:
        stat_text = Path("/proc/self/stat").read_text()
    # the command name (field 2) may contain spaces and parentheses: split after its last ')'
    rest = stat_text[stat_text.rindex(")") + 2 :].split()
    utime, stime = float(rest[11]), float(rest[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / _clock_ticks()


def read_cpu() -> CpuReading | None:
    """The clocks now, or None where /proc is not available (the share is then unknown)."""
    try:
        return CpuReading(time.perf_counter(), machine_busy_seconds(), own_cpu_seconds())
    except (OSError, ValueError, IndexError):
        return None


def other_cpu_share(
    start: CpuReading | None, end: CpuReading | None, cpu_count: int | None = None
) -> float | None:
    """Share of the machine (0..1) that processes other than this one used between two readings:
    (machine busy time - own time) / (elapsed wall time * cpu_count). None when unknown."""
    if start is None or end is None:
        return None
    elapsed = end.wall - start.wall
    cpus = cpu_count or os.cpu_count() or 1
    if elapsed <= 0:
        return None
    other = (end.machine_busy - start.machine_busy) - (end.own - start.own)
    return min(1.0, max(0.0, other / (elapsed * cpus)))


class CpuWindow:
    """Measures :func:`other_cpu_share` over a ``with`` block; ``reader`` is injectable for tests.

    ``reader() -> CpuReading | None``; ``cpu_count`` defaults to os.cpu_count().
    """

    def __init__(
        self, reader: Callable[[], CpuReading | None] = read_cpu, cpu_count: int | None = None
    ):
        self._reader = reader
        self._cpu_count = cpu_count
        self._start: CpuReading | None = None
        self.share: float | None = None

    def __enter__(self) -> CpuWindow:
        self._start = self._reader()
        return self

    def __exit__(self, *exc) -> None:
        self.share = other_cpu_share(self._start, self._reader(), self._cpu_count)


def is_busy(share: float | None) -> bool:
    """True when other processes used more than :data:`BUSY_SHARE` of the machine."""
    return share is not None and share > BUSY_SHARE


# --------------------------------------------------------------------------- timing protocol


@dataclass(frozen=True)
class RatioMeasurement:
    """A speed ratio measured by :func:`interleaved_ratio`.

    ``ratio`` = baseline median / candidate median (> 1: the candidate is faster); ``low, high``:
    seeded bootstrap 95% interval of the ratio; ``candidate_s, baseline_s``: medians in seconds
    per call; ``other_cpu_share``: share of the machine other processes used during the window
    (None: unknown); ``busy``: that share exceeded :data:`BUSY_SHARE`.
    """

    ratio: float
    low: float
    high: float
    candidate_s: float
    baseline_s: float
    repeats: int
    threads: int
    other_cpu_share: float | None
    busy: bool
    candidate_samples: tuple[float, ...] = field(default=(), repr=False)
    baseline_samples: tuple[float, ...] = field(default=(), repr=False)

    def as_dict(self) -> dict[str, Any]:
        """ratio, low, high, candidate_s, baseline_s, repeats, threads, other_cpu_share, busy, and
        the per-call samples (seconds) of both arms."""
        d = asdict(self)
        d["candidate_samples"] = list(self.candidate_samples)
        d["baseline_samples"] = list(self.baseline_samples)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RatioMeasurement:
        """The inverse of :meth:`as_dict` (e.g. for a measurement stored by ``ctx.stage``)."""
        missing = [k for k in ("ratio", "low", "high", "candidate_s", "baseline_s") if k not in d]
        if missing:
            raise ConfigError(f"a timing record needs {missing}; pass RatioMeasurement.as_dict()")
        share = d.get("other_cpu_share")
        return cls(
            ratio=float(d["ratio"]),
            low=float(d["low"]),
            high=float(d["high"]),
            candidate_s=float(d["candidate_s"]),
            baseline_s=float(d["baseline_s"]),
            repeats=int(d.get("repeats", 0)),
            threads=int(d.get("threads", 0)),
            other_cpu_share=None if share is None else float(share),
            busy=bool(d.get("busy", is_busy(share))),
            candidate_samples=tuple(d.get("candidate_samples", ())),
            baseline_samples=tuple(d.get("baseline_samples", ())),
        )


def bootstrap_ratio_interval(
    baseline: list[float],
    candidate: list[float],
    *,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """95% percentile-bootstrap interval of median(baseline) / median(candidate).

    The two lists are paired (call i of each arm ran next to each other), so pairs are resampled
    together: a drift of the machine during the window moves both arms of a pair alike.
    """
    import numpy as np

    n = len(baseline)
    if n != len(candidate) or n == 0:
        raise ConfigError("bootstrap needs two equally long, non-empty sample lists")
    idx = np.random.default_rng(seed).integers(0, n, size=(samples, n))
    b = np.median(np.asarray(baseline, dtype=float)[idx], axis=1)
    c = np.median(np.asarray(candidate, dtype=float)[idx], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(c > 0, b / np.where(c > 0, c, 1.0), np.inf)
    lo, hi = np.quantile(ratios, [0.025, 0.975])
    return float(lo), float(hi)


def interleaved_ratio(
    candidate: Callable[[], Any],
    baseline: Callable[[], Any],
    *,
    repeats: int = 9,
    warmup: int = 2,
    sync: Callable[[], None] | None = None,
    max_seconds: float | None = None,
    seed: int = 0,
    reader: Callable[[], CpuReading | None] = read_cpu,
    cpu_count: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> RatioMeasurement:
    """Time ``baseline()`` and ``candidate()`` alternately in this process; see the module doc.

    ``repeats`` timed calls per arm (>= :data:`MIN_REPEATS`, else ConfigError), after ``warmup``
    untimed calls of each. Pair i runs baseline first when i is even, candidate first when odd.
    ``max_seconds`` stops early once that much time was spent in timed calls, but never before
    :data:`MIN_REPEATS` pairs. ``seed`` seeds the bootstrap; ``reader``/``cpu_count`` are the
    machine-load clocks and ``clock`` the call timer (seconds), injectable so a test can feed a
    synthetic load or synthetic durations.
    """
    if not isinstance(repeats, int) or repeats < MIN_REPEATS:
        raise ConfigError(
            f"interleaved_ratio needs repeats >= {MIN_REPEATS} per arm (got {repeats!r}): "
            "fewer calls give no usable median or interval"
        )
    if warmup < 0:
        raise ConfigError("warmup must be >= 0")

    def timed(fn: Callable[[], Any]) -> float:
        t0 = clock()
        fn()
        if sync:
            sync()
        return clock() - t0

    for _ in range(warmup):
        baseline()
        candidate()
    if sync:
        sync()
    base: list[float] = []
    cand: list[float] = []
    total = 0.0
    with CpuWindow(reader, cpu_count) as window:
        for i in range(repeats):
            if i % 2 == 0:
                base.append(timed(baseline))
                cand.append(timed(candidate))
            else:
                cand.append(timed(candidate))
                base.append(timed(baseline))
            total += base[-1] + cand[-1]
            if max_seconds is not None and total > max_seconds and i + 1 >= MIN_REPEATS:
                break
    b_med, c_med = statistics.median(base), statistics.median(cand)
    ratio = b_med / c_med if c_med > 0 else math.inf
    low, high = bootstrap_ratio_interval(base, cand, seed=seed)
    return RatioMeasurement(
        ratio=ratio,
        low=low,
        high=high,
        candidate_s=c_med,
        baseline_s=b_med,
        repeats=len(base),
        threads=torch.get_num_threads(),
        other_cpu_share=window.share,
        busy=is_busy(window.share),
        candidate_samples=tuple(cand),
        baseline_samples=tuple(base),
    )


# --------------------------------------------------------------------------- bench.json


def bench_entry(
    name: str, measurement: RatioMeasurement, *, baseline: str, candidate: str, **extra: Any
) -> dict[str, Any]:
    """One bench.json entry in the common schema from a :class:`RatioMeasurement`.

    ``baseline``/``candidate`` say in words what was timed; ``extra`` fields are kept as given.
    """
    m = measurement.as_dict()
    return {
        "name": name,
        "ratio": m["ratio"],
        "low": m["low"],
        "high": m["high"],
        "baseline": baseline,
        "candidate": candidate,
        "other_cpu_share": m["other_cpu_share"],
        "threads": m["threads"],
        "busy": m["busy"],
        "baseline_s": m["baseline_s"],
        "candidate_s": m["candidate_s"],
        "repeats": m["repeats"],
        **extra,
    }


def cpu_flags(cpuinfo_text: str | None = None) -> dict[str, bool]:
    """Which of :data:`ISA_FLAGS` the CPU has, from the first ``flags`` line of /proc/cpuinfo
    (empty where /proc/cpuinfo is not available)."""
    try:
        text = Path("/proc/cpuinfo").read_text() if cpuinfo_text is None else cpuinfo_text
    except OSError:
        return {}
    for line in text.splitlines():
        if line.startswith("flags") and ":" in line:
            have = set(line.split(":", 1)[1].split())
            return {flag: flag in have for flag in ISA_FLAGS}
    return {}


def _check_entry(package: str, entry: dict[str, Any]) -> None:
    if not isinstance(entry, dict) or not entry.get("name"):
        raise ConfigError(f"{package}: every bench entry is a dict with a 'name'")
    if "ratio" not in entry:
        return  # a timing table row (no ratio): kept as given
    missing = [k for k in ENTRY_FIELDS if k not in entry]
    if missing:
        raise ConfigError(
            f"{package}: bench entry {entry['name']!r} lacks {missing}; build it with bench_entry()"
        )
    lo, r, hi = (entry[k] for k in ("low", "ratio", "high"))
    if not all(isinstance(v, (int, float)) for v in (lo, r, hi)) or not lo <= r <= hi:
        raise ConfigError(
            f"{package}: bench entry {entry['name']!r} needs numbers low <= ratio <= high"
        )


def write_bench(
    out_dir: str | Path, package: str, entries: list[dict[str, Any]], profile: str = "small"
) -> Path:
    """Write ``<out_dir>/bench.json``: the entries plus provenance (commit, CPU model and ISA
    flags, threads, versions).

    An entry carrying ``ratio`` must have every field of :data:`ENTRY_FIELDS` (see
    :func:`bench_entry`); entries without a ratio (plain timing rows) are kept as given and
    listed under ``untimed``. ``machine_busy`` is true when any entry was measured busy.
    """
    from .results import provenance

    for entry in entries:
        _check_entry(package, entry)
    prov = provenance(profile, [], {}, 0.0, {})
    prov["cpu_flags"] = cpu_flags()
    path = Path(out_dir) / "bench.json"
    write_json(
        path,
        {
            "package": package,
            "entries": entries,
            "untimed": [e["name"] for e in entries if "ratio" not in e],
            "machine_busy": any(bool(e.get("busy")) for e in entries),
            "provenance": prov,
        },
    )
    return path
