"""The side-by-side arms reach SSL's per-layer widths exactly (issue 16 item 6), at tiny sizes."""

import pytest
import torch

from dnnrepro.core.errors import ConfigError
from dnnrepro.core.models import MLP, LeNet
from dnnrepro.core.train import TrainConfig
from dnnrepro.ssl import shrink
from dnnrepro.ssl.pruner_comparison import (
    input_widths,
    layer_widths,
    magnitude_prune_filters,
    prune_and_finetune,
    select_filters,
    torch_pruning_available,
)

NEEDS_TP = pytest.mark.skipif(
    not torch_pruning_available(),
    reason="torch-pruning is not installed (pip install 'dnnrepro-ssl[compare]')",
)


def _data(n=48, shape=(1, 8, 8)):
    g = torch.Generator().manual_seed(3)
    return torch.rand(n, *shape, generator=g), torch.randint(0, 10, (n,), generator=g)


def _ssl_like_lenet(seed: int):
    """A LeNet with filter and channel groups zeroed as SSL leaves it, and its shrunk copy."""
    g = torch.Generator().manual_seed(seed)
    m = LeNet(1, 8, 10)
    with torch.no_grad():
        m.conv1.weight[torch.randperm(20, generator=g)[:7]] = 0
        m.conv1.bias.zero_()
        m.conv2.weight[:, torch.randperm(20, generator=g)[:3]] = 0  # channels: more conv1 go
        m.conv2.weight[torch.randperm(50, generator=g)[:31]] = 0
        m.conv2.bias.zero_()
    x, _ = _data()
    kept = {}
    return m, shrink(m, x[:8], kept=kept), kept


_FT = TrainConfig(steps=2, batch_size=16, lr=0.01, optimizer="momentum", momentum=0.9)


@pytest.mark.parametrize("seed", [0, 1])
def test_three_arms_reach_the_same_widths(seed):
    dense = LeNet(1, 8, 10)
    _, ssl_small, kept = _ssl_like_lenet(seed)
    widths = layer_widths(ssl_small)
    assert widths["conv1"] < 20 and widths["conv2"] < 50 and widths["fc2"] == 10
    data = _data()
    arms = {"ssl": ssl_small}
    methods = ["magnitude", "ssl_selection"] + (["groupnorm"] if torch_pruning_available() else [])
    for method in methods:
        arms[method], metrics = prune_and_finetune(
            method,
            dense,
            data,
            data,
            widths,
            example=data[0][:8],
            finetune=_FT,
            sparse=_FT,
            keep=kept,
        )
        assert metrics["widths"] == widths and 0.0 <= metrics["accuracy"] <= 1.0
    for name, model in arms.items():
        assert layer_widths(model) == widths, name
        assert input_widths(model) == input_widths(ssl_small), name


@NEEDS_TP
def test_groupnorm_arm_reaches_ssl_widths_on_an_mlp():
    x, y = _data(shape=(1, 28, 28))
    dense = MLP(784, (40, 30), 10)
    widths = {"layers.fc1": 17, "layers.fc2": 9}
    model, metrics = prune_and_finetune(
        "groupnorm", dense, (x, y), (x, y), widths, example=x[:4], finetune=_FT, sparse=_FT
    )
    got = layer_widths(model)
    assert got["layers.fc1"] == 17 and got["layers.fc2"] == 9 and got["layers.fc3"] == 10
    assert input_widths(model)["layers.fc2"] == 17 and "sparse_accuracy" in metrics
    assert torch.isfinite(model(x[:3])).all()


def test_magnitude_keeps_the_largest_l1_filters():
    m = LeNet(1, 8, 10)
    with torch.no_grad():
        scale = torch.linspace(0.1, 2.0, 20)[torch.randperm(20)]
        m.conv1.weight.mul_(0).add_(scale.view(-1, 1, 1, 1))  # L1 ordering = scale ordering
    small = magnitude_prune_filters(m, {"conv1": 6}, _data()[0][:4])
    kept = small.conv1.weight.reshape(6, -1)[:, 0]
    assert sorted(kept.tolist()) == pytest.approx(sorted(scale.topk(6).values.tolist()))
    assert small.conv2.in_channels == 6


def test_bad_targets_and_methods_are_clear_errors():
    x = _data()[0][:4]
    with pytest.raises(ConfigError, match="no Conv2d/Linear"):
        magnitude_prune_filters(LeNet(1, 8, 10), {"conv9": 3}, x)
    with pytest.raises(ConfigError, match="not possible"):
        magnitude_prune_filters(LeNet(1, 8, 10), {"conv1": 0}, x)
    with pytest.raises(ConfigError, match="unknown pruning method"):
        prune_and_finetune("random", LeNet(1, 8, 10), _data(), _data(), {}, example=x, finetune=_FT)


def test_shrink_reports_the_original_indices_it_keeps():
    sparse, small, kept = _ssl_like_lenet(4)
    assert set(kept) == {"conv1", "conv2"}
    w1, w2 = sparse.conv1.weight, sparse.conv2.weight
    # zero biases: a filter goes when it is zero or conv2 does not read its channel
    assert kept["conv1"] == [c for c in range(20) if w1[c].any() and w2[:, c].any()]
    assert kept["conv2"] == [n for n in range(50) if w2[n].any()]
    torch.testing.assert_close(small.conv1.weight, sparse.conv1.weight[kept["conv1"]])
    rows = sparse.conv2.weight[kept["conv2"]][:, kept["conv1"]]
    torch.testing.assert_close(small.conv2.weight, rows)
    # the same selection cut from other weights gives the same architecture
    other = select_filters(LeNet(1, 8, 10), kept, _data()[0][:4])
    assert layer_widths(other) == layer_widths(small)


@NEEDS_TP
def test_groupnorm_regularizer_decays_only_the_layers_to_prune():
    from dnnrepro.ssl.pruner_comparison import GroupNormRegularization

    m = LeNet(1, 8, 10)
    x, y = _data()
    hook = GroupNormRegularization(m, x[:4], {"conv1": 5, "conv2": 50, "fc1": 500}, reg=1e-2)
    torch.nn.functional.cross_entropy(m(x), y).backward()
    before = {n: p.grad.clone() for n, p in m.named_parameters()}
    hook.after_backward(m, 0)
    changed = {n for n, p in m.named_parameters() if not torch.equal(p.grad, before[n])}
    # conv1's group: its filters and conv2's matching input columns; nothing else
    assert changed == {"conv1.weight", "conv2.weight"}
    extra = m.conv1.weight.grad - before["conv1.weight"]
    w = m.conv1.weight.detach()
    ratio = (extra / w).flatten(1)[:, 0]  # reg * gamma per filter, gamma in [1, 16]
    assert float(ratio.min()) >= 1e-2 - 1e-7 and float(ratio.max()) <= 16e-2 + 1e-6
