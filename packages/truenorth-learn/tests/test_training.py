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
        assert float(layer.p.detach().min()) >= 0 and float(layer.p.detach().max()) <= 1
        assert float(layer.leak.detach().abs().max()) <= 255
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


def test_finetune_starts_from_saved_weights(tmp_path):
    from dnnrepro.core import checkpoint

    base, _ = train_tea(TeaTrainSpec(epochs=1, batch_size=40, seed=0), _data())
    checkpoint.save_weights(tmp_path / "base", base, {"arch": "digits-2core"})
    # one tiny step of fine-tuning: the model is the saved one (almost), not a fresh draw
    same, _ = train_tea(
        TeaTrainSpec(
            epochs=1, batch_size=40, seed=5, lr=1e-7, max_steps=1, init_from=str(tmp_path / "base")
        ),
        _data(),
    )
    pb, ps = _params(base), _params(same)
    key = "stages.0.layers.0.p"
    assert float((pb[key] - ps[key]).abs().max()) < 1e-5
    tuned, _ = train_tea(
        TeaTrainSpec(
            epochs=1,
            batch_size=40,
            seed=5,
            lr=0.005,
            penalty_kind="neuron_var",
            penalty_strength=1.0,
            init_from=str(tmp_path / "base"),
        ),
        _data(),
    )
    pt = _params(tuned)
    assert not torch.equal(pt[key], pb[key])
    assert float((pt[key] - pb[key]).abs().max()) < 0.2  # a few small steps from the baseline
    with pytest.raises(Exception, match="no such checkpoint"):
        train_tea(TeaTrainSpec(epochs=1, init_from=str(tmp_path / "missing")), _data())


@pytest.mark.parametrize("kind", ["neuron_var", "spike_var"])
def test_activation_penalties_train_and_detach(kind):
    from dnnrepro.truenorth_learn import binary_fraction

    spec = TeaTrainSpec(epochs=2, batch_size=40, penalty_kind=kind, penalty_strength=30.0)
    model, _ = train_tea(spec, _data())
    base, _ = train_tea(TeaTrainSpec(epochs=2, batch_size=40), _data())
    assert binary_fraction(model) > binary_fraction(base)
    # the hooks were removed after training: forward passes no longer feed a penalty
    assert all(not layer._forward_hooks for layer in model.tea_layers())
