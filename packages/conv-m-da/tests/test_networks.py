import pytest
import torch

from dnnrepro.conv_m_da import (
    ConvM,
    build_network,
    compact_net,
    inception_like,
    macs,
    squeeze_net_like,
)
from dnnrepro.core.errors import ConfigError
from dnnrepro.core.models import count_params


def test_paper_size_parameter_counts_are_pinned():
    # Derived from the layer tables in networks.py (not from the paper): the compact net's widths
    # are our reconstruction; GoogLeNet v1 without aux heads and SqueezeNet v1.0 are published
    # layouts whose known counts (~6.99M, 1,248,424) these builders must reproduce.
    assert count_params(compact_net(1000, "paper", 3)) == 4_081_080
    assert count_params(inception_like(1000, "paper", 3)) == 6_998_552
    assert count_params(squeeze_net_like(1000, "paper", 3)) == 1_248_424


@pytest.mark.parametrize("builder", [compact_net, squeeze_net_like, inception_like])
def test_paper_size_forward_shape(builder):
    net = builder(7, "paper", 3).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 3, 64, 64)).shape == (1, 7)


@pytest.mark.parametrize("kind", ["compact", "squeeze", "inception"])
@pytest.mark.parametrize("size", [8, 16, 28])
def test_small_nets_on_digit_sizes(kind, size):
    net = build_network(kind, 10, "small", 1)
    assert net(torch.rand(3, 1, size, size)).shape == (3, 10)
    assert net.features(torch.rand(3, 1, size, size)).shape == (3, net.feature_dim)


def test_small_parameter_order():
    small = {
        k: count_params(build_network(k, 10, "small", 1))
        for k in ("compact", "squeeze", "inception")
    }
    assert small["squeeze"] < small["compact"] < small["inception"]


def test_macs_counts_the_deconvolution():
    m = ConvM(4, 2, 3)
    h = w = 8
    expected = (
        h * w * 2 * 4 * 3  # three 1x1 reductions
        + h * w * 3 * 2 * 9 * 2  # regular and dilated 3x3
        + 4 * 4 * 2 * 2 * 9  # strided 3x3 on a 4x4 output
        + 4 * 4 * 2 * 3 * 9  # deconv: every input pixel scatters a 3x3 kernel per output channel
    )
    assert macs(m, (4, h, w)) == expected


def test_bad_arguments():
    with pytest.raises(ConfigError, match="size"):
        compact_net(10, "huge")
    with pytest.raises(ConfigError, match="num_classes"):
        compact_net(1, "small")
    with pytest.raises(ConfigError, match="unknown network"):
        build_network("alexnet", 10)
    with pytest.raises(ConfigError, match="in_channels=3"):
        compact_net(10, "small", 1)(torch.rand(1, 3, 16, 16))
