"""shrink: the smaller network gives the sparse network's outputs, with fewer parameters."""

import pytest
import torch
from torch import nn

from dnnrepro.core.errors import ConfigError
from dnnrepro.core.models import MLP, LeNet, count_params, resnet20
from dnnrepro.ssl import InputGather, LoweredConv2d, ResidualShortcut, shrink, sparsity_report


def _random_bn(model):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


def _assert_same(a, b, x):
    with torch.no_grad():
        torch.testing.assert_close(b(x), a.eval()(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lenet_random_groups_of_every_kind(seed):
    g = torch.Generator().manual_seed(seed)
    m = LeNet(1, 28, 10)
    with torch.no_grad():
        m.conv1.weight[torch.randperm(20, generator=g)[:6]] = 0  # filters
        m.conv2.weight[:, torch.randperm(20, generator=g)[:5]] = 0  # channels
        m.conv2.weight[torch.randperm(50, generator=g)[:10]] = 0  # filters
        m.conv1.weight[:, 0, torch.randint(0, 5, (3,), generator=g), 2] = 0  # shape fibres
        m.conv2.weight[:, 7, 1, :] = 0  # partial-channel fibres
        m.fc1.weight[torch.randperm(500, generator=g)[:50]] = 0  # neurons
        m.fc1.weight[:, :40] = 0  # inputs
    x = torch.rand(7, 1, 28, 28)
    small = shrink(m, x[:2])
    _assert_same(m, small, torch.rand(11, 1, 28, 28))
    assert count_params(small) < count_params(m)
    fc1 = small.fc1.inner if isinstance(small.fc1, InputGather) else small.fc1
    assert small.conv2.weight.shape[0] < 50 and fc1.out_features == 450


def test_zero_filter_with_bias_is_folded_into_the_next_layer():
    m = LeNet(1, 28, 10)
    with torch.no_grad():
        m.conv2.weight[:3] = 0  # biases stay: three constant maps feed fc1
        m.conv2.bias[:3] = torch.tensor([0.7, -0.3, 1.1])
    small = shrink(m, torch.rand(2, 1, 28, 28))
    assert small.conv2.out_channels == 47 and small.fc1.in_features == 47 * 16
    _assert_same(m, small, torch.rand(5, 1, 28, 28))


def test_shape_fibres_become_a_lowered_convolution():
    m = LeNet(1, 28, 10)
    with torch.no_grad():
        m.conv1.weight.view(20, -1)[:, 7:] = 0  # 7 of 25 columns survive
    small = shrink(m, torch.rand(2, 1, 28, 28))
    assert isinstance(small.conv1, LoweredConv2d) and small.conv1.weight.shape == (20, 7)
    _assert_same(m, small, torch.rand(5, 1, 28, 28))


def test_mlp_neurons_and_inputs():
    m = MLP(784, (100, 60), 10)
    with torch.no_grad():
        m.layers.fc1.weight[:, 300:] = 0
        m.layers.fc1.weight[:30] = 0
        m.layers.fc2.weight[:, 50:] = 0
        m.layers.fc2.weight[:10] = 0
        m.layers.fc3.weight[:, 55:] = 0
    small = shrink(m, torch.rand(3, 1, 28, 28))
    assert isinstance(small.layers.fc1, InputGather)
    assert small.layers.fc1.inner.weight.shape == (20, 300)
    assert small.layers.fc2.weight.shape == (45, 20) and small.layers.fc3.in_features == 45
    _assert_same(m, small, torch.rand(9, 1, 28, 28))


@pytest.mark.slow
def test_resnet20_random_groups_and_depth():
    m = resnet20(in_channels=1, num_classes=10)
    _random_bn(m)
    with torch.no_grad():
        m.stages[0][1].conv2.weight.zero_()  # depth: a block whose branch is constant
        m.stages[2][0].conv1.weight.zero_()
        m.stages[2][0].conv2.weight.zero_()  # a down-sampling block (pad shortcut)
        m.stages[1][0].conv2.weight[:, [1, 2, 3]] = 0  # channels
        m.stages[1][2].conv1.weight[[0, 1]] = 0  # filters (padded reader: kept unless constant 0)
        m.stages[1][1].conv1.weight[:, :, 0, 0] = 0  # shape fibres
        m.conv1.weight[[4, 5]] = 0  # stem filters feed a residual sum: kept
    x = torch.rand(6, 1, 28, 28)
    small = shrink(m, x[:2])
    _assert_same(m, small, x)
    assert isinstance(small.stages[0][1], ResidualShortcut)
    assert isinstance(small.stages[2][0], ResidualShortcut)
    assert small.stages[1][0].conv1.out_channels == 29
    assert isinstance(small.stages[1][1].conv1, LoweredConv2d)
    assert count_params(small) < count_params(m)
    report = {r.name: r for r in sparsity_report(small, (1, 28, 28), reference=m)}
    assert report["stages.0.1.conv1"].filters == (0, 16)


def test_shrunk_model_is_independent_of_the_sparse_one():
    m = LeNet(1, 28, 10)
    with torch.no_grad():
        m.conv1.weight[:2] = 0
    before = m.conv1.weight.clone()
    shrink(m, torch.rand(2, 1, 28, 28))
    assert torch.equal(m.conv1.weight, before) and m.conv1.out_channels == 20


def test_all_filters_removed_is_a_clear_error():
    m = LeNet(1, 28, 10)
    with torch.no_grad():
        m.conv2.weight.zero_()
        m.conv2.bias.zero_()
    with pytest.raises(ConfigError, match="all .* filters of conv[12] would be removed"):
        shrink(m, torch.rand(2, 1, 28, 28))


def test_unsupported_layer_is_a_clear_error():
    m = nn.Sequential(nn.Conv2d(1, 4, 3), nn.LayerNorm([4, 6, 6]), nn.Flatten(), nn.Linear(144, 2))
    with pytest.raises(ConfigError, match="LayerNorm"):
        shrink(m, torch.rand(2, 1, 8, 8))


def test_untraceable_model_and_bad_input_are_clear_errors():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow
                return self.fc(x)
            return -self.fc(x)

    with pytest.raises(ConfigError, match="trace"):
        shrink(Branchy(), torch.rand(2, 4))
    m = MLP(16, (8,), 2)
    with torch.no_grad():
        m.layers.fc1.weight[:2] = 0
    with pytest.raises(ConfigError, match="example_input"):
        shrink(m, torch.rand(2, 5))
    with pytest.raises(ConfigError, match="tensor"):
        shrink(m, [1, 2])


def test_generic_sequential_net_with_stride_padding_dilation_and_bn():
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 12, 3, padding=2, dilation=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(12 * 4 * 4, 6),
    )
    _random_bn(net)
    with torch.no_grad():
        net[0].weight[[1, 6]] = 0  # padded reader: removable only where relu(bn(bias)) == 0
        net[0].bias[1] = -5.0  # bn then relu make this map a constant 0 only if bn maps it <= 0
        net[3].weight[:, [2, 3]] = 0  # channels
        net[3].weight[[0, 4]] = 0  # filters feeding the flatten
        net[3].weight[:, 5, 0, 1] = 0  # a fibre
    x = torch.rand(4, 3, 16, 16)
    small = shrink(net, x[:2])
    _assert_same(net, small, x)
    assert count_params(small) < count_params(net)


def test_lowered_conv_matches_conv_for_odd_geometry():
    conv = nn.Conv2d(3, 5, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2))
    with torch.no_grad():
        conv.weight.view(5, -1)[:, ::3] = 0
    small = shrink(nn.Sequential(conv), torch.rand(1, 3, 9, 11))
    assert isinstance(small[0], LoweredConv2d)
    x = torch.rand(2, 3, 9, 11)
    torch.testing.assert_close(small(x), conv(x), rtol=1e-4, atol=1e-5)


def test_block_with_zero_bn_scale_is_removed():
    m = resnet20(in_channels=1, num_classes=10)
    _random_bn(m)
    with torch.no_grad():
        m.stages[1][1].bn2.weight.zero_()  # the branch outputs bn2's shift whatever its input
    x = torch.rand(4, 1, 28, 28)
    small = shrink(m, x[:2])
    _assert_same(m, small, x)
    assert isinstance(small.stages[1][1], ResidualShortcut)


class BasicBlock(nn.Module):
    """torchvision's BasicBlock as written there: ``downsample``, no ``shortcut`` attribute."""

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class TinyTorchvisionResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        down = nn.Sequential(nn.Conv2d(8, 16, 1, 2, bias=False), nn.BatchNorm2d(16))
        self.layer1 = nn.Sequential(BasicBlock(8, 8), BasicBlock(8, 8))
        self.layer2 = nn.Sequential(BasicBlock(8, 16, 2, down), BasicBlock(16, 16))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class ResNet18Like(nn.Module):
    """torchvision's ``resnet18`` layout without torchvision (its PyPI wheels for torch 2.13 are
    CUDA builds that do not import next to the CPU torch): 7x7/2 stem, shared ``self.relu``,
    max pool, layer1-4 of two BasicBlocks (64, 128, 256, 512; 1x1 conv + BN ``downsample``),
    ``AdaptiveAvgPool2d``, ``torch.flatten``, ``fc``; module names as in torchvision. Checked
    against torchvision 0.28.0's resnet18: the same state_dict keys and shapes, and the same
    outputs when loaded with its weights."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths, inplanes = (64, 128, 256, 512), 64
        for i, planes in enumerate(widths, start=1):
            stride = 1 if i == 1 else 2
            down = None
            if stride != 1 or inplanes != planes:
                down = nn.Sequential(
                    nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
                )
            blocks = [BasicBlock(inplanes, planes, stride, down), BasicBlock(planes, planes)]
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
            inplanes = planes
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _depth_groups_remove_torchvision_style_blocks(m: nn.Module, x: torch.Tensor) -> None:
    from dnnrepro.ssl import SSLRegularizer, residual_block_groups

    groups = residual_block_groups(m)
    assert groups, "no residual block found"
    _random_bn(m)
    first = next(iter(groups))
    reg = SSLRegularizer(m, groups=None, block_groups={first: groups[first]}, proximal=True)
    reg.prox_(lr=1e6)  # one huge step: exactly that block's group goes to 0
    last = list(groups)[-1]
    with torch.no_grad():  # random zero groups elsewhere: channels, filters, shape fibres
        block = m.get_submodule(last)
        block.conv2.weight[:, [0, 2]] = 0  # channels 0, 2 unread -> conv1 filters 0, 2 go
        block.conv1.weight[:, :, 0, 0] = 0  # a shape fibre of every input channel
        m.conv1.weight[[1]] = 0  # the stem feeds a residual sum: kept, outputs unchanged
    small = shrink(m.eval(), x[:2])
    _assert_same(m, small, x)
    assert isinstance(small.get_submodule(first), ResidualShortcut)
    kept = small.get_submodule(last).conv1
    assert (kept.inner if isinstance(kept, InputGather) else kept).out_channels == (
        m.get_submodule(last).conv1.out_channels - 2
    )
    assert count_params(small) < count_params(m)


def test_depth_groups_on_a_torchvision_style_resnet():
    _depth_groups_remove_torchvision_style_blocks(TinyTorchvisionResNet(), torch.rand(3, 1, 16, 16))


@pytest.mark.slow
def test_depth_groups_on_a_resnet18_layout():
    _depth_groups_remove_torchvision_style_blocks(ResNet18Like(), torch.rand(2, 3, 64, 64))


def test_depth_groups_on_torchvision_resnet18():
    models = pytest.importorskip("torchvision.models", reason="torchvision is not installed")
    _depth_groups_remove_torchvision_style_blocks(
        models.resnet18(num_classes=10), torch.rand(2, 3, 64, 64)
    )


def _coupled_channels_through_residual_adds(m: nn.Module, x: torch.Tensor, stream_readers):
    """Zero two input channels in every reader of one residual stream: the producers feeding
    that stream's adds lose those filters together, and the outputs do not change."""
    _random_bn(m)
    with torch.no_grad():
        for name in stream_readers:
            m.get_submodule(name).weight[:, [1, 5]] = 0
    small = shrink(m.eval(), x[:2])
    _assert_same(m, small, x)
    return small


def test_filters_feeding_a_residual_add_are_pruned_together():
    readers = ["layer1.0.conv1", "layer1.1.conv1", "layer2.0.conv1", "layer2.0.downsample.0"]
    small = _coupled_channels_through_residual_adds(
        TinyTorchvisionResNet(), torch.rand(3, 1, 16, 16), readers
    )
    # the stem and both layer1 blocks' last convs feed the same sums: 8 -> 6 filters each
    for producer in ("conv1", "layer1.0.conv2", "layer1.1.conv2"):
        assert small.get_submodule(producer).out_channels == 6
    assert small.layer2[0].downsample[0].in_channels == 6
    assert small.bn1.num_features == 6


def test_torchvision_resnet18_coupled_channels():
    models = pytest.importorskip("torchvision.models", reason="torchvision is not installed")
    readers = [f"layer1.{i}.conv1" for i in range(2)] + ["layer2.0.conv1", "layer2.0.downsample.0"]
    small = _coupled_channels_through_residual_adds(
        models.resnet18(num_classes=10), torch.rand(2, 3, 64, 64), readers
    )
    assert small.conv1.out_channels == 62


@pytest.mark.slow
def test_resnet18_layout_coupled_channels():
    readers = [f"layer1.{i}.conv1" for i in range(2)] + ["layer2.0.conv1", "layer2.0.downsample.0"]
    small = _coupled_channels_through_residual_adds(
        ResNet18Like(), torch.rand(2, 3, 64, 64), readers
    )
    assert small.conv1.out_channels == 62 and small.layer1[1].conv2.out_channels == 62
