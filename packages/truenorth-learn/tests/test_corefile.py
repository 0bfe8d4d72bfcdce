import json

import pytest
import torch

from dnnrepro.core.errors import ConfigError, DataError, IntegrityError
from dnnrepro.truenorth_learn import build, simulate_counts
from dnnrepro.truenorth_learn.corefile import (
    export_cores,
    read_cores,
    simulate_cores,
    write_cores,
)


def _model(arch, seed=0):
    model = build(arch)
    model.reset_parameters(seed)
    with torch.no_grad():
        for layer in model.tea_layers():
            layer.leak.copy_(torch.randint(-3, 3, layer.leak.shape).float())
    return model


@pytest.mark.parametrize("arch,shape", [("digits-2core", (1, 8, 8)), ("mnist-5core", (1, 28, 28))])
def test_round_trip_gives_the_same_spikes(arch, shape, tmp_path):
    model = _model(arch)
    x = torch.rand(23, *shape, generator=torch.Generator().manual_seed(4))
    doc = export_cores(model, copies=3, seed=7, arch=arch)
    path = write_cores(tmp_path / "cores.json", doc)
    back = read_cores(path)
    got = simulate_cores(back, x, ticks=2, seed=7, inputs="shared")
    ref = simulate_counts(model, x, 3, 2, seed=7, backend="torch", inputs="shared")
    assert torch.equal(got, ref)
    assert int(ref.sum()) > 0  # something spiked: the comparison is not vacuous
    ind = simulate_cores(back, x, ticks=2, seed=7, inputs="independent")
    assert torch.equal(ind, simulate_counts(model, x, 3, 2, 7, "torch", inputs="independent"))
    # another seed for the crossbars gives other spikes
    other = simulate_cores(export_cores(model, copies=3, seed=8), x, 2, 7, inputs="shared")
    assert not torch.equal(other, ref)


def test_schema_fields_and_chip_limits():
    model = _model("mnist-5core")
    doc = export_cores(model, copies=2, seed=0, arch="mnist-5core")
    assert doc["format"] == "dnnrepro-truenorth-learn/cores" and doc["version"] == 1
    assert len(doc["cores"]) == 2 * 5
    first, out = doc["cores"][0], doc["cores"][4]
    assert first["axons"] == 256 and first["neurons"] == 64
    assert len(first["crossbar"]) == 256 and len(first["crossbar"][0]) == 64
    assert first["axon_source"][0] == {"input": 0}
    assert first["neuron_target"][0] == {"core": 4, "axon": 0}
    assert out["axon_source"][64] == {"core": 1, "neuron": 0}
    assert {t["class"] for t in out["neuron_target"]} == set(range(10))
    # the sampled bits follow p: mean connection frequency close to mean p
    bits = [ch == "1" for c in doc["cores"] for r in c["crossbar"] for ch in r]
    mean_p = float(torch.cat([la.p.detach().flatten() for la in model.tea_layers()]).mean())
    assert abs(sum(bits) / len(bits) - mean_p) < 0.01


def test_bad_files_are_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="export"):
        read_cores(tmp_path / "none.json")
    (tmp_path / "junk.json").write_text("{")
    with pytest.raises(IntegrityError):
        read_cores(tmp_path / "junk.json")
    doc = export_cores(_model("digits-2core"), copies=1)
    doc["cores"][0]["leak"][0] = 999
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(IntegrityError, match="core entry 0"):
        read_cores(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="shape"):
        simulate_cores(export_cores(_model("digits-2core"), 1), torch.rand(2, 1, 28, 28), 1)
    with pytest.raises(ConfigError, match="exceed"):
        export_cores(_model("mnist-5core"), copies=1000)
