"""The DDP-hook bench entries run (tiny model, 2 gloo processes); their timings are not judged."""

import pytest

from dnnrepro.terngrad.bench import hook_entries

pytestmark = pytest.mark.slow


def test_hook_entries_run_at_a_tiny_size():
    entries = hook_entries(model="check", batch=6, repeats=7)
    names = [e["name"] for e in entries]
    assert len(names) == 6 and len(set(names)) == 6
    assert names[0].startswith("hook: TernGrad async vs PowerSGD rank 4")
    assert names[1].startswith("hook: TernGrad async vs sync")
    for e in entries:
        assert e["ratio"] > 0 and e["low"] <= e["high"] and e["repeats"] == 7
        assert "overhead_ms" in e and e["workers"] == 2
    assert entries[0]["target"] == "cost <= 1"
    assert entries[1]["target"] == "informational"  # loopback: no overlap target
