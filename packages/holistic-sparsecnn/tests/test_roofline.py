"""The performance model on known inputs, and the brief's derived CaffeNet conv5 numbers."""

import pytest

from dnnrepro.core.errors import ConfigError
from dnnrepro.holistic_sparsecnn import roofline
from dnnrepro.holistic_sparsecnn.experiment import CAFFENET_CONV5

M = roofline.Machine(flops=100.0, bandwidth=10.0, alpha=4.0, beta=2.0)
L = roofline.LayerCost(flops=1000.0, act_bytes=5.0, weight_bytes=20.0)


def test_speedup_formula_and_bounds_on_known_numbers():
    # t_dense = 10; compute 40x; bandwidth 0.5 + 4x; meet at 36x = 0.5 -> x = 1/72.
    assert roofline.dense_time(L, M) == 10.0
    assert roofline.predict_speedup(L, M, 0.5) == pytest.approx(10 / 20)
    assert roofline.predict_speedup(L, M, 0.25) == pytest.approx(1.0)
    assert roofline.lower_bound(M) == 0.25
    assert roofline.upper_bound(L, M) == pytest.approx(1 / 72)
    # Below the upper bound the layer is bandwidth bound: speedup saturates near 10/0.5 = 20.
    assert roofline.predict_speedup(L, M, 0.001) == pytest.approx(10 / (0.5 + 0.004))
    assert roofline.max_speedup(L, M) == pytest.approx(10 / (40 / 72))


def test_speedup_is_non_increasing_and_bounded():
    xs = [i / 200 for i in range(1, 201)]
    s = [roofline.predict_speedup(L, M, x) for x in xs]
    assert all(a >= b - 1e-12 for a, b in zip(s, s[1:], strict=False))
    for x, v in zip(xs, s, strict=True):
        assert (
            v
            <= L.flops * M.bandwidth / (M.flops * (L.act_bytes + M.beta * x * L.weight_bytes))
            + 1e-9
        )
        if x >= roofline.upper_bound(L, M):
            assert v == pytest.approx(1 / (M.alpha * x))


def test_caffenet_conv5_reproduces_the_brief():
    assert CAFFENET_CONV5.flops == pytest.approx(149.5e6, rel=1e-3)
    assert CAFFENET_CONV5.act_bytes == 432640
    assert CAFFENET_CONV5.weight_bytes == 1769472
    assert roofline.upper_bound(CAFFENET_CONV5, roofline.XEON_E5_2697_V4) == pytest.approx(
        0.0197, abs=2e-4
    )
    assert roofline.upper_bound(CAFFENET_CONV5, roofline.ATOM_C2750) == pytest.approx(
        0.0109, abs=2e-4
    )
    assert roofline.predict_speedup(
        CAFFENET_CONV5, roofline.XEON_E5_2697_V4, 0.09
    ) == pytest.approx(3.7, abs=0.05)
    assert roofline.predict_speedup(CAFFENET_CONV5, roofline.ATOM_C2750, 0.09) == pytest.approx(
        9.3, abs=0.1
    )


def test_bandwidth_bound_everywhere_and_conv_costs():
    tiny = roofline.LayerCost(flops=1.0, act_bytes=100.0, weight_bytes=1.0)
    assert roofline.upper_bound(tiny, M) == 1.0
    assert not roofline.profitable(tiny, M)
    c = roofline.LayerCost.conv(2, 3, 3, (5, 5), padding=1, batch=2)
    assert c.flops == 2 * 3 * 2 * 9 * 25 * 2
    assert c.act_bytes == (2 * 25 + 3 * 25) * 2 * 4
    assert c.weight_bytes == 3 * 2 * 9 * 4


def test_bad_values():
    with pytest.raises(ConfigError):
        roofline.Machine(flops=-1, bandwidth=1, alpha=1)
    with pytest.raises(ConfigError):
        roofline.predict_speedup(L, M, 1.5)
