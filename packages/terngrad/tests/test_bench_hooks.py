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


def test_emulator_and_codec_entries_run_at_a_tiny_size():
    from dnnrepro.terngrad.bench import emulator_entry, encode_entries, ternarize_entry

    entries = encode_entries(1000, 7) + [ternarize_entry(2, 1000, 7), emulator_entry(2, 7)]
    assert [e["name"].split(":")[0] for e in entries] == [
        "encode",
        "decode",
        "encode",
        "decode",
        "emulator ternarize",
        "emulator (vectorized)",
    ]
    assert all(e["cost"] > 0 and e["repeats"] == 7 for e in entries)
