import pytest
import torch

from dnnrepro.conv_m_da import ConvM
from dnnrepro.core.errors import ConfigError


@pytest.mark.parametrize("size", [1, 2, 7, 8, 14, 15, 16, 28])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_output_shape_preserves_height_width(size, batch_norm):
    m = ConvM(5, (3, 4, 2), (6, 7, 8), batch_norm=batch_norm).eval()
    out = m(torch.rand(2, 5, size, size + 1))
    assert out.shape == (2, 21, size, size + 1)
    assert m.out_channels == 21


def test_dilated_branch_costs_a_plain_3x3_and_sees_5x5():
    m = ConvM(4, 3, 5)
    assert m.dilated.weight.numel() == m.regular.weight.numel() == 5 * 3 * 9
    # receptive field of one output pixel of the dilated conv alone: a 5x5 window
    x = torch.zeros(1, 3, 11, 11, requires_grad=True)
    m.dilated(x)[0, :, 5, 5].sum().backward()
    touched = (x.grad.abs().sum(1)[0] > 0).nonzero()
    rows, cols = touched[:, 0], touched[:, 1]
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (3, 7, 3, 7)
    assert len(touched) == 9  # 3x3 taps spread over the 5x5 window


def test_parameter_count_formula():
    c, r, o = 10, (3, 4, 5), (6, 7, 8)
    m = ConvM(c, r, o)
    expected = (
        (c * r[0] + r[0]) + (9 * r[0] * o[0] + o[0])
        + (c * r[1] + r[1]) + (9 * r[1] * o[1] + o[1])
        + (c * r[2] + r[2]) + (9 * r[2] * r[2] + r[2]) + (9 * r[2] * o[2] + o[2])
    )  # fmt: skip
    assert sum(p.numel() for p in m.parameters()) == expected


def test_mismatched_channels_raise_config_error():
    m = ConvM(3, 2, 2)
    with pytest.raises(ConfigError, match="expects input"):
        m(torch.rand(1, 4, 8, 8))
    with pytest.raises(ConfigError):
        ConvM(0, 2, 2)
    with pytest.raises(ConfigError):
        ConvM(3, (2, 2), 2)
