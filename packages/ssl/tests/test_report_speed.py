import pytest
import torch

from dnnrepro.core.models import LeNet, layer_flops
from dnnrepro.ssl import layer_speedups, shrink, sparsity_report


def _sparse_lenet():
    m = LeNet(1, 28, 10)
    with torch.no_grad():
        m.conv1.weight[:14] = 0  # 6 filters left
        m.conv2.weight[:43] = 0  # 7 filters left
    return m


def test_flop_fraction_is_rows_times_columns():
    m = _sparse_lenet()
    small = shrink(m, torch.rand(2, 1, 28, 28))
    rows = {r.name: r for r in sparsity_report(small, (1, 28, 28), reference=m)}
    dense = layer_flops(m, (1, 28, 28))
    assert rows["conv2"].flops_dense == dense["conv2"]
    assert rows["conv1"].filters == (6, 20)
    assert rows["conv2"].filters == (7, 50) and rows["conv2"].channels == (6, 20)
    # (N' K') / (N K) with K = channels * 25
    assert abs(rows["conv2"].flop_fraction - (7 * 6 * 25) / (50 * 500)) < 1e-12


def test_layer_speedups_report_every_conv():
    m = _sparse_lenet()
    small = shrink(m, torch.rand(2, 1, 28, 28))
    out = layer_speedups(m, small, (1, 28, 28), batch=4, n_threads=1, repeats=7)
    assert [r["layer"] for r in out] == ["conv1", "conv2"]
    assert out[1]["kept_rows"] == 7 and out[1]["kept_columns"] == 150
    assert out[1]["flop_bound"] == pytest.approx(50 * 500 / (7 * 150))
    for r in out:
        assert r["gemm_low"] <= r["gemm_speedup"] <= r["gemm_high"]
        assert r["layer_speedup"] > 0 and r["gemm_batched_speedup"] > 0
        assert r["single_image"]["repeats"] >= 7
