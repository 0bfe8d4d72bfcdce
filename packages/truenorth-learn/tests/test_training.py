import pytest
import torch

from dnnrepro.core.errors import ConfigError
from dnnrepro.truenorth_learn import TeaTrainSpec, train_tea


def _data(n=120, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=gen)
    y = torch.randint(0, 10, (n,), generator=gen)
    return x, y


def _params(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_same_seed_same_run_and_params_stay_in_range():
    spec = TeaTrainSpec(arch="digits-2core", epochs=1, batch_size=40, seed=3)
    a, _ = train_tea(spec, _data())
    b, _ = train_tea(spec, _data())
    pa, pb = _params(a), _params(b)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    for layer in a.tea_layers():
        assert float(layer.p.min()) >= 0 and float(layer.p.max()) <= 1
        assert float(layer.leak.abs().max()) <= 255
    c, _ = train_tea(TeaTrainSpec(arch="digits-2core", epochs=1, batch_size=40, seed=4), _data())
    assert not torch.equal(_params(c)["stages.0.layers.0.p"], pa["stages.0.layers.0.p"])


def test_zero_strength_is_the_baseline_exactly():
    base, _ = train_tea(TeaTrainSpec(epochs=1, batch_size=40), _data())
    zero, _ = train_tea(
        TeaTrainSpec(epochs=1, batch_size=40, penalty_kind="var", penalty_strength=0.0), _data()
    )
    pb, pz = _params(base), _params(zero)
    assert all(torch.equal(pb[k], pz[k]) for k in pb)


def test_penalty_pushes_probabilities_to_binary():
    from dnnrepro.truenorth_learn import binary_fraction

    base, _ = train_tea(TeaTrainSpec(epochs=2, batch_size=40), _data())
    pen, _ = train_tea(
        TeaTrainSpec(epochs=2, batch_size=40, penalty_kind="l1_to_binary", penalty_strength=300.0),
        _data(),
    )
    assert binary_fraction(pen) > binary_fraction(base) + 0.05


def test_resume_after_interruption_matches(tmp_path):
    spec = TeaTrainSpec(epochs=2, batch_size=40, seed=1)
    full, _ = train_tea(spec, _data())
    # a first run stopped after one epoch, then the same command resumed from its checkpoint
    partial = TeaTrainSpec(epochs=2, batch_size=40, seed=1, max_steps=3)
    train_tea(partial, _data(), checkpoint_dir=tmp_path)
    import json

    sidecar = json.loads((tmp_path / "train.json").read_text())
    sidecar["meta"]["config"]["max_steps"] = None  # what an uninterrupted run would have stored
    (tmp_path / "train.json").write_text(json.dumps(sidecar))
    resumed, result = train_tea(spec, _data(), checkpoint_dir=tmp_path)
    assert result.resumed_from_step == 3
    pf, pr = _params(full), _params(resumed)
    assert all(torch.equal(pf[k], pr[k]) for k in pf)


def test_bad_specs_raise():
    with pytest.raises(ConfigError, match="shape"):
        train_tea(TeaTrainSpec(arch="mnist-5core", epochs=1), _data())
    with pytest.raises(ConfigError, match="kind"):
        train_tea(TeaTrainSpec(penalty_kind="l3", penalty_strength=1.0), _data())
    with pytest.raises(ConfigError, match="needs a penalty kind"):
        train_tea(TeaTrainSpec(penalty_strength=1.0), _data())
