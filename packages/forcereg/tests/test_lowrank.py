"""Rank by energy, decomposition exactness and error, bias, report, pruning, bad inputs."""

import pytest
import torch
from torch import nn

from dnnrepro.core.errors import ConfigError
from dnnrepro.core.models import LeNet
from dnnrepro.forcereg import (
    AlexNetConvs,
    ConvNet,
    LowRankConv2d,
    LowRankLinear,
    decompose,
    energy_curve,
    lowrank_report,
    prune_basis,
    rank_for_energy,
)


def _known_spectrum(singular, n=12, d=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(d, n, generator=g, dtype=torch.float64))
    s = torch.zeros(n, dtype=torch.float64)
    s[: len(singular)] = torch.tensor(singular, dtype=torch.float64)
    return (u * s) @ v.T


def test_rank_for_energy_on_a_known_spectrum():
    # energies 16, 9, 4, 1 of 30: shares 0.533, 0.833, 0.967, 1.0
    w = _known_spectrum([4.0, 3.0, 2.0, 1.0])
    assert rank_for_energy(w, 0.5) == 1
    assert rank_for_energy(w, 0.8) == 2
    assert rank_for_energy(w, 0.95) == 3
    assert rank_for_energy(w, 0.99) == 4
    assert rank_for_energy(w, 25 / 30) == 2  # hit exactly: rounding must not push it to 3
    assert rank_for_energy(w, 1.0) == 12  # full rank min(N, D), as the authors' rankratio 1.0
    expected = torch.tensor([16.0, 25.0, 29.0, 30.0], dtype=torch.float64) / 30
    torch.testing.assert_close(energy_curve(w)[:4], expected)


def test_caffe_svd_norm_ratio_corresponds_to_squared_energy():
    w = _known_spectrum([5.0, 4.0, 3.0, 2.0, 1.0])
    s = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0])
    norm_ratio = (s**2).cumsum(0).sqrt() / s.norm()
    for r in (0.8, 0.9, 0.95):
        caffe_rank = int((norm_ratio < r).sum()) + 1
        assert rank_for_energy(w, r**2) == caffe_rank


@pytest.mark.parametrize("energy", [0.0, -0.1, 1.5, float("nan")])
def test_energy_outside_unit_interval_raises(energy):
    with pytest.raises(ConfigError, match="energy"):
        rank_for_energy(torch.randn(4, 9), energy)
    with pytest.raises(ConfigError, match="energy"):
        decompose(LeNet(), energy=energy)


def _conv(bias=True, stride=1, padding=1, dilation=1):
    torch.manual_seed(0)
    return nn.Conv2d(6, 10, 3, stride, padding, dilation, bias=bias).double()


@pytest.mark.parametrize("method", ["pca", "svd"])
@pytest.mark.parametrize("geometry", [(1, 1, 1), (2, 0, 1), (1, 2, 2)])
def test_full_rank_decomposition_is_exact(method, geometry):
    stride, padding, dilation = geometry
    model = nn.Sequential(_conv(True, stride, padding, dilation))
    x = torch.randn(3, 6, 11, 11, dtype=torch.float64)
    dec = decompose(model, energy=1.0, method=method)
    assert isinstance(dec[0], LowRankConv2d) and dec[0].rank == 10
    assert dec[0].lowrank.bias is None
    torch.testing.assert_close(dec[0].linear.bias, model[0].bias)
    torch.testing.assert_close(dec(x), model(x), rtol=1e-10, atol=1e-10)
    assert isinstance(model[0], nn.Conv2d)  # the original is untouched (deep copy)


def test_error_decreases_with_rank_and_methods_agree():
    model = nn.Sequential(_conv())
    x = torch.randn(2, 6, 9, 9, dtype=torch.float64)
    errors = []
    for rank in range(1, 11):
        pca = decompose(model, ranks={"0": rank}, method="pca")
        svd = decompose(model, ranks={"0": rank}, method="svd")
        torch.testing.assert_close(pca(x), svd(x), rtol=1e-9, atol=1e-9)
        errors.append(float((pca(x) - model(x)).detach().norm()))
    assert all(a > b for a, b in zip(errors, errors[1:], strict=False))
    assert errors[-1] < 1e-9


def test_energy_kept_matches_the_rule_and_report():
    torch.manual_seed(1)
    model = LeNet()
    dec = decompose(model, energy=0.9)
    for name in ("conv1", "conv2"):
        layer = getattr(dec, name)
        assert layer.rank == rank_for_energy(getattr(model, name).weight, 0.9)
        assert layer.energy_kept >= 0.9
    rows = {r["layer"]: r for r in lowrank_report(dec, (1, 28, 28))}
    assert set(rows) == {"conv1", "conv2"}
    r = rows["conv2"]
    assert r["decomposed"] and r["macs"] == r["rank"] * (20 * 25 + 50) * 8 * 8
    dense = {r["layer"]: r for r in lowrank_report(model, (1, 28, 28))}
    assert dense["conv2"]["macs"] == 50 * 500 * 64 and dense["conv2"]["rank"] == 50
    assert dense["conv2"]["rank_at_energy"] == rank_for_energy(model.conv2.weight, 0.95)


def test_bad_decompose_inputs_raise():
    model = ConvNet(1, 28)
    with pytest.raises(ConfigError, match="ReLU"):
        decompose(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()), ranks={"1": 1})
    with pytest.raises(ConfigError, match=r"\[1, 10\]"):
        decompose(model, ranks={"fc": 11})
    with pytest.raises(ConfigError, match=r"\[1, 32\]"):
        decompose(model, ranks={"conv2": 33})
    with pytest.raises(ConfigError, match="not a layer"):
        decompose(model, ranks={"conv7": 3})
    with pytest.raises(ConfigError, match="method"):
        decompose(model, method="tucker")
    with pytest.raises(ConfigError, match=r"\[1, 2\] .* per group"):
        decompose(nn.Sequential(nn.Conv2d(4, 4, 3, groups=2)), ranks={"0": 3})


def test_exclude_and_ranks_select_layers():
    model = ConvNet(1, 28)
    dec = decompose(model, energy=0.9, exclude=["conv1"])
    assert isinstance(dec.conv1, nn.Conv2d) and isinstance(dec.conv3, LowRankConv2d)
    dec = decompose(model, ranks={"conv2": 4})
    assert dec.conv2.rank == 4 and isinstance(dec.conv3, nn.Conv2d)
    assert dec(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_prune_basis_zeroes_the_smallest_and_mask_holds():
    torch.manual_seed(0)
    dec = decompose(ConvNet(1, 28), ranks={"conv2": 8, "conv3": 8})
    before = dec.conv2.lowrank.weight.detach().abs().clone()
    mask = prune_basis(dec, 0.5)
    w = dec.conv2.lowrank.weight
    assert int((w == 0).sum()) == w.numel() // 2
    kept = before[w != 0]
    assert kept.min() >= before[w == 0].max()
    assert mask.nonzeros()["conv3.lowrank.weight"] == dec.conv3.lowrank.weight.numel() // 2
    w.grad = torch.ones_like(w)
    with torch.no_grad():
        w.add_(1.0)
    mask.after_backward(dec, 0)
    mask.after_step(dec, 0)
    assert int((w == 0).sum()) == w.numel() // 2 and int((w.grad == 0).sum()) == w.numel() // 2
    with pytest.raises(ConfigError, match="decompose"):
        prune_basis(ConvNet(1, 28), 0.5)
    with pytest.raises(ConfigError, match="sparsity"):
        prune_basis(dec, 1.0)


@pytest.mark.parametrize("method", ["pca", "svd"])
@pytest.mark.parametrize("bias", [True, False])
def test_fc_decomposition_is_two_linears_exact_at_full_rank(method, bias):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 7, bias=bias).double())
    x = torch.randn(5, 12, dtype=torch.float64)
    dec = decompose(model, ranks={"0": 7}, method=method)
    layer = dec[0]
    assert isinstance(layer, LowRankLinear) and layer.rank == 7 and layer.max_rank == 7
    assert isinstance(layer.lowrank, nn.Linear) and layer.lowrank.bias is None
    assert layer.lowrank.weight.shape == (7, 12) and layer.linear.weight.shape == (7, 7)
    torch.testing.assert_close(dec(x), model(x), rtol=1e-10, atol=1e-10)
    assert layer.energy_kept == pytest.approx(1.0)
    # truncated: the best rank-3 approximation of the weight (Eckart-Young)
    low = decompose(model, ranks={"0": 3}, method=method)[0]
    product = low.linear.weight @ low.lowrank.weight
    u, s, vh = torch.linalg.svd(model[0].weight.detach())
    torch.testing.assert_close(product, (u[:, :3] * s[:3]) @ vh[:3], rtol=1e-9, atol=1e-9)


def test_linear_layers_by_energy_only_when_asked():
    torch.manual_seed(0)
    model = LeNet()
    assert isinstance(decompose(model, energy=0.9).fc1, nn.Linear)
    dec = decompose(model, energy=0.9, linear=True)
    assert isinstance(dec.fc1, LowRankLinear) and isinstance(dec.conv2, LowRankConv2d)
    assert dec(torch.rand(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("method", ["pca", "svd"])
def test_grouped_conv_decomposition_is_exact_at_full_rank_and_keeps_groups(method):
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 8, 3, padding=1, groups=2).double()
    model = nn.Sequential(conv)
    x = torch.randn(2, 6, 7, 7, dtype=torch.float64)
    dec = decompose(model, ranks={"0": 4}, method=method)  # per group: min(4 filters, 27)
    layer = dec[0]
    assert layer.lowrank.groups == 2 and layer.linear.groups == 2
    assert layer.lowrank.out_channels == 8 and layer.max_rank == 4
    torch.testing.assert_close(dec(x), model(x), rtol=1e-10, atol=1e-10)
    # group 1's outputs do not depend on group 0's inputs, before and after decomposition
    low = decompose(model, ranks={"0": 2}, method=method)
    x2 = x.clone()
    x2[:, :3] += 1.0
    torch.testing.assert_close(low(x2)[:, 4:], low(x)[:, 4:])
    # at rank 2 per group, each group's block is its own best rank-2 approximation
    for g in range(2):
        block = conv.weight.detach()[4 * g : 4 * g + 4].reshape(4, -1)
        u, s, vh = torch.linalg.svd(block)
        recomb = low[0].linear.weight[4 * g : 4 * g + 4, :, 0, 0]
        basis = low[0].lowrank.weight[2 * g : 2 * g + 2].reshape(2, -1)
        torch.testing.assert_close(recomb @ basis, (u[:, :2] * s[:2]) @ vh[:2])


def test_alexnet_decomposes_at_the_paper_ranks_without_refusal():
    from dnnrepro.forcereg import PAPER_RANKS

    torch.manual_seed(0)
    model = AlexNetConvs()
    dec = decompose(model, ranks=PAPER_RANKS)
    rows = {r["layer"]: r for r in lowrank_report(dec, (3, 67, 67))}
    assert {k: rows[k]["rank"] for k in PAPER_RANKS} == PAPER_RANKS
    assert dec(torch.rand(1, 3, 67, 67)).shape == model(torch.rand(1, 3, 67, 67)).shape
    full = decompose(model.double(), energy=1.0)
    x = torch.rand(1, 3, 67, 67, dtype=torch.float64)
    torch.testing.assert_close(full(x), model(x), rtol=1e-9, atol=1e-9)
