"""The timing protocol of core.bench: interleaved ratio, bootstrap interval, machine-load guard,
bench.json schema, and ``dnnrepro <pkg> bench``."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from dnnrepro.core import bench, cli, paper
from dnnrepro.core.errors import ConfigError


class FakeClock:
    """A clock the timed functions advance: durations are exactly what they say."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _pair(clock: FakeClock, truth: float, seed: int, noise: float = 0.05):
    """baseline takes ``truth`` x the candidate's 1 s, each with multiplicative noise."""
    rng = random.Random(seed)

    def baseline():
        clock.now += truth * (1 + rng.gauss(0, noise))

    def candidate():
        clock.now += 1.0 * (1 + rng.gauss(0, noise))

    return candidate, baseline


def test_repeats_below_seven_are_refused():
    with pytest.raises(ConfigError, match="repeats >= 7"):
        bench.interleaved_ratio(lambda: None, lambda: None, repeats=6)


def test_calls_alternate_baseline_and_candidate():
    order = []
    m = bench.interleaved_ratio(
        lambda: order.append("c"), lambda: order.append("b"), repeats=7, warmup=1
    )
    assert order[:2] == ["b", "c"]  # warmup
    timed = order[2:]
    assert timed == ["b", "c", "c", "b"] * 3 + ["b", "c"]
    assert m.repeats == 7 and len(m.baseline_samples) == len(m.candidate_samples) == 7


def test_interval_contains_the_true_ratio_on_a_synthetic_pair():
    clock = FakeClock()
    cand, base = _pair(clock, 2.0, seed=1)
    m = bench.interleaved_ratio(cand, base, repeats=9, clock=clock, seed=0)
    assert m.low <= 2.0 <= m.high and m.low < m.ratio < m.high
    assert m.baseline_s == pytest.approx(2.0, rel=0.1) and m.candidate_s == pytest.approx(
        1.0, rel=0.1
    )
    # calibration: over many synthetic runs, the 95% interval holds the truth most of the time
    # (the percentile bootstrap of a median at n = 9 undercovers a little; 80% is the floor)
    hits = 0
    for seed in range(100):
        clock = FakeClock()
        cand, base = _pair(clock, 2.0, seed=100 + seed)
        m = bench.interleaved_ratio(cand, base, repeats=9, clock=clock, seed=seed)
        hits += m.low <= 2.0 <= m.high
    assert hits >= 85
    # a wrong direction (ratio inverted) would sit far outside
    assert not (m.low <= 0.5 <= m.high)


def test_sleep_pair_measures_about_two():
    # real clock, about 0.5 s: 40 ms vs 20 ms of sleep
    m = bench.interleaved_ratio(
        lambda: time.sleep(0.02), lambda: time.sleep(0.04), repeats=7, warmup=1
    )
    assert 1.6 < m.ratio < 2.2 and m.low <= m.ratio <= m.high
    assert m.other_cpu_share is None or 0.0 <= m.other_cpu_share <= 1.0
    d = m.as_dict()
    for key in ("ratio", "low", "high", "candidate_s", "baseline_s", "repeats", "threads"):
        assert key in d
    assert {"other_cpu_share", "busy"} <= set(d)
    assert bench.RatioMeasurement.from_dict(d) == m
    json.dumps(d)  # JSON-able as is


def _reader(readings):
    it = iter(readings)
    return lambda: next(it)


def test_busy_guard_triggers_on_a_synthetic_load():
    clock = FakeClock()
    cand, base = _pair(clock, 2.0, seed=3)
    # 2 CPUs, 1 s window: the machine was busy 1.8 CPU-s, of which 0.5 were ours -> 65% other
    busy = bench.interleaved_ratio(
        cand,
        base,
        repeats=7,
        clock=clock,
        cpu_count=2,
        reader=_reader([bench.CpuReading(0.0, 100.0, 10.0), bench.CpuReading(1.0, 101.8, 10.5)]),
    )
    assert busy.other_cpu_share == pytest.approx(0.65) and busy.busy
    # the same window with only our own work: 0.6 busy, 0.5 ours -> 5% other, not busy
    idle = bench.interleaved_ratio(
        cand,
        base,
        repeats=7,
        clock=clock,
        cpu_count=2,
        reader=_reader([bench.CpuReading(0.0, 100.0, 10.0), bench.CpuReading(1.0, 100.6, 10.5)]),
    )
    assert idle.other_cpu_share == pytest.approx(0.05) and not idle.busy
    assert bench.is_busy(bench.BUSY_SHARE + 0.01) and not bench.is_busy(bench.BUSY_SHARE)
    assert not bench.is_busy(None)  # unknown is not busy; the record says None


def test_proc_readers_parse_synthetic_text():
    ticks = bench._clock_ticks()
    stat = "cpu  100 5 50 9000 20 3 2 10 0 0\ncpu0 50 2 25 4500 10 1 1 5 0 0\n"
    assert bench.machine_busy_seconds(stat) == pytest.approx((100 + 5 + 50 + 3 + 2 + 10) / ticks)
    fields = " ".join(["S"] + ["0"] * 10 + ["70", "30"] + ["0"] * 30)
    own = "1234 (py (thread) x) " + fields
    assert bench.own_cpu_seconds(own) == pytest.approx(100 / ticks)
    with pytest.raises(OSError):
        bench.machine_busy_seconds("intr 1 2 3\n")
    start, end = bench.read_cpu(), bench.read_cpu()
    if start is not None:  # on Linux: a real reading works
        share = bench.other_cpu_share(start, end)
        assert share is None or 0.0 <= share <= 1.0


def test_cpu_flags_from_cpuinfo():
    text = "model name : X\nflags : fpu avx2 fma sse4_2\nflags : avx512f\n"
    flags = bench.cpu_flags(text)
    assert flags["avx2"] and flags["fma"] and not flags["avx512f"]
    assert bench.cpu_flags("no flags here") == {}


def test_geomean():
    assert bench.geomean([2.0, 8.0]) == pytest.approx(4.0)
    with pytest.raises(ConfigError):
        bench.geomean([])
    with pytest.raises(ConfigError, match="positive"):
        bench.geomean([1.0, 0.0])


def test_write_bench_checks_the_entry_schema(tmp_path):
    m = bench.RatioMeasurement(2.0, 1.5, 2.5, 0.1, 0.2, 9, 2, 0.3, True)
    entry = bench.bench_entry("conv", m, baseline="dense conv", candidate="sparse conv", layer=3)
    doc = json.loads(bench.write_bench(tmp_path, "demo", [entry]).read_text())
    (row,) = doc["entries"]
    assert set(bench.ENTRY_FIELDS) <= set(row) and row["layer"] == 3
    assert doc["machine_busy"] is True and doc["untimed"] == []
    with pytest.raises(ConfigError, match="lacks"):
        bench.write_bench(tmp_path, "demo", [{"name": "x", "ratio": 2.0}])
    bad = dict(entry, low=2.1)
    with pytest.raises(ConfigError, match="low <= ratio <= high"):
        bench.write_bench(tmp_path, "demo", [bad])


def _bench_paper(seen):
    def run_bench(opts: paper.BenchOptions):
        seen.append(opts)
        m = bench.RatioMeasurement(2.0, 1.5, 2.5, 0.1, 0.2, 9, opts.threads, 0.0, False)
        return [bench.bench_entry("k", m, baseline="a", candidate="b", quick=opts.quick)]

    return paper.Paper(
        name="benchy",
        title="t",
        arxiv="0",
        version="0",
        claims=[],
        run=lambda ctx: None,
        source_module="dnnrepro.core",
        bench=run_bench,
    )


def test_cli_bench_runs_the_registered_benchmark(monkeypatch, tmp_path, capsys):
    seen = []
    p = _bench_paper(seen)

    class EP:
        name = "benchy"

        def load(self):
            return p

    monkeypatch.setattr(cli, "discover", lambda: {"benchy": EP()})
    monkeypatch.chdir(tmp_path)
    assert cli.main(["benchy", "bench", "--threads", "1", "--quick"]) == 0
    doc = json.loads((tmp_path / "paper_results/_smoke/benchy/bench.json").read_text())
    assert doc["entries"][0]["quick"] is True and doc["entries"][0]["threads"] == 1
    assert seen[0].threads == 1 and seen[0].out_dir == Path("paper_results/_smoke/benchy")
    assert seen[0].run_folder("small") == paper.run_folder(p, "small", "runs")
    assert cli.main(["benchy", "bench", "--out", str(tmp_path / "b"), "--threads", "1"]) == 0
    assert json.loads((tmp_path / "b" / "bench.json").read_text())["entries"][0]["quick"] is False
    assert not (tmp_path / "paper_results" / "benchy").exists()
    capsys.readouterr()
    assert cli.main(["benchy", "bench", "--threads", "0", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--threads must be >= 1" in err and len(err.splitlines()) == 1


def test_a_paper_without_bench_has_no_bench_command(monkeypatch, capsys):
    p = _bench_paper([])
    object.__setattr__(p, "bench", None)

    class EP:
        name = "benchy"

        def load(self):
            return p

    monkeypatch.setattr(cli, "discover", lambda: {"benchy": EP()})
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(cli.main(["benchy", "bench"]))
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="registers no benchmark"):
        paper.run_bench(p)
