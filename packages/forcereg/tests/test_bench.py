"""bench(opts) returns valid bench.json entries (timings themselves are not asserted)."""

import json

import pytest

from dnnrepro.core.bench import write_bench
from dnnrepro.core.paper import BenchOptions
from dnnrepro.forcereg import bench
from dnnrepro.forcereg.paper import PAPER


@pytest.mark.slow
def test_quick_bench_entries(tmp_path):
    opts = BenchOptions(
        threads=1, quick=True, data_dir=None, out_dir=tmp_path, work_root=tmp_path, paper=PAPER
    )
    entries = bench.bench(opts)
    path = write_bench(tmp_path, "forcereg", entries, profile="quick")  # validates the schema
    assert json.loads(path.read_text())["package"] == "forcereg"
    names = [e["name"] for e in entries]
    assert names.count("alexnet_conv_stack") == 1 and names.count("alexnet_torch_lowrank") == 1
    alex = next(e for e in entries if e["name"] == "alexnet_conv_stack")
    assert 1.5 < alex["mac_ratio"] < 2.5 and alex["low"] <= alex["ratio"] <= alex["high"]
    stack = [e for e in entries if e["name"] == "convnet_conv_stack"]
    assert len(stack) == 4  # no small run and no pinned results in tmp_path: fractions only
    full = next(e for e in stack if e["case"] == "fraction 1")
    assert full["mac_ratio"] < 1  # full rank costs more MACs than dense: the bench must show it
    breakdown = next(e for e in entries if e["name"] == "convnet_stack_breakdown")
    assert breakdown["amdahl_bound"] > 1 and 0 < breakdown["decomposable_share"] < 1
    kinds = {e["case"] for e in entries if e["name"] == "force_overhead"}
    assert kinds == {"constant", "degradation"}


def test_small_run_ranks_reads_the_runs_stage_then_the_pinned_results(tmp_path):
    opts = BenchOptions(
        threads=1, quick=True, data_dir=None, out_dir=tmp_path, work_root=tmp_path, paper=PAPER
    )
    assert bench.small_run_ranks(opts) is None
    pinned = tmp_path / "small" / "results.json"
    pinned.parent.mkdir()
    runs = {"convnet": [{"finetune_ranks": {"conv2": 9, "conv3": 12}}]}
    pinned.write_text(json.dumps({"details": {"runs": runs}}))
    assert bench.small_run_ranks(opts) == {"conv2": 9, "conv3": 12}
    stage = opts.run_folder("small") / "stages" / "convnet-seed0.json"
    stage.parent.mkdir(parents=True)
    stage.write_text(json.dumps({"value": {"finetune_ranks": {"conv2": 3, "conv3": 4}}}))
    assert bench.small_run_ranks(opts) == {"conv2": 3, "conv3": 4}
