import pytest
import torch

from dnnrepro.core import models
from dnnrepro.core.errors import ConfigError


@pytest.mark.parametrize("size,channels", [(8, 1), (28, 1), (32, 3)])
@pytest.mark.parametrize("name", ["lenet", "cifarnet", "resnet20", "mlp"])
def test_every_model_runs_on_every_image_size(name, size, channels):
    if name == "mlp":
        net = models.build(name, in_features=channels * size * size, hidden=(16,))
    elif name.startswith("resnet"):
        net = models.build(name, in_channels=channels)
    else:
        net = models.build(name, in_channels=channels, image_size=size)
    out = net(torch.rand(2, channels, size, size))
    assert out.shape == (2, 10)


def test_lenet_is_the_caffe_shape():
    net = models.LeNet()
    assert net.conv1.weight.shape == (20, 1, 5, 5) and net.conv2.weight.shape == (50, 20, 5, 5)
    assert net.fc1.weight.shape == (500, 800) and net.fc2.weight.shape == (10, 500)
    assert models.count_params(net) == 431_080


@pytest.mark.parametrize("depth,params", [(20, 269_722), (32, 464_154), (56, 853_018)])
def test_resnet_depths_match_he_et_al(depth, params):
    net = models.build(f"resnet{depth}")
    assert models.count_params(net) == params  # 0.27M / 0.46M / 0.85M in He et al. 2016
    assert sum(len(s) for s in net.stages) == (depth - 2) // 2


def test_option_a_shortcut_pads_channels_and_subsamples():
    sc = models.PadShortcut(16, 32, 2)
    x = torch.rand(1, 16, 8, 8)
    y = sc(x)
    assert y.shape == (1, 32, 4, 4)
    assert torch.equal(y[:, 8:24], x[:, :, ::2, ::2]) and y[:, :8].abs().sum() == 0


def test_layer_flops_counts_macs():
    flops = models.layer_flops(models.LeNet(), (1, 28, 28))
    assert flops["conv1"] == 20 * 24 * 24 * 25
    assert flops["conv2"] == 50 * 8 * 8 * 20 * 25
    assert flops["fc1"] == 800 * 500


def test_bad_model_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="unknown model"):
        models.build("vgg")
    with pytest.raises(ConfigError, match="6n\\+2"):
        models.ResNet(21)


def test_layer_flops_counts_transposed_convolutions():
    net = torch.nn.Sequential(torch.nn.ConvTranspose2d(4, 6, 3, stride=2))
    flops = models.layer_flops(net, (4, 5, 5))
    # every one of the 4*5*5 input elements meets a 3x3x6 kernel
    assert flops["0"] == 4 * 5 * 5 * 3 * 3 * 6
