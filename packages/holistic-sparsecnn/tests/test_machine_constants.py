"""The roofline constants are measured once, recorded, and can be given back to a rerun."""

import json

import pytest

from dnnrepro.core.bench import RatioMeasurement
from dnnrepro.core.errors import ConfigError
from dnnrepro.core.paper import RunContext
from dnnrepro.holistic_sparsecnn import config, experiment
from dnnrepro.holistic_sparsecnn.paper import PAPER

MACHINE = {"flops": 1e11, "bandwidth": 2e10, "alpha": 2.5, "beta": 2.0, "name": "pinned"}
TIMING = RatioMeasurement(2.5, 2.4, 2.6, 0.01, 0.025, 9, 1, 0.0, False).as_dict()


def _ctx(tmp_path):
    return RunContext(PAPER, "smoke", [0], tmp_path / "out", tmp_path / "work", quiet=True)


def test_given_results_json_reproduces_the_pinned_machine(tmp_path, monkeypatch):
    pinned = tmp_path / "results.json"
    pinned.write_text(json.dumps({"details": {"machine": MACHINE, "machine_alpha_timing": TIMING}}))
    monkeypatch.setenv(experiment.MACHINE_ENV, str(pinned))
    ctx = _ctx(tmp_path)
    m = experiment.machine_constants(ctx, config.SMOKE)
    assert m.as_dict() == MACHINE
    got = ctx._collected()
    assert got["details"]["machine"] == MACHINE
    assert got["timings"]["alpha"]["ratio"] == 2.5
    assert str(pinned) in got["inputs"]  # its sha256 is in the provenance
    assert not (tmp_path / "work" / "stages").exists()  # nothing measured


def test_given_plain_machine_json_and_bad_files(tmp_path, monkeypatch):
    plain = tmp_path / "m.json"
    plain.write_text(json.dumps(MACHINE))
    monkeypatch.setenv(experiment.MACHINE_ENV, str(plain))
    ctx = _ctx(tmp_path)
    assert experiment.machine_constants(ctx, config.SMOKE).alpha == 2.5
    assert ctx._collected()["measurements"]["alpha"] == [2.5]  # a value, no timing record
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"flops": 1}))
    monkeypatch.setenv(experiment.MACHINE_ENV, str(bad))
    with pytest.raises(ConfigError, match="no machine constants"):
        experiment.machine_constants(_ctx(tmp_path / "b"), config.SMOKE)
