"""bench.py writes bench.json with both benchmarks (timings are not asserted)."""

import pytest

from dnnrepro.forcereg import bench


@pytest.mark.slow
def test_bench_entries(tmp_path):
    entries = bench.conv_stack_entries(tmp_path, 1, 1, batch_size=8)
    entries += bench.force_overhead_entries(1, 1, step_batch=2)
    entries.append(bench.stack_breakdown_entry(1, 1, batch_size=4))
    assert entries[-1]["amdahl_bound"] > 1 and 0 < entries[-1]["decomposable_share"] < 1
    names = [(e["name"], e["case"]) for e in entries]
    assert ("force_overhead", "constant") in names and ("force_overhead", "degradation") in names
    stack = [e for e in entries if e["name"] == "convnet_conv_stack"]
    assert len(stack) == 4  # no results.json in tmp_path: only the rank fractions
    full = next(e for e in stack if e["case"] == "fraction 1")
    assert full["mac_ratio"] < 1  # full rank costs more MACs than dense: the bench must show it
    assert all(e["speedup"] > 0 for e in stack)
