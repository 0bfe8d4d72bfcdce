import pytest
import torch
from torch import nn

from dnnrepro.core.errors import ConfigError
from dnnrepro.core.models import MLP, LeNet, resnet20
from dnnrepro.core.train import TrainConfig, fit
from dnnrepro.ssl import (
    SSLRegularizer,
    freeze_structure,
    group_norms,
    residual_block_groups,
    residual_convs,
    zero_small,
    zero_weak_groups,
)


def test_penalty_is_sum_of_scaled_norms():
    m = LeNet(1, 28, 10)
    reg = SSLRegularizer(m, groups={"conv1": ["filter"], "conv2": ["filter"]}, strength=0.1)
    # conv1 filters are the reference (25 weights); conv2 filters have 500: sqrt(20)
    expected = 0.1 * (
        group_norms(m.conv1.weight, "filter").sum()
        + (20**0.5) * group_norms(m.conv2.weight, "filter").sum()
    )
    torch.testing.assert_close(reg(m), expected)
    assert reg.coefficients()["conv2/filter"] == pytest.approx(0.1 * 20**0.5)


def test_output_rows_and_single_channel_groups_are_skipped():
    m = MLP(20, (8,), 3)
    reg = SSLRegularizer(m, groups=("row", "column"), strength=0.01)
    assert reg.layer_kinds() == {"layers.fc1": ["row", "column"], "layers.fc2": ["column"]}
    lenet = LeNet(1, 28, 10)
    kinds = SSLRegularizer(lenet, groups={"conv1": ["channel", "filter"]}).layer_kinds()
    assert kinds == {"conv1": ["filter"]}  # conv1's one channel group would be the whole layer


def test_depth_targets_exclude_first_conv_and_shortcuts():
    names = residual_convs(resnet20(in_channels=1))
    assert len(names) == 18 and "conv1" not in names
    assert all(n.startswith("stages.") and n.endswith(("conv1", "conv2")) for n in names)


def test_zero_small_and_weak_groups():
    m = LeNet(1, 28, 10)
    with torch.no_grad():
        m.conv1.weight[0, 0, 0, 0] = 5e-5
        m.conv2.weight[3] *= 1e-5
    zero_small(m)
    assert m.conv1.weight[0, 0, 0, 0] == 0
    assert not ((m.conv2.weight.abs() > 0) & (m.conv2.weight.abs() < 1e-4)).any()
    counts = zero_weak_groups(m, {"conv2": ["filter", "shape"]}, rms_threshold=1e-3)
    assert counts["conv2/filter"] == 1 and bool((m.conv2.weight[3] == 0).all())


def test_frozen_structure_keeps_zero_groups_zero_while_training():
    m = MLP(16, (12,), 4)
    with torch.no_grad():
        m.layers.fc1.weight[2] = 0  # a dead neuron
        m.layers.fc1.weight[:, 5] = 0  # an unused input
    frozen = freeze_structure(m)
    x, y = torch.rand(64, 16), torch.randint(0, 4, (64,))
    fit(
        m,
        (x, y),
        TrainConfig(epochs=2, batch_size=16, lr=0.1),
        callbacks=[frozen],
    )
    assert bool((m.layers.fc1.weight[2] == 0).all()) and bool(
        (m.layers.fc1.weight[:, 5] == 0).all()
    )


def test_ssl_training_zeroes_groups():
    m = MLP(16, (12,), 4)
    reg = SSLRegularizer(m, groups=("row",), strength=0.2)
    x, y = torch.rand(128, 16), torch.randint(0, 4, (128,))
    from dnnrepro.ssl import zero_small_hook

    fit(
        m,
        (x, y),
        TrainConfig(epochs=10, batch_size=32, lr=0.05),
        penalties=[reg],
        callbacks=[zero_small_hook()],
    )
    zero_weak_groups(m, reg.layer_kinds(), 1e-3)
    assert int((group_norms(m.layers.fc1.weight, "row") == 0).sum()) >= 1


def test_bad_arguments():
    m = LeNet(1, 28, 10)
    with pytest.raises(ConfigError, match="strength"):
        SSLRegularizer(m, strength=-1)
    with pytest.raises(ConfigError, match="no Conv2d/Linear named"):
        SSLRegularizer(m, groups={"conv9": ["filter"]})
    with pytest.raises(ConfigError, match="no Conv2d or Linear"):
        SSLRegularizer(nn.Sequential(nn.ReLU()))


def test_proximal_step_zeroes_a_group_exactly():
    m = LeNet(1, 28, 10)
    with torch.no_grad():
        m.conv2.weight.mul_(0.0)
        m.conv2.weight[0].fill_(1e-3)  # filter 0: norm 1e-3 * sqrt(500) ~ 0.022
        m.conv2.weight[1].fill_(1.0)  # filter 1: norm ~ 22
    reg = SSLRegularizer(m, groups={"conv2": ["filter"]}, strength=0.1, proximal=True)
    lam = reg.coefficients()["conv2/filter"]
    before = m.conv2.weight[1].norm().item()
    zero = reg.prox_(lr=0.5)  # threshold lr * lambda = 0.05: filter 0 goes, filter 1 shrinks
    assert bool((m.conv2.weight[0] == 0).all())
    assert m.conv2.weight[1].norm().item() == pytest.approx(before - 0.5 * lam, rel=1e-5)
    assert zero == 50 - 1  # the other 48 were already 0, plus filter 0
    # the penalty value carries no gradient in proximal mode: the step does the work
    assert not reg().requires_grad


def test_block_group_covers_the_bn_scale_and_attach_can_be_removed():
    m = resnet20(in_channels=1)
    groups = residual_block_groups(m)
    assert groups["stages.0.0"] == ["stages.0.0.conv2.weight", "stages.0.0.bn2.weight"]
    reg = SSLRegularizer(m, groups=None, strength=1000.0, block_groups=groups, proximal=True)
    opt = torch.optim.SGD(m.parameters(), lr=1.0)
    handle = reg.attach(opt)
    m(torch.rand(2, 1, 8, 8)).sum().backward()
    opt.step()
    for block in groups:
        b = m.get_submodule(block)
        assert bool((b.conv2.weight == 0).all()) and bool((b.bn2.weight == 0).all())
    handle.remove()
    with torch.no_grad():
        m.stages[0][0].bn2.weight.fill_(1.0)
    opt.zero_grad(set_to_none=True)
    opt.step()  # no gradients and no hook any more: nothing changes
    assert bool((m.stages[0][0].bn2.weight == 1.0).all())
    with pytest.raises(ConfigError):
        SSLRegularizer(m, groups=None, block_groups={"b": ["nope.weight"]})
    with pytest.raises(ConfigError):
        SSLRegularizer(m, groups=("layer",), layers=["conv1"]).attach(opt)
