"""SparseConv2d is a drop-in replacement; sparsify swaps only layers predicted to gain."""

import pytest
import torch
from torch import nn

from dnnrepro.core.errors import ConfigError
from dnnrepro.core.models import LeNet
from dnnrepro.holistic_sparsecnn import SparseConv2d, csr_bytes, roofline, sparsify


def test_from_dense_matches_the_conv_on_several_input_sizes():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3, stride=2, padding=1, dilation=1)
    with torch.no_grad():
        conv.weight.mul_(torch.rand_like(conv.weight) < 0.3)
    sparse = SparseConv2d.from_dense(conv)
    for hw in ((9, 9), (12, 7)):
        x = torch.randn(2, 3, *hw)
        torch.testing.assert_close(sparse(x), conv(x).detach(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(sparse.to_dense().weight, conv.weight.detach())
    relu = SparseConv2d.from_dense(conv, relu=True)
    x = torch.randn(1, 3, 9, 9)
    torch.testing.assert_close(relu(x), conv(x).detach().clamp(min=0), rtol=1e-4, atol=1e-5)


def test_from_dense_rejects_unsupported_convs():
    with pytest.raises(ConfigError, match="padding_mode"):
        SparseConv2d.from_dense(nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"))
    with pytest.raises(ConfigError, match="groups"):
        SparseConv2d(4, 6, 3, groups=4)
    with pytest.raises(ConfigError, match="float32"):
        SparseConv2d.from_dense(nn.Conv2d(4, 4, 3).double())
    with pytest.raises(ConfigError, match="Conv2d"):
        SparseConv2d.from_dense(nn.Linear(3, 3))


def test_sparsify_swaps_only_profitable_layers_and_keeps_outputs():
    torch.manual_seed(0)
    model = LeNet(1, 28, 10).eval()
    with torch.no_grad():
        model.conv2.weight.mul_(torch.rand_like(model.conv2.weight) < 0.05)
    machine = roofline.Machine(flops=1e11, bandwidth=2e10, alpha=3.0)
    sparse = sparsify(model, (1, 28, 28), machine)
    swapped = {r["layer"]: r["swapped"] for r in sparse.sparsified}
    assert swapped == {"conv1": False, "conv2": True}  # conv1 is dense: x = 1 > 1/alpha
    assert isinstance(sparse.conv2, SparseConv2d) and isinstance(model.conv2, nn.Conv2d)
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(sparse(x), model(x).detach(), rtol=1e-4, atol=1e-5)


def test_csr_bytes_counts():
    model = nn.Sequential(nn.Linear(10, 4))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].weight[0, :2] = 1.0
    size = csr_bytes(model)
    assert size["nnz"] == 2 and size["dense_bytes"] == 4 * 44
    assert size["csr_bytes"] == 8 * 2 + 4 * 5 + 4 * 4


def test_alexnet_small_shapes_and_sparsify():
    from dnnrepro.holistic_sparsecnn import AlexNetSmall

    torch.manual_seed(0)
    model = AlexNetSmall().eval()
    with torch.no_grad():
        for conv in (model.conv3, model.conv4):
            conv.weight.mul_(torch.rand_like(conv.weight) < 0.05)
    machine = roofline.Machine(flops=1e11, bandwidth=2e10, alpha=3.0)
    sparse = sparsify(model, (1, 28, 28), machine)
    assert {r["layer"] for r in sparse.sparsified if r["swapped"]} == {"conv3", "conv4"}
    x = torch.rand(2, 1, 28, 28)
    out = sparse(x)
    assert out.shape == (2, 10)
    torch.testing.assert_close(out, model(x).detach(), rtol=1e-4, atol=1e-4)
