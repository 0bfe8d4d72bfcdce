"""The GPU check of the DDP hook runs end to end with --cpu-only (issue 18 item 5)."""

import json

import pytest

from dnnrepro.terngrad import ddp_check

pytestmark = pytest.mark.slow


def test_ddp_check_cpu_only_passes_and_writes_its_record(tmp_path):
    assert ddp_check.main(["--cpu-only", "--quick", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "terngrad-ddp-cpu.json").read_text())
    assert record["cpu_only"] and record["passed"]
    wires = {(r["world"], r["wire"]) for r in record["correctness"] if r["ok"]}
    assert wires == {(n, w) for n in (1, 2) for w in ddp_check.WIRES}
    assert [e["name"].rsplit(": ", 1)[1] for e in record["overhead"]] == ["default", "terngrad"]


def test_a_wrong_gradient_fails_the_check(monkeypatch, tmp_path):
    real = ddp_check.emulated_grads

    def off_by_one_ulp(world, options, steps=ddp_check.STEPS):
        grads, digest = real(world, options, steps)
        grads[0]["fc1.weight"][0] = float(grads[0]["fc1.weight"][0]) * (1 + 2**-20) + 1e-12
        return grads, digest

    monkeypatch.setattr(ddp_check, "emulated_grads", off_by_one_ulp)
    rows = ddp_check.correctness(2, "cpu", "gloo")
    assert not any(r["ok"] for r in rows)
