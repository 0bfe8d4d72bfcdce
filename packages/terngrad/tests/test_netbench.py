"""The slow-network benchmark: smallest configuration and a clean teardown (root + ip + tc only)."""

import os
import shutil

import pytest

from dnnrepro.core.errors import ConfigError

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not (shutil.which("ip") and shutil.which("tc")),
    reason="needs root, ip and tc",
)


def test_bad_arguments_are_config_errors():
    from dnnrepro.terngrad.netns import SlowNetwork

    with pytest.raises(ConfigError):
        SlowNetwork(0, 100)
    with pytest.raises(ConfigError):
        SlowNetwork(2, 0)


@needs_root
def test_network_is_shaped_and_torn_down():
    from dnnrepro.terngrad.netns import PREFIX, SlowNetwork, namespaces

    before = set(namespaces(PREFIX))
    with SlowNetwork(2, 100) as net:
        mine = set(net.names) | {net.hub}
        assert mine <= set(namespaces(PREFIX))
        lines = net.qdiscs()
        assert sum("tbf" in line and "100Mbit" in line for line in lines) == 4  # 2 links x 2 ways
    assert not (mine & set(namespaces(PREFIX)))
    assert set(namespaces(PREFIX)) <= before
    # a delay needs netem; where the kernel lacks it the error is clear and nothing is left behind
    try:
        with SlowNetwork(2, 100, delay_ms=1) as net:
            assert sum("netem" in line for line in net.qdiscs()) == 4
    except ConfigError as exc:
        assert "netem" in str(exc)
    assert set(namespaces(PREFIX)) <= before


@needs_root
@pytest.mark.slow
def test_smallest_configuration_runs_and_counts_exact_bytes():
    from dnnrepro.terngrad.netbench import run_config
    from dnnrepro.terngrad.netns import PREFIX, namespaces

    before = set(namespaces(PREFIX))
    result = run_config(2, 100, ["lenet"], ["a2a"], steps=2, warmup=1)
    assert set(namespaces(PREFIX)) <= before  # torn down
    assert 5e6 < result["bandwidth_Bps"] < 20e6  # ~12.5 MB/s through the 100 Mbit/s buckets
    rows = {r["method"]: r for r in result["rows"]}
    assert set(rows) == {"fp32", "a2a"}
    assert rows["a2a"]["bytes_match_formula"]
    assert all(r["step_s"] > 0 and r["predicted_s"] > 0 for r in rows.values())
