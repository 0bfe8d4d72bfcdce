"""Byte formulas of every wire format and the performance model's behaviour."""

import pytest

from dnnrepro.core.errors import ConfigError
from dnnrepro.terngrad import TernGradState, collective_bytes, network_bytes, perfmodel
from dnnrepro.terngrad.wire import fp32_ring_bytes_per_element


def test_int8_refuses_more_than_127_workers():
    collective_bytes("int8", "2bit", 1000, 127, 2)
    with pytest.raises(ConfigError, match="wraps silently"):
        collective_bytes("int8", "2bit", 1000, 128, 2)


def test_sharing_is_required_except_for_allgather():
    collective_bytes("allgather", "2bit", 1000, 4, 2, scaler_sharing=False)
    with pytest.raises(ConfigError, match="shared scaler"):
        collective_bytes("a2a", "2bit", 1000, 4, 2, scaler_sharing=False)


def test_bad_options_are_config_errors():
    for kwargs in ({"wire": "ring"}, {"codec": "4bit"}, {"clip_c": 0}, {"nonfinite": "ignore"}):
        with pytest.raises(ConfigError):
            TernGradState(**kwargs)


@pytest.mark.parametrize("workers", [4, 8, 32])
def test_large_bucket_bits_match_the_brief_table(workers):
    n = 10**7  # padding is negligible
    b = {4: 4, 8: 5, 32: 7}[workers]
    per_word = 63 // b
    a2a = network_bytes(collective_bytes("a2a", "2bit", n, workers, 1), workers) * 8 / n
    want = (workers - 1) / workers * (2 + b * 64 / (per_word * b))
    assert a2a == pytest.approx(want, rel=1e-3)
    int8 = network_bytes(collective_bytes("int8", "2bit", n, workers, 1), workers) * 8 / n
    assert int8 == pytest.approx(2 * (workers - 1) / workers * 8, rel=1e-3)
    ag = network_bytes(collective_bytes("allgather", "2bit", n, workers, 1), workers) * 8 / n
    assert ag == pytest.approx((workers - 1) * 2, rel=1e-3)
    fp32 = fp32_ring_bytes_per_element(workers) * 8
    base3 = network_bytes(collective_bytes("a2a", "base3", n, workers, 1), workers) * 8 / n
    assert fp32 / base3 >= {4: 10, 8: 8, 32: 7}[workers]


def test_perfmodel_basics():
    one = perfmodel.step_time("alexnet", "ethernet-1g", 1, "fp32")
    assert one["comm"] == 0 and one["total"] == one["compute"]
    assert perfmodel.speedup("alexnet", "ethernet-1g", 1) == pytest.approx(1.0)
    assert perfmodel.speedup("alexnet", "ethernet-1g", 64) > 1
    assert perfmodel.speedup("vgg-a", "ethernet-1g", 64) > perfmodel.speedup(
        "googlenet", "ethernet-1g", 64
    )
    with pytest.raises(ConfigError):
        perfmodel.step_time("alexnet", "ethernet-1g", 0)
